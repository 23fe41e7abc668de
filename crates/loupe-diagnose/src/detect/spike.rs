//! Spikes: robust deviation from a rolling median and MAD.

use super::Raw;
use super::rolling::RollingWindow;
use crate::Severity;
use crate::config::SpikeConfig;
use crate::finding::FindingAttributes;
use crate::finding::{Direction, FindingKind, SeriesRole};
use loupe_model::units::{self, Unit};

/// Robust standard deviations per MAD for normal data.
const MAD_TO_SD: f64 = 1.4826;

#[derive(Debug, Clone)]
pub(crate) struct SpikeDetector {
    window: RollingWindow,
    cooldown: u32,
    /// Lowest and highest value since the last reset: a loss's range.
    range: Option<(f64, f64)>,
    /// What the series measures, for the explanation's numbers.
    unit: Unit,
}

impl SpikeDetector {
    pub(crate) fn new(cfg: &SpikeConfig) -> Self {
        Self {
            window: RollingWindow::new(cfg.window),
            cooldown: 0,
            range: None,
            unit: Unit::None,
        }
    }

    /// The detector of a series measured in `unit`.
    pub(crate) fn in_unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    pub(crate) fn reset(&mut self) {
        self.window.clear();
        self.cooldown = 0;
        self.range = None;
    }

    pub(crate) fn observe(&mut self, role: SeriesRole, x: f64, cfg: &SpikeConfig) -> Option<Raw> {
        let mut out = None;
        if self.window.len() >= cfg.min_points
            && let (Some(med), Some(mad)) = (self.window.median(), self.window.mad_every(4))
        {
            // A floor on the scale: a constant series (MAD 0) would call any
            // change a spike of infinite z.
            let scale = (MAD_TO_SD * mad).max(1e-3 * med.abs()).max(1e-12);
            let z = (x - med) / scale;
            let up = x > med;
            let (threshold, relative, directions): (f64, Option<f64>, &[Direction]) = match role {
                SeriesRole::Loss => (cfg.z, Some(cfg.loss_relative), &[Direction::Up]),
                SeriesRole::GradNorm => (cfg.z, Some(cfg.grad_norm_relative), &[Direction::Up]),
                SeriesRole::Latency | SeriesRole::Errors => (cfg.z, Some(0.5), &[Direction::Up]),
                _ => (cfg.other_z, None, &[Direction::Up, Direction::Down]),
            };
            let dir = if up { Direction::Up } else { Direction::Down };
            let rel_ok = match relative {
                Some(r) => med.abs() > 0.0 && (x - med).abs() >= r * med.abs(),
                None => true,
            };
            // A loss near zero after a long descent is judged against where
            // it came from, not against its tiny median.
            let range_ok = role != SeriesRole::Loss
                || self.range.is_none_or(|(lo, hi)| {
                    (x - med).abs() >= cfg.loss_range_fraction * (hi.max(x) - lo)
                });
            let rel_ok = rel_ok && range_ok;
            if self.cooldown == 0 && z.abs() >= threshold && rel_ok && directions.contains(&dir) {
                let severity = match role {
                    // A grad-norm spike alone is common; it matters as
                    // evidence when the loss follows.
                    SeriesRole::GradNorm | SeriesRole::Other => Severity::Info,
                    _ => Severity::Warning,
                };
                out = Some(Raw {
                    kind: FindingKind::Spike,
                    value: Some(x),
                    expected: Some(med),
                    direction: Some(dir),
                    score: (z.abs() / (2.0 * threshold)).min(1.0),
                    severity,
                    detail: format!(
                        "{} is {:.1} robust deviations {} the rolling median {}",
                        units::value(x, self.unit),
                        z.abs(),
                        if up { "above" } else { "below" },
                        units::value(med, self.unit),
                    ),
                    attributes: FindingAttributes::extras([("z", format!("{:.1}", z.abs()))]),
                });
                self.cooldown = cfg.cooldown_points;
            } else {
                self.cooldown = self.cooldown.saturating_sub(1);
            }
        }
        self.window.push(x);
        self.range = Some(match self.range {
            Some((lo, hi)) => (lo.min(x), hi.max(x)),
            None => (x, x),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(i: usize) -> f64 {
        // Deterministic noise in [-0.05, 0.05].
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        (h as f64 / (1u64 << 24) as f64 - 0.5) * 0.1
    }

    #[test]
    fn a_single_loss_spike_is_found_and_noise_is_not() {
        let cfg = SpikeConfig::default();
        let mut d = SpikeDetector::new(&cfg);
        let mut found = Vec::new();
        for i in 0..2000 {
            let base = 3.0 * (-(i as f64) / 800.0).exp() + 1.0;
            let x = if i == 1500 {
                base * 1.8
            } else {
                base + noisy(i)
            };
            if let Some(r) = d.observe(SeriesRole::Loss, x, &cfg) {
                found.push((i, r));
            }
        }
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 1500);
        assert_eq!(found[0].1.direction, Some(Direction::Up));
    }

    #[test]
    fn a_converged_loss_near_zero_is_judged_against_its_range() {
        let cfg = SpikeConfig::default();
        let mut d = SpikeDetector::new(&cfg);
        let mut found = Vec::new();
        for i in 0..400 {
            // From 2.0 down to ~0.0002, then flickers of ×5 at the bottom.
            let x = if i < 200 {
                2.0 * (-(i as f64) / 20.0).exp()
            } else if i % 17 == 0 {
                0.001
            } else {
                0.0002 + 0.00001 * (i % 3) as f64
            };
            if d.observe(SeriesRole::Loss, x, &cfg).is_some() {
                found.push(i);
            }
        }
        assert!(found.is_empty(), "{found:?}");
        // A real spike at the bottom is still one.
        assert!(d.observe(SeriesRole::Loss, 1.5, &cfg).is_some());
    }

    #[test]
    fn nothing_fires_on_a_short_series() {
        let cfg = SpikeConfig::default();
        let mut d = SpikeDetector::new(&cfg);
        for i in 0..cfg.min_points {
            let x = if i == cfg.min_points - 1 { 100.0 } else { 1.0 };
            assert!(d.observe(SeriesRole::Loss, x, &cfg).is_none());
        }
    }
}
