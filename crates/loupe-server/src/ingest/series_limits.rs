//! How many series a run and a project may create.
//!
//! Each new series costs the engine memory for as long as it lives (its key
//! in the catalog, its head buffers), so one ingest token could otherwise
//! grow the server without bound. [`SeriesCounter`] keeps the number of
//! series per run and per project in memory — seeded at start-up from the
//! engine's label index, updated as batches create series — so a batch
//! costs one lookup per series in the engine's catalog and, only when some
//! of its series are new, one short critical section here.
//!
//! **Concurrency.** A batch that creates series takes a [`Reservation`]
//! before it appends: under one lock the new keys are counted and checked
//! against the limits, and marked *pending*. A concurrent batch that names
//! a pending key shares it rather than counting it twice, so two batches
//! racing at the limit can never both slip past it. When a reservation ends
//! (dropped, whatever the append's outcome), a key no batch created after
//! all is uncounted again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use loupe_model::SeriesKey;
use parking_lot::Mutex;

/// The limits; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Most series one run may have (`--max-series-per-run`).
    pub per_run: u64,
    /// Most series one project may have, its runs' and its series outside
    /// runs together (`--max-series-per-project`).
    pub per_project: u64,
}

impl SeriesLimits {
    /// 50 000 series per run is five times the busiest training job we
    /// design for (~10 000 scalar series) and stops a runaway loop (a step
    /// number in a metric name) at about 80 MB of server memory. 1 000 000
    /// per project bounds the catalog at about 1.6 GB; deleting old runs
    /// frees their share.
    pub const DEFAULT: SeriesLimits = SeriesLimits {
        per_run: 50_000,
        per_project: 1_000_000,
    };

    pub const UNLIMITED: SeriesLimits = SeriesLimits {
        per_run: 0,
        per_project: 0,
    };
}

impl Default for SeriesLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the engine knows: whether a series exists already.
pub trait KnownSeries: Send + Sync {
    fn contains(&self, key: &SeriesKey) -> bool;
}

impl KnownSeries for loupe_tsdb::Tsdb {
    fn contains(&self, key: &SeriesKey) -> bool {
        self.contains_series(key)
    }
}

/// Whose series a batch writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesOwner<'a> {
    /// A run's series; they count towards its project too.
    Run { run: &'a str, project: &'a str },
    /// A project's series outside runs.
    Project(&'a str),
}

/// A batch refused because it would create series past a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesLimitError {
    #[error(
        "run {run:?} has {have} series and this batch would create {new} more: the limit is {limit} series per run (--max-series-per-run); nothing of the batch was stored, and points to the run's existing series are still accepted"
    )]
    Run {
        run: String,
        limit: u64,
        have: u64,
        new: u64,
    },
    #[error(
        "project {project:?} has {have} series and this batch would create {new} more: the limit is {limit} series per project (--max-series-per-project); nothing of the batch was stored, and points to existing series are still accepted"
    )]
    Project {
        project: String,
        limit: u64,
        have: u64,
        new: u64,
    },
}

impl SeriesLimitError {
    /// The `reason` label of its count in `/metrics`.
    pub fn reason(&self) -> &'static str {
        match self {
            SeriesLimitError::Run { .. } => "series_per_run",
            SeriesLimitError::Project { .. } => "series_per_project",
        }
    }
}

#[derive(Debug, Default)]
struct RunCount {
    /// `None` for series of a run the metadata store does not know.
    project: Option<String>,
    series: u64,
}

#[derive(Debug, Default)]
struct Counts {
    runs: HashMap<String, RunCount>,
    projects: HashMap<String, u64>,
    /// Keys some in-flight batch may be creating, with how many batches
    /// hold them; they are counted once, from the first reservation.
    pending: HashMap<SeriesKey, usize>,
}

/// Series counts per run and per project, and the limits they are held to.
pub struct SeriesCounter {
    limits: SeriesLimits,
    known: Arc<dyn KnownSeries>,
    counts: Mutex<Counts>,
}

impl std::fmt::Debug for SeriesCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesCounter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The counts a store holds at start-up.
#[derive(Debug, Default)]
pub struct SeriesSeed {
    /// Series per run, with the run's project when it is known.
    pub runs: Vec<(String, Option<String>, u64)>,
    /// Series outside runs, per project.
    pub projects: Vec<(String, u64)>,
}

impl SeriesCounter {
    pub fn new(limits: SeriesLimits, known: Arc<dyn KnownSeries>, seed: SeriesSeed) -> Self {
        let mut counts = Counts::default();
        for (run, project, series) in seed.runs {
            if let Some(p) = &project {
                *counts.projects.entry(p.clone()).or_default() += series;
            }
            counts.runs.insert(run, RunCount { project, series });
        }
        for (project, series) in seed.projects {
            *counts.projects.entry(project).or_default() += series;
        }
        SeriesCounter {
            limits,
            known,
            counts: Mutex::new(counts),
        }
    }

    pub fn limits(&self) -> SeriesLimits {
        self.limits
    }

