//! The HTTP API. Each module is one resource; handlers translate between
//! HTTP and the stores and hold no business logic of their own.

pub mod alerts;
pub mod feedback;
pub mod incidents;
pub mod logs;
pub mod metrics;
pub mod runs;
pub mod series;
pub mod system;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use crate::state::SharedState;

pub fn router(state: SharedState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::prometheus_metrics))
        .route("/api/v1/openapi.json", get(system::openapi))
        .route("/api/v1/projects", get(runs::list_projects))
        .route("/api/v1/runs", post(runs::create_run).get(runs::list_runs))
        .route(
            "/api/v1/runs/{id}",
            get(runs::get_run)
                .patch(runs::patch_run)
                .delete(runs::delete_run),
        )
        .route("/api/v1/runs/{id}/metrics", post(metrics::post_run_metrics))
        .route("/api/v1/runs/{id}/series", get(series::list_series))
        .route("/api/v1/runs/{id}/series/data", get(series::series_data))
        .route(
            "/api/v1/runs/{id}/logs",
            post(logs::post_logs).get(logs::get_logs),
        )
        .route("/api/v1/metrics", post(metrics::post_external_metrics))
        .route("/api/v1/metrics/series", get(series::list_external_series))
        .route("/api/v1/metrics/data", get(series::external_series_data))
        .route("/api/v1/live", get(logs::live))
        .route("/api/v1/incidents", get(incidents::list_incidents))
        .route("/api/v1/incidents/{id}", get(incidents::get_incident))
        .route(
            "/api/v1/incidents/{id}/feedback",
            post(feedback::post_feedback).get(feedback::incident_feedback),
        )
        .route(
            "/api/v1/projects/{project}/feedback",
            get(feedback::project_feedback),
        )
        .route("/api/v1/runs/{id}/incidents", get(incidents::run_incidents))
        .route("/api/v1/runs/{id}/health", get(incidents::run_health))
        .route(
            "/api/v1/groups/{group}/health",
            get(incidents::group_health),
        )
        .route(
            "/api/v1/alerts/rules",
            get(alerts::list_rules).post(alerts::post_rule),
        )
        .route("/api/v1/alerts/rules/{name}", delete(alerts::delete_rule))
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route(
            "/api/v1/silences",
            get(alerts::list_silences).post(alerts::post_silence),
        )
        .route("/api/v1/silences/{id}", delete(alerts::delete_silence))
        .fallback(crate::ui::fallback)
        .method_not_allowed_fallback(crate::error::wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
