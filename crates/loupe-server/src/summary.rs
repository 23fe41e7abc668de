//! Run summaries (last/min/max/count per series), kept current as points arrive.
//!
//! The time-series engine holds the truth; the summary is the copy in SQLite
//! that the runs table sorts and filters on. Ingest requests only mark a
//! run's series dirty; about once a second the dirty summaries are computed
//! from the engine (so they cover every point, rewinds included) and written
//! in one update per run, off the ingest path: a metrics request costs one
//! fsync (the WAL's), not two. At start every run's summaries are recomputed,
//! which repairs what a crash cut off between the two.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use loupe_model::label;
use loupe_model::{NO_STEP, SeriesKey, SeriesMatcher, SeriesSummary};
use loupe_tsdb::Tsdb;
use parking_lot::Mutex;

/// Which series of which runs changed since their summaries were written.
#[derive(Default)]
pub struct SummaryBuffer {
    dirty: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Runs that received points since the last heartbeat written for them.
    alive: Mutex<BTreeSet<String>>,
}

impl SummaryBuffer {
    /// Notes new points for a run's series (and that the run is alive).
    pub fn mark(&self, run: &str, series: &str) {
        self.mark_stale(run, series);
        self.alive.lock().insert(run.to_string());
    }

    /// Notes that a series' stored summary may be stale, saying nothing of
    /// the run's liveness.
    fn mark_stale(&self, run: &str, series: &str) {
        self.dirty
            .lock()
            .entry(run.to_string())
            .or_default()
            .insert(series.to_string());
    }

    /// True once after points arrived for `run`.
    pub fn take_alive(&self, run: &str) -> bool {
        self.alive.lock().remove(run)
    }

    /// Marks every series of every run in the engine.
    pub fn mark_all(&self, tsdb: &Tsdb) {
        let m = SeriesMatcher::any().with(loupe_model::LabelMatch::Exists {
            label: label::RUN.into(),
        });
        for info in tsdb.series(&m) {
            if let Some(run) = info.key.run() {
                self.mark_stale(run, info.key.name());
            }
        }
    }

    /// Everything marked since the last call.
    pub fn take(&self) -> HashMap<String, BTreeSet<String>> {
        std::mem::take(&mut *self.dirty.lock())
    }

    /// Puts back what could not be written.
    pub fn restore(&self, run: &str, series: BTreeSet<String>) {
        let mut d = self.dirty.lock();
        d.entry(run.to_string()).or_default().extend(series);
    }
}

/// The summaries of a run's series, computed from the engine.
pub fn compute(
    tsdb: &Tsdb,
    run: &str,
    series: &BTreeSet<String>,
) -> Result<BTreeMap<String, SeriesSummary>, loupe_tsdb::Error> {
    let mut out = BTreeMap::new();
    for name in series {
        let Ok(key) = SeriesKey::for_run(name.as_str(), run) else {
            continue;
        };
        if let Some(s) = tsdb.summary(&key)? {
            out.insert(
                name.clone(),
                SeriesSummary {
                    last: s.last,
                    min: s.min,
                    max: s.max,
                    count: s.count,
                    last_step: (s.last_step != NO_STEP).then_some(s.last_step),
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_tsdb::{SeriesWrite, TsdbOptions, WriteBatch};

    #[test]
    fn summaries_cover_every_point_and_rewinds() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(
            dir.path(),
            TsdbOptions {
                background_flush: false,
                ..Default::default()
            },
        )
        .unwrap();
        let k = SeriesKey::new("loss", [("run", "r")]).unwrap();
        let w = |steps: Vec<i64>, values: Vec<f64>| WriteBatch {
            series: vec![SeriesWrite::new(
                k.clone(),
                Some(steps.clone()),
                steps.iter().map(|s| s * 10).collect(),
                values,
            )],
        };
        db.append(w(vec![0, 1, 2], vec![3.0, 0.1, 0.2])).unwrap();
        db.flush().unwrap();
        db.append(w(vec![3], vec![5.0])).unwrap();
        let buf = SummaryBuffer::default();
        buf.mark("r", "loss");
        let taken = buf.take();
        let s = compute(&db, "r", &taken["r"]).unwrap()["loss"];
        assert_eq!(
            (s.min, s.max, s.count, s.last, s.last_step),
            (0.1, 5.0, 4, 5.0, Some(3))
        );
        // Resume from step 1 with new values: newest write wins.
        db.append(w(vec![1], vec![9.0])).unwrap();
        let s = compute(&db, "r", &taken["r"]).unwrap()["loss"];
        assert_eq!((s.min, s.max, s.count), (0.2, 9.0, 4));
        assert!(buf.take().is_empty());
        buf.mark_all(&db);
        assert!(buf.take()["r"].contains("loss"));
    }
}
