//! One memory budget for the request bodies in flight.
//!
//! Per-request limits (`--max-body-mib`) bound one request; without a
//! budget, many of them at once still add up (four concurrent 49 MB bodies
//! peaked at 1.9 GB). [`BodyBudget`] is a semaphore of bytes: before a
//! route reads a body, this layer takes as many bytes as the body declares
//! (`Content-Length`; a body without one — chunked — takes the most one
//! body may be, capped at the budget) and holds them until the answer is
//! ready, so reading, decompressing, decoding and appending it all happen
//! under the charge. A request that finds the budget spent waits up to
//! `wait` for it, then is answered `503` with `Retry-After`; a body larger
//! than the whole budget could never be admitted and is answered `413`
//! at once (a client that retried it would wait forever).
//!
//! The charge is the body as sent: decoding costs a multiple of it, so
//! the budget bounds memory in proportion, not to the byte.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::counters::ServerMetrics;
use crate::error::ApiError;

/// How much body memory may be in flight, and how long to wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyBudgetConfig {
    /// Bytes of request bodies in flight at once (`--max-inflight-body-mib`).
    pub max_bytes: usize,
    /// How long a request waits for budget before its `503`.
    pub wait: Duration,
}

impl Default for BodyBudgetConfig {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            wait: Duration::from_secs(10),
        }
    }
}

/// Seconds a refused client is told to wait (`Retry-After`): bodies are
/// served in well under that, so the budget is usually free again.
const RETRY_AFTER_S: u32 = 1;

/// Semaphore permits are `u32`: bytes are charged in units of this many.
const UNIT: usize = 1024;

/// The budget, its `/metrics` gauges and the refusal counters.
#[derive(Debug)]
pub struct BodyBudget {
    config: BodyBudgetConfig,
    /// The most one body may be (`--max-body-mib`): the charge of a body
    /// that declares no length.
    max_body: usize,
    units: Arc<Semaphore>,
    in_flight: Gauge,
    high_water: Gauge,
    metrics: Arc<ServerMetrics>,
}

impl BodyBudget {
    pub fn new(config: BodyBudgetConfig, max_body: usize, metrics: Arc<ServerMetrics>) -> Self {
        let total = units_of(config.max_bytes).min(Semaphore::MAX_PERMITS);
        BodyBudget {
            config,
            max_body,
            units: Arc::new(Semaphore::new(total)),
            in_flight: Gauge::default(),
            high_water: Gauge::default(),
            metrics,
        }
    }

    /// Registers `loupe_http_inflight_body_bytes` and its high-water mark.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "loupe_http_inflight_body_bytes",
            "Bytes of request bodies admitted and not yet answered (charged against --max-inflight-body-mib)",
            self.in_flight.clone(),
        );
        r.register(
            "loupe_http_inflight_body_bytes_max",
            "The most bytes of request bodies in flight at once since start",
            self.high_water.clone(),
        );
    }

    /// What a request's body is charged, from its headers; `None` for a
    /// request without a body.
    fn charge_of(&self, req: &Request) -> Option<usize> {
        let headers = req.headers();
        if let Some(len) = headers.get(header::CONTENT_LENGTH) {
            // A malformed length is hyper's to refuse; charge the most. A
            // body past `--max-body-mib` is refused by the route once that
            // much of it has been read, so no more is charged.
            let n = len
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(self.max_body)
                .min(self.max_body.saturating_add(1));
            return (n > 0).then_some(n);
        }
        headers
            .contains_key(header::TRANSFER_ENCODING)
            .then(|| self.max_body.min(self.config.max_bytes))
    }

    /// Takes `bytes` from the budget, waiting up to the configured bound.
    async fn admit(&self, bytes: usize) -> Result<Charge, ApiError> {
        if bytes > self.config.max_bytes {
            self.metrics.limit_refused("body_over_budget");
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the body is {bytes} bytes, more than the server's whole budget for bodies in flight ({} bytes, --max-inflight-body-mib): send it in smaller batches",
                    self.config.max_bytes
                ),
            ));
        }
        let units = units_of(bytes).min(u32::MAX as usize) as u32;
        let acquire = self.units.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.config.wait, acquire).await {
            Ok(Ok(permit)) => Ok(Charge::new(permit, bytes as i64, self)),
            // Closed never happens (the semaphore is never closed); timed out:
            _ => {
                self.metrics.limit_refused("body_budget_timeout");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    format!(
                        "the server's budget for request bodies in flight ({} bytes, --max-inflight-body-mib) stayed spent for {:?}; send the request again after the Retry-After delay",
                        self.config.max_bytes, self.config.wait
                    ),
                ))
            }
        }
    }
}

fn units_of(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// Bytes admitted for one request, given back when it is dropped.
struct Charge {
    _permit: OwnedSemaphorePermit,
    bytes: i64,
    in_flight: Gauge,
}

impl Charge {
    fn new(permit: OwnedSemaphorePermit, bytes: i64, budget: &BodyBudget) -> Self {
        let now = budget.in_flight.inc_by(bytes) + bytes;
        budget
            .high_water
            .inner()
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
        Charge {
            _permit: permit,
            bytes,
            in_flight: budget.in_flight.clone(),
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.in_flight.dec_by(self.bytes);
    }
}

/// The layer: admits a request's body against the budget before any route
/// reads it, and holds the charge until the route has answered.
pub async fn limit(State(budget): State<Arc<BodyBudget>>, req: Request, next: Next) -> Response {
    let Some(bytes) = budget.charge_of(&req) else {
        return next.run(req).await;
    };
    match budget.admit(bytes).await {
        Ok(charge) => {
            let response = next.run(req).await;
            drop(charge);
            response
        }
        Err(e) => {
            let retry = e.status == StatusCode::SERVICE_UNAVAILABLE;
            let mut response = e.into_response();
            if retry {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_bytes: usize, wait_ms: u64) -> BodyBudget {
        BodyBudget::new(
            BodyBudgetConfig {
                max_bytes,
                wait: Duration::from_millis(wait_ms),
            },
            64 << 20,
            Default::default(),
        )
    }

    #[tokio::test]
    async fn bodies_within_the_budget_are_admitted_and_given_back() {
        let b = budget(10 * UNIT, 10);
        let first = b.admit(6 * UNIT).await.unwrap();
        assert_eq!(b.in_flight.get(), 6 * UNIT as i64);
        // Past the budget while the first is in flight: refused after the wait.
        let e = b.admit(6 * UNIT).await.err().unwrap();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        drop(first);
        assert_eq!(b.in_flight.get(), 0);
        let _second = b.admit(6 * UNIT).await.unwrap();
        assert_eq!(b.high_water.get(), 6 * UNIT as i64);
    }

    #[tokio::test]
    async fn a_waiting_body_gets_in_when_budget_is_given_back() {
        let b = Arc::new(budget(10 * UNIT, 5_000));
        let first = b.admit(8 * UNIT).await.unwrap();
        let b2 = b.clone();
        let waiting = tokio::spawn(async move { b2.admit(8 * UNIT).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert!(waiting.await.unwrap());
        assert_eq!(b.high_water.get(), 8 * UNIT as i64);
    }

    #[tokio::test]
    async fn a_body_larger_than_the_whole_budget_is_refused_at_once() {
        let b = budget(10 * UNIT, 10_000);
        let e = b.admit(10 * UNIT + 1).await.err().unwrap();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("--max-inflight-body-mib"));
    }
}
