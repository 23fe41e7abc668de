//! End-to-end tests of Loupe's HTTP API and CLI against the real `loupe`
//! binary: each test starts `loupe serve` on a free port over its own
//! temporary data directory (see `support.rs`).
//!
//! Run with `cargo test --release -p loupe --test api`. Environment:
//! `LOUPE_API_CRASH_ROUNDS` (crash test rounds, default 5),
//! `LOUPE_API_VERBOSE` (echo the servers' stderr).
//!
//! Some tests began as reproductions of bugs found while writing the suite
//! (constant columns after a flush, summaries across flushes and crashes,
//! time paging with shared timestamps, framework errors); all are fixed.

mod support;

mod auth;
mod authz;
mod baseline;
mod concurrency;
mod crash;
mod damage;
mod diagnosis;
mod errors;
mod feedback;
mod full_disk;
mod influx;
mod live;
mod logs;
mod metrics;
mod otlp;
mod prometheus;
mod remote_write;
mod runs;
mod scrape;
mod system;
