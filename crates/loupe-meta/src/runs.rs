//! Runs: create or resume, read, patch, delete, and lost-run marking.

mod list;
mod names;

pub use list::{
    DEFAULT_RUN_LIMIT, MAX_RUN_LIMIT, RunPage, RunQuery, RunSort, SortKey, SummaryStat,
};

use std::collections::BTreeMap;

use loupe_model::{Run, RunStatus, SeriesSummary};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::projects::ensure_project;
use crate::store::{MetaStore, now};
use crate::validate;

/// A run being started, or resumed when `id` names an existing run.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NewRun {
    /// Resume this run if it exists, else create it under this id. `None`
    /// generates a fresh id (8 lowercase base-36 characters).
    pub id: Option<String>,
    /// Created on demand.
    pub project: String,
    /// `None` on create: a generated two-word name. On resume: keep.
    pub name: Option<String>,
    pub group: Option<String>,
    pub rank: Option<u32>,
    pub world_size: Option<u32>,
    /// On resume `None` keeps the stored tags; `Some` replaces them.
    pub tags: Option<Vec<String>>,
    /// A JSON object. On resume it is deep-merged into the stored config.
    pub config: Option<Value>,
    pub host: Option<String>,
    pub command: Option<String>,
    pub git_commit: Option<String>,
    pub notes: Option<String>,
    pub cwd: Option<String>,
    pub git_dirty: Option<bool>,
    /// The step a resumed run restarts from (its checkpoint's step).
    pub resume_step: Option<i64>,
    /// Unix seconds; `None` is now. Ignored on resume (a run keeps its
    /// first start time). Lets importers keep historical times.
    pub start_time: Option<f64>,
}

/// New summaries for one run's series, and whether fresh points showed the
/// run is alive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SummaryUpdate {
    pub run: String,
    pub summary: BTreeMap<String, SeriesSummary>,
    pub alive: bool,
}

/// A change to a run; `None` / empty fields leave things as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RunPatch {
    /// A terminal status sets `end_time` (to `end_time` below, or now); a
    /// non-terminal one clears `end_time` and `exit_code`.
    pub status: Option<RunStatus>,
    pub name: Option<String>,
    /// A JSON object deep-merged into the config: objects merge key by key,
    /// anything else (arrays, scalars, `null`) replaces the stored value.
    pub config_merge: Option<Value>,
    /// Upserted per series name; series not named are kept.
    pub summary: Option<BTreeMap<String, SeriesSummary>>,
    /// Replaces all tags.
    pub tags: Option<Vec<String>>,
    /// Set the heartbeat to now.
    pub heartbeat: bool,
    /// Kept only while the run is in a terminal status.
    pub exit_code: Option<i32>,
    /// Kept only while the run is in a terminal status.
    pub end_time: Option<f64>,
    pub notes: Option<String>,
    pub failure: Option<loupe_model::RunFailure>,
}

impl MetaStore {
    /// Creates a run, or resumes it when `new.id` names an existing run of
    /// the same project. Returns the run and whether it was created.
    ///
    /// Resuming sets the status back to running, counts the resume, renews the
    /// heartbeat, clears `end_time` and `exit_code`, deep-merges `config`,
    /// records `resume_step`, and replaces whichever other fields are given.
    /// Resuming an id that belongs to another project is a [`Error::Conflict`].
    pub fn create_or_resume_run(&self, new: NewRun) -> Result<(Run, bool)> {
        let new = check_new(new)?;
        let now = now();
        self.write(|tx| {
            let project = ensure_project(tx, &new.project, now)?;
            if let Some(id) = &new.id {
                let existing = tx
                    .query_row(
                        "SELECT r.rid, p.name FROM run r JOIN project p ON p.id = r.project
                         WHERE r.id = ?1",
                        [id],
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                    )
                    .optional()?;
                if let Some((rid, owner)) = existing {
                    if owner != new.project {
                        return Err(Error::Conflict(format!(
                            "run {id:?} belongs to project {owner:?}, not {:?}",
                            new.project
                        )));
                    }
                    resume(tx, rid, &new, now)?;
                    return Ok((load_run(tx, id)?, false));
                }
            }
            let id = match &new.id {
                Some(id) => id.clone(),
                None => fresh_id(tx)?,
            };
            insert(tx, project, &id, &new, now)?;
            Ok((load_run(tx, &id)?, true))
        })
    }

