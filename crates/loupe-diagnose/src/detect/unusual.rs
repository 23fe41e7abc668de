//! The general detector in live diagnosis: a host, GPU, serving or
//! external series outside runs that goes unusual for itself (a calibrated
//! anomaly likelihood, [`crate::anomaly`]) becomes one finding per unusual
//! stretch.
//!
//! The detector's own alarm (score 0.5, one chance in 1e5) is what NAB is
//! scored at. Live, a finding needs more, because a fleet sends millions of
//! points a day and real series are heavy-tailed: on NAB, raising the alarm
//! from 0.5 to 0.9 cuts the alarms outside labelled windows only from 189
//! to 78, so a threshold on the score alone cannot make a quiet fleet.
//! A finding needs all of:
//! - the episode's score reaching `finding_score` (0.75, a tail of about
//!   3e-8: far beyond the alarm, and what a value outside the whole range
//!   seen so far earns; higher would miss most spikes, whose one large
//!   error the squash keeps from dominating the average);
//! - a move of at least `min_deviations` (6) of the series' usual errors
//!   from its usual value: a new record of the noise is statistically odd,
//!   not news;
//! - no finding on the series in its last `calm_points` (600) points of
//!   episodes: a change of regime reopens episodes until it is learnt.
//!
//! It is a warning only when the move is also material (at least
//! `min_relative`, 20%, of a usual value that is not zero), in the
//! direction that hurts (serving and performance series; either way for
//! series of no known kind), and the detector has seen a whole cycle of its
//! longest season (the first weekend is unlike the days before it).
//! Otherwise, and always for GPU and host series, which change regime
//! whenever a job starts, ends, evaluates or checkpoints, it is
//! information: evidence that joins an incident, never one alone.

use serde::{Deserialize, Serialize};

use super::Raw;
use crate::Severity;
use crate::anomaly::{AnomalyConfig, AnomalyDetector, AnomalyPoint, tail_from_score};
use crate::finding::FindingAttributes;
use crate::finding::{Direction, FindingKind, SeriesRole};
use loupe_model::units::{self, Unit};

/// When an unusual episode of a series outside runs becomes a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnusualConfig {
    pub enabled: bool,
    /// The episode's score (0–1, `ln(tail) / ln(1e-10)`) that makes it a
    /// finding: 0.75 is a tail of about 3e-8.
    pub finding_score: f64,
    /// The smallest move, in the series' usual errors (its typical step
    /// or distance to past days), that makes a finding: a new record of
    /// the noise is statistically odd, not news.
    pub min_deviations: f64,
    /// The smallest move, as a fraction of the usual value, that makes a
    /// warning.
    pub min_relative: f64,
    /// After a finding, the series must have been outside unusual episodes
    /// for this many points before it makes another: a change of regime
    /// (a level and its noise both higher) reopens episodes until the
    /// detector accepts it as the new normal (`anomaly.relearn_after`).
    pub calm_points: u64,
}

impl Default for UnusualConfig {
    fn default() -> Self {
        UnusualConfig {
            enabled: true,
            finding_score: 0.75,
            min_deviations: 6.0,
            min_relative: 0.2,
            calm_points: 600,
        }
    }
}

/// The general detector of one series and whether its current unusual
/// stretch was reported.
#[derive(Debug, Clone)]
pub(crate) struct UnusualDetector {
    det: AnomalyDetector,
    reported: bool,
    /// Points in a row outside episodes.
    calm: u64,
    /// What the series measures, for the explanation's numbers.
    unit: Unit,
}

impl UnusualDetector {
    /// Whether a series of this role gets the general detector: not the
    /// training curves (they have their run rules), not the limits of
    /// other series, and not counters and codes judged by their value
    /// alone (ECC, Xid, throttle reasons).
    pub(crate) fn applies(role: SeriesRole) -> bool {
        use SeriesRole::*;
        !matches!(
            role,
            Loss | GradNorm
                | LearningRate
                | LossScale
                | GpuMemoryTotal
                | HostMemoryTotal
                | GpuEccErrors
                | GpuXid
                | GpuThrottle
        )
    }

    pub(crate) fn new(cfg: &AnomalyConfig, unit: Unit) -> Self {
        UnusualDetector {
            det: AnomalyDetector::new(cfg),
            reported: false,
            calm: 0,
            unit,
        }
    }

    /// Bytes this detector holds (see [`AnomalyDetector::memory_bytes`]).
    #[cfg(test)]
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() - std::mem::size_of::<AnomalyDetector>()
            + self.det.memory_bytes()
    }

    /// Feeds one point (time in seconds); a finding the first time the
    /// current episode reaches the finding score.
    pub(crate) fn observe(
        &mut self,
        role: SeriesRole,
        time: f64,
        x: f64,
        cfg: &UnusualConfig,
    ) -> Option<Raw> {
        let p = self.det.observe(time, x);
        if !p.in_episode {
            self.calm += 1;
            if self.calm >= cfg.calm_points {
                self.reported = false;
            }
            return None;
        }
        self.calm = 0;
        if self.reported || p.likelihood_score < cfg.finding_score || !x.is_finite() {
            return None;
        }
        let (Some(expected), Some(noise)) = (p.expected, p.noise) else {
            return None;
        };
        if (x - expected).abs() < cfg.min_deviations * noise {
            return None;
        }
        self.reported = true;
        Some(finding(role, self.unit, x, &p, cfg))
    }
}

