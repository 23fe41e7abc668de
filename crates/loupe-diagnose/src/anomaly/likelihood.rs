//! A calibrated anomaly likelihood, in the manner of HTM's: a predictor's
//! raw error says how badly it did at one point; this says how *unusual*
//! that is for this series. The mean of the last few raw errors is
//! compared with the long-run distribution of that mean (an exponentially
//! weighted mean and variance), and the Gaussian upper tail of the
//! difference is the probability of seeing a stretch this bad by chance.
//!
//! The score is that probability on a log scale: 0 for "as usual", 0.5 for
//! a one-in-[`SCORE_HALF_TAIL`] stretch, 1 for one-in-1e10, so one
//! threshold means the same on every series whatever its noise.

use super::tail::normal_upper_tail;

/// Tail probability that maps to score 1.
const SCORE_FLOOR_TAIL: f64 = 1e-10;
/// Tail probability that maps to score 0.5 (follows from the floor: the
/// score is `ln(tail) / ln(floor)`).
#[cfg(test)]
const SCORE_HALF_TAIL: f64 = 1e-5;

/// The smallest standard deviation of the averaged error, as a fraction of
/// its mean plus an absolute floor: a perfectly predictable series (raw
/// error always 0) must not turn its first rounding error into an alarm of
/// infinite significance.
const MIN_STD_RELATIVE: f64 = 0.05;
const MIN_STD_ABSOLUTE: f64 = 1e-3;

/// The most points the short average spans (the ring is a fixed array).
pub(crate) const MAX_SHORT_WINDOW: usize = 32;

/// Score from a tail probability: `ln(p) / ln(1e-10)` clamped to [0, 1].
pub(crate) fn score_from_tail(p: f64) -> f64 {
    if p.is_nan() {
        return 0.0;
    }
    if p <= 0.0 {
        return 1.0;
    }
    (p.max(SCORE_FLOOR_TAIL).ln() / SCORE_FLOOR_TAIL.ln()).clamp(0.0, 1.0)
}

#[derive(Debug, Clone)]
pub(crate) struct Likelihood {
    short: [f64; MAX_SHORT_WINDOW],
    short_len: usize,
    short_filled: usize,
    short_at: usize,
    short_sum: f64,
    /// Weight of the newest averaged error in the long-run mean/variance.
    alpha: f64,
    mean: f64,
    var: f64,
    seen: u64,
    warmup: u64,
}

impl Likelihood {
    /// `short_window` raw errors are averaged; the long-run distribution
    /// forgets with a horizon of `long_window` points; nothing is scored
    /// before `warmup` points.
    pub(crate) fn new(short_window: usize, long_window: usize, warmup: u64) -> Self {
        Likelihood {
            short: [0.0; MAX_SHORT_WINDOW],
            short_len: short_window.clamp(1, MAX_SHORT_WINDOW),
            short_filled: 0,
            short_at: 0,
            short_sum: 0.0,
            alpha: 1.0 / long_window.max(2) as f64,
            mean: 0.0,
            var: 0.0,
            seen: 0,
            warmup: warmup.max(2),
        }
    }

    /// Feeds one raw error (≥ 0; non-finite errors are ignored) and returns
    /// the tail probability of the current short average (0.5 while
    /// warming up or when the error is not a number).
    pub(crate) fn update(&mut self, raw: f64) -> f64 {
        if !raw.is_finite() {
            return 0.5;
        }
        let raw = raw.max(0.0);
        if self.short_filled == self.short_len {
            self.short_sum -= self.short[self.short_at];
        } else {
            self.short_filled += 1;
        }
        self.short[self.short_at] = raw;
        self.short_sum += raw;
        self.short_at = (self.short_at + 1) % self.short_len;
        // Recompute now and then: running sums drift by rounding.
        if self.short_at == 0 {
            self.short_sum = self.short[..self.short_filled].iter().sum();
        }
        let avg = self.short_sum / self.short_filled as f64;
        let tail = if self.seen >= self.warmup {
            let std = self
                .var
                .sqrt()
                .max(MIN_STD_RELATIVE * self.mean.abs())
                .max(MIN_STD_ABSOLUTE);
            normal_upper_tail((avg - self.mean) / std)
        } else {
            0.5
        };
        self.learn(avg);
        tail
    }

    fn learn(&mut self, avg: f64) {
        self.seen += 1;
        // Exact mean/variance during warm-up, exponential forgetting after.
        let a = self.alpha.max(1.0 / self.seen as f64);
        let d = avg - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_scale_is_logarithmic_in_the_tail() {
        assert_eq!(score_from_tail(1.0), 0.0);
        assert!((score_from_tail(SCORE_HALF_TAIL) - 0.5).abs() < 1e-12);
        assert_eq!(score_from_tail(1e-300), 1.0);
        assert_eq!(score_from_tail(0.0), 1.0);
        assert_eq!(score_from_tail(f64::NAN), 0.0);
    }

    #[test]
    fn a_burst_of_errors_is_improbable_and_usual_noise_is_not() {
        let mut l = Likelihood::new(4, 500, 50);
        let mut worst_usual: f64 = 1.0;
        for i in 0..1000 {
            let p = l.update(1.0 + 0.3 * ((i * 37 % 11) as f64 / 10.0 - 0.5));
            if i > 100 {
                worst_usual = worst_usual.min(p);
            }
        }
        assert!(worst_usual > 1e-3, "usual noise got tail {worst_usual}");
        let mut burst: f64 = 1.0;
        for _ in 0..4 {
            burst = burst.min(l.update(20.0));
        }
        assert!(burst < 1e-9, "burst got tail {burst}");
    }

    #[test]
    fn non_finite_errors_are_ignored_and_warm_up_says_nothing() {
        let mut l = Likelihood::new(4, 500, 10);
        for _ in 0..9 {
            assert_eq!(l.update(100.0), 0.5);
        }
        assert_eq!(l.update(f64::NAN), 0.5);
        assert_eq!(l.update(f64::INFINITY), 0.5);
        assert!(l.update(100.0).is_finite());
    }
}
