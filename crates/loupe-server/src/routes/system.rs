//! Health, Loupe's own metrics, and the OpenAPI document.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use loupe_api::ServerHealth;
use loupe_model::Role;
use utoipa::OpenApi;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::blocking;
use crate::state::SharedState;
use crate::telemetry::{Format, Scope};

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = ServerHealth)))]
pub async fn healthz(State(st): State<SharedState>) -> Json<ServerHealth> {
    Json(ServerHealth {
        status: "ok".into(),
        uptime_s: st.started.elapsed().as_secs_f64(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Loupe's own metrics. A token sees the server's figures and the alerts
/// and open incidents of its own project; without tokens, everything.
///
/// OpenMetrics 1.0 when the `Accept` header prefers it (Prometheus does),
/// else the Prometheus text format 0.0.4.
// Which families each caller sees: `crate::telemetry::scope`.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text 0.0.4, or OpenMetrics 1.0 when the Accept header prefers it",
        content_type = "text/plain"),
    (status = 403, description = "The token's role may not read", body = loupe_api::ErrorBody)))]
pub async fn prometheus_metrics(
    State(st): State<SharedState>,
    who: Principal,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    who.require(Role::Read)?;
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let scope = Scope::of(&who);
    // Collectors read the stores' statistics and the file system.
    let text = blocking(move || {
        st.telemetry
            .encode(&scope, format)
            .map_err(|_| ApiError::internal("encoding /metrics failed"))
    })
    .await?;
    // The answer depends on `Accept`: a cache in between must key on it.
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        text,
    ))
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