fn finding(role: SeriesRole, unit: Unit, x: f64, p: &AnomalyPoint, cfg: &UnusualConfig) -> Raw {
    let expected = p.expected.filter(|e| e.is_finite());
    let dir = expected.map(|e| {
        if x >= e {
            Direction::Up
        } else {
            Direction::Down
        }
    });
    // Relative to the usual value; none from zero, or a millionth of the
    // value (as for spikes: a series that is usually 0, such as an error
    // rate, has no scale to call a move large against, and its single
    // events are not incidents).
    let relative = expected
        .filter(|e| e.abs() > 1e-6 * x.abs() && *e != 0.0)
        .map(|e| (x - e) / e.abs());
    let material = relative.is_some_and(|r| r.abs() >= cfg.min_relative);
    let hurts = match role.bad_direction() {
        Some(bad) => dir == Some(bad),
        None => true,
    };
    use SeriesRole::*;
    let regime_changes = matches!(
        role,
        GpuUtilization
            | GpuClock
            | GpuMemory
            | GpuTemperature
            | CpuPercent
            | HostMemory
            | ProcessMemory
            | DiskUsage
    );
    let severity = if material && hurts && !regime_changes && p.settled {
        Severity::Warning
    } else {
        Severity::Info
    };
    // The score's tail, the chance of a stretch this unusual by chance.
    let tail = tail_from_score(p.likelihood_score);
    let mut detail = match (expected, relative) {
        (Some(e), Some(r)) => format!(
            "unusual for this series: {} against about {} usually ({})",
            units::value(x, unit),
            units::value(e, unit),
            units::percent_change(r)
        ),
        (Some(e), _) => format!(
            "unusual for this series: {} against about {} usually",
            units::value(x, unit),
            units::value(e, unit)
        ),
        (None, _) => format!("unusual for this series: {}", units::value(x, unit)),
    };
    if let Some(why) = p.reason {
        detail.push_str(", ");
        detail.push_str(why.describe());
    }
    detail.push_str(&format!(
        "; a stretch this unusual comes by chance about once in {} points (anomaly likelihood score {:.2})",
        once_in(tail),
        p.likelihood_score
    ));
    let mut attributes = FindingAttributes::extras([
        ("likelihood_score", format!("{:.3}", p.likelihood_score)),
        ("tail_probability", format!("{tail:.1e}")),
    ]);
    if let Some(why) = p.reason {
        let why = format!("{why:?}").to_lowercase();
        attributes.extra.insert("reason".into(), why);
    }
    if let Some(r) = relative {
        attributes
            .extra
            .insert("relative".into(), format!("{r:.3}"));
    }
    Raw {
        kind: FindingKind::Unusual,
        value: Some(x),
        expected,
        direction: dir,
        score: p.likelihood_score.clamp(0.0, 1.0),
        severity,
        detail,
        attributes,
    }
}

