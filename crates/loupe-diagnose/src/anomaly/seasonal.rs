//! The robust seasonal baseline: a bounded history of the series answers
//! "what was the value one step ago" and "what was it at this phase of the
//! last few days / weeks", and the raw errors are the distances to those.
//! Two errors, two scales: the step error sees spikes and the onset of
//! shifts on any series; the seasonal error sees a day that does not look
//! like the previous ones (a missing peak, a flat stretch, a higher peak)
//! even when each step of it is smooth.

/// Past seasons whose value at the same phase make the baseline (their
/// median, so one odd day does not become the norm).
const SEASONS_IN_BASELINE: usize = 3;

#[derive(Debug, Clone)]
pub(crate) struct SeasonalHistory {
    ring: Vec<f64>,
    at: usize,
    filled: usize,
}

/// One point's raw errors (absolute, in the series' units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SeasonalErrors {
    /// Against the previous value; `None` for the first point.
    pub step: Option<f64>,
    /// Against the seasonal baseline; `None` until a whole season is seen.
    pub season: Option<f64>,
}

impl SeasonalHistory {
    /// Keeps the last `capacity` values (the longest usable season).
    pub(crate) fn new(capacity: usize) -> Self {
        SeasonalHistory {
            // One more than the longest season: its step needs two values.
            ring: vec![0.0; capacity.max(2) + 1],
            at: 0,
            filled: 0,
        }
    }

    /// The value `lag` points before the next one, when still held.
    fn back(&self, lag: usize) -> Option<f64> {
        if lag == 0 || lag > self.filled {
            return None;
        }
        let n = self.ring.len();
        Some(self.ring[(self.at + n - lag) % n])
    }

    /// The errors of `x` (finite) against the history, then remembers it.
    /// `seasons` are the season lengths in points that apply.
    pub(crate) fn observe(&mut self, x: f64, seasons: &[usize]) -> SeasonalErrors {
        // A step that the same step one season ago explains (the edge of
        // a daily square wave) is no surprise: the step error is the
        // smaller of the plain and the seasonally expected step's.
        let step = self.back(1).map(|prev| {
            seasons
                .iter()
                .filter_map(|&p| Some(x - prev - (self.back(p)? - self.back(p + 1)?)))
                .fold((x - prev).abs(), |best, e| best.min(e.abs()))
        });
        let season = seasons
            .iter()
            .filter_map(|&p| self.baseline(p).map(|b| (x - b).abs()))
            .min_by(f64::total_cmp);
        self.ring[self.at] = x;
        self.at = (self.at + 1) % self.ring.len();
        self.filled = (self.filled + 1).min(self.ring.len());
        SeasonalErrors { step, season }
    }

    /// The median of the values one, two and three seasons back (as many
    /// as are held).
    fn baseline(&self, period: usize) -> Option<f64> {
        let mut v = [0.0; SEASONS_IN_BASELINE];
        let mut n = 0;
        for k in 1..=SEASONS_IN_BASELINE {
            if let Some(x) = self.back(k * period) {
                v[n] = x;
                n += 1;
            }
        }
        let v = &mut v[..n];
        v.sort_by(f64::total_cmp);
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some(0.5 * (v[n / 2 - 1] + v[n / 2])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_day_has_no_seasonal_error_and_a_changed_one_has() {
        let mut h = SeasonalHistory::new(100);
        let day = |i: usize| [1.0, 5.0, 9.0, 5.0][i % 4];
        for i in 0..20 {
            let e = h.observe(day(i), &[4]);
            if i >= 4 {
                assert_eq!(e.season, Some(0.0));
            } else {
                assert_eq!(e.season, None);
            }
        }
        // 5 → 4 is a step of 1 (the seasonal step 5 → 1 would say 4 → 0).
        let e = h.observe(4.0, &[4]);
        assert_eq!(e.season, Some(3.0));
        assert_eq!(e.step, Some(1.0));
    }

    #[test]
    fn seasons_longer_than_the_history_are_not_used() {
        let mut h = SeasonalHistory::new(10);
        for i in 0..50 {
            assert_eq!(h.observe(i as f64, &[20]).season, None);
        }
    }
}
