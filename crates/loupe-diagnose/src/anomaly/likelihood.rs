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
pub(crate) const MAX_SHORT_WINDOW: usize = 16;

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

/// The tail probability a score stands for (the inverse of
/// [`score_from_tail`] on 0–1).
pub(crate) fn tail_from_score(score: f64) -> f64 {
    SCORE_FLOOR_TAIL.powf(score.clamp(0.0, 1.0))
}

/// The long-run distribution of one averaged error: an exponentially
/// weighted mean and variance (exact while warming up).
#[derive(Debug, Clone)]
struct RunningDistribution {
    alpha: f64,
    mean: f64,
    var: f64,
    seen: u64,
}

impl RunningDistribution {
    fn new(horizon: usize) -> Self {
        RunningDistribution {
            alpha: 1.0 / horizon.max(2) as f64,
            mean: 0.0,
            var: 0.0,
            seen: 0,
        }
    }

    /// How many standard deviations `v` lies above the mean so far.
    fn z(&self, v: f64) -> f64 {
        let std = self
            .var
            .sqrt()
            .max(MIN_STD_RELATIVE * self.mean.abs())
            .max(MIN_STD_ABSOLUTE);
        (v - self.mean) / std
    }

    fn learn(&mut self, v: f64) {
        self.seen += 1;
        // Exact mean/variance during warm-up, exponential forgetting after.
        let a = self.alpha.max(1.0 / self.seen as f64);
        let d = v - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
    }
}

/// The likelihood of one raw-error stream at two time scales: the mean of
/// the last few errors (a burst) and a slower exponentially weighted mean
/// (a moderate surprise that lasts). Each has its own long-run
/// distribution; the point's tail is the smaller of the two, times two.
///
/// Observing and learning are separate steps, so the caller can keep an
/// unusual stretch out of what counts as usual.
#[derive(Debug, Clone)]
pub(crate) struct Likelihood {
    short: [f64; MAX_SHORT_WINDOW],
    short_len: usize,
    short_filled: usize,
    short_at: usize,
    short_sum: f64,
    short_dist: RunningDistribution,
    /// Weight of a new error in the slow mean (0: no slow scale).
    slow_alpha: f64,
    slow: f64,
    slow_dist: RunningDistribution,
    /// The averages of the last observed error, not yet learnt.
    pending: Option<(f64, f64)>,
    seen: u64,
    warmup: u64,
}

impl Likelihood {
    /// `short_window` raw errors are averaged, and (when `slow_window` >
    /// 0) also weighted over about `slow_window` points; the long-run
    /// distributions forget with a horizon of `long_window` points;
    /// nothing is scored before `warmup` points (the slow scale not before
    /// it has seen `slow_window` more).
    pub(crate) fn new(
        short_window: usize,
        slow_window: usize,
        long_window: usize,
        warmup: u64,
    ) -> Self {
        Likelihood {
            short: [0.0; MAX_SHORT_WINDOW],
            short_len: short_window.clamp(1, MAX_SHORT_WINDOW),
            short_filled: 0,
            short_at: 0,
            short_sum: 0.0,
            short_dist: RunningDistribution::new(long_window),
            slow_alpha: match slow_window {
                0 => 0.0,
                w => 1.0 / w.max(2) as f64,
            },
            slow: 0.0,
            slow_dist: RunningDistribution::new(long_window),
            pending: None,
            seen: 0,
            warmup: warmup.max(2),
        }
    }

    /// Feeds one raw error (≥ 0) and returns the tail probability of the
    /// current averages (0.5 while warming up, or for a non-finite error,
    /// which is not kept). Learns nothing: see [`Likelihood::learn`].
    pub(crate) fn observe(&mut self, raw: f64) -> f64 {
        self.pending = None;
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
        self.seen += 1;
        // The tail falls as z grows: the smaller tail is the larger z's,
        // one tail to compute per point.
        let mut z = f64::NAN;
        let mut scales = 1.0;
        if self.seen > self.warmup {
            z = self.short_dist.z(avg);
        }
        if self.slow_alpha > 0.0 {
            self.slow += self.slow_alpha.max(1.0 / self.seen as f64) * (raw - self.slow);
            let span = (1.0 / self.slow_alpha) as u64;
            if self.seen > self.warmup + span {
                z = z.max(self.slow_dist.z(self.slow));
                scales = 2.0;
            }
        }
        self.pending = Some((avg, self.slow));
        // NaN (warming up) is a tail of one half.
        (scales * normal_upper_tail(z)).min(1.0)
    }

    /// Makes the last observed averages part of the long-run
    /// distributions.
    pub(crate) fn learn(&mut self) {
        let Some((avg, slow)) = self.pending.take() else {
            return;
        };
        self.short_dist.learn(avg);
        // The slow mean is an average once it spans its window.
        if self.slow_alpha > 0.0 && self.seen as f64 * self.slow_alpha >= 1.0 {
            self.slow_dist.learn(slow);
        }
    }

    /// Feeds one raw error and learns it at once.
    #[cfg(test)]
    pub(crate) fn update(&mut self, raw: f64) -> f64 {
        let tail = self.observe(raw);
        self.learn();
        tail
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
        let mut l = Likelihood::new(4, 0, 500, 50);
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
    fn tails_and_scores_convert_both_ways() {
        for score in [0.0, 0.3, 0.5, 1.0] {
            assert!((score_from_tail(tail_from_score(score)) - score).abs() < 1e-12);
        }
        assert!((tail_from_score(0.5) - SCORE_HALF_TAIL).abs() < 1e-18);
    }

    /// Deterministic, uncorrelated noise in [-0.5, 0.5) (splitmix64).
    fn noise(i: usize) -> f64 {
        let mut z = (i as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    #[test]
    fn a_moderate_surprise_that_lasts_is_seen_by_the_slow_scale() {
        let run = |slow_window| {
            let mut l = Likelihood::new(10, slow_window, 3000, 150);
            for i in 0..3000 {
                l.update(0.3 + 0.4 * noise(i));
            }
            // Errors higher than usual by 0.6 of their spread, for 100
            // points: no short stretch of them is rare, their persistence
            // is.
            (3000..3100)
                .map(|i| l.update(0.37 + 0.4 * noise(i)))
                .fold(1.0, f64::min)
        };
        let short_only = run(0);
        let with_slow = run(15);
        // Under the alarm's tail only with the slow scale.
        let alarm = tail_from_score(0.5);
        assert!(short_only > alarm, "short scale alone: {short_only}");
        assert!(with_slow < alarm / 4.0, "with the slow scale: {with_slow}");
    }

    #[test]
    fn what_is_not_learnt_stays_unusual() {
        let mut learnt = Likelihood::new(10, 15, 3000, 150);
        let mut kept_out = learnt.clone();
        for i in 0..2000 {
            learnt.update(0.3 + 0.4 * noise(i));
            kept_out.update(0.3 + 0.4 * noise(i));
        }
        for _ in 0..300 {
            learnt.update(0.9);
            kept_out.observe(0.9);
        }
        assert!(learnt.observe(0.9) > 1e-5);
        assert!(kept_out.observe(0.9) < 1e-10);
    }

    #[test]
    fn non_finite_errors_are_ignored_and_warm_up_says_nothing() {
        let mut l = Likelihood::new(4, 0, 500, 10);
        for _ in 0..9 {
            assert_eq!(l.update(100.0), 0.5);
        }
        assert_eq!(l.update(f64::NAN), 0.5);
        assert_eq!(l.update(f64::INFINITY), 0.5);
        assert!(l.update(100.0).is_finite());
    }
}