    /// The run with this id, with all its series summaries.
    pub fn get_run(&self, id: &str) -> Result<Run> {
        self.read(|tx| load_run(tx, id))
    }

    /// The project a run belongs to: the cheap check before serving a
    /// request scoped to a project (no config, tags or summaries read).
    pub fn run_project(&self, id: &str) -> Result<String> {
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT p.name FROM run r JOIN project p ON p.id = r.project WHERE r.id = ?1",
            )?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::not_found("run", id))
        })
    }

    /// Replaces the stored summaries of the given runs' series (others stay)
    /// and renews the heartbeat of the runs marked alive (reviving lost
    /// ones), all in one transaction: how the server writes the summaries it
    /// recomputed from the time-series engine, once a second, with one fsync.
    /// Runs that no longer exist are skipped and returned.
    pub fn store_summaries(&self, items: &[SummaryUpdate]) -> Result<Vec<String>> {
        let now = now();
        self.write(|tx| {
            let mut missing = Vec::new();
            for u in items {
                let rid: Option<i64> = tx
                    .prepare_cached("SELECT rid FROM run WHERE id = ?1")?
                    .query_row([&u.run], |r| r.get(0))
                    .optional()?;
                let Some(rid) = rid else {
                    missing.push(u.run.clone());
                    continue;
                };
                upsert_summary(tx, rid, &u.summary)?;
                if u.alive {
                    tx.prepare_cached(
                        "UPDATE run SET heartbeat_time = ?2,
                             status = CASE status WHEN 'lost' THEN 'running' ELSE status END
                         WHERE rid = ?1",
                    )?
                    .execute(params![rid, now])?;
                }
            }
            Ok(missing)
        })
    }

    /// The step the run's latest resume started from, if one was given.
    // Kept beside `Run` rather than in it: the shared model type has no field for it yet.
    pub fn run_resume_step(&self, id: &str) -> Result<Option<i64>> {
        self.read(|tx| {
            tx.query_row("SELECT resume_step FROM run WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| Error::not_found("run", id))
        })
    }

    /// Applies `patch` and returns the run as it now is.
    ///
    /// Any patch on a `lost` run that does not set a status brings it back to
    /// `running` with a fresh heartbeat: a lost run that still talks was only
    /// late.
    pub fn update_run(&self, id: &str, patch: RunPatch) -> Result<Run> {
        let patch = check_patch(patch)?;
        let now = now();
        self.write(|tx| {
            let row = load_row(tx, id)?.ok_or_else(|| Error::not_found("run", id))?;
            let current = parse_status(&row.status)?;
            let revived = current == RunStatus::Lost
                && matches!(patch.status, None | Some(RunStatus::Running));
            let status = match patch.status {
                Some(s) => s,
                None if revived => RunStatus::Running,
                None => current,
            };
            let heartbeat = if patch.heartbeat || revived {
                now
            } else {
                row.heartbeat_time
            };
            let (end_time, exit_code) = if status.is_terminal() {
                let kept_end = if current.is_terminal() {
                    row.end_time
                } else {
                    None
                };
                (
                    Some(patch.end_time.or(kept_end).unwrap_or(now)),
                    patch.exit_code.map(i64::from).or(row.exit_code),
                )
            } else {
                (None, None)
            };
            let mut config = parse_json("config", &row.config)?;
            if let Some(merge) = patch.config_merge.clone() {
                deep_merge(&mut config, merge);
            }
            let config = encode_config(&config)?;
            let name = patch.name.clone().unwrap_or(row.name.clone());
            let tags_json = match &patch.tags {
                Some(tags) => {
                    replace_tags(tx, row.rid, tags)?;
                    serde_json::to_string(tags).expect("strings encode")
                }
                None => row.tags.clone(),
            };
            let notes = patch.notes.clone().or(row.notes.clone());
            let failure = match &patch.failure {
                Some(f) => Some(serde_json::to_string(f).expect("plain data encodes")),
                None => row.failure.clone(),
            };
            tx.execute(
                "UPDATE run SET status = ?2, heartbeat_time = ?3, end_time = ?4, exit_code = ?5,
                     config = ?6, name = ?7, tags = ?8, notes = ?9, search = ?10, failure = ?11
                 WHERE rid = ?1",
                params![
                    row.rid,
                    status.as_str(),
                    heartbeat,
                    end_time,
                    exit_code,
                    config,
                    name,
                    tags_json,
                    notes,
                    search_text(&name, id, row.group.as_deref()),
                    failure,
                ],
            )?;
            if let Some(summary) = &patch.summary {
                upsert_summary(tx, row.rid, summary)?;
            }
            load_run(tx, id)
        })
    }

    /// Renews the run's heartbeat (reviving it if `lost`) and returns its
    /// status: the cheap form of `update_run(id, RunPatch { heartbeat: true, .. })`,
    /// which also reads the whole run back.
    pub fn heartbeat(&self, id: &str) -> Result<RunStatus> {
        let now = now();
        self.write(|tx| {
            let status: String = tx
                .prepare_cached(
                    "UPDATE run SET heartbeat_time = ?2,
                         status = CASE status WHEN 'lost' THEN 'running' ELSE status END
                     WHERE id = ?1
                     RETURNING status",
                )?
                .query_row(params![id, now], |r| r.get(0))
                .optional()?
                .ok_or_else(|| Error::not_found("run", id))?;
            parse_status(&status)
        })
    }

    /// Deletes the run with its tags, summaries, log lines and their
    /// full-text index entries, in one transaction.
    pub fn delete_run(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let rid: i64 = tx
                .query_row("SELECT rid FROM run WHERE id = ?1", [id], |r| r.get(0))
                .optional()?
                .ok_or_else(|| Error::not_found("run", id))?;
            let (lo, hi) = crate::logs::rowid_range(rid);
            // The FTS delete trigger fires per line; tags and summaries go by
            // ON DELETE CASCADE.
            tx.execute("DELETE FROM log WHERE id BETWEEN ?1 AND ?2", [lo, hi])?;
            tx.execute("DELETE FROM run WHERE rid = ?1", [rid])?;
            Ok(())
        })?;
        self.count_run_deleted();
        Ok(())
    }

    /// Marks `running` runs whose last heartbeat is older than
    /// `now - timeout_s` as `lost`; returns their ids.
    pub fn mark_lost_runs(&self, now: f64, timeout_s: f64) -> Result<Vec<String>> {
        validate::finite("now", now)?;
        validate::finite("timeout_s", timeout_s)?;
        self.write(|tx| {
            let mut stmt = tx.prepare(
                "UPDATE run SET status = 'lost'
                 WHERE status = 'running' AND heartbeat_time < ?1
                 RETURNING id",
            )?;
            let ids = stmt
                .query_map([now - timeout_s], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(ids)
        })
    }
}

