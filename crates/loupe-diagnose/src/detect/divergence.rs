//! Divergence and plateaus of a loss, on an exponential moving average.

use super::Raw;
use crate::Severity;
use crate::config::{DivergenceConfig, PlateauConfig};
use crate::finding::{Direction, FindingKind};

#[derive(Debug, Clone, Default)]
pub(crate) struct LossTrendDetector {
    ema: Option<f64>,
    n: usize,
    best: f64,
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
        if self.n < div.min_points {
            self.best = ema;
            return None;
        }
        if ema < self.best {
            self.best = ema;
        }
        let spread = self.best.abs().max(1e-9);
        let rise = (ema - self.best) / spread;
        if div.enabled {
            if !self.diverging && rise >= div.rise {
                self.diverging = true;
                return Some(Raw {
                    kind: FindingKind::Divergence,
                    value: Some(ema),
                    expected: Some(self.best),
                    direction: Some(Direction::Up),
                    score: (rise / (2.0 * div.rise)).clamp(0.5, 1.0),
                    severity: Severity::Warning,
                    detail: format!(
                        "the smoothed loss climbed to {ema:.4}, {:.0}% above its best {:.4}",
                        rise * 100.0,
                        self.best
                    ),
                    attributes: vec![("rise".into(), format!("{rise:.3}"))],
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
                            "the loss improved {:.2}% over the last {} points",
                            improved * 100.0,
                            plateau.window
                        ),
                        attributes: vec![],
                    });
                }
            }
        }
        None
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
