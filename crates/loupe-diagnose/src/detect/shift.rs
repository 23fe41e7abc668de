//! Level shifts: a two-sided CUSUM on robust z-scores.
//!
//! The baseline (rolling median and MAD) learns only while the series is in
//! control, so a shift cannot teach the detector that it is normal — until
//! `accept_after` points have passed, when the new level is accepted.

use super::Raw;
use super::rolling::RollingWindow;
use crate::Severity;
use crate::config::ShiftConfig;
use crate::finding::FindingAttributes;
use crate::finding::{Direction, FindingKind};
use loupe_model::units::{self, Unit};

const MAD_TO_SD: f64 = 1.4826;
/// Values averaged for the level "now".
const RECENT: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct ShiftDetector {
    baseline: RollingWindow,
    /// The last few values, for the level the series is at now.
    recent: std::collections::VecDeque<f64>,
    up: f64,
    down: f64,
    /// Points since the shift was reported, while it lasts.
    shifted_for: Option<u32>,
    shifted_dir: Direction,
    frozen: Option<(f64, f64)>,
    /// What the series measures, for the explanation's numbers.
    unit: Unit,
}

impl ShiftDetector {
    pub(crate) fn new(cfg: &ShiftConfig) -> Self {
        Self {
            baseline: RollingWindow::new(cfg.window),
            recent: std::collections::VecDeque::with_capacity(RECENT + 1),
            up: 0.0,
            down: 0.0,
            shifted_for: None,
            shifted_dir: Direction::Up,
            frozen: None,
            unit: Unit::None,
        }
    }

    /// The detector of a series measured in `unit`.
    pub(crate) fn in_unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    pub(crate) fn reset(&mut self) {
        self.baseline.clear();
        self.recent.clear();
        self.up = 0.0;
        self.down = 0.0;
        self.shifted_for = None;
        self.frozen = None;
    }

    fn level_and_scale(&mut self, cfg: &ShiftConfig) -> Option<(f64, f64)> {
        if let Some(f) = self.frozen {
            return Some(f);
        }
        if self.baseline.len() < cfg.min_points {
            return None;
        }
        let med = self.baseline.median()?;
        let mad = self.baseline.mad_every(8)?;
        // The smallest shift worth reporting is `min_relative` of the
        // level; scale the noise floor so that such a shift is ~3 sd.
        let scale = (MAD_TO_SD * mad)
            .max(cfg.min_relative * med.abs() / 3.0)
            .max(1e-12);
        Some((med, scale))
    }

    /// Observes `x`; `bad` is the direction that hurts (only shifts that way
    /// are reported).
    pub(crate) fn observe(&mut self, x: f64, bad: Direction, cfg: &ShiftConfig) -> Option<Raw> {
        self.recent.push_back(x);
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        let Some((level, scale)) = self.level_and_scale(cfg) else {
            self.baseline.push(x);
            return None;
        };
        let z = (x - level) / scale;
        self.up = (self.up + z - cfg.k).max(0.0);
        self.down = (self.down - z - cfg.k).max(0.0);
        let recent = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        let relative = if level.abs() > 0.0 {
            (recent - level) / level.abs()
        } else {
            0.0
        };
        if let Some(n) = self.shifted_for {
            let back = (recent - level).abs() < 1.5 * scale;
            if back {
                self.shifted_for = None;
                self.frozen = None;
                self.up = 0.0;
                self.down = 0.0;
                return None;
            }
            if n + 1 >= cfg.accept_after {
                // A new normal: learn it from scratch.
                self.reset();
                return None;
            }
            self.shifted_for = Some(n + 1);
            if (n + 1) % cfg.repeat_points.max(1) == 0 {
                return Some(self.raw(recent, level, relative, self.shifted_dir, true));
            }
            return None;
        }
        let alarm = match bad {
            Direction::Up => self.up > cfg.h,
            Direction::Down => self.down > cfg.h,
        };
        let big_enough = match bad {
            Direction::Up => relative >= cfg.min_relative,
            Direction::Down => -relative >= cfg.min_relative,
        };
        if alarm && big_enough {
            self.shifted_for = Some(0);
            self.shifted_dir = bad;
            self.frozen = Some((level, scale));
            return Some(self.raw(recent, level, relative, bad, false));
        }
        if self.up < cfg.h / 2.0 && self.down < cfg.h / 2.0 {
            self.baseline.push(x);
        }
        None
    }

    fn raw(&self, recent: f64, level: f64, relative: f64, dir: Direction, repeat: bool) -> Raw {
        Raw {
            kind: FindingKind::LevelShift,
            value: Some(recent),
            expected: Some(level),
            direction: Some(dir),
            score: (relative.abs() / 0.5).clamp(0.3, 1.0),
            severity: Severity::Warning,
            detail: format!(
                "{} from {} to {} ({}){}",
                if dir == Direction::Up { "rose" } else { "fell" },
                units::value(level, self.unit),
                units::value(recent, self.unit),
                units::percent_change(relative),
                if repeat { ", still" } else { "" }
            ),
            attributes: FindingAttributes::extras([("relative", format!("{relative:.3}"))]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: usize) -> f64 {
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        h as f64 / (1u64 << 24) as f64 - 0.5
    }

    #[test]
    fn a_throughput_drop_is_found_quickly_once() {
        let cfg = ShiftConfig::default();
        let mut d = ShiftDetector::new(&cfg);
        let mut found = Vec::new();
        for i in 0..400 {
            let level = if i >= 200 { 6000.0 } else { 10_000.0 };
            let x = level + 300.0 * noise(i);
            if let Some(r) = d.observe(x, Direction::Down, &cfg) {
                found.push((i, r));
            }
        }
        assert!(!found.is_empty());
        let (first, r) = &found[0];
        assert!((200..210).contains(first), "found at {first}");
        assert_eq!(r.direction, Some(Direction::Down));
        // Repeats while it lasts, every `repeat_points`.
        assert!(found.len() <= 1 + 200 / cfg.repeat_points as usize);
    }

    #[test]
    fn rises_of_a_lower_is_worse_series_are_ignored() {
        let cfg = ShiftConfig::default();
        let mut d = ShiftDetector::new(&cfg);
        for i in 0..400 {
            let level = if i >= 200 { 14_000.0 } else { 10_000.0 };
            assert!(
                d.observe(level + 300.0 * noise(i), Direction::Down, &cfg)
                    .is_none()
            );
        }
    }

    #[test]
    fn noise_alone_never_alarms() {
        let cfg = ShiftConfig::default();
        let mut d = ShiftDetector::new(&cfg);
        for i in 0..20_000 {
            assert!(
                d.observe(100.0 + 8.0 * noise(i), Direction::Down, &cfg)
                    .is_none(),
                "at {i}"
            );
        }
    }
}
