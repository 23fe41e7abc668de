//! What every request handler shares: the stores, the services built over
//! them, and the server's settings. Services take only the parts they need
//! (see `lib.rs`), never this whole state.

use std::sync::Arc;
use std::time::Duration;

use loupe_ingest::Limits;
use loupe_meta::MetaStore;
use loupe_tsdb::Tsdb;

use crate::alerting::Alerting;
use crate::counters::ServerMetrics;
use crate::diagnosis::Diagnosis;
use crate::ingest::Ingest;
use crate::live::LiveHub;
use crate::summary::SummaryBuffer;
use crate::telemetry::Telemetry;

/// Whether requests must carry a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No token needed: the default on a loopback address.
    Open,
    /// Every request but `/healthz` and `/api/v1/openapi.json` needs a valid token.
    Tokens,
}

pub struct AppState {
    pub tsdb: Tsdb,
    pub meta: Arc<MetaStore>,
    pub limits: Limits,
    pub auth: AuthMode,
    pub live: Arc<LiveHub>,
    pub summaries: Arc<SummaryBuffer>,
    pub metrics: Arc<ServerMetrics>,
    pub lost_after: Duration,
    pub started: std::time::Instant,
    pub diagnosis: Arc<Diagnosis>,
    pub alerts: Arc<Alerting>,
    /// The write path every ingest route calls.
    pub ingest: Ingest,
    /// The budget of request bodies in flight (a layer around every route).
    pub body_budget: Arc<crate::body_budget::BodyBudget>,
    /// Per-token request rates (`--rate-limit`); `None`: unlimited.
    pub rate: Option<Arc<crate::rate::RateLimiter>>,
    /// The bound on one handler's time (`--request-timeout`).
    pub request_timeout: Arc<crate::request_timeout::RequestTimeout>,
    /// `/metrics`' families, registered by each subsystem at start-up.
    pub telemetry: Telemetry,
    /// The PromQL engine behind Prometheus' query API.
    pub promql: loupe_promql::Engine,
}

pub type SharedState = Arc<AppState>;
