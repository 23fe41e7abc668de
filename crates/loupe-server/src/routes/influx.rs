//! InfluxDB's write API, so Telegraf and the InfluxDB client libraries
//! write into Loupe unchanged: `POST /api/v2/write` (InfluxDB 2),
//! `POST /write` (1.x) and `GET /ping`.
//!
//! The body is line protocol (see `loupe_ingest::influx` for the mapping:
//! one series per field, `{measurement}_{field}`, tags as labels) and goes
//! through the one ingest service as series outside runs. The bucket (2)
//! or database (1.x) names the project. Answers are shaped as InfluxDB's
//! clients expect: `204` on success; errors as `{"code","message"}` (2) or
//! `{"error"}` (1.x), with InfluxDB's status codes (a malformed or refused
//! batch is `400`, and nothing of it is stored).
//!
//! Tokens: `Authorization: Token <token>` (what the InfluxDB 2 clients and
//! Telegraf send), `Bearer`, or HTTP Basic with the token as password (1.x
//! clients). Tokens in the URL (`?p=`) are not read: URLs end up in logs.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use loupe_model::Role;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::body_budget::Metered;
use crate::error::ApiError;
use crate::http::{blocking, encoded_body, raw_body};
use crate::state::SharedState;

/// `POST /api/v2/write` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteV2Query {
    /// The project to write to (InfluxDB's bucket).
    pub bucket: Option<String>,
    /// Accepted and ignored: Loupe has projects, not organisations.
    pub org: Option<String>,
    /// Accepted and ignored.
    #[serde(rename = "orgID")]
    pub org_id: Option<String>,
    /// Timestamp unit: `ns` (default), `us`, `ms` or `s`.
    pub precision: Option<String>,
}

/// `POST /write` query (InfluxDB 1.x).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteV1Query {
    /// The project to write to (InfluxDB's database).
    pub db: Option<String>,
    /// Accepted and ignored (retention is Loupe's own, per project).
    pub rp: Option<String>,
    /// Timestamp unit: `n` or `ns` (default), `u`, `ms`, `s`, `m`, `h`.
    pub precision: Option<String>,
}

/// An InfluxDB 2 error body.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct InfluxError {
    /// InfluxDB's error code: `invalid`, `unauthorized`, `forbidden`,
    /// `request too large`, `too many requests`, `unavailable`, `internal error`.
    pub code: String,
    pub message: String,
}

/// The two dialects' error shapes.
#[derive(Clone, Copy)]
enum Dialect {
    V1,
    V2,
}

#[utoipa::path(post, path = "/api/v2/write", params(WriteV2Query),
    request_body(content = String, content_type = "text/plain", description = "InfluxDB line protocol; gzip or zstd bodies accepted"),
    responses((status = 204, description = "Every line stored"),
        (status = 400, description = "A malformed line or a refused batch (a series limit, a reserved tag); nothing was stored", body = InfluxError),
        (status = 401, body = InfluxError), (status = 403, body = InfluxError), (status = 413, body = InfluxError),
        (status = 503, description = "The server's budget for request bodies in flight stayed spent; retry after `Retry-After` seconds", body = InfluxError)))]
pub async fn write_v2(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    Query(q): Query<WriteV2Query>,
    metered: Metered,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req = WriteRequest {
        project: q.bucket,
        precision: q.precision,
        metered,
        headers,
    };
    write(st, who, req, body, Dialect::V2).await
}

#[utoipa::path(post, path = "/write", params(WriteV1Query),
    request_body(content = String, content_type = "text/plain", description = "InfluxDB line protocol; gzip or zstd bodies accepted"),
    responses((status = 204, description = "Every line stored"),
        (status = 400, description = "A malformed line or a refused batch; nothing was stored: `{\"error\": …}`"),
        (status = 401, description = "No or a bad token"), (status = 413, description = "Body too large")))]
pub async fn write_v1(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    Query(q): Query<WriteV1Query>,
    metered: Metered,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req = WriteRequest {
        project: q.db,
        precision: q.precision,
        metered,
        headers,
    };
    write(st, who, req, body, Dialect::V1).await
}

/// InfluxDB's liveness check, which clients call before writing.
#[utoipa::path(get, path = "/ping", responses((status = 204, description = "The server is up")))]
pub async fn ping() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert("x-influxdb-build", HeaderValue::from_static("loupe"));
    r.headers_mut().insert(
        "x-influxdb-version",
        HeaderValue::from_static(concat!("loupe-", env!("CARGO_PKG_VERSION"))),
    );
    r
}

/// What both dialects' write requests carry.
struct WriteRequest {
    project: Option<String>,
    precision: Option<String>,
    metered: Metered,
    headers: HeaderMap,
}

async fn write(
    st: SharedState,
    who: Result<Principal, ApiError>,
    req: WriteRequest,
    body: Result<Bytes, BytesRejection>,
    dialect: Dialect,
) -> Response {
    let WriteRequest {
        project,
        precision,
        metered: Metered(charge),
        headers,
    } = req;
    let result = async {
        let who = who?;
        who.require(Role::Ingest)?;
        let project = who.write_project(project.as_deref().filter(|p| !p.is_empty()))?;
        let unit = match precision.as_deref() {
            None | Some("") => 1,
            Some(p) => loupe_ingest::precision_ns(p).ok_or_else(|| {
                ApiError::bad_request(
                    "bad_precision",
                    format!("precision {p:?}: expected ns, us, ms or s (1.x also n, u, m, h)"),
                )
            })?,
        };
        let bytes = raw_body(&st, body)?;
        let ingest = st.ingest.clone();
        blocking(move || {
            let body = encoded_body(&headers, &bytes, charge.as_ref());
            Ok(ingest.line_protocol(&project, body, unit)?)
        })
        .await
    }
    .await;
    match result {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => influx_error(e, dialect),
    }
}

/// Reshapes Loupe's error as InfluxDB's clients read it.
fn influx_error(e: ApiError, dialect: Dialect) -> Response {
    // InfluxDB answers 400 for everything about the batch's content; its
    // clients treat 422 as an unknown failure.
    let status = match e.status {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            StatusCode::BAD_REQUEST
        }
        s => s,
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not found",
        StatusCode::PAYLOAD_TOO_LARGE => "request too large",
        StatusCode::TOO_MANY_REQUESTS => "too many requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal error",
    };
    let message = format!("{} ({})", e.message, e.code);
    let body = match dialect {
        Dialect::V2 => serde_json::json!({ "code": code, "message": message }),
        Dialect::V1 => serde_json::json!({ "error": message }),
    };
    let mut r = (status, axum::Json(body)).into_response();
    if let Some(s) = e.retry_after_s
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}
