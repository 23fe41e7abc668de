//! A run's points against the envelopes of its baseline runs.
//!
//! Per compared series the watch collects the points of the current step
//! bucket (an even subsample of at most [`KEPT_POINTS`]); a bucket is
//! judged when the run's step leaves it — a part of a bucket would be
//! compared with the baseline's whole bucket, which on a falling loss is
//! biased upwards. Its level (the median of its points)
//! *deviates* when it is beyond every baseline run (above the largest for
//! a loss or a step time, below the smallest for a throughput) and at
//! least `z` spreads from the baseline median in that direction.
//! `persist_buckets` deviating buckets in a row make one finding; the
//! series is re-armed only once a bucket is back within `z / 2`.

use hashbrown::HashMap;

use super::envelope::{Envelope, EnvelopeBucket, median_sorted};
use super::family::ConfigChange;
use super::{BaselineConfig, compared_role};
use crate::Severity;
use crate::finding::{Direction, Finding, FindingKind, Scope, SeriesRole};
use loupe_model::units;

/// Points of the current bucket kept: beyond it every other one is
/// dropped and the stride doubles, so the kept ones stay an even sample.
const KEPT_POINTS: usize = 64;
/// Config changes listed in a finding.
const MAX_CHANGES_LISTED: usize = 6;

/// The baseline run whose config is closest to this run's, and how they differ.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClosestRun {
    pub run: String,
    /// Empty: the configs agree on every key that is not ignored.
    pub changes: Vec<ConfigChange>,
}

/// What a run is compared with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunBaseline {
    /// The baseline runs, newest first.
    pub runs: Vec<String>,
    pub closest: Option<ClosestRun>,
    /// One per compared metric.
    pub envelopes: Vec<Envelope>,
}

#[derive(Debug, Default)]
struct SeriesWatch {
    bucket: Option<usize>,
    values: Vec<f64>,
    /// Every `stride`-th finite point of the bucket is kept.
    stride: u32,
    seen: u32,
    last_step: i64,
    last_time: f64,
    streak: u32,
    first_deviating_step: i64,
    reported: bool,
}

#[derive(Debug, Default)]
struct RunWatch {
    baseline: RunBaseline,
    series: HashMap<String, SeriesWatch>,
}

/// The baselines of the runs being watched.
#[derive(Debug, Default)]
pub struct BaselineWatch {
    runs: HashMap<String, RunWatch>,
}

impl BaselineWatch {
    /// Sets (or refreshes) a run's baseline; the series' progress is kept.
    pub fn set(&mut self, run: &str, baseline: RunBaseline) {
        self.runs.entry(run.to_string()).or_default().baseline = baseline;
    }

    pub fn forget(&mut self, run: &str) {
        self.runs.remove(run);
    }

    pub fn has(&self, run: &str) -> bool {
        self.runs.contains_key(run)
    }

    /// Compares a run's new points of one series; findings go to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        cfg: &BaselineConfig,
        scope: &Scope,
        series: &str,
        steps: &[i64],
        times: &[f64],
        values: &[f64],
        out: &mut Vec<Finding>,
    ) {
        // Cheapest checks first: this runs for every batch of every series,
        // and most runs have no baseline (the series' role is a string scan).
        if !cfg.enabled {
            return;
        }
        let Some(run) = scope.run.as_deref().and_then(|r| self.runs.get_mut(r)) else {
            return;
        };
        let Some(env) = run.baseline.envelopes.iter().find(|e| e.series == series) else {
            return;
        };
        let role = SeriesRole::of(series);
        if !compared_role(role) {
            return;
        }
        if !run.series.contains_key(series) && run.series.len() >= cfg.max_series {
            return;
        }
        let w = run.series.entry(series.to_string()).or_default();
        let judge = Judge {
            cfg,
            env,
            baseline: &run.baseline,
            scope,
            role,
        };
        for ((&s, &t), &v) in steps.iter().zip(times).zip(values) {
            let Some(i) = env.index_of(s) else {
                continue;
            };
            if w.bucket.is_some_and(|b| i < b) {
                // A restart from a checkpoint: the buckets start over.
                *w = SeriesWatch::default();
            }
            if w.bucket != Some(i) {
                if let Some(done) = w.bucket {
                    judge.bucket(w, done, out);
                }
                w.bucket = Some(i);
                w.values.clear();
                w.stride = 1;
                w.seen = 0;
            }
            keep(w, v);
            w.last_step = s;
            w.last_time = t;
        }
    }
}

