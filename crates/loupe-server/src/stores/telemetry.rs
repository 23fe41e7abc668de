//! The stores' figures in `/metrics`, read at scrape time: the engine's
//! statistics (series, head, segments, flushes, damage, WAL fsync latency)
//! and the bytes each part takes on disk.

use std::path::{Path, PathBuf};

use loupe_tsdb::Tsdb;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use crate::telemetry::emit;

pub struct StoreCollector {
    tsdb: Tsdb,
    /// The SQLite file (its `-wal` and `-shm` beside it are counted too).
    sqlite: PathBuf,
}

impl StoreCollector {
    pub fn new(tsdb: Tsdb, sqlite: &Path) -> Self {
        StoreCollector {
            tsdb,
            sqlite: sqlite.to_path_buf(),
        }
    }
}

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCollector")
            .field("sqlite", &self.sqlite)
            .finish_non_exhaustive()
    }
}

/// The SQLite file and its WAL.
fn sqlite_bytes(path: &Path) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    }
    total
}

/// The engine's cumulative fsync buckets as the encoder takes them: counts
/// per bucket, ending with the `+Inf` bucket (every fsync slower than the
/// last bound).
fn fsync_bucket_counts(cumulative: &[(f64, u64)], total: u64) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut out: Vec<(f64, u64)> = cumulative
        .iter()
        .map(|&(le, cum)| {
            let n = cum.saturating_sub(below);
            below = cum;
            (le, n)
        })
        .collect();
    out.push((f64::INFINITY, total.saturating_sub(below)));
    out
}

impl Collector for StoreCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = self.tsdb.stats();
        let counters = [
            (
                "loupe_tsdb_flushes",
                "Head flushes to segment files.",
                t.flushes,
            ),
            (
                "loupe_tsdb_merges",
                "Segment merges and rewrites (compaction, deletion, retention).",
                t.merges,
            ),
            (
                "loupe_tsdb_merged_bytes",
                "Bytes of segments written by merges and rewrites: compaction's write amplification.",
                t.merged_bytes,
            ),
            (
                "loupe_tsdb_flush_errors",
                "Failed flushes (retried).",
                t.flush_errors,
            ),
            (
                "loupe_tsdb_damage_found",
                "Damaged or missing acknowledged data found: at open (WAL frames, segments) and by reads.",
                t.damage_found,
            ),
        ];
        for (name, help, v) in counters {
            emit::counter(&mut enc, name, help, v)?;
        }
        let gauges = [
            (
                "loupe_tsdb_series",
                "Series known to the engine.",
                t.series as u64,
            ),
            (
                "loupe_tsdb_head_points",
                "Points in memory, waiting for a flush (the ingest queue).",
                t.head_points as u64,
            ),
            ("loupe_tsdb_segments", "Segment files.", t.segments as u64),
            (
                "loupe_tsdb_torn_tail_bytes",
                "Bytes of torn WAL tails (unacknowledged appends a crash cut short) dropped at open.",
                t.torn_tail_bytes,
            ),
        ];
        for (name, help, v) in gauges {
            emit::gauge(&mut enc, name, help, v)?;
        }
        emit::gauges(
            &mut enc,
            "loupe_store_bytes",
            "Bytes on disk by part.",
            [
                ([("part", "segments")], t.segment_bytes),
                ([("part", "wal")], t.wal_bytes),
                ([("part", "sqlite")], sqlite_bytes(&self.sqlite)),
            ],
        )?;
        // What the store holds on the heap, by part: the figures a soak
        // watches to tell a leak from a cache filling up to its bound.
        emit::gauges(
            &mut enc,
            "loupe_tsdb_memory_bytes",
            "Heap bytes the time-series store holds, by part (approximate).",
            [
                ([("part", "head")], t.head_bytes as u64),
                ([("part", "page_cache")], t.page_cache_bytes),
                ([("part", "segment_index")], t.segment_index_bytes as u64),
            ],
        )?;
        let mut fsync = enc.encode_descriptor(
            "loupe_wal_fsync_seconds",
            "WAL fsync latency.",
            None,
            MetricType::Histogram,
        )?;
        fsync.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            t.fsync_seconds_sum,
            t.fsyncs,
            &fsync_bucket_counts(&t.fsync_buckets, t.fsyncs),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fsync_bucket_counts;

    #[test]
    fn cumulative_buckets_become_counts_ending_in_inf() {
        let got = fsync_bucket_counts(&[(0.001, 2), (0.01, 5), (0.1, 5)], 7);
        assert_eq!(got, [(0.001, 2), (0.01, 3), (0.1, 0), (f64::INFINITY, 2)]);
    }
}