fn check_new(mut new: NewRun) -> Result<NewRun> {
    validate::project_name(&new.project)?;
    if let Some(id) = &new.id {
        validate::run_id(id)?;
    }
    if let Some(name) = &new.name {
        validate::label("run name", name, validate::MAX_NAME_BYTES)?;
    }
    if let Some(group) = &new.group {
        validate::label("group", group, validate::MAX_NAME_BYTES)?;
    }
    check_rank(new.rank, new.world_size)?;
    if let Some(tags) = new.tags.take() {
        new.tags = Some(validate::tags(tags)?);
    }
    if let Some(config) = new.config.take() {
        let config = validate::config("config", config)?;
        validate::config_size("config", &config.to_string())?;
        new.config = Some(config);
    }
    for (what, v) in [
        ("host", &new.host),
        ("command", &new.command),
        ("git_commit", &new.git_commit),
        ("notes", &new.notes),
        ("cwd", &new.cwd),
    ] {
        if let Some(v) = v {
            validate::text(what, v)?;
        }
    }
    if let Some(t) = new.start_time {
        validate::timestamp("start_time", t)?;
    }
    Ok(new)
}

fn check_rank(rank: Option<u32>, world_size: Option<u32>) -> Result<()> {
    if world_size == Some(0) {
        return Err(Error::invalid("world_size must be at least 1"));
    }
    if let (Some(rank), Some(world)) = (rank, world_size)
        && rank >= world
    {
        return Err(Error::invalid(format!(
            "rank {rank} is not below world_size {world}"
        )));
    }
    Ok(())
}

