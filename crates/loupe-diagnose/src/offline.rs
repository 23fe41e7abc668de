//! Diagnosis without a server: score a single series row by row
//! (`loupe detect FILE.csv`), with the same streaming detectors.
//!
//! Training curves (losses, gradient norms, learning rates, loss scales)
//! get the run rules they get live; every other series gets the general
//! [`AnomalyDetector`]: a calibrated score and one label per episode.

use crate::anomaly::AnomalyDetector;
use crate::config::DiagnoseConfig;
use crate::detect::rolling::RollingWindow;
use crate::diagnoser::{Diagnoser, RunInfo};
use crate::finding::{FindingKind, SeriesRole};

/// One row's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScore {
    /// 0–1: for training curves, the strongest finding at the row or how
    /// far the value is from the rolling median in robust deviations
    /// (scaled so the spike threshold is 0.5); for other series, the
    /// general detector's score (a log-scaled tail probability: 0.5 is
    /// about one in 1e5).
    pub score: f64,
    /// A detector fired at this row.
    pub label: bool,
}

/// Scores `values` (at `times`, Unix seconds, in order) as the series
/// `name` would be scored live: its name decides its detectors
/// (`train/loss` gets the loss rules; `value` the general detector).
pub fn score_series(
    name: &str,
    times: &[f64],
    values: &[f64],
    cfg: &DiagnoseConfig,
) -> Vec<RowScore> {
    if is_training_curve(SeriesRole::of(name)) {
        score_training_curve(name, times, values, cfg)
    } else {
        score_general(times, values, cfg)
    }
}

fn is_training_curve(role: SeriesRole) -> bool {
    matches!(
        role,
        SeriesRole::Loss | SeriesRole::GradNorm | SeriesRole::LearningRate | SeriesRole::LossScale
    )
}

/// The general detector, row by row; a non-finite value is labelled with
/// score 1 (it is a finding of its own, whatever the statistics say).
fn score_general(times: &[f64], values: &[f64], cfg: &DiagnoseConfig) -> Vec<RowScore> {
    let mut det = AnomalyDetector::new(&cfg.anomaly);
    times
        .iter()
        .zip(values)
        .map(|(&t, &x)| {
            if !x.is_finite() {
                det.observe(t, x);
                return RowScore {
                    score: 1.0,
                    label: true,
                };
            }
            let p = det.observe(t, x);
            RowScore {
                score: p.score,
                label: p.alarm,
            }
        })
        .collect()
}

fn score_training_curve(
    name: &str,
    times: &[f64],
    values: &[f64],
    cfg: &DiagnoseConfig,
) -> Vec<RowScore> {
    let n = times.len().min(values.len());
    let mut d = Diagnoser::new(cfg.clone(), "offline");
    d.record_findings();
    d.register_run(RunInfo {
        id: "offline".into(),
        ..Default::default()
    });
    let mut out = vec![
        RowScore {
            score: 0.0,
            label: false
        };
        n
    ];
    let mut window = RollingWindow::new(cfg.spike.window);
    let mut next_tick = f64::NAN;
    for i in 0..n {
        let (t, x) = (times[i], values[i]);
        if t.is_finite() {
            if next_tick.is_nan() {
                next_tick = t.floor() + 1.0;
            }
            // Time-driven checks (silences) see the gaps in the data.
            let mut ticks = 0;
            while next_tick <= t && ticks < 10_000 {
                d.tick(next_tick);
                next_tick += 1.0;
                ticks += 1;
            }
            if next_tick <= t {
                next_tick = t.floor() + 1.0;
            }
        }
        // Steps are row numbers, so findings map back to rows.
        d.observe_run_points("offline", name, Some(&[i as i64]), &[t], &[x], t);
        if x.is_finite() {
            if window.len() >= cfg.spike.min_points
                && let (Some(med), Some(mad)) = (window.median(), window.mad())
            {
                let scale = (1.4826 * mad).max(1e-3 * med.abs()).max(1e-12);
                let z = ((x - med) / scale).abs();
                out[i].score = (z / (2.0 * cfg.spike.z)).min(1.0);
            }
            window.push(x);
        } else {
            out[i].score = 1.0;
        }
        for f in d.take_findings() {
            if matches!(f.kind, FindingKind::Plateau | FindingKind::Silence) {
                continue;
            }
            if let Some(row) = f
                .step
                .and_then(|s| usize::try_from(s).ok())
                .filter(|r| *r < n)
            {
                out[row].label = true;
                out[row].score = out[row].score.max(f.score);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_and_a_nan_are_labelled_and_nothing_else() {
        let n = 500;
        let times: Vec<f64> = (0..n).map(|i| 1.7e9 + i as f64).collect();
        let mut values: Vec<f64> = (0..n)
            .map(|i| 2.0 + 0.01 * ((i * 7919) % 17) as f64)
            .collect();
        values[300] = 9.0;
        values[400] = f64::NAN;
        let rows = score_series("train/loss", &times, &values, &DiagnoseConfig::default());
        let labelled: Vec<usize> = (0..n).filter(|&i| rows[i].label).collect();
        assert_eq!(labelled, vec![300, 400]);
        assert!(rows[300].score > 0.9);
        assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.score)));
    }

    #[test]
    fn a_generic_series_gets_one_label_per_anomaly_episode() {
        // Five-minute samples of a daily wave with a little noise, one
        // spike and one NaN.
        let n = 3000;
        let times: Vec<f64> = (0..n).map(|i| 1.7e9 + 300.0 * i as f64).collect();
        let mut values: Vec<f64> = (0..n)
            .map(|i| {
                let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
                50.0 + 20.0 * phase.sin() + 0.5 * ((i * 7919) % 17) as f64 / 17.0
            })
            .collect();
        values[2000] += 60.0;
        values[2500] = f64::NAN;
        let rows = score_series("value", &times, &values, &DiagnoseConfig::default());
        let labelled: Vec<usize> = (0..n).filter(|&i| rows[i].label).collect();
        assert_eq!(labelled, vec![2000, 2500]);
        assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.score)));
    }
}
