//! What every request handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use loupe_ingest::Limits;
use loupe_meta::MetaStore;
use loupe_tsdb::Tsdb;

use crate::diagnosis::Diagnosis;
use crate::live::LiveHub;
use crate::summary::SummaryBuffer;

/// Whether requests must carry a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No token needed: the default on a loopback address.
    Open,
    /// Every request but `/healthz` and `/api/v1/openapi.json` needs a valid token.
    Tokens,
}

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

pub struct AppState {
    pub tsdb: Tsdb,
    pub meta: MetaStore,
    pub limits: Limits,
    pub auth: AuthMode,
    pub live: LiveHub,
    pub summaries: SummaryBuffer,
    pub metrics: ServerMetrics,
    pub lost_after: Duration,
    pub started: std::time::Instant,
    pub diagnosis: Diagnosis,
    pub alerts: crate::alerting::Alerting,
}

pub type SharedState = Arc<AppState>;
