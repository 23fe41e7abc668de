//! The process itself: when it started, how long it has run, its version,
//! and (on Linux) its memory and open files, read at scrape time. The
//! `process_*` names are the ones every Prometheus client library uses, so
//! existing dashboards and alerts apply.

use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::info::Info;

use super::emit;

#[derive(Debug)]
pub struct ProcessCollector {
    started: Instant,
    started_unix_s: f64,
}

impl ProcessCollector {
    pub fn new(started: Instant) -> Self {
        // The wall-clock time of `started`, which may lie a moment behind.
        let now = loupe_model::clock::now_s();
        ProcessCollector {
            started,
            started_unix_s: now - started.elapsed().as_secs_f64(),
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        emit::gauge(
            &mut enc,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            self.started_unix_s,
        )?;
        emit::gauge(
            &mut enc,
            "loupe_uptime_seconds",
            "Seconds since the server started.",
            self.started.elapsed().as_secs_f64(),
        )?;
        let info = Info::new([("version", env!("CARGO_PKG_VERSION"))]);
        info.encode(enc.encode_descriptor(
            "loupe_build",
            "The server's version (always 1).",
            None,
            info.metric_type(),
        )?)?;
        if let Some(rss) = resident_bytes() {
            emit::gauge(
                &mut enc,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss,
            )?;
        }
        if let Some(n) = open_fds() {
            emit::gauge(
                &mut enc,
                "process_open_fds",
                "Number of open file descriptors (connections, WAL and segment files, SQLite).",
                n,
            )?;
        }
        Ok(())
    }
}

/// `VmRSS` of `/proc/self/status`, which the kernel gives in KiB.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}
