//! The PromQL engine's view of one project's series in the time-series
//! engine: the [`SeriesSource`] the query API evaluates over.
//!
//! **Name mapping.** A series outside runs (agent, line protocol, scraped,
//! remote write) keeps its labels, `project` included, and its name becomes
//! `__name__`. A run's series `train/loss{run=R}` becomes
//! `{__name__="train/loss", run="R", run_name="<the run's name>", project="P"}`
//! and its points are placed at their wall times (a training point's step is
//! not a PromQL dimension). Times are read in nanoseconds and answered in
//! milliseconds, as Prometheus keeps them; of points in the same millisecond
//! the last is kept.

use loupe_model::{SeriesKey, SeriesMatcher, label};
use loupe_promql::{Labels, METRIC_NAME, MatchOp, Matcher, RawSeries, SeriesSource, SourceError};
use loupe_tsdb::{Tsdb, XAxis};

/// The label a run's name is given (its id is `run`).
pub const RUN_NAME_LABEL: &str = "run_name";

/// A run the project holds: `(id, name)`.
#[derive(Debug, Clone)]
pub struct RunRef {
    pub id: String,
    pub name: String,
}

/// One project's series, external and its runs'.
pub struct ProjectSeries<'a> {
    pub tsdb: &'a Tsdb,
    pub project: String,
    pub runs: Vec<RunRef>,
}

/// The labels PromQL sees for a stored key: an external series' own (its
/// `project` among them), or a run's series' with the run's name and project added.
fn promql_labels(key: &SeriesKey, project: &str, run: Option<&RunRef>) -> Labels {
    let mut pairs: Vec<(String, String)> = key
        .labels()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.push((METRIC_NAME.to_string(), key.name().to_string()));
    if let Some(r) = run {
        pairs.push((RUN_NAME_LABEL.to_string(), r.name.clone()));
        pairs.push((label::PROJECT.to_string(), project.to_string()));
    }
    Labels::new(pairs)
}

fn matches_all(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
}

/// An equality matcher's value on `name`, which narrows the engine's lookup.
fn equal_value<'m>(matchers: &'m [Matcher], name: &str) -> Option<&'m str> {
    matchers
        .iter()
        .find(|m| m.name == name && matches!(m.op, MatchOp::Equal))
        .map(|m| m.value.as_str())
}

impl ProjectSeries<'_> {
    /// The keys matching `matchers` with the labels PromQL sees.
    pub fn keys(&self, matchers: &[Matcher]) -> Vec<(SeriesKey, Labels)> {
        let name = equal_value(matchers, METRIC_NAME);
        let narrowed = |m: SeriesMatcher| match name {
            Some(n) => m.name_eq(n),
            None => m,
        };
        let mut out = Vec::new();
        let project_matcher =
            narrowed(SeriesMatcher::any().label_eq(label::PROJECT, &self.project));
        for info in self.tsdb.series(&project_matcher) {
            let labels = promql_labels(&info.key, &self.project, None);
            if matches_all(&labels, matchers) {
                out.push((info.key, labels));
            }
        }
        let run_wanted = equal_value(matchers, label::RUN);
        for run in &self.runs {
            if run_wanted.is_some_and(|r| r != run.id) {
                continue;
            }
            for info in self.tsdb.series(&narrowed(
                SeriesMatcher::any().label_eq(label::RUN, &run.id),
            )) {
                let labels = promql_labels(&info.key, &self.project, Some(run));
                if matches_all(&labels, matchers) {
                    out.push((info.key, labels));
                }
            }
        }
        out
    }
}

/// Few windows are read one by one; many (a fine step) as one span.
const MAX_WINDOW_READS: usize = 32;

impl SeriesSource for ProjectSeries<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        windows: &[(i64, i64)],
    ) -> Result<Vec<RawSeries>, SourceError> {
        let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
            return Ok(Vec::new());
        };
        let reads: Vec<(i64, i64)> = if windows.len() > MAX_WINDOW_READS {
            vec![(first.0, last.1)]
        } else {
            windows.to_vec()
        };
        let mut out = Vec::new();
        for (key, labels) in self.keys(matchers) {
            let mut times = Vec::new();
            let mut values = Vec::new();
            for (from, to) in &reads {
                let from_ns = from.saturating_mul(1_000_000);
                let to_ns = to.saturating_mul(1_000_000).saturating_add(999_999);
                let p = self
                    .tsdb
                    .read_range(&key, XAxis::Time, from_ns, to_ns, None)
                    .map_err(|e| SourceError(format!("series {key}: {e}")))?;
                for (t, v) in p.times.iter().zip(&p.values) {
                    let ms = t.div_euclid(1_000_000);
                    if times.last() == Some(&ms) {
                        // Same millisecond: the later point wins.
                        *values.last_mut().expect("times and values grow together") = *v;
                    } else {
                        times.push(ms);
                        values.push(*v);
                    }
                }
            }
            if !times.is_empty() {
                out.push(RawSeries {
                    labels,
                    times,
                    values,
                });
            }
        }
        Ok(out)
    }
}