fn check_patch(mut patch: RunPatch) -> Result<RunPatch> {
    if let Some(name) = &patch.name {
        validate::label("run name", name, validate::MAX_NAME_BYTES)?;
    }
    if let Some(merge) = patch.config_merge.take() {
        let merge = validate::config("config_merge", merge)?;
        validate::config_size("config_merge", &merge.to_string())?;
        patch.config_merge = Some(merge);
    }
    if let Some(tags) = patch.tags.take() {
        patch.tags = Some(validate::tags(tags)?);
    }
    for (series, s) in patch.summary.iter().flatten() {
        validate::label("summary series name", series, loupe_model::MAX_NAME_BYTES)?;
        if i64::try_from(s.count).is_err() {
            return Err(Error::invalid(format!(
                "summary {series:?}: count {} is too large",
                s.count
            )));
        }
    }
    if let Some(t) = patch.end_time {
        validate::timestamp("end_time", t)?;
    }
    if let Some(notes) = &patch.notes {
        validate::text("notes", notes)?;
    }
    if let Some(f) = &patch.failure {
        // Bounded like any free text, measured as the JSON it is stored as.
        let encoded = serde_json::to_string(f).expect("plain data encodes");
        validate::text("failure", &encoded)?;
    }
    Ok(patch)
}

fn insert(tx: &Connection, project: i64, id: &str, new: &NewRun, now: f64) -> Result<()> {
    let name = new.name.clone().unwrap_or_else(names::two_word_name);
    let tags = new.tags.clone().unwrap_or_default();
    let config = match &new.config {
        Some(c) => encode_config(c)?,
        None => "{}".to_string(),
    };
    let start = new.start_time.unwrap_or(now);
    tx.execute(
        "INSERT INTO run (id, project, name, grp, rank, world_size, tags, config, status,
             host, command, git_commit, notes, start_time, heartbeat_time, resume_step, search,
             cwd, git_dirty)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'running', ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
             ?17, ?18)",
        params![
            id,
            project,
            name,
            new.group,
            new.rank,
            new.world_size,
            serde_json::to_string(&tags).expect("strings encode"),
            config,
            new.host,
            new.command,
            new.git_commit,
            new.notes,
            start,
            now,
            new.resume_step,
            search_text(&name, id, new.group.as_deref()),
            new.cwd,
            new.git_dirty,
        ],
    )?;
    let rid = tx.last_insert_rowid();
    replace_tags(tx, rid, &tags)?;
    Ok(())
}

fn resume(tx: &Connection, rid: i64, new: &NewRun, now: f64) -> Result<()> {
    let row = load_row_by_rid(tx, rid)?;
    let mut config = parse_json("config", &row.config)?;
    if let Some(merge) = new.config.clone() {
        deep_merge(&mut config, merge);
    }
    let tags_json = match &new.tags {
        Some(tags) => {
            replace_tags(tx, rid, tags)?;
            serde_json::to_string(tags).expect("strings encode")
        }
        None => row.tags.clone(),
    };
    let name = new.name.clone().unwrap_or(row.name.clone());
    let group = new.group.clone().or(row.group.clone());
    let rank = new.rank.map(i64::from).or(row.rank);
    let world_size = new.world_size.map(i64::from).or(row.world_size);
    if let (Some(r), Some(w)) = (rank, world_size)
        && r >= w
    {
        return Err(Error::invalid(format!(
            "rank {r} is not below world_size {w}"
        )));
    }
    tx.execute(
        "UPDATE run SET status = 'running', resumes = resumes + 1, heartbeat_time = ?2,
             end_time = NULL, exit_code = NULL, resume_step = ?3,
             name = ?4, grp = ?5, rank = ?6, world_size = ?7, tags = ?8, config = ?9,
             host = coalesce(?10, host), command = coalesce(?11, command),
             git_commit = coalesce(?12, git_commit), notes = coalesce(?13, notes),
             search = ?14, cwd = coalesce(?15, cwd), git_dirty = coalesce(?16, git_dirty),
             failure = NULL
         WHERE rid = ?1",
        params![
            rid,
            now,
            new.resume_step,
            name,
            group,
            rank,
            world_size,
            tags_json,
            encode_config(&config)?,
            new.host,
            new.command,
            new.git_commit,
            new.notes,
            search_text(&name, &row.id, group.as_deref()),
            new.cwd,
            new.git_dirty,
        ],
    )?;
    Ok(())
}

/// A random id no run has; collisions are rare (36^8 ≈ 2.8e12) but cheap to rule out.
fn fresh_id(tx: &Connection) -> Result<String> {
    loop {
        let id = names::random_id();
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM run WHERE id = ?1)",
            [&id],
            |r| r.get(0),
        )?;
        if !taken {
            return Ok(id);
        }
    }
}

