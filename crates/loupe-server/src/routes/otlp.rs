//! OTLP/HTTP: `POST /v1/metrics` and `POST /v1/logs`, what the OpenTelemetry
//! SDKs' `otlphttp` exporters and the Collector send.
//!
//! Bodies are protobuf (`application/x-protobuf`) or OTLP/JSON
//! (`application/json`), gzip (or zstd) as the `Content-Encoding` says; they
//! go through the one ingest service (see `loupe_ingest::otlp` for the
//! mapping). Answers follow the OTLP specification, in the request's
//! content type: `200` with an `Export…ServiceResponse` (its
//! `partialSuccess` set when some points or records were refused, the rest
//! being stored); errors as a `google.rpc.Status` with OTLP's status codes —
//! `400` for data that will never be accepted (the message names the field),
//! `413` for a body over the limit, `429`/`503` with `Retry-After` when the
//! server is overloaded (the exporters retry those).
//!
//! The project is `?project=P`, or the `X-Loupe-Project` header (which
//! `OTEL_EXPORTER_OTLP_HEADERS` can set), or the token's own project.
//! Tokens as everywhere: `Authorization: Bearer <token>`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_ingest::otlp::OtlpEncoding;
use loupe_ingest::otlp::proto::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use loupe_ingest::otlp::proto::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use loupe_model::Role;
use prost::Message;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::body_budget::Metered;
use crate::error::ApiError;
use crate::http::{blocking, encoded_body, raw_body};
use crate::ingest::OtlpOutcome;
use crate::state::SharedState;

/// The header naming the project, for exporters that cannot change the URL.
pub const PROJECT_HEADER: &str = "x-loupe-project";

/// `POST /v1/metrics` and `/v1/logs` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OtlpQuery {
    /// The project to write to; else the `X-Loupe-Project` header, else
    /// the token's project.
    pub project: Option<String>,
}

/// An OTLP error body: `google.rpc.Status` (protobuf or JSON, as the
/// request was).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, ToSchema)]
pub struct OtlpStatus {
    /// The gRPC status code (3 invalid argument, 8 resource exhausted, 14
    /// unavailable, 16 unauthenticated, 7 permission denied, 13 internal).
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Which signal a request carries.
#[derive(Clone, Copy)]
enum Signal {
    Metrics,
    Logs,
}

#[utoipa::path(post, path = "/v1/metrics", params(OtlpQuery),
    request_body(content = Vec<u8>, content_type = "application/x-protobuf", description = "An OTLP `ExportMetricsServiceRequest`, protobuf or OTLP/JSON (`application/json`); gzip or zstd bodies accepted"),
    responses((status = 200, description = "Stored: an `ExportMetricsServiceResponse`, with `partialSuccess.rejectedDataPoints` and `errorMessage` when some points were refused (the rest are stored)"),
        (status = 400, description = "Not an OTLP message, or refused whole (a series limit); nothing was stored", body = OtlpStatus),
        (status = 401, body = OtlpStatus), (status = 403, body = OtlpStatus), (status = 413, body = OtlpStatus),
        (status = 415, description = "Neither `application/x-protobuf` nor `application/json`", body = OtlpStatus),
        (status = 429, body = OtlpStatus),
        (status = 503, description = "The server's budget for request bodies stayed spent; retry after `Retry-After` seconds", body = OtlpStatus)))]
pub async fn metrics(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    Query(q): Query<OtlpQuery>,
    metered: Metered,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    export(st, who, q, metered, headers, body, Signal::Metrics).await
}

#[utoipa::path(post, path = "/v1/logs", params(OtlpQuery),
    request_body(content = Vec<u8>, content_type = "application/x-protobuf", description = "An OTLP `ExportLogsServiceRequest`, protobuf or OTLP/JSON (`application/json`); gzip or zstd bodies accepted"),
    responses((status = 200, description = "Stored in each service's log run: an `ExportLogsServiceResponse`, with `partialSuccess.rejectedLogRecords` and `errorMessage` when some records were refused"),
        (status = 400, description = "Not an OTLP message; nothing was stored", body = OtlpStatus),
        (status = 401, body = OtlpStatus), (status = 403, body = OtlpStatus), (status = 413, body = OtlpStatus),
        (status = 415, body = OtlpStatus), (status = 429, body = OtlpStatus),
        (status = 503, body = OtlpStatus)))]
