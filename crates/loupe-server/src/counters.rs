//! The server's own request counters (what `GET /metrics` reports besides the
//! engine's, diagnosis' and alerting's).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters behind `GET /metrics`.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    pub points_ingested: AtomicU64,
    pub log_records_ingested: AtomicU64,
    pub ingest_requests: AtomicU64,
    pub rejected_requests: AtomicU64,
    pub auth_failures: AtomicU64,
    pub query_requests: AtomicU64,
}

impl ServerMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
