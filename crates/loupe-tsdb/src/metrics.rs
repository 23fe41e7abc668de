//! Counters the engine keeps about itself, for `/metrics` and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds (seconds) of the WAL fsync latency histogram buckets.
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub points_appended: AtomicU64,
    pub appends: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_seconds_sum_ns: AtomicU64,
    pub fsync_buckets: [AtomicU64; FSYNC_BUCKETS.len()],
    pub flushes: AtomicU64,
    /// Segment merges and rewrites completed.
    pub merges: AtomicU64,
    pub merged_bytes: AtomicU64,
    pub flush_errors: AtomicU64,
    pub wal_bytes: AtomicU64,
    /// Damaged or missing acknowledged data found (at open, and by reads
    /// that met a checksum or decoding failure).
    pub damage_found: AtomicU64,
    /// Bytes of torn WAL tails dropped at open (unacknowledged appends).
    pub torn_tail_bytes: AtomicU64,
    pub last_flush_error: Mutex<Option<String>>,
}

impl EngineMetrics {
    pub(crate) fn record_append(&self, points: u64) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.points_appended.fetch_add(points, Ordering::Relaxed);
    }

    pub(crate) fn record_fsync(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_seconds_sum_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = FSYNC_BUCKETS.iter().position(|&b| secs <= b) {
            self.fsync_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_damage(&self, n: usize) {
        self.damage_found.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_flush(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_merge(&self, bytes_written: u64) {
        self.merges.fetch_add(1, Ordering::Relaxed);
        self.merged_bytes
            .fetch_add(bytes_written, Ordering::Relaxed);
    }

    pub(crate) fn record_flush_error(&self, e: &crate::Error) {
        self.flush_errors.fetch_add(1, Ordering::Relaxed);
        *self.last_flush_error.lock() = Some(e.to_string());
    }
}

/// A point-in-time view of the engine, cheap to take.
#[derive(Debug, Clone, PartialEq)]
pub struct TsdbStats {
    pub series: usize,
    pub head_points: usize,
    pub head_bytes: usize,
    /// Decoded pages held by the page cache (bounded by its capacity).
    pub page_cache_bytes: u64,
    /// Heap held by open segments: chunk indexes and loaded page roll-ups.
    pub segment_index_bytes: usize,
    pub segments: usize,
    pub segment_bytes: u64,
    pub wal_bytes: u64,
    pub points_appended: u64,
    pub appends: u64,
    pub fsyncs: u64,
    pub fsync_seconds_sum: f64,
    /// Cumulative counts per bucket of [`FSYNC_BUCKETS`], Prometheus-style.
    pub fsync_buckets: Vec<(f64, u64)>,
    pub flushes: u64,
    /// Segment merges and rewrites completed since open.
    pub merges: u64,
    /// Bytes of segments those merges and rewrites wrote: the write
    /// amplification compaction adds.
    pub merged_bytes: u64,
    pub flush_errors: u64,
    pub last_flush_error: Option<String>,
    /// Damaged or missing acknowledged data found since open (open's findings
    /// included): a counter an alert can watch.
    pub damage_found: u64,
    /// Bytes of torn WAL tails dropped when the store was opened.
    pub torn_tail_bytes: u64,
}

impl crate::Tsdb {
    pub fn stats(&self) -> TsdbStats {
        let v = self.snapshot();
        let m = &self.inner.metrics;
        let mut cum = 0;
        let fsync_buckets = FSYNC_BUCKETS
            .iter()
            .zip(&m.fsync_buckets)
            .map(|(b, c)| {
                cum += c.load(Ordering::Relaxed);
                (*b, cum)
            })
            .collect();
        let heads = v.frozen.iter().chain(std::iter::once(&v.active));
        TsdbStats {
            series: self.series_count(),
            head_points: heads.clone().map(|h| h.points()).sum(),
            head_bytes: heads.map(|h| h.memory_bytes()).sum(),
            page_cache_bytes: self.inner.page_cache.weight(),
            segment_index_bytes: v.segments.iter().map(|s| s.memory_bytes()).sum(),
            segments: v.segments.len(),
            segment_bytes: v.segments.iter().map(|s| s.size()).sum(),
            wal_bytes: m.wal_bytes.load(Ordering::Relaxed),
            points_appended: m.points_appended.load(Ordering::Relaxed),
            appends: m.appends.load(Ordering::Relaxed),
            fsyncs: m.fsyncs.load(Ordering::Relaxed),
            fsync_seconds_sum: m.fsync_seconds_sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            fsync_buckets,
            flushes: m.flushes.load(Ordering::Relaxed),
            merges: m.merges.load(Ordering::Relaxed),
            merged_bytes: m.merged_bytes.load(Ordering::Relaxed),
            flush_errors: m.flush_errors.load(Ordering::Relaxed),
            last_flush_error: m.last_flush_error.lock().clone(),
            damage_found: m.damage_found.load(Ordering::Relaxed),
            torn_tail_bytes: m.torn_tail_bytes.load(Ordering::Relaxed),
        }
    }
}
