//! M4 downsampling: for every pixel column, the first, last, smallest and
//! largest point (Jugel et al., "M4: A Visualization-Oriented Time Series Data
//! Aggregation", VLDB 2014). A line chart drawn from these is the chart drawn
//! from every point, so a one-step spike is never lost.
//!
//! Extremes use `f64::total_cmp`: NaN and ±Inf are values, and a column that
//! holds one shows it.

/// One point on the chosen x axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XY {
    pub x: i64,
    pub y: f64,
}

#[derive(Debug, Clone, Copy)]
struct Column {
    first: XY,
    last: XY,
    min: XY,
    max: XY,
}

/// The result of an M4 read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct M4Result {
    pub x: Vec<i64>,
    pub y: Vec<f64>,
    /// Points in the range before downsampling.
    pub count: u64,
    /// False when every point in the range is returned.
    pub downsampled: bool,
}

/// Accumulates points and page summaries into pixel columns.
#[derive(Debug)]
pub struct M4Downsampler {
    from: i64,
    to: i64,
    width: u32,
    span: i128,
    columns: Vec<Option<Column>>,
    count: u64,
}

impl M4Downsampler {
    /// Columns cover `from..=to` in `width` equal parts.
    pub fn new(from: i64, to: i64, width: u32) -> Self {
        let width = width.max(1);
        let span = (to as i128 - from as i128 + 1).max(1);
        Self {
            from,
            to,
            width,
            span,
            columns: vec![None; width as usize],
            count: 0,
        }
    }

    pub fn from(&self) -> i64 {
        self.from
    }

    pub fn to(&self) -> i64 {
        self.to
    }

    /// The pixel column of `x`, or `None` outside the range.
    #[inline]
    pub fn column(&self, x: i64) -> Option<usize> {
        if x < self.from || x > self.to {
            return None;
        }
        Some(((x as i128 - self.from as i128) * self.width as i128 / self.span) as usize)
    }

    /// Adds one point (ignored outside the range).
    #[inline]
    pub fn add(&mut self, x: i64, y: f64) {
        if let Some(c) = self.column(x) {
            self.count += 1;
            let p = XY { x, y };
            self.merge(c, p, p, p, p);
        }
    }

    /// The largest x that falls in column `c`.
    #[inline]
    fn column_end(&self, c: usize) -> i64 {
        let w = self.width as i128;
        let end = self.from as i128 + ((c as i128 + 1) * self.span + w - 1) / w - 1;
        end.min(self.to as i128) as i64
    }

    /// Adds points whose x values are in ascending order. One division per
    /// column touched instead of one per point; min and max are plain scans.
    pub fn add_sorted(&mut self, xs: &[i64], ys: &[f64]) {
        debug_assert_eq!(xs.len(), ys.len());
        let n = xs.len();
        let mut i = xs.partition_point(|&x| x < self.from);
        while i < n {
            let x = xs[i];
            if x > self.to {
                break;
            }
            let c = self.column(x).expect("x in range");
            let end_x = self.column_end(c);
            let mut j = i + 1;
            while j < n && xs[j] <= end_x {
                j += 1;
            }
            let (mut lo, mut hi) = (i, i);
            for k in i + 1..j {
                if ys[k].total_cmp(&ys[lo]).is_lt() {
                    lo = k;
                }
                if ys[k].total_cmp(&ys[hi]).is_gt() {
                    hi = k;
                }
            }
            self.count += (j - i) as u64;
            let xy = |k: usize| XY { x: xs[k], y: ys[k] };
            self.merge(c, xy(i), xy(j - 1), xy(lo), xy(hi));
            i = j;
        }
    }

    /// Adds `count` points known to lie in one column, by their summary.
    pub fn add_summary(&mut self, count: u64, first: XY, last: XY, min: XY, max: XY) {
        if let Some(c) = self.column(first.x) {
            debug_assert_eq!(self.column(last.x), Some(c));
            self.count += count;
            self.merge(c, first, last, min, max);
        }
    }