/// "1e9"-style odds for explanations: the power of ten of 1 / tail,
/// rounded down, "1e10 or more" at the score's floor.
fn once_in(tail: f64) -> String {
    // The epsilon keeps 1e-9 from reading as 10^8.99999….
    let exp = (-tail.log10() + 1e-9).floor().clamp(0.0, 10.0) as i32;
    match exp {
        10 => "10 000 000 000 or more".into(),
        0..=3 => format!("{}", 10i64.pow(exp as u32)),
        _ => {
            // 10 000, 100 000, …: digits in groups of three.
            let digits = format!("1{}", "0".repeat(exp as usize));
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push(' ');
                }
                out.push(c);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic, uncorrelated noise, roughly normal (sum of four
    /// uniforms, unit variance).
    fn noise(i: u64) -> f64 {
        let u = |k: u64| {
            let mut z = (i * 4 + k)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        ((u(0) + u(1) + u(2) + u(3)) - 2.0) * 3f64.sqrt()
    }

    fn findings(role: SeriesRole, values: impl Iterator<Item = f64>) -> Vec<(usize, Raw)> {
        let cfg = crate::DiagnoseConfig::default();
        let mut d = UnusualDetector::new(&cfg.anomaly, Unit::None);
        values
            .enumerate()
            .filter_map(|(i, x)| {
                d.observe(role, 1.7e9 + i as f64, x, &cfg.unusual)
                    .map(|r| (i, r))
            })
            .collect()
    }

    #[test]
    fn a_latency_step_is_one_warning_with_its_likelihood() {
        // 1 Hz p95 latency, 0.9 s with 6% noise, then 2.4 s from t = 3000.
        let lat = (0..6000u64).map(|i| {
            let level = if i < 3000 { 0.9 } else { 2.4 };
            level * (1.0 + 0.06 * noise(i))
        });
        let f = findings(SeriesRole::Latency, lat);
        assert_eq!(f.len(), 1, "{f:?}");
        let (at, r) = &f[0];
        assert!((3000..3005).contains(at), "{at}");
        assert_eq!(r.kind, FindingKind::Unusual);
        assert_eq!(r.severity, Severity::Warning);
        assert_eq!(r.direction, Some(Direction::Up));
        assert!((r.expected.unwrap() - 0.9).abs() < 0.05, "{r:?}");
        assert!(r.attributes.contains_key("likelihood_score"));
        assert!(r.detail.contains("against about 0.89"), "{}", r.detail);
        assert!(r.detail.contains("once in"), "{}", r.detail);
    }

    #[test]
    fn a_gpu_spike_is_found_once_as_evidence() {
        // GPU temperature at 1 Hz, 70 °C ± 0.5, one reading of 95 °C.
        let temp = (0..4000u64).map(|i| {
            if i == 2500 {
                95.0
            } else {
                70.0 + 0.5 * noise(i)
            }
        });
        let f = findings(SeriesRole::GpuTemperature, temp);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, 2500);
        // A GPU's readings change regime with every job: evidence, never
        // an incident alone (its ≥ 85 °C rule is the warning).
        assert_eq!(f[0].1.severity, Severity::Info);
    }

    #[test]
    fn a_drop_that_does_not_hurt_is_information() {
        // Latency halving: unusual, good news.
        let lat = (0..5000u64).map(|i| if i < 3000 { 0.9 } else { 0.45 } * (1.0 + 0.06 * noise(i)));
        let f = findings(SeriesRole::Latency, lat);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].1.severity, Severity::Info);
        assert_eq!(f[0].1.direction, Some(Direction::Down));
    }

    #[test]
    fn sporadic_events_on_a_series_usually_at_zero_are_information() {
        // An error rate at 0 with one error every 15 minutes.
        let errors = (0..21_600u64).map(|i| if i % 900 == 450 { 1.0 } else { 0.0 });
        let f = findings(SeriesRole::Errors, errors);
        assert!(!f.is_empty());
        assert!(f.iter().all(|(_, r)| r.severity == Severity::Info), "{f:?}");
    }

    #[test]
    fn a_noisy_periodic_healthy_series_raises_nothing() {
        // Requests per second at 1 Hz for 12 hours: a 1-hour cycle, heavy
        // noise, and now and then a burst of three points as high as the
        // noise ever goes.
        let rps = (0..43_200u64).map(|i| {
            let cycle = (i as f64 / 3600.0 * std::f64::consts::TAU).sin();
            let burst = if i % 997 < 3 { 2.5 } else { 0.0 };
            120.0 + 30.0 * cycle + 8.0 * (noise(i) + burst)
        });
        let f = findings(SeriesRole::Other, rps);
        assert!(f.iter().all(|(_, r)| r.severity == Severity::Info), "{f:?}");
        assert!(f.is_empty(), "{f:?}");
        // Five-minute samples of a daily cycle for four weeks, with a
        // quieter weekend.
        let daily = (0..8064u64).map(|i| {
            let day = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            let weekend = if (i / 288) % 7 >= 5 { 0.6 } else { 1.0 };
            weekend * (500.0 + 200.0 * day.sin()) + 25.0 * noise(i)
        });
        let cfg = crate::DiagnoseConfig::default();
        let mut d = UnusualDetector::new(&cfg.anomaly, Unit::None);
        let mut found = Vec::new();
        for (i, x) in daily.enumerate() {
            if let Some(r) = d.observe(SeriesRole::Other, 1.7e9 + 300.0 * i as f64, x, &cfg.unusual)
            {
                found.push((i, r));
            }
        }
        // The first weekend is unlike the days before it, and nothing
        // says yet that weeks have weekends: information, nothing more.
        // Once a week is known, the next weekends are as expected.
        assert!(
            found
                .iter()
                .all(|(i, r)| r.severity == Severity::Info && *i < 2016),
            "{found:?}"
        );
        // Its history holds two weeks of five-minute samples, within the
        // bound.
        assert!(
            d.memory_bytes() <= 3 * 1024 + 8 * 4098,
            "{}",
            d.memory_bytes()
        );
    }

    #[test]
    fn odds_read_as_numbers() {
        assert_eq!(once_in(1e-3), "1000");
        assert_eq!(once_in(3e-6), "100 000");
        assert_eq!(once_in(1e-9), "1 000 000 000");
        assert_eq!(once_in(1e-10), "10 000 000 000 or more");
        assert_eq!(once_in(0.0), "10 000 000 000 or more");
    }
}
