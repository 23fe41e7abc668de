//! Reads a run's baselines from the stores: the healthy finished runs of
//! its project and config family, newest first, and their envelopes.
//!
//! *Healthy* means status `finished` (it ended well) and no open
//! incident. Envelopes are built from M4 reads on the step axis with one
//! pixel column per step bucket, so their cost follows the bucket count,
//! not the runs' lengths. A family's envelopes are cached and re-read at
//! most every `refresh_s`; the worker asks again for each running run as
//! often, so a run that started before its baseline finished catches up.
//! This runs on the diagnosis thread, never on the async runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_diagnose::SeriesRole;
use loupe_diagnose::baseline::envelope::bucket_steps_for;
use loupe_diagnose::baseline::{
    BaselineConfig, ClosestRun, Envelope, EnvelopeBuilder, FamilySignature, RunBaseline,
    compared_role, config_changes, family_of,
};
use loupe_meta::RunQuery;
use loupe_model::{Run, RunStatus, SeriesMatcher};
use loupe_tsdb::XAxis;

use crate::stores::Stores;

/// Runs looked at per page, and pages at most, when looking for a family's runs.
const RUNS_PER_PAGE: usize = 200;
const MAX_PAGES: usize = 5;
/// Families cached at once (beyond it the cache starts over).
const MAX_FAMILIES: usize = 256;
/// Config changes kept against the closest run.
const MAX_CHANGES: usize = 20;

struct Family {
    loaded: Instant,
    /// Newest first, with their configs (for the closest run).
    runs: Vec<(String, serde_json::Value)>,
    envelopes: Vec<Envelope>,
}

/// What the loader keeps of a run it watches.
struct Watched {
    run: Run,
    checked: Option<Instant>,
}

/// Runs this many are watched at most (beyond it the oldest are dropped).
const MAX_WATCHED: usize = 100_000;

/// The family cache, and the runs whose baselines are kept up to date.
#[derive(Default)]
pub(super) struct BaselineLoader {
    families: HashMap<(String, FamilySignature), Arc<Family>>,
    runs: HashMap<String, Watched>,
}

impl BaselineLoader {
    /// Starts keeping a run's baseline (its config and project are read
    /// from `run`); a run already watched is updated.
    pub(super) fn watch(&mut self, run: Run) {
        if self.runs.len() >= MAX_WATCHED {
            self.runs.clear();
        }
        self.runs
            .insert(run.id.clone(), Watched { run, checked: None });
    }

    /// A run ended: it is no longer watched, and its project's cached
    /// families are dropped, since it may now be a baseline run itself.
    pub(super) fn run_ended(&mut self, run: &str) {
        if let Some(w) = self.runs.remove(run) {
            self.families
                .retain(|(project, _), _| *project != w.run.project);
        }
    }

    /// The baseline of a watched run when it is due (never looked for, or
    /// last looked for more than `refresh_s` ago); `None` when not due, or
    /// when the run has no family or no baseline runs.
    pub(super) fn due(
        &mut self,
        st: &Stores,
        run: &str,
        cfg: &BaselineConfig,
    ) -> Option<RunBaseline> {
        if !cfg.enabled {
            return None;
        }
        let every = Duration::from_secs_f64(cfg.refresh_s.max(1.0));
        let w = self.runs.get_mut(run)?;
        if w.checked.is_some_and(|t| t.elapsed() < every) {
            return None;
        }
        w.checked = Some(Instant::now());
        let run = &w.run;
        let sig = family_of(&run.config, &cfg.family_keys, &cfg.ignore_keys)?;
        let key = (run.project.clone(), sig);
        let fresh = self
            .families
            .get(&key)
            .filter(|f| f.loaded.elapsed() < every)
            .cloned();
        let family = match fresh {
            Some(f) => f,
            None => {
                if self.families.len() >= MAX_FAMILIES {
                    self.families.clear();
                }
                let f = Arc::new(load_family(st, run, &key.1, cfg));
                self.families.insert(key, f.clone());
                f
            }
        };
        let runs: Vec<String> = family
            .runs
            .iter()
            .filter(|(id, _)| *id != run.id)
            .map(|(id, _)| id.clone())
            .collect();
        if runs.is_empty() || family.envelopes.is_empty() {
            return None;
        }
        Some(RunBaseline {
            closest: closest(run, &family.runs, cfg),
            runs,
            envelopes: family.envelopes.clone(),
        })
    }
}

