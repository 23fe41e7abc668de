//! API errors: `{"error":{"code":"…","message":"…"}}` with the right status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use loupe_api::{ErrorBody, ErrorDetail};

/// An error as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to send as `Retry-After` (429 and 503 answers).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// The same error, telling the client when to try again.
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after_s = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        self
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} {id:?} not found"),
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        resp
    }
}

impl From<loupe_tsdb::Error> for ApiError {
    fn from(e: loupe_tsdb::Error) -> Self {
        use loupe_tsdb::Error as E;
        match &e {
            E::Invalid(_) | E::Key(_) => ApiError::bad_request("invalid_request", e.to_string()),
            // Disk full or read-only: the write was not accepted; retrying later works.
            E::Io { .. } | E::WalPoisoned(_) => ApiError::unavailable(e.to_string()),
            E::Closed => ApiError::unavailable("the server is shutting down"),
            // Damage is answered as an error naming it, never as an empty success.
            E::Corrupt { .. } | E::Codec(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "damaged_data",
                e.to_string(),
            ),
        }
    }
}

impl From<loupe_ingest::DecodeError> for ApiError {
    fn from(e: loupe_ingest::DecodeError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<loupe_meta::Error> for ApiError {
    fn from(e: loupe_meta::Error) -> Self {
        match &e {
            loupe_meta::Error::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            loupe_meta::Error::Invalid(_) => {
                ApiError::bad_request("invalid_request", e.to_string())
            }
            loupe_meta::Error::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            // Full disk: answered as the time-series store's is (503, retry later).
            _ if e.is_no_space() => ApiError::unavailable(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<loupe_ingest::BodyError> for ApiError {
    fn from(e: loupe_ingest::BodyError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<crate::ingest::IngestError> for ApiError {
    fn from(e: crate::ingest::IngestError) -> Self {
        use crate::ingest::IngestError as E;
        match e {
            E::Body(e) => e.into(),
            E::Decode(e) => e.into(),
            e @ E::Key { .. } => ApiError::bad_request("invalid_batch", e.to_string()),
            // 422, not 429: the batch is well formed but would break a
            // rule that waiting does not change, and clients retry 429
            // (`loupe_client::Error::is_retryable`) — a resend would only
            // be refused again. Points to existing series still go in.
            E::SeriesLimit(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "series_limit",
                e.to_string(),
            ),
            E::Tsdb(e) => e.into(),
            E::Meta(e) => e.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `Query<T>` whose rejection is an [`ApiError`] in the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| {
                ApiError::bad_request("invalid_request", format!("query: {}", e.body_text()))
            })
    }
}

/// Answers a path no route serves.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no endpoint at {}", uri.path()),
    )
}

/// Answers a method a route does not accept.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// A request body axum could not read (over the size limit, or cut off).
pub fn body_rejection(e: axum::extract::rejection::BytesRejection) -> ApiError {
    // Cut by the connection layer: too slow, or the server is stopping.
    match crate::listen::BodyCut::find(&e) {
        Some(cut @ crate::listen::BodyCut::Timeout(_)) => {
            return ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", cut.to_string());
        }
        Some(cut @ crate::listen::BodyCut::ShuttingDown) => {
            return ApiError::unavailable(cut.to_string());
        }
        None => {}
    }
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body_too_large"
    } else {
        "invalid_request"
    };
    ApiError::new(status, code, format!("body: {}", e.body_text()))
}