    /// The series a run has (pending creations included).
    pub fn run_series(&self, run: &str) -> u64 {
        self.counts.lock().runs.get(run).map_or(0, |r| r.series)
    }

    /// The series a project has (pending creations included).
    pub fn project_series(&self, project: &str) -> u64 {
        self.counts
            .lock()
            .projects
            .get(project)
            .copied()
            .unwrap_or(0)
    }

    /// The keys of `keys` the engine does not know yet — the only ones a
    /// limit applies to. Cheap: no lock of this counter is taken.
    pub fn unknown<'k>(&self, keys: impl IntoIterator<Item = &'k SeriesKey>) -> Vec<&'k SeriesKey> {
        let mut seen = HashSet::new();
        keys.into_iter()
            .filter(|k| !self.known.contains(k) && seen.insert(*k))
            .collect()
    }

    /// Counts the series of `new` (from [`SeriesCounter::unknown`]) that
    /// are still new, against `owner`'s limits; the whole batch or none of
    /// it. Hold the reservation until the append has returned.
    pub fn reserve(
        self: &Arc<Self>,
        owner: SeriesOwner<'_>,
        new: &[&SeriesKey],
    ) -> Result<Reservation, SeriesLimitError> {
        let mut counts = self.counts.lock();
        // Created meanwhile: an existing series, always accepted.
        let still_new: Vec<&SeriesKey> = new
            .iter()
            .copied()
            .filter(|k| !self.known.contains(k))
            .collect();
        let added = still_new
            .iter()
            .filter(|k| !counts.pending.contains_key(**k))
            .count() as u64;
        self.check(&counts, owner, added)?;
        let (run, project) = match owner {
            SeriesOwner::Run { run, project } => (Some(run), project),
            SeriesOwner::Project(project) => (None, project),
        };
        if added > 0 {
            if let Some(run) = run {
                let entry = counts.runs.entry(run.to_string()).or_default();
                entry.project.get_or_insert_with(|| project.to_string());
                entry.series += added;
            }
            *counts.projects.entry(project.to_string()).or_default() += added;
        }
        for k in &still_new {
            *counts.pending.entry((*k).clone()).or_default() += 1;
        }
        Ok(Reservation {
            counter: self.clone(),
            run: run.map(str::to_string),
            project: project.to_string(),
            keys: still_new.into_iter().cloned().collect(),
        })
    }

    fn check(
        &self,
        counts: &Counts,
        owner: SeriesOwner<'_>,
        added: u64,
    ) -> Result<(), SeriesLimitError> {
        if added == 0 {
            return Ok(());
        }
        let project = match owner {
            SeriesOwner::Run { run, project } => {
                let have = counts.runs.get(run).map_or(0, |r| r.series);
                let limit = self.limits.per_run;
                if limit > 0 && have.saturating_add(added) > limit {
                    return Err(SeriesLimitError::Run {
                        run: run.to_string(),
                        limit,
                        have,
                        new: added,
                    });
                }
                project
            }
            SeriesOwner::Project(project) => project,
        };
        let have = counts.projects.get(project).copied().unwrap_or(0);
        let limit = self.limits.per_project;
        if limit > 0 && have.saturating_add(added) > limit {
            return Err(SeriesLimitError::Project {
                project: project.to_string(),
                limit,
                have,
                new: added,
            });
        }
        Ok(())
    }

    /// A run's series were deleted: its count leaves its project's.
    pub fn forget_run(&self, run: &str) {
        let mut counts = self.counts.lock();
        if let Some(RunCount {
            project: Some(p),
            series,
        }) = counts.runs.remove(run)
            && let Some(n) = counts.projects.get_mut(&p)
        {
            *n = n.saturating_sub(series);
        }
    }

    fn release(&self, r: &Reservation) {
        let mut counts = self.counts.lock();
        let mut uncreated = 0u64;
        for k in &r.keys {
            let Some(holders) = counts.pending.get_mut(k) else {
                continue;
            };
            *holders -= 1;
            if *holders == 0 {
                counts.pending.remove(k);
                // The append failed before the engine learnt the key, and
                // no other batch created it either.
                if !self.known.contains(k) {
                    uncreated += 1;
                }
            }
        }
        if uncreated == 0 {
            return;
        }
        if let Some(run) = &r.run
            && let Some(c) = counts.runs.get_mut(run)
        {
            c.series = c.series.saturating_sub(uncreated);
        }
        if let Some(n) = counts.projects.get_mut(&r.project) {
            *n = n.saturating_sub(uncreated);
        }
    }
}

