//! Ingest of numeric series: a run's columnar batches, and series outside runs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use loupe_model::{Role, SeriesKey};
use loupe_tsdb::{SeriesWrite, WriteBatch};
use serde::{Deserialize, Serialize};

use super::now_ns;
use super::runs::{blocking, check_visible};
use crate::auth::Principal;
use crate::diagnosis::{DiagInput, SeriesIn};
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::state::{ServerMetrics, SharedState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Points (or records) written durably.
    pub accepted: u64,
    /// The batch's `Idempotency-Key` was seen before: nothing was stored again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// The raw body, or the API's error when it is over the size limit.
pub fn raw_body(st: &SharedState, body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        ServerMetrics::add(&st.metrics.rejected_requests, 1);
        crate::error::body_rejection(e)
    })
}

/// Undoes the declared `Content-Encoding`, within the size limit.
pub fn decoded_body(
    st: &SharedState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Vec<u8>> {
    let body = raw_body(st, body)?;
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    loupe_ingest::decode_body(&body, enc, &st.limits)
        .map(|b| b.into_owned())
        .map_err(|e| {
            ServerMetrics::add(&st.metrics.rejected_requests, 1);
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            ApiError::new(status, e.code(), e.to_string())
        })
}

/// Count, last step and last value of a request's points, for live clients.
struct LiveSummary {
    count: u64,
    last_step: Option<i64>,
    last: f64,
}

fn live_summary(steps: Option<&[i64]>, values: &[f64]) -> Option<LiveSummary> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (last_step, last) = match steps {
        Some(st) => {
            let i = (0..n).max_by_key(|&i| (st[i], i)).expect("non-empty");
            (Some(st[i]), values[i])
        }
        None => (None, values[n - 1]),
    };
    Some(LiveSummary {
        count: n as u64,
        last_step,
        last,
    })
}

/// The diagnoser's copy of a series' columns (times in Unix seconds).
fn diag_columns(s: &loupe_ingest::SeriesColumns) -> SeriesIn {
    SeriesIn {
        name: s.name.clone(),
        steps: s.steps.clone(),
        times: s.times_ns.iter().map(|t| *t as f64 / 1e9).collect(),
        values: s.values.clone(),
    }
}

fn reject(st: &SharedState, e: loupe_ingest::DecodeError) -> ApiError {
    ServerMetrics::add(&st.metrics.rejected_requests, 1);
    e.into()
}

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
    let raw = decoded_body(&st, &headers, body)?;
    // Decoding is CPU work proportional to the body: off the async threads,
    // together with the durable append.
    let s2 = st.clone();
    let run = id.clone();
    let (points, sums) = blocking(move || {
        let batch =
            loupe_ingest::decode_metrics(&raw, now_ns(), &s2.limits).map_err(|e| reject(&s2, e))?;
        let mut wb = WriteBatch::new();
        let mut sums = Vec::with_capacity(batch.series.len());
        let diagnose = s2.diagnosis.enabled();
        let mut diag = Vec::new();
        for (i, s) in batch.series.into_iter().enumerate() {
            let key = SeriesKey::for_run(s.name.clone(), &run).map_err(|e| {
                ServerMetrics::add(&s2.metrics.rejected_requests, 1);
                ApiError::bad_request("invalid_batch", format!("series[{i}].name: {e}"))
            })?;
            if diagnose {
                diag.push(diag_columns(&s));
            }
            if let Some(sum) = live_summary(s.steps.as_deref(), &s.values) {
                sums.push((s.name, sum));
            }
            wb.push(SeriesWrite::new(key, s.steps, s.times_ns, s.values));
        }
        let points = wb.points() as u64;
        s2.tsdb.append(wb).map_err(ApiError::from)?;
        // Only what is durable is diagnosed.
        if diagnose {
            s2.diagnosis.submit(DiagInput::RunPoints {
                run: run.clone(),
                series: diag,
            });
        }
        Ok((points, sums))
    })
    .await?;
    ServerMetrics::add(&st.metrics.points_ingested, points);
    ServerMetrics::add(&st.metrics.ingest_requests, 1);
    let mut live = serde_json::Map::new();
    for (name, sum) in sums {
        live.insert(
            name.clone(),
            serde_json::json!({"count": sum.count, "last_step": sum.last_step, "last": super::json_value(sum.last)}),
        );
        st.summaries.mark(&id, &name);
    }
    st.live
        .publish(&id, "points", serde_json::Value::Object(live));
    Ok(Json(Accepted {
        accepted: points,
        duplicate: false,
    }))
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
    let raw = decoded_body(&st, &headers, body)?;
    let series = loupe_ingest::decode_external_metrics(&raw, now_ns(), &st.limits)
        .map_err(|e| reject(&st, e))?;
    let mut wb = WriteBatch::new();
    let diagnose = st.diagnosis.enabled();
    let mut diag = Vec::new();
    for (i, (key, cols)) in series.into_iter().enumerate() {
        if diagnose {
            diag.push((key.labels().to_vec(), diag_columns(&cols)));
        }
        let mut labels: Vec<(String, String)> = key.labels().to_vec();
        labels.push(("project".into(), project.clone()));
        let key = SeriesKey::new(key.name(), labels)
            .map_err(|e| ApiError::bad_request("invalid_batch", format!("series[{i}]: {e}")))?;
        wb.push(SeriesWrite::new(
            key,
            cols.steps,
            cols.times_ns,
            cols.values,
        ));
    }
    let points = wb.points() as u64;
    let s2 = st.clone();
    blocking(move || s2.tsdb.append(wb).map_err(ApiError::from)).await?;
    if diagnose {
        st.diagnosis.submit(DiagInput::SourcePoints {
            project,
            series: diag,
        });
    }
    ServerMetrics::add(&st.metrics.points_ingested, points);
    ServerMetrics::add(&st.metrics.ingest_requests, 1);
    Ok(Json(Accepted {
        accepted: points,
        duplicate: false,
    }))
}
