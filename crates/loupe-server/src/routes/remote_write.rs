//! Prometheus remote write: `POST /api/v1/write`, so an existing
//! Prometheus (or any agent that speaks the protocol) forwards what it
//! scrapes into Loupe with a `remote_write:` block and nothing else.
//!
//! The body is a snappy-compressed protobuf message, 1.0
//! (`prometheus.WriteRequest`) or 2.0 (`io.prometheus.write.v2.Request`)
//! by its `Content-Type`; see `loupe_ingest::remote_write` for the mapping.
//! It goes through the one ingest service as series outside runs, in the
//! project named by `?project=` (else the token's, else `default`).
//!
//! Answers follow the protocol's rules for what a sender retries: `204`
//! when everything is stored; `400` for a request that will never be
//! accepted (malformed, a refused series, a series limit: Prometheus drops
//! it and says so in its log, which quotes the body); `415` for a
//! `Content-Type` or `Content-Encoding` Loupe does not read; `429` and
//! `503` with `Retry-After` for what a later retry can fix (a token's rate,
//! the body budget, a full disk). A 2.0 answer carries the
//! `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written`
//! headers the 2.0 sender reads.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_ingest::RemoteWriteVersion;
use loupe_model::Role;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::body_budget::Metered;
use crate::error::ApiError;
use crate::http::{blocking, encoded_body, raw_body};
use crate::ingest::RemoteWriteCounts;
use crate::state::SharedState;

/// `POST /api/v1/write` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoteWriteQuery {
    /// The project to write to (else the token's, else `default`).
    pub project: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/write", params(RemoteWriteQuery),
    request_body(content = Vec<u8>, content_type = "application/x-protobuf",
        description = "A snappy-compressed (`Content-Encoding: snappy`) prometheus.WriteRequest (remote write 1.0) or, with `;proto=io.prometheus.write.v2.Request`, a 2.0 request"),
    responses((status = 204, description = "Every sample stored"),
        (status = 400, description = "Malformed or refused (a bad series, a series limit); nothing was stored and a retry will not help", body = loupe_api::ErrorBody),
        (status = 401, body = loupe_api::ErrorBody), (status = 403, body = loupe_api::ErrorBody),
        (status = 413, body = loupe_api::ErrorBody),
        (status = 415, description = "A Content-Type or Content-Encoding Loupe does not read", body = loupe_api::ErrorBody),
        (status = 429, description = "The token's request rate; retry after `Retry-After` seconds", body = loupe_api::ErrorBody),
        (status = 503, description = "Over the body budget, out of disk or shutting down; retry after `Retry-After` seconds", body = loupe_api::ErrorBody)))]
pub async fn remote_write(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    Query(q): Query<RemoteWriteQuery>,
    Metered(charge): Metered,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut version = RemoteWriteVersion::V1;
    let result = async {
        let who = who?;
        who.require(Role::Ingest)?;
        let project = who.write_project(q.project.as_deref().filter(|p| !p.is_empty()))?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        version = RemoteWriteVersion::from_content_type(content_type).map_err(|m| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m,
            )
        })?;
        let bytes = raw_body(&st, body)?;
        let ingest = st.ingest.clone();
        blocking(move || {
            let body = encoded_body(&headers, &bytes, charge.as_ref());
            Ok(ingest.remote_write(&project, body, version)?)
        })
        .await
    }
    .await;
    match result {
        Ok((_, counts)) => written(version, counts),
        Err(e) => refused(e),
    }
}

/// `204`, with the counts a 2.0 sender checks.
fn written(version: RemoteWriteVersion, c: RemoteWriteCounts) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    if version == RemoteWriteVersion::V2 {
        let h = r.headers_mut();
        for (name, n) in [
            ("x-prometheus-remote-write-samples-written", c.samples),
            ("x-prometheus-remote-write-histograms-written", c.histograms),
            ("x-prometheus-remote-write-exemplars-written", 0),
        ] {
            h.insert(name, HeaderValue::from(n));
        }
    }
    r
}

/// A refusal, with the status remote-write senders act on: they retry 5xx
/// and 429, and drop anything else; a refused batch (422 elsewhere in the
/// API) will never be accepted, so it is a 400 here.
fn refused(mut e: ApiError) -> Response {
    if e.status == StatusCode::UNPROCESSABLE_ENTITY {
        e.status = StatusCode::BAD_REQUEST;
    }
    e.into_response()
}
