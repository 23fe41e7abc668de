//! The in-memory head: points acknowledged since the last flush, per series,
//! as columns in write order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loupe_model::NO_STEP;
use parking_lot::{Mutex, RwLock};

use crate::segment::PageStats;
use crate::types::{Points, SeriesId};

/// Points per roll-up block of a head series: the same granularity as a
/// segment page, so M4 reads treat both alike.
pub const HEAD_BLOCK: usize = 512;

/// The points of one series held in memory.
#[derive(Debug)]
pub struct SeriesHead {
    pub steps: Vec<i64>,
    pub times: Vec<i64>,
    pub values: Vec<f64>,
    /// Smallest and largest identity held, kept as points arrive.
    pub min_identity: (bool, i64),
    pub max_identity: (bool, i64),
    /// Still in strictly increasing identity order (no rewinds, no repeats).
    sorted_unique: bool,
    /// Times never decreased.
    times_sorted: bool,
    pub min_time: i64,
    pub max_time: i64,
    /// Roll-ups of each complete block of [`HEAD_BLOCK`] points, kept while
    /// the head is `sorted_unique` (a read of an unsorted head merges anyway).
    blocks: PageStats,
    /// Running count/min/max/sum of the values, NaN ignored for min/max.
    run_min: f64,
    run_max: f64,
    run_sum: f64,
}

impl Default for SeriesHead {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            times: Vec::new(),
            values: Vec::new(),
            min_identity: (true, i64::MAX),
            max_identity: (false, i64::MIN),
            sorted_unique: true,
            times_sorted: true,
            min_time: i64::MAX,
            max_time: i64::MIN,
            blocks: PageStats::default(),
            run_min: f64::NAN,
            run_max: f64::NAN,
            run_sum: 0.0,
        }
    }
}

impl SeriesHead {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn append(&mut self, steps: Option<&[i64]>, times: &[i64], values: &[f64]) {
        for i in 0..values.len() {
            let id = identity(steps.map_or(NO_STEP, |s| s[i]), times[i]);
            let first = self.values.is_empty() && i == 0;
            if self.sorted_unique && !first && id <= self.max_identity {
                self.sorted_unique = false;
            }
            if self.times_sorted && !first && times[i] < self.max_time {
                self.times_sorted = false;
            }
            self.min_identity = self.min_identity.min(id);
            self.max_identity = self.max_identity.max(id);
            self.min_time = self.min_time.min(times[i]);
            self.max_time = self.max_time.max(times[i]);
            let v = values[i];
            if !v.is_nan() {
                if self.run_min.is_nan() || v < self.run_min {
                    self.run_min = v;
                }
                if self.run_max.is_nan() || v > self.run_max {
                    self.run_max = v;
                }
            }
            if v.is_finite() {
                self.run_sum += v;
            }
        }
        match steps {
            Some(s) => self.steps.extend_from_slice(s),
            None => self.steps.resize(self.steps.len() + times.len(), NO_STEP),
        }
        self.times.extend_from_slice(times);
        self.values.extend_from_slice(values);
        if self.sorted_unique {
            while (self.blocks.pages() + 1) * HEAD_BLOCK <= self.len() {
                let a = self.blocks.pages() * HEAD_BLOCK;
                let b = a + HEAD_BLOCK;
                self.blocks
                    .push_page(&self.steps[a..b], &self.times[a..b], &self.values[a..b]);
            }
        } else if self.blocks.pages() > 0 {
            self.blocks.clear();
        }
    }

    pub fn times_sorted(&self) -> bool {
        self.times_sorted
    }

    /// Roll-ups of the complete blocks, when the head is sorted.
    pub fn blocks(&self) -> Option<&PageStats> {
        self.sorted_unique.then_some(&self.blocks)
    }

    /// Count, min, max (NaN ignored) and sum of finite values of every point
    /// held, kept as points arrive; meaningful as a summary when sorted.
    pub fn running_stats(&self) -> (u64, f64, f64, f64) {
        (self.len() as u64, self.run_min, self.run_max, self.run_sum)
    }