    #[inline]
    fn merge(&mut self, c: usize, first: XY, last: XY, min: XY, max: XY) {
        match &mut self.columns[c] {
            None => {
                self.columns[c] = Some(Column {
                    first,
                    last,
                    min,
                    max,
                })
            }
            Some(col) => {
                if first.x < col.first.x {
                    col.first = first;
                }
                if last.x >= col.last.x {
                    col.last = last;
                }
                if min.y.total_cmp(&col.min.y).is_lt() {
                    col.min = min;
                }
                if max.y.total_cmp(&col.max.y).is_gt() {
                    col.max = max;
                }
            }
        }
    }

    /// The chosen points, in x order, at most four per column.
    pub fn finish(self) -> M4Result {
        let mut out = M4Result {
            count: self.count,
            ..Default::default()
        };
        let mut pts: Vec<XY> = Vec::with_capacity(4);
        for col in self.columns.into_iter().flatten() {
            pts.clear();
            pts.extend([col.first, col.min, col.max, col.last]);
            pts.sort_by_key(|p| p.x);
            pts.dedup_by(|a, b| a.x == b.x && a.y.to_bits() == b.y.to_bits());
            for p in &pts {
                out.x.push(p.x);
                out.y.push(p.y);
            }
        }
        out.downsampled = (out.x.len() as u64) < out.count;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_one_point_spike() {
        let mut m = M4Downsampler::new(0, 999_999, 100);
        for i in 0..1_000_000i64 {
            let y = if i == 123_457 { 1e6 } else { (i % 10) as f64 };
            m.add(i, y);
        }
        let r = m.finish();
        assert_eq!(r.count, 1_000_000);
        assert!(r.downsampled);
        assert!(r.x.len() <= 400);
        let k = r.y.iter().position(|&y| y == 1e6).expect("spike kept");
        assert_eq!(r.x[k], 123_457);
        assert!(r.x.windows(2).all(|w| w[0] <= w[1]), "x order");
    }

    #[test]
    fn sorted_runs_match_point_by_point() {
        let xs: Vec<i64> = (0..10_000).map(|i| i * 3 + (i % 2)).collect();
        let ys: Vec<f64> = (0..10_000).map(|i| ((i * 7919) % 1009) as f64).collect();
        for (from, to, w) in [
            (0, 40_000, 97),
            (-50, 29_000, 1),
            (123, 4567, 1000),
            (5, 5, 3),
        ] {
            let mut a = M4Downsampler::new(from, to, w);
            let mut b = M4Downsampler::new(from, to, w);
            for (x, y) in xs.iter().zip(&ys) {
                a.add(*x, *y);
            }
            b.add_sorted(&xs[..5000], &ys[..5000]);
            b.add_sorted(&xs[5000..], &ys[5000..]);
            assert_eq!(a.finish(), b.finish(), "{from}..{to} w{w}");
        }
    }

    #[test]
    fn nan_is_shown() {
        let mut m = M4Downsampler::new(0, 99, 2);
        for i in 0..100 {
            m.add(i, if i == 30 { f64::NAN } else { 1.0 });
        }
        let r = m.finish();
        assert!(r.y.iter().any(|y| y.is_nan()));
    }

    #[test]
    fn summaries_merge_with_points() {
        let mut a = M4Downsampler::new(0, 99, 1);
        let mut b = M4Downsampler::new(0, 99, 1);
        let ys: Vec<f64> = (0..100).map(|i| ((i * 37) % 23) as f64).collect();
        for (i, y) in ys.iter().enumerate() {
            a.add(i as i64, *y);
        }
        // First half as a summary, second as points.
        let (mut lo, mut hi) = (0, 0);
        for i in 0..50 {
            if ys[i] < ys[lo] {
                lo = i;
            }
            if ys[i] > ys[hi] {
                hi = i;
            }
        }
        let xy = |i: usize| XY {
            x: i as i64,
            y: ys[i],
        };
        b.add_summary(50, xy(0), xy(49), xy(lo), xy(hi));
        for (i, y) in ys.iter().enumerate().skip(50) {
            b.add(i as i64, *y);
        }
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn extreme_ranges_do_not_overflow() {
        let mut m = M4Downsampler::new(i64::MIN + 1, i64::MAX, 1000);
        m.add(i64::MAX, 1.0);
        m.add(i64::MIN + 1, 2.0);
        m.add(0, 3.0);
        let r = m.finish();
        assert_eq!(r.x, vec![i64::MIN + 1, 0, i64::MAX]);
    }
}
