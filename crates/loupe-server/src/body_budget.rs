//! One memory budget for the request bodies in flight.
//!
//! Per-request limits (`--max-body-mib`) bound one request; without a
//! budget, many of them at once still add up (four concurrent 49 MB bodies
//! peaked at 1.9 GB). [`BodyBudget`] is a semaphore of bytes, charged for
//! what a body costs as it costs it:
//!
//! - **as the bytes arrive**: the body is read through [`ChargedBody`],
//!   which takes each chunk's bytes from the budget before handing it on,
//!   so a client trickling its body holds only what it has sent (a hundred
//!   slow clients cannot take the budget from everyone else by declaring
//!   large bodies and sending nothing);
//! - **as it is decompressed**: the ingest path meters decompressed output
//!   against the same charge ([`BodyCharge::grow_blocking`]), so a gzip or
//!   zstd body costs its expanded size, not its wire size, and a
//!   decompression bomb stops at the route's `--max-body-mib` (413).
//!
//! The charge is held until the answer is ready, so reading, decoding and
//! appending all happen under it. A chunk that finds the budget spent waits
//! up to `wait` for it, then the request is answered `503` with
//! `Retry-After`; a body that declares more than the whole budget, or grows
//! past it, could never be admitted and is answered `413` (a client that
//! retried it would wait forever).
//!
//! Decoding costs a further multiple of the bytes charged, so the budget
//! bounds memory in proportion, not to the byte.

mod charged_body;

pub use charged_body::ChargedBody;

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
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

    /// The length a request declares for its body (`Content-Length`);
    /// `None` without one (chunked) or when it does not parse (hyper's to
    /// refuse).
    fn declared(req: &Request) -> Option<usize> {
        req.headers()
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A request carries a body when it declares a length above zero or a
    /// transfer coding.
    fn has_body(req: &Request) -> bool {
        match Self::declared(req) {
            Some(n) => n > 0,
            None => {
                req.headers().contains_key(header::TRANSFER_ENCODING)
                    || req.headers().contains_key(header::CONTENT_LENGTH)
            }
        }
    }

    fn over_budget(&self, bytes: usize) -> ApiError {
        self.metrics.limit_refused("body_over_budget");
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body is {bytes} bytes, more than the server's whole budget for bodies in flight ({} bytes, --max-inflight-body-mib): send it in smaller batches",
                self.config.max_bytes
            ),
        )
    }

    fn timed_out(&self) -> ApiError {
        self.metrics.limit_refused("body_budget_timeout");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!(
                "the server's budget for request bodies in flight ({} bytes, --max-inflight-body-mib) stayed spent for {:?}; send the request again after the Retry-After delay",
                self.config.max_bytes, self.config.wait
            ),
        )
    }
}

fn units_of(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// What one request holds of the budget: it grows as its body arrives and
/// is decompressed, and is given back when the last handle is dropped
/// (the layer's, once the answer is ready).
#[derive(Clone)]
pub struct BodyCharge(Arc<Account>);

struct Account {
    budget: Arc<BodyBudget>,
    held: Mutex<Held>,
    /// Why the budget refused this request, answered in place of whatever
    /// the route made of its cut-short body.
    refused: Mutex<Option<ApiError>>,
}

#[derive(Default)]
struct Held {
    /// Bytes charged, and the permits (in [`UNIT`]s) covering them.
    bytes: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    fn units(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}

impl BodyCharge {
    fn new(budget: Arc<BodyBudget>) -> Self {
        BodyCharge(Arc::new(Account {
            budget,
            held: Mutex::new(Held::default()),
            refused: Mutex::new(None),
        }))
    }

    /// Bytes charged so far.
    pub fn bytes(&self) -> usize {
        self.0.held.lock().bytes
    }

    /// Charges `bytes` more, waiting up to the budget's bound for room.
    /// On refusal the reason is kept for the layer to answer with.
    pub async fn grow(&self, bytes: usize) -> Result<(), ()> {
        let budget = &self.0.budget;
        let (total, need) = {
            let held = self.0.held.lock();
            let total = held.bytes + bytes;
            (total, units_of(total).saturating_sub(held.units()))
        };
        if total > budget.config.max_bytes {
            return self.refuse(budget.over_budget(total));
        }
        if need > 0 {
            let need = need.min(u32::MAX as usize) as u32;
            let permit = match budget.units.clone().try_acquire_many_owned(need) {
                Ok(p) => p,
                Err(_) => {
                    let acquire = budget.units.clone().acquire_many_owned(need);
                    match tokio::time::timeout(budget.config.wait, acquire).await {
                        Ok(Ok(p)) => p,
                        // Closed never happens (the semaphore is never closed); timed out:
                        _ => return self.refuse(budget.timed_out()),
                    }
                }
            };
            let mut held = self.0.held.lock();
            match &mut held.permit {
                Some(p) => p.merge(permit),
                None => held.permit = Some(permit),
            }
        }
        self.0.held.lock().bytes += bytes;
        let now = budget.in_flight.inc_by(bytes as i64) + bytes as i64;
        budget.high_water.inner().fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    /// [`BodyCharge::grow`] from a blocking thread (decompression runs on
    /// one); `false` when refused.
    pub fn grow_blocking(&self, bytes: usize) -> bool {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt.block_on(self.grow(bytes)).is_ok(),
            // Only called from the runtime's blocking threads; outside a
            // runtime nothing could wait for room.
            Err(_) => false,
        }
    }

    fn refuse(&self, e: ApiError) -> Result<(), ()> {
        self.0.refused.lock().get_or_insert(e);
        Err(())
    }

    fn take_refusal(&self) -> Option<ApiError> {
        self.0.refused.lock().take()
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.budget
            .in_flight
            .dec_by(self.held.get_mut().bytes as i64);
    }
}

/// A route's handle on its request's charge, to meter what decoding the
/// body costs on top of its bytes (none for a request without a body).
pub struct Metered(pub Option<BodyCharge>);

impl<S: Send + Sync> FromRequestParts<S> for Metered {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Metered(parts.extensions.get::<BodyCharge>().cloned()))
    }
}

