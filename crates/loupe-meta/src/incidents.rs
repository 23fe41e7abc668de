//! Incidents as diagnosis found them: stored whole as JSON, with the
//! columns listings filter on, and linked to every run they touch. The
//! `open_incidents` counter of those runs is kept in the same transaction.

use rusqlite::{OptionalExtension, params};

use crate::error::{Error, Result};
use crate::projects::ensure_project;
use crate::store::MetaStore;
use crate::validate;

/// An incident to store. `body` is its JSON as served.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRecord {
    pub id: String,
    pub project: String,
    pub group: Option<String>,
    pub host: Option<String>,
    /// `open` or `resolved`.
    pub state: String,
    pub severity: String,
    pub kind: String,
    pub opened: f64,
    pub updated: f64,
    /// Ids of the runs it touches; unknown ids are skipped.
    pub runs: Vec<String>,
    pub body: String,
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentQuery {
    pub project: Option<String>,
    pub state: Option<String>,
    pub host: Option<String>,
    pub group: Option<String>,
    pub run: Option<String>,
    /// Incidents opened before this (Unix seconds): the next page.
    pub before: Option<f64>,
    pub limit: usize,
}

/// The longest incident body accepted (evidence is bounded upstream).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_INCIDENT_LIMIT: usize = 1000;

impl MetaStore {
    /// Inserts or replaces incidents (by id) in one transaction, and
    /// recounts the open incidents of every run they touch.
    pub fn store_incidents(&self, items: &[IncidentRecord]) -> Result<()> {
        for i in items {
            validate::project_name(&i.project)?;
            if i.body.len() > MAX_BODY_BYTES {
                return Err(Error::invalid(format!(
                    "incident {}: body of {} bytes is over {MAX_BODY_BYTES}",
                    i.id,
                    i.body.len()
                )));
            }
            if !matches!(i.state.as_str(), "open" | "resolved") {
                return Err(Error::invalid(format!(
                    "incident {}: state {:?}",
                    i.id, i.state
                )));
            }
        }
        let now = crate::store::now();
        self.write(|tx| {
            let mut touched = Vec::new();
            for i in items {
                let project = ensure_project(tx, &i.project, now)?;
                let iid: i64 = tx
                    .prepare_cached(
                        "INSERT INTO incident (id, project, grp, host, state, severity, kind, opened, updated, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (id) DO UPDATE SET grp = excluded.grp, host = excluded.host,
                             state = excluded.state, severity = excluded.severity, kind = excluded.kind,
                             updated = excluded.updated, body = excluded.body
                         RETURNING iid",
                    )?
                    .query_row(
                        params![i.id, project, i.group, i.host, i.state, i.severity, i.kind, i.opened, i.updated, i.body],
                        |r| r.get(0),
                    )?;
                for run in &i.runs {
                    let rid: Option<i64> = tx
                        .prepare_cached("SELECT rid FROM run WHERE id = ?1")?
                        .query_row([run], |r| r.get(0))
                        .optional()?;
                    if let Some(rid) = rid {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO incident_run (run, incident) VALUES (?1, ?2)",
                        )?
                        .execute(params![rid, iid])?;
                        touched.push(rid);
                    }
                }
            }
            touched.sort_unstable();
            touched.dedup();
            for rid in touched {
                tx.prepare_cached(
                    "UPDATE run SET open_incidents = (
                         SELECT count(*) FROM incident_run ir JOIN incident i ON i.iid = ir.incident
                         WHERE ir.run = ?1 AND i.state = 'open')
                     WHERE rid = ?1",
                )?
                .execute([rid])?;
            }
            Ok(())
        })
    }

    /// Incident bodies (JSON) matching `q`, newest first, with the project
    /// each belongs to.
    pub fn list_incidents(&self, q: &IncidentQuery) -> Result<Vec<(String, String)>> {
        let limit = q.limit.clamp(1, MAX_INCIDENT_LIMIT) as i64;
        self.read(|tx| {
            let mut sql = String::from(
                "SELECT i.body, p.name FROM incident i JOIN project p ON p.id = i.project WHERE 1 = 1",
            );
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut push = |clause: &str, v: rusqlite::types::Value| {
                args.push(v);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(run) = &q.run {
                push(
                    " AND i.iid IN (SELECT ir.incident FROM incident_run ir JOIN run r ON r.rid = ir.run WHERE r.id = ?)",
                    run.clone().into(),
                );
            }
            if let Some(p) = &q.project {
                push(" AND p.name = ?", p.clone().into());
            }
            if let Some(s) = &q.state {
                push(" AND i.state = ?", s.clone().into());
            }
            if let Some(h) = &q.host {
                push(" AND i.host = ?", h.clone().into());
            }
            if let Some(g) = &q.group {
                push(" AND i.grp = ?", g.clone().into());
            }
            if let Some(b) = q.before {
                push(" AND i.opened < ?", b.into());
            }
            push(" ORDER BY i.opened DESC, i.iid DESC LIMIT ?", limit.into());
            let mut stmt = tx.prepare(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
            Ok(rows)
        })
    }

    /// One incident's body and project.
    pub fn get_incident(&self, id: &str) -> Result<(String, String)> {
        self.read(|tx| {
            tx.query_row(
                "SELECT i.body, p.name FROM incident i JOIN project p ON p.id = i.project WHERE i.id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::not_found("incident", id))
        })
    }

    /// Stores runs' health scores with their breakdown (JSON); unknown runs
    /// are skipped.
    pub fn store_health(&self, items: &[(String, f64, String)]) -> Result<()> {
        self.write(|tx| {
            for (run, score, detail) in items {
                tx.prepare_cached("UPDATE run SET health = ?2, health_detail = ?3 WHERE id = ?1")?
                    .execute(params![run, score, detail])?;
            }
            Ok(())
        })
    }

    /// A run's health score and breakdown (JSON), if judged.
    pub fn run_health(&self, run: &str) -> Result<Option<(f64, String)>> {
        self.read(|tx| {
            let row: Option<(Option<f64>, Option<String>)> = tx
                .query_row(
                    "SELECT health, health_detail FROM run WHERE id = ?1",
                    [run],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match row {
                None => Err(Error::not_found("run", run)),
                Some((Some(score), detail)) => {
                    Ok(Some((score, detail.unwrap_or_else(|| "[]".into()))))
                }
                Some((None, _)) => Ok(None),
            }
        })
    }
}

/// The health of a job: its ranks' scores.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupHealth {
    /// (run id, rank, score) of each judged member, worst first.
    pub members: Vec<(String, Option<u32>, f64)>,
    /// Members not judged yet.
    pub unjudged: usize,
}

impl MetaStore {
    /// The health scores of a group's runs in a project.
    pub fn group_health(&self, project: &str, group: &str) -> Result<GroupHealth> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT r.id, r.rank, r.health FROM run r JOIN project p ON p.id = r.project
                 WHERE p.name = ?1 AND r.grp = ?2",
            )?;
            let rows = stmt
                .query_map(params![project, group], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<f64>>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if rows.is_empty() {
                return Err(Error::not_found("group", group));
            }
            let mut members = Vec::new();
            let mut unjudged = 0;
            for (id, rank, health) in rows {
                match health {
                    Some(h) => members.push((id, rank.and_then(|r| u32::try_from(r).ok()), h)),
                    None => unjudged += 1,
                }
            }
            members.sort_by(|a, b| a.2.total_cmp(&b.2));
            Ok(GroupHealth { members, unjudged })
        })
    }
}