fn keep(w: &mut SeriesWatch, v: f64) {
    if !v.is_finite() {
        return;
    }
    w.seen = w.seen.wrapping_add(1);
    if !w.seen.is_multiple_of(w.stride.max(1)) {
        return;
    }
    w.values.push(v);
    if w.values.len() >= KEPT_POINTS {
        let mut i = 0;
        w.values.retain(|_| {
            i += 1;
            i % 2 == 0
        });
        w.stride = w.stride.saturating_mul(2);
    }
}

struct Judge<'a> {
    cfg: &'a BaselineConfig,
    env: &'a Envelope,
    baseline: &'a RunBaseline,
    scope: &'a Scope,
    role: SeriesRole,
}

impl Judge<'_> {
    fn bucket(&self, w: &mut SeriesWatch, i: usize, out: &mut Vec<Finding>) {
        let Some(b) = self.env.bucket(i) else {
            return;
        };
        if (b.runs as usize) < self.cfg.min_runs.max(1) || w.values.is_empty() {
            return;
        }
        let Some(dir) = self.role.bad_direction() else {
            return;
        };
        let mut vals = w.values.clone();
        vals.sort_by(f64::total_cmp);
        let level = median_sorted(&vals);
        let (beyond, z) = match dir {
            Direction::Up => (level > b.max, (level - b.median) / b.spread),
            Direction::Down => (level < b.min, (b.median - level) / b.spread),
        };
        if !(beyond && z >= self.cfg.z) {
            w.streak = 0;
            if z < self.cfg.z / 2.0 {
                w.reported = false;
            }
            return;
        }
        if w.streak == 0 {
            w.first_deviating_step = self.env.start_step(i);
        }
        w.streak += 1;
        if w.streak < self.cfg.persist_buckets.max(1) || w.reported {
            return;
        }
        w.reported = true;
        out.push(self.finding(w, b, level, z, dir));
    }

    fn finding(
        &self,
        w: &SeriesWatch,
        b: &EnvelopeBucket,
        level: f64,
        z: f64,
        dir: Direction,
    ) -> Finding {
        let mut f = Finding::new(
            self.scope.clone(),
            FindingKind::BaselineDeviation,
            self.role,
            w.last_time,
        );
        f.series = Some(self.env.series.clone());
        f.step = Some(w.last_step);
        f.value = Some(level);
        f.expected = Some(b.median);
        f.direction = Some(dir);
        f.severity = Severity::Warning;
        f.score = (0.5 + (z - self.cfg.z) / (4.0 * self.cfg.z)).clamp(0.5, 1.0);
        let (side, edge, than) = match dir {
            Direction::Up => ("above", b.max, "the highest"),
            Direction::Down => ("below", b.min, "the lowest"),
        };
        let runs = &self.baseline.runs;
        f.detail = format!(
            "{} is {} at step {}, {:.1}σ {side} the median {} of {} previous run{} of this config family ({than} was {}), since step {}",
            self.env.series,
            units::series_value(level, &self.env.series),
            w.last_step,
            z,
            units::series_value(b.median, &self.env.series),
            b.runs,
            if b.runs == 1 { "" } else { "s" },
            units::series_value(edge, &self.env.series),
            w.first_deviating_step,
        );
        let a = &mut f.attributes;
        a.baseline_runs = runs.clone();
        a.extra
            .insert("baseline_median".into(), units::sig(b.median, 4));
        a.extra.insert("baseline_min".into(), units::sig(b.min, 4));
        a.extra.insert("baseline_max".into(), units::sig(b.max, 4));
        a.extra.insert("sigma".into(), format!("{z:.1}"));
        a.extra
            .insert("since_step".into(), w.first_deviating_step.to_string());
        if let Some(c) = &self.baseline.closest {
            a.closest_run = Some(c.run.clone());
            a.config_changes = c.changes.iter().take(MAX_CHANGES_LISTED).cloned().collect();
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::EnvelopeBuilder;

    fn baseline(levels: &[f64]) -> RunBaseline {
        let mut b = EnvelopeBuilder::new(100, 10);
        let steps: Vec<i64> = (0..1000).collect();
        for &l in levels {
            let vals: Vec<f64> = steps
                .iter()
                .map(|&s| l + 2.0 / (1.0 + s as f64 / 100.0))
                .collect();
            b.add_run(&steps, &vals);
        }
        RunBaseline {
            runs: vec!["r3".into(), "r2".into(), "r1".into()],
            closest: Some(ClosestRun {
                run: "r3".into(),
                changes: vec![ConfigChange {
                    key: "lr".into(),
                    this: Some("0.003".into()),
                    other: Some("0.0003".into()),
                }],
            }),
            envelopes: vec![b.build("train/loss", 0.05)],
        }
    }

    fn scope() -> Scope {
        Scope {
            project: Some("p".into()),
            run: Some("new".into()),
            ..Default::default()
        }
    }

    /// Feeds `new`'s loss, `offset` above the baseline's middle curve, in
    /// batches of 25 steps; returns the findings.
    fn feed(offset: f64, series: &str) -> Vec<Finding> {
        let cfg = BaselineConfig::default();
        let mut w = BaselineWatch::default();
        w.set("new", baseline(&[2.0, 2.05, 2.1]));
        let mut out = Vec::new();
        for chunk in (0..1000i64).collect::<Vec<_>>().chunks(25) {
            let times: Vec<f64> = chunk.iter().map(|&s| s as f64).collect();
            let vals: Vec<f64> = chunk
                .iter()
                .map(|&s| 2.05 + offset + 2.0 / (1.0 + s as f64 / 100.0))
                .collect();
            w.observe(&cfg, &scope(), series, chunk, &times, &vals, &mut out);
        }
        out
    }

    #[test]
    fn a_loss_well_above_every_baseline_run_is_one_finding_naming_them() {
        let out = feed(1.5, "train/loss");
        assert_eq!(out.len(), 1, "{out:#?}");
        let f = &out[0];
        assert_eq!(f.kind, FindingKind::BaselineDeviation);
        assert_eq!(f.attributes.baseline_runs, ["r3", "r2", "r1"]);
        assert_eq!(f.attributes.closest_run.as_deref(), Some("r3"));
        let changes = f.attributes.get("config_changes").unwrap_or_default();
        assert!(changes.contains("lr: 0.003 (was 0.0003)"), "{changes}");
        assert!(f.detail.contains("above the median"), "{}", f.detail);
        // Judged when the second deviating bucket ends.
        assert!(f.step.unwrap() < 300, "{f:?}");
    }

    #[test]
    fn a_loss_within_the_envelope_is_nothing() {
        assert!(feed(0.04, "train/loss").is_empty());
        assert!(feed(-1.0, "train/loss").is_empty(), "lower loss is better");
    }

    #[test]
    fn series_without_an_envelope_or_a_role_are_not_compared() {
        assert!(feed(1.5, "eval/loss").is_empty());
        assert!(feed(1.5, "something").is_empty());
    }

    #[test]
    fn a_run_without_a_baseline_is_not_compared() {
        let cfg = BaselineConfig::default();
        let mut w = BaselineWatch::default();
        let mut out = Vec::new();
        w.observe(
            &cfg,
            &scope(),
            "train/loss",
            &[1, 2],
            &[1.0, 2.0],
            &[9.0, 9.0],
            &mut out,
        );
        assert!(out.is_empty());
    }
}
