//! A streaming discord score (the matrix-profile idea, left-sided and
//! bounded): the raw error of a point is the distance from the shingle
//! ending at it (its last `shingle` values) to the nearest shingle in the
//! last `history` points. A shape seen before, however complex, is near
//! something; a new shape is far from everything. O(history × shingle) per
//! point with early abandoning, O(history) memory.

/// Weight of a new value in the running mean/variance that standardises
/// values before they enter the history (so distances are in standard
/// deviations of the series, whatever its units).
const STANDARDISE_ALPHA: f64 = 1.0 / 500.0;
/// The smallest standard deviation used to standardise, relative to the
/// level: a constant series must not divide by zero.
const MIN_STD_RELATIVE: f64 = 1e-9;

#[derive(Debug, Clone)]
pub(crate) struct DiscordScorer {
    shingle: usize,
    ring: Vec<f64>,
    at: usize,
    filled: usize,
    mean: f64,
    var: f64,
    seen: u64,
}

impl DiscordScorer {
    pub(crate) fn new(shingle: usize, history: usize) -> Self {
        let shingle = shingle.clamp(1, 64);
        let history = history.clamp(2 * shingle, 1 << 16);
        DiscordScorer {
            shingle,
            ring: vec![0.0; history + shingle],
            at: 0,
            filled: 0,
            mean: 0.0,
            var: 0.0,
            seen: 0,
        }
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<f64>()
    }

    /// Remembers finite `x` and returns the distance of the newest shingle
    /// to its nearest earlier, non-overlapping neighbour (`None` until
    /// there is one).
    pub(crate) fn observe(&mut self, x: f64) -> Option<f64> {
        self.seen += 1;
        let a = STANDARDISE_ALPHA.max(1.0 / self.seen as f64);
        let d = x - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
        let std = self
            .var
            .sqrt()
            .max(MIN_STD_RELATIVE * self.mean.abs())
            .max(f64::MIN_POSITIVE);
        let n = self.ring.len();
        self.ring[self.at] = (x - self.mean) / std;
        self.at = (self.at + 1) % n;
        self.filled = (self.filled + 1).min(n);
        self.nearest()
    }

    /// Value `k` points before the newest (0 = newest).
    fn back(&self, k: usize) -> f64 {
        let n = self.ring.len();
        self.ring[(self.at + 2 * n - 1 - k) % n]
    }

    fn nearest(&self) -> Option<f64> {
        let w = self.shingle;
        // Candidate shingles end `lag` points before the newest; they must
        // not overlap it (lag ≥ w) and must lie inside what is held.
        if self.filled < 2 * w {
            return None;
        }
        let mut best = f64::INFINITY;
        for lag in w..=self.filled - w {
            let mut d = 0.0;
            for k in 0..w {
                let e = self.back(k) - self.back(lag + k);
                d += e * e;
                if d >= best {
                    break;
                }
            }
            if d < best {
                best = d;
            }
        }
        best.is_finite().then(|| best.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_shape_is_near_and_a_new_one_is_far() {
        let mut s = DiscordScorer::new(4, 64);
        let shape = [0.0, 3.0, 1.0, 4.0, 1.0, 5.0];
        let mut last = None;
        for i in 0..200 {
            last = s.observe(shape[i % shape.len()]);
        }
        // Standardising drifts a little, so "the same" is near, not equal.
        assert!(last.unwrap() < 0.05, "{last:?}");
        let far = s.observe(40.0).unwrap();
        assert!(far > 1.0, "{far}");
    }

    #[test]
    fn state_is_bounded_by_the_history() {
        let mut s = DiscordScorer::new(8, 100);
        for i in 0..10_000 {
            s.observe((i as f64).sin());
        }
        assert_eq!(s.ring.len(), 108);
    }
}
