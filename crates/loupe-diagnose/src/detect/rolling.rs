//! A rolling window that answers median and MAD cheaply.
//!
//! The window keeps its values twice: in arrival order (a ring, to know
//! which value leaves) and sorted (to read order statistics). Inserting and
//! removing are a binary search and a `memmove` of at most `capacity`
//! values — constant for a fixed window. The MAD is the median of
//! `|x - median|`; on a sorted window those deviations form two sorted runs
//! (left of the median, decreasing; right of it, increasing), so their
//! median is found by merging the two runs half-way: O(capacity / 2)
//! comparisons, no allocation, no sort.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub(crate) struct RollingWindow {
    capacity: usize,
    order: VecDeque<f64>,
    sorted: Vec<f64>,
    /// The MAD as of `pushes_since_mad` pushes ago (see [`Self::mad_every`]).
    cached_mad: Option<f64>,
    pushes_since_mad: u32,
}

impl RollingWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(3);
        Self {
            capacity,
            order: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
            cached_mad: None,
            pushes_since_mad: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Adds a finite value, dropping the oldest when full. Non-finite
    /// values are refused: they would poison every order statistic.
    pub(crate) fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            let at = self.sorted.partition_point(|v| *v < old);
            // `old` is in `sorted` (same values in both): remove that copy.
            if at < self.sorted.len() {
                self.sorted.remove(at);
            }
        }
        self.order.push_back(x);
        let at = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(at, x);
        self.pushes_since_mad = self.pushes_since_mad.saturating_add(1);
    }

    /// The MAD, recomputed at most every `every` pushes. The spread of a
    /// window of 64 moves slowly, and the MAD is the costliest statistic
    /// here; the median stays exact on every point.
    pub(crate) fn mad_every(&mut self, every: u32) -> Option<f64> {
        if self.cached_mad.is_none() || self.pushes_since_mad >= every {
            self.cached_mad = self.mad();
            self.pushes_since_mad = 0;
        }
        self.cached_mad
    }

    pub(crate) fn median(&self) -> Option<f64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        Some(if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0
        })
    }

    /// Median absolute deviation from the median.
    pub(crate) fn mad(&self) -> Option<f64> {
        let med = self.median()?;
        let s = &self.sorted;
        let n = s.len();
        // Deviations left of `split` grow leftwards, right of it rightwards.
        let split = s.partition_point(|v| *v < med);
        let (mut l, mut r) = (split, split);
        let mut k = 0usize;
        let target_lo = (n - 1) / 2;
        let target_hi = n / 2;
        let mut lo_val = 0.0;
        loop {
            let left = (l > 0).then(|| med - s[l - 1]);
            let right = (r < n).then(|| s[r] - med);
            let next = match (left, right) {
                (Some(a), Some(b)) if a <= b => {
                    l -= 1;
                    a
                }
                (Some(a), None) => {
                    l -= 1;
                    a
                }
                (_, Some(b)) => {
                    r += 1;
                    b
                }
                (None, None) => return Some(lo_val),
            };
            if k == target_lo {
                lo_val = next;
            }
            if k == target_hi {
                return Some((lo_val + next) / 2.0);
            }
            k += 1;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.sorted.clear();
        self.cached_mad = None;
        self.pushes_since_mad = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_median(v: &mut [f64]) -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    proptest! {
        /// Median and MAD equal a sort-based computation over the last
        /// `capacity` values, for any sequence.
        #[test]
        fn matches_naive(values in proptest::collection::vec(-1e6f64..1e6, 1..300), cap in 3usize..70) {
            let mut w = RollingWindow::new(cap);
            for (i, &x) in values.iter().enumerate() {
                w.push(x);
                let start = (i + 1).saturating_sub(cap);
                let mut win: Vec<f64> = values[start..=i].to_vec();
                let med = naive_median(&mut win);
                prop_assert_eq!(w.median().unwrap(), med);
                let mut dev: Vec<f64> = win.iter().map(|v| (v - med).abs()).collect();
                let mad = naive_median(&mut dev);
                prop_assert!((w.mad().unwrap() - mad).abs() <= 1e-9 * (1.0 + mad.abs()), "mad {} vs {}", w.mad().unwrap(), mad);
            }
        }
    }

    #[test]
    fn refuses_non_finite_values() {
        let mut w = RollingWindow::new(5);
        for x in [1.0, f64::NAN, 2.0, f64::INFINITY, 3.0] {
            w.push(x);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.median(), Some(2.0));
        assert_eq!(w.mad(), Some(1.0));
    }
}
