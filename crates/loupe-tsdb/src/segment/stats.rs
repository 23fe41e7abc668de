//! Per-page roll-ups: what an M4 read needs from a page without decoding it.
//!
//! For every page of a chunk: first and last point (x and value), the points
//! holding the smallest and largest value (by `f64::total_cmp`, so NaN and
//! ±Inf are extremes a chart shows), the time range, and the sum of the finite
//! values. Stored as pcodec columns, one value per page.

use loupe_model::NO_STEP;

use crate::codec::bytes::{ByteReader, ByteWriter};
use crate::codec::{PagedReader, encode_paged};
use crate::types::Points;
use crate::{Error, Result};

/// Roll-ups of every page of one chunk, as columns indexed by page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageStats {
    pub first_step: Vec<i64>,
    pub last_step: Vec<i64>,
    pub first_time: Vec<i64>,
    pub last_time: Vec<i64>,
    pub min_time: Vec<i64>,
    pub max_time: Vec<i64>,
    pub min_step_x: Vec<i64>,
    pub min_time_x: Vec<i64>,
    pub max_step_x: Vec<i64>,
    pub max_time_x: Vec<i64>,
    pub first: Vec<f64>,
    pub last: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub sum: Vec<f64>,
}

impl PageStats {
    pub fn pages(&self) -> usize {
        self.first.len()
    }

    /// Heap bytes held: fifteen 8-byte columns of one value per page.
    pub fn memory_bytes(&self) -> usize {
        15 * 8 * self.first.capacity() + std::mem::size_of::<Self>()
    }

    /// Computes the roll-ups of `points` cut into pages of `page_points`.
    pub fn compute(points: &Points, page_points: usize) -> Self {
        let mut s = PageStats::default();
        let n = points.len();
        let mut start = 0;
        while start < n {
            let end = (start + page_points).min(n);
            s.push_page(
                &points.steps[start..end],
                &points.times[start..end],
                &points.values[start..end],
            );
            start = end;
        }
        s
    }

    /// Appends the roll-up of one page given as column slices (non-empty).
    pub fn push_page(&mut self, steps: &[i64], times: &[i64], values: &[f64]) {
        let n = values.len();
        debug_assert!(n > 0 && steps.len() == n && times.len() == n);
        let (mut lo, mut hi) = (0, 0);
        let (mut tmin, mut tmax) = (i64::MAX, i64::MIN);
        let mut sum = 0.0;
        for i in 0..n {
            let v = values[i];
            if v.total_cmp(&values[lo]).is_lt() {
                lo = i;
            }
            if v.total_cmp(&values[hi]).is_gt() {
                hi = i;
            }
            if v.is_finite() {
                sum += v;
            }
            tmin = tmin.min(times[i]);
            tmax = tmax.max(times[i]);
        }
        self.first_step.push(steps[0]);
        self.last_step.push(steps[n - 1]);
        self.first_time.push(times[0]);
        self.last_time.push(times[n - 1]);
        self.min_time.push(tmin);
        self.max_time.push(tmax);
        self.min_step_x.push(steps[lo]);
        self.min_time_x.push(times[lo]);
        self.max_step_x.push(steps[hi]);
        self.max_time_x.push(times[hi]);
        self.first.push(values[0]);
        self.last.push(values[n - 1]);
        self.min.push(values[lo]);
        self.max.push(values[hi]);
        self.sum.push(sum);
    }

    /// Forgets every page.
    pub fn clear(&mut self) {
        *self = PageStats::default();
    }

    fn int_columns(&self) -> [&Vec<i64>; 10] {
        [
            &self.first_step,
            &self.last_step,
            &self.first_time,
            &self.last_time,
            &self.min_time,
            &self.max_time,
            &self.min_step_x,
            &self.min_time_x,
            &self.max_step_x,
            &self.max_time_x,
        ]
    }

    fn float_columns(&self) -> [&Vec<f64>; 5] {
        [&self.first, &self.last, &self.min, &self.max, &self.sum]
    }

    pub fn encode(&self) -> Vec<u8> {
        let n = self.pages().max(1);
        let mut out = Vec::new();
        out.put_u32(self.pages() as u32);
        for c in self.int_columns() {
            out.put_bytes(&encode_paged(c, n));
        }
        for c in self.float_columns() {
            out.put_bytes(&encode_paged(c, n));
        }
        out
    }

