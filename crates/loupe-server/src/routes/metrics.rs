//! Ingest of numeric series: a run's columnar batches, and series outside
//! runs. The handlers only extract and authorise; [`crate::ingest::Ingest`]
//! does the rest.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use loupe_api::{Accepted, ErrorBody, MetricsBatch, MetricsQuery};
use loupe_model::Role;

use crate::auth::Principal;
use crate::body_budget::Metered;
use crate::error::{ApiQuery, ApiResult};
use crate::http::{blocking, check_visible, encoded_body, raw_body};
use crate::state::SharedState;

#[utoipa::path(post, path = "/api/v1/runs/{id}/metrics",
    request_body(content = MetricsBatch, description = "The run's series as columns; gzip or zstd bodies accepted"),
    responses((status = 200, body = Accepted), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "`series_limit`: the batch would create series past the run's or its project's limit; nothing of it was stored", body = ErrorBody),
        (status = 503, description = "`overloaded`: the server's budget for request bodies in flight stayed spent; retry after `Retry-After` seconds", body = ErrorBody)))]
pub async fn post_run_metrics(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Metered(charge): Metered,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Accepted>> {
    who.require(Role::Ingest)?;
    check_visible(&st, &who, &id).await?;
    let bytes = raw_body(&st, body)?;
    let ingest = st.ingest.clone();
    let accepted = blocking(move || {
        Ok(ingest.run_metrics(&id, encoded_body(&headers, &bytes, charge.as_ref()))?)
    })
    .await?;
    Ok(Json(accepted))
}

#[utoipa::path(post, path = "/api/v1/metrics", params(MetricsQuery),
    request_body(content = MetricsBatch, description = "Series outside runs (host, GPU, scraped), named by their labels"),
    responses((status = 200, body = Accepted), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "`series_limit`: the batch would create series past the project's limit; nothing of it was stored", body = ErrorBody),
        (status = 503, description = "`overloaded`: the server's budget for request bodies in flight stayed spent; retry after `Retry-After` seconds", body = ErrorBody)))]
pub async fn post_external_metrics(
    State(st): State<SharedState>,
    who: Principal,
    ApiQuery(p): ApiQuery<MetricsQuery>,
    headers: HeaderMap,
    Metered(charge): Metered,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Accepted>> {
    who.require(Role::Ingest)?;
    let project = who.write_project(p.project.as_deref())?;
    let bytes = raw_body(&st, body)?;
    let ingest = st.ingest.clone();
    let accepted = blocking(move || {
        Ok(ingest.source_metrics(&project, encoded_body(&headers, &bytes, charge.as_ref()))?)
    })
    .await?;
    Ok(Json(accepted))
}
