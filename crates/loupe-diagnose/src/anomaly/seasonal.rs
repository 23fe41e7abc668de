//! The robust seasonal baseline: a bounded history of the series answers
//! "what was the value one step ago" and "what was it at this phase of the
//! last few days / weeks", and the raw errors are the distances to those.
//! Two errors, two scales: the step error sees spikes and the onset of
//! shifts on any series; the seasonal error sees a day that does not look
//! like the previous ones (a missing peak, a flat stretch, a higher peak)
//! even when each step of it is smooth.

use super::cadence::POINTS_TO_LEARN;

/// Past seasons whose value at the same phase make the baseline (their
/// median, so one odd day does not become the norm).
const SEASONS_IN_BASELINE: usize = 3;

/// Values kept inline before a season is known: as many as the cadence
/// needs to learn the interval, so the first day counts in full.
const EARLY_POINTS: usize = POINTS_TO_LEARN;

/// The history is allocated lazily and grows with the data: until a season
/// fits (and forever on a series sampled too often for a day to fit, such
/// as a 1 s host metric) only the last [`EARLY_POINTS`] values are kept,
/// inline; once one does, the heap ring grows as values arrive up to the
/// baseline's reach for the longest fitting season (three seasons), never
/// more than `capacity + 1` values, and then wraps.
#[derive(Debug, Clone)]
pub(crate) struct SeasonalHistory {
    capacity: usize,
    early: [f64; EARLY_POINTS],
    early_at: usize,
    early_filled: usize,
    /// The heap ring: empty until a season fits, then growing to
    /// `ring_len` values.
    ring: Vec<f64>,
    ring_len: usize,
    /// Next slot once the ring is full.
    ring_at: usize,
}

/// One point's raw errors (absolute, in the series' units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SeasonalErrors {
    /// Against the previous value; `None` for the first point.
    pub step: Option<f64>,
    /// Against the seasonal baseline; `None` until a whole season is seen.
    pub season: Option<f64>,
    /// The seasonal baseline that error is against.
    pub expected: Option<f64>,
}

/// Values the heap ring first reserves, and the most it grows by at once.
const RING_GROWTH: usize = 256;

impl SeasonalHistory {
    /// Keeps at most the last `capacity + 1` values (the longest usable
    /// season is `capacity - 1`).
    pub(crate) fn new(capacity: usize) -> Self {
        SeasonalHistory {
            capacity: capacity.max(2),
            early: [0.0; EARLY_POINTS],
            early_at: 0,
            early_filled: 0,
            ring: Vec::new(),
            ring_len: 0,
            ring_at: 0,
        }
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<f64>()
    }

    /// Sizes the ring for the longest of `seasons` the capacity allows,
    /// once, starting it with the values held inline.
    fn fit(&mut self, seasons: &[usize]) {
        if self.ring_len > 0 {
            return;
        }
        let Some(&longest) = seasons.iter().filter(|&&p| p < self.capacity).max() else {
            return;
        };
        // The baseline reaches SEASONS_IN_BASELINE seasons back, the
        // seasonal step one season and one point.
        let len = (SEASONS_IN_BASELINE * longest).max(longest + 1);
        let len = len.min(self.capacity + 1);
        let keep = self.early_filled.min(len);
        let mut ring = Vec::with_capacity(len.min(RING_GROWTH.max(keep)));
        for lag in (1..=keep).rev() {
            ring.push(self.back(lag).unwrap_or(0.0));
        }
        self.ring = ring;
        self.ring_len = len;
    }

    /// The value `lag` points before the next one, when still held.
    fn back(&self, lag: usize) -> Option<f64> {
        if lag == 0 {
            return None;
        }
        if self.ring_len == 0 {
            let n = EARLY_POINTS;
            return (lag <= self.early_filled).then(|| self.early[(self.early_at + n - lag) % n]);
        }
        let n = self.ring.len();
        if lag > n {
            return None;
        }
        // Growing, the newest value is the last; full, it is before
        // `ring_at`.
        let at = if n < self.ring_len { n } else { self.ring_at };
        Some(self.ring[(at + n - lag) % n])
    }