/// The baseline run whose config differs from `run`'s on the fewest keys
/// (the newest among equals).
fn closest(
    run: &Run,
    family: &[(String, serde_json::Value)],
    cfg: &BaselineConfig,
) -> Option<ClosestRun> {
    family
        .iter()
        .filter(|(id, _)| *id != run.id)
        .map(|(id, config)| ClosestRun {
            run: id.clone(),
            changes: config_changes(&run.config, config, &cfg.ignore_keys, MAX_CHANGES),
        })
        .min_by_key(|c| c.changes.len())
}

fn load_family(st: &Stores, run: &Run, sig: &FamilySignature, cfg: &BaselineConfig) -> Family {
    let runs = family_runs(st, run, sig, cfg);
    let ids: Vec<&str> = runs.iter().map(|(id, _)| id.as_str()).collect();
    Family {
        loaded: Instant::now(),
        envelopes: envelopes(st, &ids, cfg),
        runs,
    }
}

/// The project's healthy finished runs of the family, newest first, at
/// most `max_runs`.
fn family_runs(
    st: &Stores,
    run: &Run,
    sig: &FamilySignature,
    cfg: &BaselineConfig,
) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let q = RunQuery {
            project: Some(run.project.clone()),
            status: Some(vec![RunStatus::Finished]),
            limit: Some(RUNS_PER_PAGE),
            cursor: cursor.take(),
            summary_series: Some(Vec::new()),
            ..Default::default()
        };
        let page = match st.meta.list_runs(q) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(run = %run.id, "baseline runs not listed: {e}");
                break;
            }
        };
        for r in page.runs {
            if r.id == run.id || r.open_incidents > 0 {
                continue;
            }
            if family_of(&r.config, &cfg.family_keys, &cfg.ignore_keys).as_ref() == Some(sig) {
                out.push((r.id, r.config));
                if out.len() >= cfg.max_runs {
                    return out;
                }
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out
}

/// One envelope per compared series the baseline runs have (at most
/// `max_series`, by name).
fn envelopes(st: &Stores, runs: &[&str], cfg: &BaselineConfig) -> Vec<Envelope> {
    // Series name → (key, last step) per run.
    let mut by_name: std::collections::BTreeMap<String, Vec<(loupe_model::SeriesKey, i64)>> =
        Default::default();
    for run in runs {
        for info in st.tsdb.series(&SeriesMatcher::any().label_eq("run", *run)) {
            let name = info.key.name().to_string();
            if !compared_role(SeriesRole::of(&name)) {
                continue;
            }
            let last = match st.tsdb.summary(&info.key) {
                Ok(Some(s)) if s.last_step >= 0 => s.last_step,
                _ => continue,
            };
            by_name.entry(name).or_default().push((info.key, last));
        }
    }
    let buckets = cfg.buckets.max(1);
    by_name
        .into_iter()
        .take(cfg.max_series)
        .filter_map(|(name, keys)| {
            let max_step = keys.iter().map(|k| k.1).max()?;
            let width = bucket_steps_for(max_step, buckets);
            let to = width.saturating_mul(i64::from(buckets)).saturating_sub(1);
            let mut b = EnvelopeBuilder::new(width, buckets);
            for (key, _) in &keys {
                match st.tsdb.m4(key, XAxis::Step, 0, to, buckets) {
                    Ok(m) => b.add_run(&m.x, &m.y),
                    Err(e) => tracing::warn!(series = %name, "baseline series not read: {e}"),
                }
            }
            Some(b.build(&name, cfg.relative_floor))
        })
        .collect()
}
