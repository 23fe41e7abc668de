//! Run summaries (last/min/max per series) kept current as points arrive.
//!
//! The time-series engine holds the truth; the summary is what the runs
//! table sorts and filters on. It is accumulated in memory per request and
//! written to the SQLite store in batches, off the ingest path, so a metrics
//! request costs one fsync (the WAL's), not two.

use std::collections::{BTreeMap, HashMap};

use loupe_model::SeriesSummary;
use parking_lot::Mutex;

#[derive(Default)]
pub struct SummaryBuffer {
    pending: Mutex<HashMap<String, BTreeMap<String, SeriesSummary>>>,
}

/// Merges `next` (newer points) into `acc`.
pub fn merge(acc: &mut SeriesSummary, next: &SeriesSummary) {
    let pick = |a: f64, b: f64, smaller: bool| {
        if a.is_nan() {
            b
        } else if b.is_nan() {
            a
        } else if smaller {
            a.min(b)
        } else {
            a.max(b)
        }
    };
    acc.min = pick(acc.min, next.min, true);
    acc.max = pick(acc.max, next.max, false);
    acc.count += next.count;
    let newer = match (acc.last_step, next.last_step) {
        (Some(a), Some(b)) => b >= a,
        _ => true,
    };
    if newer {
        acc.last = next.last;
        acc.last_step = next.last_step;
    }
}

/// The summary of one series' new points.
pub fn of_points(steps: Option<&[i64]>, values: &[f64]) -> Option<SeriesSummary> {
    if values.is_empty() {
        return None;
    }
    let mut s = SeriesSummary {
        last: f64::NAN,
        min: f64::NAN,
        max: f64::NAN,
        count: values.len() as u64,
        last_step: None,
    };
    for &v in values {
        if !v.is_nan() {
            if s.min.is_nan() || v < s.min {
                s.min = v;
            }
            if s.max.is_nan() || v > s.max {
                s.max = v;
            }
        }
    }
    match steps {
        Some(st) => {
            let i = (0..st.len())
                .max_by_key(|&i| (st[i], i))
                .expect("non-empty");
            s.last = values[i];
            s.last_step = Some(st[i]);
        }
        None => s.last = values[values.len() - 1],
    }
    Some(s)
}

impl SummaryBuffer {
    pub fn add(&self, run: &str, series: &str, s: SeriesSummary) {
        let mut p = self.pending.lock();
        let entry = p.entry(run.to_string()).or_default();
        match entry.get_mut(series) {
            Some(acc) => merge(acc, &s),
            None => {
                entry.insert(series.to_string(), s);
            }
        }
    }

    /// Everything accumulated since the last call.
    pub fn take(&self) -> HashMap<String, BTreeMap<String, SeriesSummary>> {
        std::mem::take(&mut *self.pending.lock())
    }

    /// Puts back what could not be written.
    pub fn restore(&self, run: &str, items: BTreeMap<String, SeriesSummary>) {
        for (k, v) in items {
            self.add(run, &k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_extremes_and_keeps_the_latest_step() {
        let a = of_points(Some(&[1, 2, 3]), &[3.0, f64::NAN, 1.0]).unwrap();
        assert_eq!(
            (a.min, a.max, a.last, a.last_step),
            (1.0, 3.0, 1.0, Some(3))
        );
        let mut acc = a;
        merge(&mut acc, &of_points(Some(&[4, 5]), &[0.5, 9.0]).unwrap());
        assert_eq!((acc.min, acc.max, acc.last, acc.count), (0.5, 9.0, 9.0, 5));
        // A rewind: older steps do not replace the last value.
        merge(&mut acc, &of_points(Some(&[2]), &[7.0]).unwrap());
        assert_eq!(acc.last, 9.0);
    }
}