fn replace_tags(tx: &Connection, rid: i64, tags: &[String]) -> Result<()> {
    tx.execute("DELETE FROM run_tag WHERE run = ?1", [rid])?;
    let mut stmt = tx.prepare_cached("INSERT INTO run_tag (tag, run) VALUES (?1, ?2)")?;
    for tag in tags {
        stmt.execute(params![tag, rid])?;
    }
    Ok(())
}

fn upsert_summary(
    tx: &Connection,
    rid: i64,
    summary: &BTreeMap<String, SeriesSummary>,
) -> Result<()> {
    if summary.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO run_summary (run, series, last, min, max, count, last_step)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (run, series) DO UPDATE SET last = excluded.last, min = excluded.min,
             max = excluded.max, count = excluded.count, last_step = excluded.last_step",
    )?;
    // SQLite cannot store NaN (it becomes NULL); say so explicitly, and read
    // NULL back as NaN.
    let real = |v: f64| (!v.is_nan()).then_some(v);
    for (series, s) in summary {
        stmt.execute(params![
            rid,
            series,
            real(s.last),
            real(s.min),
            real(s.max),
            s.count as i64,
            s.last_step,
        ])?;
    }
    Ok(())
}

/// What `list_runs` and friends search with `q`.
fn search_text(name: &str, id: &str, group: Option<&str>) -> String {
    format!("{name}\n{id}\n{}", group.unwrap_or("")).to_lowercase()
}

/// Deep-merges `patch` into `dst`: objects key by key, anything else replaces.
pub(crate) fn deep_merge(dst: &mut Value, patch: Value) {
    match (dst, patch) {
        (Value::Object(d), Value::Object(p)) => {
            for (k, v) in p {
                match d.get_mut(&k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        d.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn encode_config(config: &Value) -> Result<String> {
    let s = serde_json::to_string(config).expect("JSON values encode");
    validate::config_size("merged config", &s)?;
    Ok(s)
}

fn parse_json(what: &str, s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(format!("stored {what} is not JSON: {e}")))
}

fn parse_status(s: &str) -> Result<RunStatus> {
    s.parse()
        .map_err(|e| Error::Corrupt(format!("stored run status: {e}")))
}

/// Columns read into a [`RunRow`], in order; `r` is `run`, `p` is `project`.
pub(crate) const RUN_COLUMNS: &str = "r.rid, r.id, p.name, r.name, r.grp, r.rank, r.world_size, \
     r.tags, r.config, r.status, r.host, r.command, r.git_commit, r.notes, r.start_time, \
     r.heartbeat_time, r.end_time, r.exit_code, r.resumes, r.cwd, r.git_dirty, r.failure, \
     r.health, r.open_incidents, \
     (SELECT count(*) FROM incident_run ir WHERE ir.run = r.rid)";
/// How many columns [`RUN_COLUMNS`] has: the index of the first extra one.
pub(crate) const RUN_COLUMN_COUNT: usize = 25;

/// A `run` row as stored, before its JSON and enums are decoded.
pub(crate) struct RunRow {
    pub(crate) rid: i64,
    id: String,
    project: String,
    name: String,
    group: Option<String>,
    rank: Option<i64>,
    world_size: Option<i64>,
    tags: String,
    config: String,
    status: String,
    host: Option<String>,
    command: Option<String>,
    git_commit: Option<String>,
    notes: Option<String>,
    start_time: f64,
    heartbeat_time: f64,
    end_time: Option<f64>,
    exit_code: Option<i64>,
    resumes: i64,
    cwd: Option<String>,
    git_dirty: Option<bool>,
    failure: Option<String>,
    health: Option<f64>,
    open_incidents: i64,
    /// Counted from `incident_run` (keyed by run first, so an index range).
    total_incidents: i64,
}

impl RunRow {
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            rid: r.get(0)?,
            id: r.get(1)?,
            project: r.get(2)?,
            name: r.get(3)?,
            group: r.get(4)?,
            rank: r.get(5)?,
            world_size: r.get(6)?,
            tags: r.get(7)?,
            config: r.get(8)?,
            status: r.get(9)?,
            host: r.get(10)?,
            command: r.get(11)?,
            git_commit: r.get(12)?,
            notes: r.get(13)?,
            start_time: r.get(14)?,
            heartbeat_time: r.get(15)?,
            end_time: r.get(16)?,
            exit_code: r.get(17)?,
            resumes: r.get(18)?,
            cwd: r.get(19)?,
            git_dirty: r.get(20)?,
            failure: r.get(21)?,
            health: r.get(22)?,
            open_incidents: r.get(23)?,
            total_incidents: r.get(24)?,
        })
    }

    /// The run without its summary.
    pub(crate) fn into_run(self) -> Result<Run> {
        let corrupt = |what: &str, v: i64| Error::Corrupt(format!("run {}: {what} {v}", self.id));
        let small = |what: &str, v: Option<i64>| -> Result<Option<u32>> {
            v.map(|v| u32::try_from(v).map_err(|_| corrupt(what, v)))
                .transpose()
        };
        let tags: Vec<String> = serde_json::from_str(&self.tags)
            .map_err(|e| Error::Corrupt(format!("run {}: stored tags: {e}", self.id)))?;
        let failure = self
            .failure
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| Error::Corrupt(format!("run {}: stored failure: {e}", self.id)))?;
        let open_incidents = u32::try_from(self.open_incidents)
            .map_err(|_| corrupt("open_incidents", self.open_incidents))?;
        let total_incidents = u32::try_from(self.total_incidents)
            .map_err(|_| corrupt("total_incidents", self.total_incidents))?;
        Ok(Run {
            rank: small("rank", self.rank)?,
            world_size: small("world_size", self.world_size)?,
            exit_code: self
                .exit_code
                .map(|v| i32::try_from(v).map_err(|_| corrupt("exit_code", v)))
                .transpose()?,
            resumes: u32::try_from(self.resumes).map_err(|_| corrupt("resumes", self.resumes))?,
            status: parse_status(&self.status)?,
            config: parse_json("config", &self.config)?,
            tags,
            id: self.id,
            project: self.project,
            name: self.name,
            group: self.group,
            host: self.host,
            command: self.command,
            git_commit: self.git_commit,
            notes: self.notes,
            start_time: self.start_time,
            heartbeat_time: self.heartbeat_time,
            end_time: self.end_time,
            summary: BTreeMap::new(),
            failure,
            open_incidents,
            total_incidents,
            cwd: self.cwd,
            git_dirty: self.git_dirty,
            health: self.health,
        })
    }
}