    /// Remembers `x` as the newest value.
    fn push(&mut self, x: f64) {
        if self.ring_len == 0 {
            self.early[self.early_at] = x;
            self.early_at = (self.early_at + 1) % EARLY_POINTS;
            self.early_filled = (self.early_filled + 1).min(EARLY_POINTS);
        } else if self.ring.len() < self.ring_len {
            if self.ring.len() == self.ring.capacity() {
                // Grow in steps, never past the ring's length.
                let more = self.ring.len().clamp(RING_GROWTH, 4 * RING_GROWTH);
                self.ring
                    .reserve_exact(more.min(self.ring_len - self.ring.len()));
            }
            self.ring.push(x);
        } else {
            self.ring[self.ring_at] = x;
            self.ring_at = (self.ring_at + 1) % self.ring_len;
        }
    }

    /// The errors of `x` (finite) against the history, then remembers it.
    /// `seasons` are the season lengths in points that apply.
    pub(crate) fn observe(&mut self, x: f64, seasons: &[usize]) -> SeasonalErrors {
        self.fit(seasons);
        // No ring: no season fits the capacity, whatever the early values
        // could reach.
        let seasons = if self.ring_len == 0 { &[] } else { seasons };
        // A step that the same step one season ago explains (the edge of
        // a daily square wave) is no surprise: the step error is the
        // smaller of the plain and the seasonally expected step's.
        let step = self.back(1).map(|prev| {
            seasons
                .iter()
                .filter_map(|&p| Some(x - prev - (self.back(p)? - self.back(p + 1)?)))
                .fold((x - prev).abs(), |best, e| best.min(e.abs()))
        });
        let nearest = seasons
            .iter()
            .filter_map(|&p| self.baseline(p))
            .min_by(|a, b| (x - a).abs().total_cmp(&(x - b).abs()));
        let season = nearest.map(|b| (x - b).abs());
        self.push(x);
        SeasonalErrors {
            step,
            season,
            expected: nearest,
        }
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
    fn the_history_is_allocated_only_when_a_season_fits() {
        let mut h = SeasonalHistory::new(4097);
        // No season (a 1 s metric: a day is 86 400 points): the previous
        // value alone.
        for i in 0..1000 {
            let e = h.observe(i as f64, &[]);
            assert_eq!(e.step, (i > 0).then_some(1.0));
        }
        assert_eq!(h.heap_bytes(), 0);
        // The ring grows with the data up to its length, and no further:
        // a 96-point day and a 672-point week (15 min samples) reach three
        // weeks back, 2016 values; an hourly day alone three days, 72; a
        // 5 min week is capped at the capacity.
        for (seasons, len) in [
            (&[96, 672][..], 2016),
            (&[24][..], 72),
            (&[288, 2016][..], 4098),
        ] {
            let mut h = SeasonalHistory::new(4097);
            h.observe(0.0, seasons);
            assert!(h.heap_bytes() <= 256 * 8, "{seasons:?}");
            let mut grown = Vec::new();
            for i in 0..3 * len {
                h.observe(i as f64, seasons);
                grown.push(h.heap_bytes());
            }
            assert!(grown.windows(2).all(|w| w[0] <= w[1]), "{seasons:?}");
            assert_eq!(h.heap_bytes(), len * 8, "{seasons:?}");
        }
    }

    #[test]
    fn the_ring_answers_as_the_whole_series_would_while_and_after_growing() {
        let mut h = SeasonalHistory::new(4097);
        let mut all = Vec::new();
        for i in 0..3000 {
            let x = ((i * 37) % 101) as f64;
            // The season becomes known at point 40, as a cadence would.
            let seasons: &[usize] = if i < 40 { &[] } else { &[300] };
            h.observe(x, seasons);
            all.push(x);
            for lag in [1, 2, 31, 32, 299, 300, 301, 600, 900] {
                // The 32 values held inline move to the ring, which then
                // grows to 900.
                let held = if i < 40 { 32 } else { (32 + i - 39).min(900) };
                let want = (lag <= all.len().min(held)).then(|| all[all.len() - lag]);
                assert_eq!(h.back(lag), want, "point {i}, lag {lag}");
            }
        }
    }

    #[test]
    fn seasons_longer_than_the_history_are_not_used() {
        let mut h = SeasonalHistory::new(10);
        for i in 0..50 {
            assert_eq!(h.observe(i as f64, &[20]).season, None);
        }
    }
}
