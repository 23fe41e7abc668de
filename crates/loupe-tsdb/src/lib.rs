//! Loupe's embedded time-series engine.
//!
//! A series is a [`SeriesKey`](loupe_model::SeriesKey) and points
//! `(step: Option<i64>, time: i64 ns, value: f64)`. Appends go to a
//! checksummed write-ahead log with group commit, then to an in-memory head;
//! the head is flushed to immutable segment files of pcodec-compressed pages
//! with per-page roll-ups, published by an atomically replaced manifest.
//! Reads merge segments and head without waiting for flushes, and M4 reads
//! cost O(width), not O(points). See `ARCHITECTURE.md` for the design.

mod catalog;
pub mod codec;
mod engine;
mod error;
mod fsutil;
mod head;
pub mod m4;
mod manifest;
mod metrics;
mod page_cache;
mod repair;
pub mod segment;
mod types;
mod verify;
pub mod wal;

pub use engine::flush_report::{LostChunk, RetentionReport};
pub use engine::{OpenReport, Tsdb};
pub use error::{Error, Result};
pub use m4::M4Result;
pub use metrics::{FSYNC_BUCKETS, TsdbStats};
pub use repair::{NOTE_FILE, QUARANTINE_DIR, RepairReport, repair_dir};
pub use types::{
    FsyncMode, Points, SeriesId, SeriesInfo, SeriesWrite, Summary, TsdbOptions, WriteBatch, XAxis,
};
pub use verify::{Problem, VerifyReport, verify_dir};
