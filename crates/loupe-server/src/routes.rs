//! The HTTP API. Each module is one resource; handlers translate between
//! HTTP and the services and hold no business logic of their own.
//!
//! Every endpoint is registered once, in [`api_routes`]: with
//! `utoipa-axum`, registering a handler also adds its `#[utoipa::path]`
//! operation to the OpenAPI document, so the document cannot list a route
//! the server does not serve, nor miss one it does.

pub mod alerts;
pub mod feedback;
pub mod incidents;
pub mod influx;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod prometheus;
pub mod remote_write;
pub mod runs;
pub mod series;
pub mod system;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::SharedState;

pub fn router(state: SharedState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    let budget = state.body_budget.clone();
    let timeout = state.request_timeout.clone();
    let (api, _doc) = api_routes().split_for_parts();
    api.fallback(crate::ui::fallback)
        .method_not_allowed_fallback(crate::error::wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        // Inside the body budget: a handler timed out gives its charge back.
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            crate::request_timeout::limit,
        ))
        // Every body is admitted against the one budget before a route
        // reads it, whatever the route.
        .layer(axum::middleware::from_fn_with_state(
            budget,
            crate::body_budget::limit,
        ))
        .with_state(state)
}

/// Every endpoint with its OpenAPI operation; one `routes!` per path.
pub fn api_routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::with_openapi(system::ApiDoc::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::prometheus_metrics))
        .routes(routes!(system::openapi))
        .routes(routes!(runs::list_projects))
        .routes(routes!(runs::create_run, runs::list_runs))
        .routes(routes!(runs::get_run, runs::patch_run, runs::delete_run))
        .routes(routes!(metrics::post_run_metrics))
        .routes(routes!(series::list_series))
        .routes(routes!(series::series_data))
        .routes(routes!(logs::post_logs, logs::get_logs))
        .routes(routes!(metrics::post_external_metrics))
        .routes(routes!(series::list_external_series))
        .routes(routes!(series::external_series_data))
        .routes(routes!(logs::live))
        .routes(routes!(incidents::list_incidents))
        .routes(routes!(incidents::get_incident))
        .routes(routes!(
            feedback::post_feedback,
            feedback::incident_feedback
        ))
        .routes(routes!(feedback::project_feedback))
        .routes(routes!(incidents::run_incidents))
        .routes(routes!(incidents::run_health))
        .routes(routes!(incidents::group_health))
        .routes(routes!(alerts::list_rules, alerts::post_rule))
        .routes(routes!(alerts::delete_rule))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::list_silences, alerts::post_silence))
        .routes(routes!(alerts::delete_silence))
        .routes(routes!(influx::write_v2))
        .routes(routes!(influx::write_v1))
        .routes(routes!(influx::ping))
        .routes(routes!(remote_write::remote_write))
        .routes(routes!(otlp::metrics))
        .routes(routes!(otlp::logs))
        .routes(routes!(prometheus::query_get, prometheus::query_post))
        .routes(routes!(
            prometheus::query_range_get,
            prometheus::query_range_post
        ))
        .routes(routes!(prometheus::series_get, prometheus::series_post))
        .routes(routes!(prometheus::labels_get, prometheus::labels_post))
        .routes(routes!(prometheus::label_values))
        .routes(routes!(prometheus::metadata))
        .routes(routes!(prometheus::buildinfo))
}
