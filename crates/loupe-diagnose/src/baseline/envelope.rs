//! What the baseline runs did, per metric and step bucket.
//!
//! Steps are cut into equal buckets of `bucket_steps` from step 0. Each
//! baseline run contributes, per bucket, its *level* (the median of its
//! points there — the server passes an M4 reduction, so first, last,
//! smallest and largest) and its *noise* (a quarter of their range, about
//! one standard deviation of a noisy per-step loss, trend included, so on
//! the generous side). Across runs a bucket keeps the smallest, largest
//! and median level, and a robust **spread**: the largest of
//! 1.4826 × the median absolute deviation of the levels (run-to-run
//! variation), the median noise (step-to-step variation), and
//! `relative_floor` × |median| (so that near-identical runs do not make
//! every wiggle news).

use serde::{Deserialize, Serialize};

/// Scales a median absolute deviation to a standard deviation (normal data).
const MAD_TO_SIGMA: f64 = 1.4826;
/// A spread is never below this, so a constant baseline divides by something.
const MIN_SPREAD: f64 = 1e-12;

/// One step bucket of an envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeBucket {
    /// Baseline runs with points in the bucket.
    pub runs: u32,
    pub min: f64,
    pub max: f64,
    pub median: f64,
    pub spread: f64,
}

/// One metric's envelope: `buckets[i]` covers steps
/// `i × bucket_steps ..< (i + 1) × bucket_steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub series: String,
    pub bucket_steps: i64,
    pub buckets: Vec<Option<EnvelopeBucket>>,
}

impl Envelope {
    /// The bucket index of a step, when the envelope covers it.
    pub fn index_of(&self, step: i64) -> Option<usize> {
        if step < 0 || self.bucket_steps <= 0 {
            return None;
        }
        let i = usize::try_from(step / self.bucket_steps).ok()?;
        (i < self.buckets.len()).then_some(i)
    }

    pub fn bucket(&self, i: usize) -> Option<&EnvelopeBucket> {
        self.buckets.get(i)?.as_ref()
    }

    /// The first step of bucket `i`.
    pub fn start_step(&self, i: usize) -> i64 {
        (i as i64).saturating_mul(self.bucket_steps)
    }
}

/// The bucket width that cuts `0..=max_step` into `buckets` buckets.
pub fn bucket_steps_for(max_step: i64, buckets: u32) -> i64 {
    let b = i64::from(buckets.max(1));
    (max_step.max(0).saturating_add(b)) / b
}

/// Collects the baseline runs' points of one metric into an [`Envelope`].
#[derive(Debug, Clone)]
pub struct EnvelopeBuilder {
    bucket_steps: i64,
    /// Per bucket, each run's (level, noise).
    per_bucket: Vec<Vec<(f64, f64)>>,
}

impl EnvelopeBuilder {
    pub fn new(bucket_steps: i64, buckets: u32) -> Self {
        EnvelopeBuilder {
            bucket_steps: bucket_steps.max(1),
            per_bucket: vec![Vec::new(); buckets as usize],
        }
    }

    /// Adds one run's points (in any order; non-finite values and steps
    /// outside the buckets are left out).
    pub fn add_run(&mut self, steps: &[i64], values: &[f64]) {
        let mut by_bucket: Vec<Vec<f64>> = vec![Vec::new(); self.per_bucket.len()];
        for (&s, &v) in steps.iter().zip(values) {
            if s < 0 || !v.is_finite() {
                continue;
            }
            if let Some(b) = usize::try_from(s / self.bucket_steps)
                .ok()
                .and_then(|i| by_bucket.get_mut(i))
            {
                b.push(v);
            }
        }
        for (i, mut vals) in by_bucket.into_iter().enumerate() {
            if vals.is_empty() {
                continue;
            }
            vals.sort_by(f64::total_cmp);
            let level = median_sorted(&vals);
            let noise = (vals[vals.len() - 1] - vals[0]) / 4.0;
            self.per_bucket[i].push((level, noise));
        }
    }

    pub fn build(self, series: &str, relative_floor: f64) -> Envelope {
        let buckets = self
            .per_bucket
            .into_iter()
            .map(|runs| bucket_of(&runs, relative_floor))
            .collect();
        Envelope {
            series: series.to_string(),
            bucket_steps: self.bucket_steps,
            buckets,
        }
    }
}

fn bucket_of(runs: &[(f64, f64)], relative_floor: f64) -> Option<EnvelopeBucket> {
    if runs.is_empty() {
        return None;
    }
    let mut levels: Vec<f64> = runs.iter().map(|r| r.0).collect();
    levels.sort_by(f64::total_cmp);
    let median = median_sorted(&levels);
    let mut dev: Vec<f64> = levels.iter().map(|l| (l - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mut noise: Vec<f64> = runs.iter().map(|r| r.1).collect();
    noise.sort_by(f64::total_cmp);
    let spread = (MAD_TO_SIGMA * median_sorted(&dev))
        .max(median_sorted(&noise))
        .max(relative_floor * median.abs())
        .max(MIN_SPREAD);
    Some(EnvelopeBucket {
        runs: runs.len() as u32,
        min: levels[0],
        max: levels[levels.len() - 1],
        median,
        spread,
    })
}

pub(crate) fn median_sorted(v: &[f64]) -> f64 {
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_longest_run() {
        assert_eq!(bucket_steps_for(999, 100), 10);
        assert_eq!(bucket_steps_for(1000, 100), 11);
        assert_eq!(bucket_steps_for(0, 100), 1);
        assert_eq!(bucket_steps_for(-5, 0), 1);
        let e = EnvelopeBuilder::new(10, 100).build("x", 0.05);
        assert_eq!(e.index_of(999), Some(99));
        assert_eq!(e.index_of(1000), None);
        assert_eq!(e.index_of(-1), None);
    }

    #[test]
    fn three_runs_make_min_max_median_and_a_floored_spread() {
        let mut b = EnvelopeBuilder::new(100, 2);
        let steps: Vec<i64> = (0..200).collect();
        for level in [2.0, 2.1, 2.2] {
            let vals: Vec<f64> = steps
                .iter()
                .map(|&s| if s < 100 { level + 1.0 } else { level })
                .collect();
            b.add_run(&steps, &vals);
        }
        let e = b.build("train/loss", 0.05);
        let late = e.bucket(1).unwrap();
        assert_eq!(late.runs, 3);
        assert!((late.min - 2.0).abs() < 1e-12 && (late.max - 2.2).abs() < 1e-12);
        assert!((late.median - 2.1).abs() < 1e-12);
        // MAD 0.1 → 0.148; 5% of 2.1 is 0.105.
        assert!((late.spread - 0.14826).abs() < 1e-9, "{late:?}");
        assert!((e.bucket(0).unwrap().median - 3.1).abs() < 1e-12);
    }

    #[test]
    fn noise_within_runs_widens_the_spread_and_nan_is_left_out() {
        let mut b = EnvelopeBuilder::new(10, 1);
        let steps: Vec<i64> = (0..10).collect();
        let noisy = [1.0, 3.0, 1.0, 3.0, f64::NAN, 1.0, 3.0, 1.0, 3.0, 2.0];
        b.add_run(&steps, &noisy);
        b.add_run(&steps, &noisy);
        let e = b.build("loss", 0.0);
        let k = e.bucket(0).unwrap();
        assert_eq!(k.spread, 0.5, "{k:?}");
        assert!(k.median.is_finite());
    }
}