pub async fn logs(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    Query(q): Query<OtlpQuery>,
    metered: Metered,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    export(st, who, q, metered, headers, body, Signal::Logs).await
}

async fn export(
    st: SharedState,
    who: Result<Principal, ApiError>,
    q: OtlpQuery,
    Metered(charge): Metered,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    signal: Signal,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let encoding = OtlpEncoding::from_content_type(content_type);
    // Errors are answered in the request's encoding; protobuf when it named none we read.
    let answer_in = encoding.unwrap_or(OtlpEncoding::Protobuf);
    let result = async {
        let who = who?;
        who.require(Role::Ingest)?;
        let Some(encoding) = encoding else {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {content_type:?}: expected application/x-protobuf or application/json"
                ),
            ));
        };
        let asked = q
            .project
            .filter(|p| !p.is_empty())
            .or_else(|| {
                headers
                    .get(PROJECT_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
            });
        let project = who.write_project(asked.as_deref())?;
        let bytes = raw_body(&st, body)?;
        let ingest = st.ingest.clone();
        let headers = headers.clone();
        blocking(move || {
            let body = encoded_body(&headers, &bytes, charge.as_ref());
            Ok(match signal {
                Signal::Metrics => ingest.otlp_metrics(&project, body, encoding)?,
                Signal::Logs => ingest.otlp_logs(&project, body, encoding)?,
            })
        })
        .await
    }
    .await;
    match result {
        Ok(outcome) => success(&outcome, signal, answer_in),
        Err(e) => otlp_error(e, answer_in),
    }
}

/// `200` with the signal's response message, `partialSuccess` set only when
/// something was refused (OTLP: an empty one means full success).
fn success(outcome: &OtlpOutcome, signal: Signal, encoding: OtlpEncoding) -> Response {
    let rejected = outcome.rejected.count as i64;
    let message = outcome.rejected.message();
    let body = match encoding {
        OtlpEncoding::Protobuf => match signal {
            Signal::Metrics => ExportMetricsServiceResponse {
                partial_success: (rejected > 0).then_some(ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message: message,
                }),
            }
            .encode_to_vec(),
            Signal::Logs => ExportLogsServiceResponse {
                partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message: message,
                }),
            }
            .encode_to_vec(),
        },
        // Written here rather than through the generated types' serde, which
        // sends an absent `partialSuccess` as `null` and an int64 as a
        // number: OTLP/JSON (proto3's JSON mapping) leaves defaults out and
        // writes 64-bit integers as strings.
        OtlpEncoding::Json => {
            let field = match signal {
                Signal::Metrics => "rejectedDataPoints",
                Signal::Logs => "rejectedLogRecords",
            };
            let body = if rejected > 0 {
                serde_json::json!({"partialSuccess": {field: rejected.to_string(), "errorMessage": message}})
            } else {
                serde_json::json!({})
            };
            serde_json::to_vec(&body).expect("encodes")
        }
    };
    encoded(StatusCode::OK, body, encoding)
}

/// Loupe's error as OTLP answers one: OTLP's status code, a
/// `google.rpc.Status` body, `Retry-After` kept.
fn otlp_error(e: ApiError, encoding: OtlpEncoding) -> Response {
    let status = match e.status {
        // OTLP has no 422: a refused batch is 400, which exporters do not retry.
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    };
    let code = grpc_code(status);
    let body = OtlpStatus {
        code,
        message: format!("{} ({})", e.message, e.code),
    };
    let bytes = match encoding {
        OtlpEncoding::Protobuf => body.encode_to_vec(),
        OtlpEncoding::Json => serde_json::to_vec(&body).expect("encodes"),
    };
    let mut r = encoded(status, bytes, encoding);
    if let Some(s) = e.retry_after_s
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The gRPC code OTLP pairs with an HTTP status (also what the gRPC
/// transport answers with).
pub fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        408 => 4,             // DEADLINE_EXCEEDED
        409 => 6,             // ALREADY_EXISTS
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
}

fn encoded(status: StatusCode, body: Vec<u8>, encoding: OtlpEncoding) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    r
}
