//! A bound on how long one handler may take (`--request-timeout`).
//!
//! Without it a request that reads too much (a huge series read, a log
//! search over a long run) holds its connection, its body budget and its
//! client for as long as it takes. Past the bound the client is answered
//! `503 request_timeout` in the API's error shape and the refusal is
//! counted in `loupe_limit_refused_requests_total{reason="request_timeout"}`.
//!
//! Dropping the handler's future cancels what it awaits, but store work
//! already handed to a blocking thread runs to its end: the bound frees the
//! client and the connection, not that thread.
//!
//! The live stream (`/api/v1/live`, server-sent events) is meant to stay
//! open for hours and is never timed out.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::counters::ServerMetrics;
use crate::error::ApiError;

/// Routes whose answers are long-lived streams, exempt from the bound.
pub const STREAM_ROUTES: &[&str] = &["/api/v1/live"];

/// The bound and where refusals are counted.
#[derive(Debug)]
pub struct RequestTimeout {
    /// `None`: no bound (`--request-timeout 0`).
    pub limit: Option<Duration>,
    pub metrics: Arc<ServerMetrics>,
}

/// The layer: runs the handler under the bound unless it serves a stream.
pub async fn limit(State(t): State<Arc<RequestTimeout>>, req: Request, next: Next) -> Response {
    let Some(limit) = t.limit else {
        return next.run(req).await;
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    if STREAM_ROUTES.contains(&route.as_str()) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            t.metrics.limit_refused("request_timeout");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "{route}: the server did not finish the request within {}s (--request-timeout); ask for less (a narrower window, a smaller page) or try again later",
                    limit.as_secs_f64()
                ),
            )
            .into_response()
        }
    }
}
