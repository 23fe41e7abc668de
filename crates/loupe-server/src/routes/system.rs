//! Health, Loupe's own metrics, and the OpenAPI document.

use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use loupe_api::ServerHealth;
use utoipa::OpenApi;

use crate::state::SharedState;

/// The SQLite file and its WAL.
fn sqlite_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    }
    total
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = ServerHealth)))]
pub async fn healthz(State(st): State<SharedState>) -> Json<ServerHealth> {
    Json(ServerHealth {
        status: "ok".into(),
        uptime_s: st.started.elapsed().as_secs_f64(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Loupe's own metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain")))]
pub async fn prometheus_metrics(
    State(st): State<SharedState>,
    _who: crate::auth::Principal,
) -> impl IntoResponse {
    let t = st.tsdb.stats();
    let m = &st.metrics;
    let mut out = String::with_capacity(4096);
    let mut counter = |name: &str, help: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    counter(
        "loupe_ingest_points_total",
        "Points written durably.",
        m.points_ingested.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_ingest_log_records_total",
        "Log records written durably.",
        m.log_records_ingested.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_ingest_requests_total",
        "Accepted metric ingest requests.",
        m.ingest_requests.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_rejected_requests_total",
        "Ingest requests refused as malformed or too large.",
        m.rejected_requests.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_auth_failures_total",
        "Requests refused for a missing or bad token.",
        m.auth_failures.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_query_requests_total",
        "Series and log queries served.",
        m.query_requests.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_tsdb_flushes_total",
        "Head flushes to segment files.",
        t.flushes as f64,
    );
    counter(
        "loupe_tsdb_flush_errors_total",
        "Failed flushes (retried).",
        t.flush_errors as f64,
    );
    counter(
        "loupe_tsdb_damage_found_total",
        "Damaged or missing acknowledged data found: at open (WAL frames, segments) and by reads.",
        t.damage_found as f64,
    );
    let d = st.diagnosis.counters();
    counter(
        "loupe_diagnosis_batches_total",
        "Batches handed to diagnosis.",
        d.submitted.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_diagnosis_dropped_batches_total",
        "Batches that did not fit in diagnosis' queue (read back from the stores later).",
        d.dropped.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_diagnosis_points_total",
        "Points diagnosed.",
        d.points.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_diagnosis_caught_up_points_total",
        "Points diagnosis read back from the engine after falling behind.",
        d.caught_up_points.load(Ordering::Relaxed) as f64,
    );
    counter(
        "loupe_diagnosis_findings_total",
        "Anomalies and log signatures found.",
        d.findings.load(Ordering::Relaxed) as f64,
    );
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        "loupe_tsdb_series",
        "Series known to the engine.",
        t.series as f64,
    );
    gauge(
        "loupe_tsdb_head_points",
        "Points in memory, waiting for a flush (the ingest queue).",
        t.head_points as f64,
    );
    gauge("loupe_tsdb_segments", "Segment files.", t.segments as f64);
    gauge(
        "loupe_tsdb_torn_tail_bytes",
        "Bytes of torn WAL tails (unacknowledged appends a crash cut short) dropped at open.",
        t.torn_tail_bytes as f64,
    );
    gauge(
        "loupe_diagnosis_lag_seconds",
        "How long the latest batch waited for diagnosis.",
        d.lag_us.load(Ordering::Relaxed) as f64 / 1e6,
    );
    gauge(
        "loupe_diagnosis_backlog_batches",
        "Batches waiting for diagnosis.",
        d.submitted
            .load(Ordering::Relaxed)
            .saturating_sub(d.processed.load(Ordering::Relaxed) + d.dropped.load(Ordering::Relaxed))
            as f64,
    );
    gauge(
        "loupe_incidents_open",
        "Incidents open now.",
        d.open_incidents.load(Ordering::Relaxed) as f64,
    );
    gauge(
        "loupe_live_subscribers",
        "Connected live-update clients.",
        st.live.subscribers() as f64,
    );
    let _ = writeln!(
        out,
        "# HELP loupe_store_bytes Bytes on disk by part.\n# TYPE loupe_store_bytes gauge\nloupe_store_bytes{{part=\"segments\"}} {}\nloupe_store_bytes{{part=\"wal\"}} {}\nloupe_store_bytes{{part=\"sqlite\"}} {}",
        t.segment_bytes,
        t.wal_bytes,
        sqlite_bytes(st.meta.path())
    );
    let _ = writeln!(
        out,
        "# HELP loupe_wal_fsync_seconds WAL fsync latency.\n# TYPE loupe_wal_fsync_seconds histogram"
    );
    for (le, c) in &t.fsync_buckets {
        let _ = writeln!(out, "loupe_wal_fsync_seconds_bucket{{le=\"{le}\"}} {c}");
    }
    let _ = writeln!(
        out,
        "loupe_wal_fsync_seconds_bucket{{le=\"+Inf\"}} {}\nloupe_wal_fsync_seconds_sum {}\nloupe_wal_fsync_seconds_count {}",
        t.fsyncs, t.fsync_seconds_sum, t.fsyncs
    );
    out.push_str(&st.alerts.metrics_text());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The document's header; its paths and schemas come from the routes
/// themselves ([`crate::routes::api_routes`]).
#[derive(OpenApi)]
#[openapi(info(
    title = "Loupe API",
    description = "Runs, metrics, logs and live updates of Loupe, observability for AI training and serving."
))]
pub struct ApiDoc;

/// The OpenAPI document of every route, built once.
pub fn openapi_doc() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| crate::routes::api_routes().into_openapi())
}

/// This document: OpenAPI 3.1, generated from the routes and the types of
/// `loupe-api`.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json")))]
pub async fn openapi() -> impl IntoResponse {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| openapi_doc().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], text.as_str())
}