    pub fn decode(bytes: &[u8], expected_pages: usize) -> Result<Self> {
        let mut r = ByteReader::new(bytes);
        let pages = r.u32("page count")? as usize;
        if pages != expected_pages {
            return Err(Error::Codec(format!(
                "roll-ups for {pages} pages where the chunk has {expected_pages}"
            )));
        }
        let mut ints: Vec<Vec<i64>> = Vec::with_capacity(10);
        for _ in 0..10 {
            // The expected length bounds what a damaged column can allocate.
            let c =
                PagedReader::<i64>::with_len(r.bytes("roll-up column")?, pages)?.decode_all()?;
            if c.len() != pages {
                return Err(Error::Codec("roll-up column length".into()));
            }
            ints.push(c);
        }
        let mut floats: Vec<Vec<f64>> = Vec::with_capacity(5);
        for _ in 0..5 {
            let c =
                PagedReader::<f64>::with_len(r.bytes("roll-up column")?, pages)?.decode_all()?;
            if c.len() != pages {
                return Err(Error::Codec("roll-up column length".into()));
            }
            floats.push(c);
        }
        let mut ints = ints.into_iter();
        let mut floats = floats.into_iter();
        let mut i = || ints.next().expect("ten int columns");
        let mut f = || floats.next().expect("five float columns");
        Ok(PageStats {
            first_step: i(),
            last_step: i(),
            first_time: i(),
            last_time: i(),
            min_time: i(),
            max_time: i(),
            min_step_x: i(),
            min_time_x: i(),
            max_step_x: i(),
            max_time_x: i(),
            first: f(),
            last: f(),
            min: f(),
            max: f(),
            sum: f(),
        })
    }
}

/// Count, extremes (ignoring NaN), sum of finite values, and the ends of a
/// chunk — the coarse roll-up kept in a segment's index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkSummary {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub first: f64,
    pub last: f64,
    pub first_step: i64,
    pub last_step: i64,
    pub min_time: i64,
    pub max_time: i64,
    pub first_time: i64,
    pub last_time: i64,
}

impl ChunkSummary {
    /// Summarises points sorted by identity.
    pub fn of(points: &Points) -> Self {
        let n = points.len();
        let mut min = f64::NAN;
        let mut max = f64::NAN;
        let mut sum = 0.0;
        for &v in &points.values {
            if !v.is_nan() {
                if min.is_nan() || v < min {
                    min = v;
                }
                if max.is_nan() || v > max {
                    max = v;
                }
            }
            if v.is_finite() {
                sum += v;
            }
        }
        let (mut tmin, mut tmax) = (i64::MAX, i64::MIN);
        for &t in &points.times {
            tmin = tmin.min(t);
            tmax = tmax.max(t);
        }
        ChunkSummary {
            count: n as u64,
            min,
            max,
            sum,
            first: points.values.first().copied().unwrap_or(f64::NAN),
            last: points.values.last().copied().unwrap_or(f64::NAN),
            first_step: points.steps.first().copied().unwrap_or(NO_STEP),
            last_step: points.steps.last().copied().unwrap_or(NO_STEP),
            min_time: tmin,
            max_time: tmax,
            first_time: points.times.first().copied().unwrap_or(0),
            last_time: points.times.last().copied().unwrap_or(0),
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.put_u64(self.count);
        for v in [self.min, self.max, self.sum, self.first, self.last] {
            out.put_f64(v);
        }
        for v in [
            self.first_step,
            self.last_step,
            self.min_time,
            self.max_time,
            self.first_time,
            self.last_time,
        ] {
            out.put_i64(v);
        }
    }

    pub(crate) fn read(r: &mut ByteReader<'_>) -> Result<Self> {
        Ok(ChunkSummary {
            count: r.u64("count")?,
            min: r.f64("min")?,
            max: r.f64("max")?,
            sum: r.f64("sum")?,
            first: r.f64("first")?,
            last: r.f64("last")?,
            first_step: r.i64("first step")?,
            last_step: r.i64("last step")?,
            min_time: r.i64("min time")?,
            max_time: r.i64("max time")?,
            first_time: r.i64("first time")?,
            last_time: r.i64("last time")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_rollups_find_extremes_and_round_trip() {
        let mut p = Points::default();
        for i in 0..1000i64 {
            let v = if i == 700 {
                f64::NAN
            } else {
                (i as f64 * 0.1).sin()
            };
            p.push(i, 1_000 + i * 10, v);
        }
        p.values[10] = 50.0;
        let s = PageStats::compute(&p, 256);
        assert_eq!(s.pages(), 4);
        assert_eq!(s.max[0], 50.0);
        assert_eq!(s.max_step_x[0], 10);
        assert!(s.max[2].is_nan(), "NaN is an extreme M4 must show");
        assert_eq!(s.first_step[3], 768);
        assert_eq!(s.last_time[3], 1_000 + 999 * 10);
        let back = PageStats::decode(&s.encode(), 4).unwrap();
        assert_eq!(back.max_step_x, s.max_step_x);
        assert_eq!(back.sum, s.sum);
        assert!(PageStats::decode(&s.encode(), 5).is_err());
        let c = ChunkSummary::of(&p);
        assert_eq!(c.max, 50.0);
        assert!(!c.min.is_nan());
        assert_eq!(c.count, 1000);
    }
}
