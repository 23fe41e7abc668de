//! Divergence and plateaus of a loss, on an exponential moving average.

use super::Raw;
use super::rolling::RollingWindow;
use crate::Severity;
use crate::config::{DivergenceConfig, PlateauConfig};
use crate::finding::FindingAttributes;
use crate::finding::{Direction, FindingKind};
use loupe_model::units;

/// Robust standard deviations per MAD for normal data.
const MAD_TO_SD: f64 = 1.4826;

/// Point-to-point differences kept to estimate a loss's noise.
const NOISE_WINDOW: usize = 64;

#[derive(Debug, Clone, Default)]
pub(crate) struct LossTrendDetector {
    ema: Option<f64>,
    n: usize,
    best: f64,
    /// The highest smoothed value once judging began: with `best`, the
    /// loss's range.
    peak: f64,
    last: Option<f64>,
    /// |x - previous x| of the recent points.
    diffs: Option<RollingWindow>,
    diverging: bool,
    /// Best EMA at the start of the current plateau window, and points in it.
    window_best: Option<f64>,
    window_points: u32,
}

impl LossTrendDetector {
    pub(crate) fn reset(&mut self) {
        *self = LossTrendDetector::default();
    }

    pub(crate) fn observe(
        &mut self,
        x: f64,
        div: &DivergenceConfig,
        plateau: &PlateauConfig,
    ) -> Option<Raw> {
        let ema = match self.ema {
            None => x,
            Some(e) => e + div.alpha * (x - e),
        };
        self.ema = Some(ema);
        self.n += 1;
        if let Some(prev) = self.last.replace(x) {
            self.diffs
                .get_or_insert_with(|| RollingWindow::new(NOISE_WINDOW))
                .push((x - prev).abs());
        }
        if self.n < div.min_points {
            (self.best, self.peak) = (ema, ema);
            return None;
        }
        self.best = self.best.min(ema);
        self.peak = self.peak.max(ema);
        let spread = self.best.abs().max(1e-9);
        let rise = (ema - self.best) / spread;
        if div.enabled {
            if !self.diverging && rise >= div.rise && self.beyond_floors(ema, div) {
                self.diverging = true;
                return Some(Raw {
                    kind: FindingKind::Divergence,
                    value: Some(ema),
                    expected: Some(self.best),
                    direction: Some(Direction::Up),
                    score: (rise / (2.0 * div.rise)).clamp(0.5, 1.0),
                    severity: Severity::Warning,
                    detail: format!(
                        "the smoothed loss climbed to {}, {}% above its best {}",
                        units::number(ema),
                        units::sig(rise * 100.0, 3),
                        units::number(self.best)
                    ),
                    attributes: FindingAttributes::extras([("rise", format!("{rise:.3}"))]),
                });
            }
            if self.diverging && rise < div.rise / 2.0 {
                self.diverging = false;
            }
        }
        if plateau.enabled {
            let start = *self.window_best.get_or_insert(self.best);
            self.window_points += 1;
            if self.window_points >= plateau.window {
                let improved = (start - self.best) / start.abs().max(1e-9);
                self.window_best = Some(self.best);
                self.window_points = 0;
                if improved < plateau.min_improvement && !self.diverging {
                    return Some(Raw {
                        kind: FindingKind::Plateau,
                        value: Some(ema),
                        expected: Some(start),
                        direction: None,
                        score: 0.3,
                        severity: Severity::Info,
                        detail: format!(
                            "the loss improved {}% over the last {} points",
                            units::sig(improved * 100.0, 3),
                            plateau.window
                        ),
                        attributes: FindingAttributes::default(),
                    });
                }
            }
        }
        None
    }

    /// The climb is more than the loss's own noise (robust spread of its
    /// point-to-point differences, per point) and a real part of its range:
    /// a converged loss at 0.01 that drifts to 0.013 is not diverging.
    fn beyond_floors(&self, ema: f64, div: &DivergenceConfig) -> bool {
        let climb = ema - self.best;
        let noise = self
            .diffs
            .as_ref()
            .and_then(|w| w.median())
            .map_or(0.0, |m| MAD_TO_SD * m / std::f64::consts::SQRT_2);
        climb >= div.noise_z * noise && climb >= div.range_fraction * (self.peak - self.best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_that_climbs_away_diverges_once() {
        let (div, pl) = (DivergenceConfig::default(), PlateauConfig::default());
        let mut d = LossTrendDetector::default();
        let mut found = Vec::new();
        for i in 0..1000 {
            let x = if i < 600 {
                4.0 - 2.0 * i as f64 / 600.0
            } else {
                2.0 + 0.02 * (i - 600) as f64
            };
            if let Some(r) = d.observe(x, &div, &pl) {
                found.push((i, r.kind));
            }
        }
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, FindingKind::Divergence);
        assert!((640..720).contains(&found[0].0), "{found:?}");
    }

    #[test]
    fn a_converged_loss_near_zero_drifting_up_is_not_divergence() {
        let (div, pl) = (DivergenceConfig::default(), PlateauConfig::default());
        let mut d = LossTrendDetector::default();
        for i in 0..3000 {
            // 2.0 down to 0.01, then a slow drift to 0.016: 60% above its best,
            // a relative rise that alone would be called divergence.
            let x = if i < 1000 {
                0.01 + 2.0 * (-(i as f64) / 100.0).exp()
            } else {
                0.01 + 0.006 * (i - 1000) as f64 / 2000.0 + 0.001 * ((i * 7919) % 5) as f64 / 5.0
            };
            let r = d.observe(x, &div, &pl);
            assert!(
                r.as_ref().is_none_or(|r| r.kind != FindingKind::Divergence),
                "at {i}: {r:?}"
            );
        }
    }

    #[test]
    fn a_decaying_loss_neither_diverges_nor_plateaus() {
        let (div, pl) = (DivergenceConfig::default(), PlateauConfig::default());
        let mut d = LossTrendDetector::default();
        for i in 0..5000 {
            let x =
                2.0 + 3.0 * (-(i as f64) / 1500.0).exp() + 0.05 * ((i * 7919) % 13) as f64 / 13.0;
            assert!(d.observe(x, &div, &pl).is_none(), "at {i}");
        }
    }
}