    /// The points sorted by identity (step, or time for unstepped points),
    /// one per identity: where a step was written twice, the newer write wins.
    pub fn sorted_deduped(&self) -> Points {
        let n = self.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        // A stable sort keeps write order among equal identities, so the last
        // of each run is the newest write.
        order.sort_by_key(|&i| identity(self.steps[i as usize], self.times[i as usize]));
        let mut out = Points::default();
        out.steps.reserve(n);
        out.times.reserve(n);
        out.values.reserve(n);
        for (k, &i) in order.iter().enumerate() {
            let i = i as usize;
            let id = identity(self.steps[i], self.times[i]);
            if let Some(&next) = order.get(k + 1) {
                let next = next as usize;
                if identity(self.steps[next], self.times[next]) == id {
                    continue;
                }
            }
            out.push(self.steps[i], self.times[i], self.values[i]);
        }
        out
    }

    /// True when the points are already in identity order without repeats,
    /// the common case of a run logging increasing steps.
    pub fn is_sorted_unique(&self) -> bool {
        self.sorted_unique
    }

    /// A copy of the points in identity order, one per identity.
    pub fn to_points(&self) -> Points {
        if self.sorted_unique {
            Points {
                steps: self.steps.clone(),
                times: self.times.clone(),
                values: self.values.clone(),
            }
        } else {
            self.sorted_deduped()
        }
    }
}

/// What makes two points of a series "the same point": the step when there
/// is one, else the time. Unstepped points sort before stepped ones.
pub fn identity(step: i64, time: i64) -> (bool, i64) {
    if step == NO_STEP {
        (false, time)
    } else {
        (true, step)
    }
}

/// All series heads of one generation of the head (active or frozen for flush).
#[derive(Debug, Default)]
pub struct HeadMap {
    series: RwLock<HashMap<SeriesId, Arc<Mutex<SeriesHead>>>>,
    points: AtomicUsize,
}

impl HeadMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Points held, over all series.
    pub fn points(&self) -> usize {
        self.points.load(Ordering::Relaxed)
    }

    pub fn get(&self, id: SeriesId) -> Option<Arc<Mutex<SeriesHead>>> {
        self.series.read().get(&id).cloned()
    }

    pub fn append(&self, id: SeriesId, steps: Option<&[i64]>, times: &[i64], values: &[f64]) {
        let head = match self.get(id) {
            Some(h) => h,
            None => self.series.write().entry(id).or_default().clone(),
        };
        head.lock().append(steps, times, values);
        self.points.fetch_add(values.len(), Ordering::Relaxed);
    }

    /// The ids of the series held, ascending.
    pub fn ids(&self) -> Vec<SeriesId> {
        let mut ids: Vec<SeriesId> = self.series.read().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        let map = self.series.read();
        map.values()
            .map(|h| {
                let h = h.lock();
                h.steps.capacity() * 8 + h.times.capacity() * 8 + h.values.capacity() * 8 + 96
            })
            .sum::<usize>()
            + map.capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_write_for_a_step_wins() {
        let mut h = SeriesHead::default();
        h.append(Some(&[1, 2, 3]), &[10, 20, 30], &[1.0, 2.0, 3.0]);
        // Resume from step 2: steps 2 and 3 are logged again.
        h.append(Some(&[2, 3, 4]), &[40, 50, 60], &[2.5, 3.5, 4.5]);
        assert!(!h.is_sorted_unique());
        let p = h.sorted_deduped();
        assert_eq!(p.steps, vec![1, 2, 3, 4]);
        assert_eq!(p.values, vec![1.0, 2.5, 3.5, 4.5]);
        assert_eq!(p.times, vec![10, 40, 50, 60]);
    }

    #[test]
    fn unstepped_points_dedup_on_time() {
        let mut h = SeriesHead::default();
        h.append(None, &[5, 3, 5], &[1.0, 2.0, 3.0]);
        let p = h.sorted_deduped();
        assert_eq!(p.times, vec![3, 5]);
        assert_eq!(p.values, vec![2.0, 3.0]);
    }
}