fn load_row(conn: &Connection, id: &str) -> Result<Option<RunRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM run r JOIN project p ON p.id = r.project WHERE r.id = ?1"
    ))?;
    Ok(stmt.query_row([id], RunRow::from_row).optional()?)
}

fn load_row_by_rid(conn: &Connection, rid: i64) -> Result<RunRow> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM run r JOIN project p ON p.id = r.project WHERE r.rid = ?1"
    ))?;
    Ok(stmt.query_row([rid], RunRow::from_row)?)
}

/// The run with its full summary.
fn load_run(conn: &Connection, id: &str) -> Result<Run> {
    let row = load_row(conn, id)?.ok_or_else(|| Error::not_found("run", id))?;
    let rid = row.rid;
    let mut run = row.into_run()?;
    run.summary = load_summary(conn, rid, None)?;
    Ok(run)
}

/// A run's summaries: all of them, or only the series named in `only`.
pub(crate) fn load_summary(
    conn: &Connection,
    rid: i64,
    only: Option<&[String]>,
) -> Result<BTreeMap<String, SeriesSummary>> {
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(String, SeriesSummary)> {
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        Ok((
            r.get(0)?,
            SeriesSummary {
                last: nan(r.get(1)?),
                min: nan(r.get(2)?),
                max: nan(r.get(3)?),
                count: r.get::<_, i64>(4)?.max(0) as u64,
                last_step: r.get(5)?,
            },
        ))
    };
    let mut out = BTreeMap::new();
    match only {
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT series, last, min, max, count, last_step FROM run_summary WHERE run = ?1",
            )?;
            for item in stmt.query_map([rid], row)? {
                let (k, v) = item?;
                out.insert(k, v);
            }
        }
        Some(series) => {
            let mut stmt = conn.prepare_cached(
                "SELECT series, last, min, max, count, last_step FROM run_summary
                 WHERE run = ?1 AND series = ?2",
            )?;
            for name in series {
                if let Some((k, v)) = stmt.query_row(params![rid, name], row).optional()? {
                    out.insert(k, v);
                }
            }
        }
    }
    Ok(out)
}
