//! A loss that multiplies, judged from its second point on.
//!
//! The rolling spike and divergence rules need tens of points before they
//! say anything, and a run logged every 100 steps can go from healthy to
//! ruined in three. This rule needs one earlier point: the loss jumped to
//! `factor` times the median of its recent points. Two floors keep it off
//! healthy curves: the rise must be a real part of the loss's range so far
//! (a converged loss near zero that triples from 0.0001 has not blown up),
//! and, once enough points are known, many times the series' own noise
//! (the robust spread of its recent point-to-point differences). One
//! finding per episode: it re-arms when the loss is back near where it was.

use std::collections::VecDeque;

use super::Raw;
use crate::Severity;
use crate::config::BlowUpConfig;
use crate::finding::FindingAttributes;
use crate::finding::{Direction, FindingKind};
use loupe_model::units;

/// Standard deviations per upper quartile of |N(0, 1)|: the spread of the
/// differences is read from their upper quartile rather than their median,
/// so a loss that swings hard every few steps (detection losses, small
/// batches) shows its swings in the estimate.
const UPPER_QUARTILE_TO_SD: f64 = 1.0 / 1.1503;

/// The episode ends when the loss is back under this multiple of the level
/// it blew up from.
const REARM_FACTOR: f64 = 1.5;

#[derive(Debug, Clone, Default)]
pub(crate) struct BlowUpDetector {
    recent: VecDeque<f64>,
    lowest: f64,
    highest: f64,
    seen: usize,
    /// The level the current episode blew up from.
    episode_from: Option<f64>,
}

impl BlowUpDetector {
    pub(crate) fn reset(&mut self) {
        *self = BlowUpDetector::default();
    }

    /// Feeds a finite value.
    pub(crate) fn observe(&mut self, x: f64, cfg: &BlowUpConfig) -> Option<Raw> {
        let found = self.judge(x, cfg);
        if self.seen == 0 {
            (self.lowest, self.highest) = (x, x);
        } else {
            self.lowest = self.lowest.min(x);
            self.highest = self.highest.max(x);
        }
        self.seen += 1;
        self.recent.push_back(x);
        while self.recent.len() > cfg.window.max(2) {
            self.recent.pop_front();
        }
        found
    }

    fn judge(&mut self, x: f64, cfg: &BlowUpConfig) -> Option<Raw> {
        if let Some(from) = self.episode_from
            && x < REARM_FACTOR * from
        {
            self.episode_from = None;
        }
        // Ratios mean nothing for losses that reach zero or below; and the
        // median is at least the lowest value, so most points stop here.
        if self.seen == 0
            || self.episode_from.is_some()
            || self.lowest <= 0.0
            || x < cfg.factor * self.lowest
        {
            return None;
        }
        let level = quantile(self.recent.iter().copied().collect(), 0.5)?;
        let rise = x - level;
        if level <= 0.0 || x < cfg.factor * level {
            return None;
        }
        let range = self.highest.max(x) - self.lowest;
        if rise < cfg.range_fraction * range {
            return None;
        }
        if self.recent.len() >= cfg.noise_points {
            let diffs: Vec<f64> = self
                .recent
                .iter()
                .zip(self.recent.iter().skip(1))
                .map(|(a, b)| (b - a).abs())
                .collect();
            let noise = UPPER_QUARTILE_TO_SD * quantile(diffs, 0.75).unwrap_or(0.0);
            if rise < cfg.noise_z * noise {
                return None;
            }
        }
        self.episode_from = Some(level);
        let ratio = x / level;
        Some(Raw {
            kind: FindingKind::Spike,
            value: Some(x),
            expected: Some(level),
            direction: Some(Direction::Up),
            score: (ratio / (2.0 * cfg.factor)).clamp(0.5, 1.0),
            severity: Severity::Warning,
            detail: format!(
                "the loss multiplied ×{} to {} from a recent level of {}",
                units::sig(ratio, 3),
                units::number(x),
                units::number(level)
            ),
            attributes: FindingAttributes::extras([("ratio", format!("{ratio:.2}"))]),
        })
    }
}

/// The `q` quantile (nearest rank) of a few values (the window is small).
fn quantile(mut v: Vec<f64>, q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let last = v.len() - 1;
    let at = ((last as f64 * q).round() as usize).min(last);
    let (_, m, _) = v.select_nth_unstable_by(at, |a, b| a.total_cmp(b));
    Some(*m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: &[f64]) -> Vec<usize> {
        let cfg = BlowUpConfig::default();
        let mut d = BlowUpDetector::default();
        values
            .iter()
            .enumerate()
            .filter_map(|(i, x)| d.observe(*x, &cfg).map(|_| i))
            .collect()
    }

    #[test]
    fn a_blow_up_over_three_sparse_points_is_found_once() {
        // tensorflow/models#3868: three healthy points, then it explodes.
        assert_eq!(
            run(&[0.063, 0.1628, 0.0577, 5.4e19, 4.3e20, 2.1e21]),
            vec![3]
        );
        // The second point is enough.
        assert_eq!(run(&[1.5, 6.0]), vec![1]);
    }

    #[test]
    fn a_converged_loss_near_zero_that_triples_is_not_a_blow_up() {
        let mut v = vec![0.89, 0.65, 0.35, 0.1, 0.01, 0.001];
        v.extend([0.0001, 0.0003, 0.0001, 0.0005, 0.0002, 0.0001, 0.0004]);
        assert!(run(&v).is_empty());
    }

    #[test]
    fn noisy_per_step_losses_need_more_than_their_noise() {
        // A detection-style loss that swings ×4 every few steps, once its
        // noise is known (the first swing of a series could be anything).
        let v: Vec<f64> = (0..200)
            .map(|i| {
                let base = 0.15 + 0.05 * ((i * 13 % 5) as f64);
                if i > 20 && i % 4 == 3 { 0.9 } else { base }
            })
            .collect();
        assert!(run(&v).is_empty());
    }

    #[test]
    fn it_re_arms_after_the_loss_recovers() {
        let v = [2.0, 2.1, 1.9, 9.0, 8.0, 2.0, 2.0, 2.0, 2.0, 9.5];
        assert_eq!(run(&v), vec![3, 9]);
    }

    #[test]
    fn losses_at_or_below_zero_are_left_to_the_other_rules() {
        assert!(run(&[-1.0, -0.5, 3.0]).is_empty());
        assert!(run(&[0.0, 0.5]).is_empty());
    }
}