/// New series counted for a batch in flight; dropping it settles the
/// count with what the engine actually created.
#[must_use = "the reservation must live until the append returns"]
pub struct Reservation {
    counter: Arc<SeriesCounter>,
    run: Option<String>,
    project: String,
    keys: Vec<SeriesKey>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.counter.release(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine that knows the keys it was told about.
    #[derive(Default)]
    struct FakeEngine(Mutex<HashSet<SeriesKey>>);

    impl KnownSeries for FakeEngine {
        fn contains(&self, key: &SeriesKey) -> bool {
            self.0.lock().contains(key)
        }
    }

    impl FakeEngine {
        fn create(&self, keys: &[SeriesKey]) {
            self.0.lock().extend(keys.iter().cloned());
        }
    }

    fn keys(run: &str, names: std::ops::Range<usize>) -> Vec<SeriesKey> {
        names
            .map(|i| SeriesKey::for_run(format!("m{i}"), run).unwrap())
            .collect()
    }

    fn counter(limits: SeriesLimits, seed: SeriesSeed) -> (Arc<FakeEngine>, Arc<SeriesCounter>) {
        let engine = Arc::new(FakeEngine::default());
        let c = Arc::new(SeriesCounter::new(limits, engine.clone(), seed));
        (engine, c)
    }

    const RUN: SeriesOwner<'static> = SeriesOwner::Run {
        run: "r1",
        project: "p",
    };

    fn limits(per_run: u64, per_project: u64) -> SeriesLimits {
        SeriesLimits {
            per_run,
            per_project,
        }
    }

    #[test]
    fn a_batch_within_the_limit_is_counted_once_it_is_created() {
        let (engine, c) = counter(limits(3, 0), SeriesSeed::default());
        let ks = keys("r1", 0..3);
        let new = c.unknown(&ks);
        let r = c.reserve(RUN, &new).unwrap();
        engine.create(&ks);
        drop(r);
        assert_eq!(c.run_series("r1"), 3);
        assert_eq!(c.project_series("p"), 3);
        // Points to existing series: nothing new, nothing refused.
        assert!(c.unknown(&ks).is_empty());
        let _none = c.reserve(RUN, &[]).unwrap();
    }

    #[test]
    fn a_batch_past_the_run_limit_is_refused_whole_and_names_the_run() {
        let (_engine, c) = counter(limits(3, 0), SeriesSeed::default());
        let ks = keys("r1", 0..4);
        let err = c.reserve(RUN, &c.unknown(&ks)).err().unwrap();
        assert_eq!(
            err,
            SeriesLimitError::Run {
                run: "r1".into(),
                limit: 3,
                have: 0,
                new: 4
            }
        );
        assert!(err.to_string().contains("--max-series-per-run"));
        assert_eq!(c.run_series("r1"), 0, "nothing of a refused batch counts");
    }

    #[test]
    fn the_project_limit_spans_runs_and_series_outside_runs() {
        let seed = SeriesSeed {
            runs: vec![("r0".into(), Some("p".into()), 2)],
            projects: vec![("p".into(), 1)],
        };
        let (_engine, c) = counter(limits(0, 4), seed);
        assert_eq!(c.project_series("p"), 3);
        let host = SeriesKey::new("cpu", [("project", "p")]).unwrap();
        let r = c.reserve(SeriesOwner::Project("p"), &[&host]).unwrap();
        let ks = keys("r1", 0..1);
        let err = c.reserve(RUN, &c.unknown(&ks)).err().unwrap();
        assert_eq!(err.reason(), "series_per_project");
        assert!(err.to_string().contains("\"p\""));
        // The host series was never created: its count is given back.
        drop(r);
        assert_eq!(c.project_series("p"), 3);
        let _r = c.reserve(RUN, &c.unknown(&ks)).unwrap();
        assert_eq!(c.project_series("p"), 4);
    }

    #[test]
    fn a_key_two_batches_create_together_counts_once() {
        let (engine, c) = counter(limits(2, 0), SeriesSeed::default());
        let ks = keys("r1", 0..2);
        let a = c.reserve(RUN, &c.unknown(&ks)).unwrap();
        // The second batch names the same pending keys: no more counted.
        let b = c.reserve(RUN, &c.unknown(&ks)).unwrap();
        assert_eq!(c.run_series("r1"), 2);
        // The first batch failed; the second created them.
        drop(a);
        engine.create(&ks);
        drop(b);
        assert_eq!(c.run_series("r1"), 2);
    }

    #[test]
    fn concurrent_batches_racing_at_the_limit_never_pass_it() {
        let (engine, c) = counter(limits(100, 0), SeriesSeed::default());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (engine, c) = (engine.clone(), c.clone());
                std::thread::spawn(move || {
                    for b in 0..20 {
                        let start = (t * 20 + b) * 3;
                        let ks = keys("r1", start..start + 3);
                        if let Ok(r) = c.reserve(RUN, &c.unknown(&ks)) {
                            engine.create(&ks);
                            drop(r);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let created = engine.0.lock().len() as u64;
        assert!(
            created <= 100,
            "{created} series created past a limit of 100"
        );
        assert_eq!(c.run_series("r1"), created);
    }

    #[test]
    fn forgetting_a_run_frees_its_projects_share() {
        let seed = SeriesSeed {
            runs: vec![("r1".into(), Some("p".into()), 5)],
            projects: vec![("p".into(), 2)],
        };
        let (_engine, c) = counter(SeriesLimits::UNLIMITED, seed);
        c.forget_run("r1");
        assert_eq!(c.run_series("r1"), 0);
        assert_eq!(c.project_series("p"), 2);
    }
}
