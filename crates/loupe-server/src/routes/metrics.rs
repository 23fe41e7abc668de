//! Ingest of numeric series: a run's columnar batches, and series outside
//! runs. The handlers only extract and authorise; [`crate::ingest::Ingest`]
//! does the rest.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use loupe_model::Role;
use serde::Deserialize;

use crate::auth::Principal;
use crate::error::{ApiQuery, ApiResult};
use crate::http::{blocking, check_visible, encoded_body, raw_body};
pub use crate::ingest::Accepted;
use crate::state::SharedState;

#[utoipa::path(post, path = "/api/v1/runs/{id}/metrics",
    request_body(content = Object, description = r#"{"series":[{"name":"train/loss","step":[…],"time":[…],"value":[…]}]}; gzip or zstd bodies accepted"#),
    responses((status = 200, body = Accepted), (status = 400, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody)))]
pub async fn post_run_metrics(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Accepted>> {
    who.require(Role::Ingest)?;
    check_visible(&st, &who, &id).await?;
    let bytes = raw_body(&st, body)?;
    let ingest = st.ingest.clone();
    let accepted =
        blocking(move || Ok(ingest.run_metrics(&id, encoded_body(&headers, &bytes))?)).await?;
    Ok(Json(accepted))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExternalParams {
    /// The project the series belong to (defaults to the token's, or `default`).
    pub project: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/metrics", params(ExternalParams),
    request_body(content = Object, description = r#"{"series":[{"name":"gpu/util","labels":{"host":"n1"},"time":[…],"value":[…]}]}"#),
    responses((status = 200, body = Accepted), (status = 400, body = crate::error::ErrorBody)))]
pub async fn post_external_metrics(
    State(st): State<SharedState>,
    who: Principal,
    ApiQuery(p): ApiQuery<ExternalParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Accepted>> {
    who.require(Role::Ingest)?;
    let project = who.write_project(p.project.as_deref())?;
    let bytes = raw_body(&st, body)?;
    let ingest = st.ingest.clone();
    let accepted =
        blocking(move || Ok(ingest.source_metrics(&project, encoded_body(&headers, &bytes))?))
            .await?;
    Ok(Json(accepted))
}
