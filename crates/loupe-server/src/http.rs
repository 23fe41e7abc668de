//! Plumbing every route module shares: running blocking work off the async
//! runtime, reading JSON and raw bodies, mapping store errors, and checking
//! that a caller may see a run. Routes import from here, never from each
//! other.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use loupe_model::Run;

use crate::auth::Principal;
use crate::body_budget::BodyCharge;
use crate::counters::ServerMetrics;
use crate::error::{ApiError, ApiResult};
use crate::ingest::RawBody;
use crate::state::SharedState;

pub use loupe_model::clock::{now_ns, now_s};

/// Runs a blocking store call off the async executor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// A JSON request body, or the API's error naming what is wrong with it.
///
/// Any `Content-Type` is accepted (`curl -d` sends a form type): the body is
/// JSON by contract, as on the ingest endpoints.
pub fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<T> {
    let body = body.map_err(crate::error::body_rejection)?;
    let mut de = serde_json::Deserializer::from_slice(&body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Not JSON at all: 400; JSON of the wrong shape: 422. The message
        // names the field (`tags: invalid type: …`).
        let status = match e.inner().classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        let path = e.path().to_string();
        let place = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::new(status, "invalid_request", format!("{place}: {}", e.inner()))
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request("invalid_request", format!("body: {e}")))?;
    Ok(value)
}

/// Maps a metadata-store error to the API's (404, 400, 409 or 500).
pub fn meta_err(e: loupe_meta::Error) -> ApiError {
    e.into()
}

/// The raw body, or the API's error when it is over the size limit
/// (counted as a rejected request).
pub fn raw_body(st: &SharedState, body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        ServerMetrics::add(&st.metrics.rejected_requests, 1);
        crate::error::body_rejection(e)
    })
}

/// A request's body with its declared `Content-Encoding`, for the ingest
/// service (which decompresses it off the async runtime).
/// Decompressing it is charged to `charge` (the request's share of the
/// body budget) as it goes.
pub fn encoded_body<'a>(
    headers: &'a HeaderMap,
    bytes: &'a [u8],
    charge: Option<&'a BodyCharge>,
) -> RawBody<'a> {
    RawBody {
        bytes,
        encoding: headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
        charge,
    }
}

/// Checks that the run exists and the caller may see it (404 otherwise),
/// reading only its project: the cheap check for the ingest and read paths.
pub async fn check_visible(st: &SharedState, who: &Principal, id: &str) -> ApiResult<()> {
    let s = st.clone();
    let id2 = id.to_string();
    let project = blocking(move || match s.meta.run_project(&id2) {
        Ok(p) => Ok(Some(p)),
        Err(loupe_meta::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(meta_err(e)),
    })
    .await?;
    match project {
        Some(p) if who.sees(&p) => Ok(()),
        _ => Err(ApiError::not_found("run", id)),
    }
}

/// The run, if it exists and the caller may see it; 404 otherwise.
pub async fn visible_run(st: &SharedState, who: &Principal, id: &str) -> ApiResult<Run> {
    let s = st.clone();
    let id2 = id.to_string();
    let run = blocking(move || match s.meta.get_run(&id2) {
        Ok(r) => Ok(Some(r)),
        Err(loupe_meta::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(meta_err(e)),
    })
    .await?;
    match run {
        Some(r) if who.sees(&r.project) => Ok(r),
        _ => Err(ApiError::not_found("run", id)),
    }
}