/// The layer: reads every request body through the budget, charged chunk
/// by chunk, and holds the charge until the route has answered.
pub async fn limit(State(budget): State<Arc<BodyBudget>>, req: Request, next: Next) -> Response {
    if !BodyBudget::has_body(&req) {
        return next.run(req).await;
    }
    // A declared length the whole budget cannot hold is refused before a
    // byte is read (a body past `--max-body-mib` is the route's to refuse).
    if let Some(n) = BodyBudget::declared(&req)
        && n > budget.config.max_bytes
        && n <= budget.max_body
    {
        return refusal(budget.over_budget(n));
    }
    let charge = BodyCharge::new(budget);
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(charge.clone());
    let req = Request::from_parts(parts, Body::new(ChargedBody::new(body, charge.clone())));
    let response = next.run(req).await;
    match charge.take_refusal() {
        Some(e) => refusal(e),
        None => response,
    }
}

/// The answer to a request the budget refused: 503 with `Retry-After`
/// when waiting could help, 413 when it never could.
fn refusal(e: ApiError) -> Response {
    let retry = e.status == StatusCode::SERVICE_UNAVAILABLE;
    let mut response = e.into_response();
    if retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_bytes: usize, wait_ms: u64) -> Arc<BodyBudget> {
        Arc::new(BodyBudget::new(
            BodyBudgetConfig {
                max_bytes,
                wait: Duration::from_millis(wait_ms),
            },
            64 << 20,
            Default::default(),
        ))
    }

    #[tokio::test]
    async fn charges_grow_and_are_given_back() {
        let b = budget(10 * UNIT, 10);
        let first = BodyCharge::new(b.clone());
        first.grow(3 * UNIT).await.unwrap();
        first.grow(3 * UNIT).await.unwrap();
        assert_eq!(b.in_flight.get(), 6 * UNIT as i64);
        // Past the budget while the first is in flight: refused after the wait.
        let second = BodyCharge::new(b.clone());
        assert!(second.grow(6 * UNIT).await.is_err());
        let e = second.take_refusal().unwrap();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        drop(first);
        assert_eq!(b.in_flight.get(), 0);
        let third = BodyCharge::new(b.clone());
        third.grow(6 * UNIT).await.unwrap();
        assert_eq!(b.high_water.get(), 6 * UNIT as i64);
    }

    #[tokio::test]
    async fn small_pieces_are_charged_to_the_byte_in_units() {
        let b = budget(10 * UNIT, 10);
        let c = BodyCharge::new(b.clone());
        for _ in 0..(4 * UNIT / 100) {
            c.grow(100).await.unwrap();
        }
        assert_eq!(c.bytes(), 4 * UNIT / 100 * 100);
        // Rounding is per request, not per piece: at most one unit over.
        assert_eq!(b.units.available_permits(), 10 - 4);
    }

    #[tokio::test]
    async fn a_waiting_charge_gets_in_when_budget_is_given_back() {
        let b = budget(10 * UNIT, 5_000);
        let first = BodyCharge::new(b.clone());
        first.grow(8 * UNIT).await.unwrap();
        let second = BodyCharge::new(b.clone());
        let waiting = tokio::spawn(async move { second.grow(8 * UNIT).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert!(waiting.await.unwrap());
        assert_eq!(b.high_water.get(), 8 * UNIT as i64);
    }

    #[tokio::test]
    async fn growing_past_the_whole_budget_is_refused_at_once() {
        let b = budget(10 * UNIT, 10_000);
        let c = BodyCharge::new(b.clone());
        c.grow(6 * UNIT).await.unwrap();
        assert!(c.grow(4 * UNIT + 1).await.is_err());
        let e = c.take_refusal().unwrap();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("--max-inflight-body-mib"));
    }
}
