//! The HTTP/1.1 server loop: accepting connections up to a cap, timing out
//! slow clients, and a shutdown that always finishes.
//!
//! `axum::serve` waits at shutdown for every connection to end on its own,
//! so one open event stream (a UI tab) or one client that never finishes
//! its headers keeps the process up; it has no read timeouts and no cap on
//! connections. This loop drives hyper's HTTP/1 connections itself:
//!
//! - **A cap on open connections** ([`ConnLimits::max_connections`]): past
//!   it, a connection is answered `503` with the API's JSON error and closed,
//!   and a warning says so (at most once per [`REFUSAL_LOG_EVERY`]).
//! - **Header read timeout**: hyper's own — a client that has not sent a
//!   whole request head within [`ConnLimits::header_read_timeout`] (also how
//!   long an idle keep-alive connection is kept) is disconnected.
//! - **Body read timeout**: every request body must arrive whole within
//!   [`ConnLimits::body_read_timeout`]; a trickling client gets `408`
//!   ([`body::ReadDeadline`]).
//! - **Shutdown**: stop accepting; close connections with no request in
//!   progress (idle, or a head still arriving); end every event stream (its
//!   body ends cleanly, so an `EventSource` simply reconnects to the next
//!   server); cut request bodies still arriving (`503`); let requests in
//!   progress finish for up to [`ConnLimits::shutdown_grace`]; then close
//!   whatever is left. The caller flushes the stores after this returns.
//! - hyper's own answers to unparsable request heads (400, 414, 431) get
//!   the API's JSON error body ([`canned`]).
//! - **A lingering close** ([`linger`]): a connection closed with a request
//!   body still arriving (a `413`) half-closes and drains it briefly, so the
//!   client reads the answer instead of a reset.
//! - Open and refused connections are counted in `/metrics`
//!   ([`telemetry::ConnMetrics`]).

pub mod body;
pub mod canned;
mod linger;
mod passthrough;
pub mod telemetry;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::Response;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

pub use body::BodyCut;
pub use telemetry::ConnMetrics;

/// How many connections and how long each may take.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// The longest a client may take to send a request's head (and the
    /// longest an idle keep-alive connection is kept).
    pub header_read_timeout: Duration,
    /// The longest a request's body may take to arrive, whole.
    pub body_read_timeout: Duration,
    /// At shutdown, how long requests in progress may take to finish before
    /// their connections are closed.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// The connection-limit warning is repeated at most this often.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Refusals being written at once; past this, excess connections are
/// closed without an answer.
const REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refusal may take to write and see the client close.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` resolves, then winds the
/// connections down (see the module's notes). Returns once every
/// connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: ConnMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let mut conns = JoinSet::new();
    let mut refused = RefusalLog::default();
    let mut accept_errors = RefusalLog::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let (app, limits, stop) = (app.clone(), limits.clone(), stop_rx.clone());
                            let open = metrics.opened();
                            let tls = tls.clone();
                            conns.spawn(async move {
                                match tls {
                                    None => connection(stream, app, &limits, stop).await,
                                    Some(tls) => {
                                        let handshake = tls.accept(stream);
                                        match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                                            Ok(Ok(s)) => connection(s, app, &limits, stop).await,
                                            Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                                            Err(_) => tracing::debug!("TLS handshake timed out"),
                                        }
                                    }
                                }
                                drop(permit);
                                drop(open);
                            });
                        }
                        Err(_) => {
                            metrics.refused.inc();
                            if let Some(n) = refused.note() {
                                tracing::warn!(
                                    max_connections = limits.max_connections,
                                    refused = n,
                                    "connection limit reached: {} connections are open \
                                     (--max-connections); refusing new connections with 503 \
                                     until some close",
                                    limits.max_connections
                                );
                            }
                            // Over TLS a plain-text 503 would read as garbage:
                            // the connection is just closed.
                            if tls.is_some() {
                                drop(stream);
                            } else if let Ok(slot) = refusals.clone().try_acquire_owned() {
                                tokio::spawn(async move {
                                    refuse(stream).await;
                                    drop(slot);
                                });
                            }
                        }
                    }
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors, most likely: wait a little
                    // rather than spin (connections closing free some).
                    if let Some(n) = accept_errors.note() {
                        tracing::error!(
                            failures = n,
                            "accepting a connection: {e} (out of file descriptors? lower \
                             --max-connections or raise the open-file limit)"
                        );
                    }
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = conns.len();
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} of {open} connection(s) still busy {:?} after shutdown began; closing them",
            conns.len(),
            limits.shutdown_grace
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

/// One connection, served until it ends or is told to stop.
async fn connection<S>(stream: S, app: Router, limits: &ConnLimits, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = canned::JsonErrors::new(linger::Lingering::new(TokioIo::new(stream)));
    let body_limit = limits.body_read_timeout;
    let stop_rx = stop.clone();
    // Requests whose answer is not yet sent whole.
    let busy = Arc::new(AtomicUsize::new(0));
    let b = busy.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        let stop = stop_rx.clone();
        let in_flight = body::InFlight::enter(&b);
        let req: Request =
            req.map(|b| Body::new(body::ReadDeadline::new(b, body_limit, stop.clone())));
        async move {
            let resp = app
                .oneshot(req)
                .await
                .unwrap_or_else(|e: Infallible| match e {});
            let resp = end_streams_at_shutdown(resp, stop);
            Ok::<_, Infallible>(resp.map(|b| Body::new(body::Tracked::new(b, in_flight))))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection ended: {e}");
            }
        }
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            // Nothing in progress (idle, or a request head still arriving):
            // close now.
            if busy.load(Ordering::SeqCst) == 0 {
                return;
            }
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!("connection ended at shutdown: {e}");
            }
        }
    }
}

/// An event stream's body ends (cleanly, with the chunked terminator) when
/// shutdown begins, so its connection can close.
fn end_streams_at_shutdown(resp: Response, mut stop: watch::Receiver<bool>) -> Response {
    let is_stream = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !is_stream {
        return resp;
    }
    resp.map(|b| {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        Body::from_stream(b.into_data_stream().take_until(Box::pin(stopped)))
    })
}

/// Answers a connection over the cap with `503` and closes it, reading
/// what the client sent meanwhile so the close does not reset the answer
/// away.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::json!({"error": {
        "code": "too_many_connections",
        "message": "the server has as many connections open as it accepts (--max-connections); retry shortly",
    }})
    .to_string();
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(resp.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    )
}

/// Counts events and says when to log them: the first, then at most once
/// per [`REFUSAL_LOG_EVERY`] with the count since the last line.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    since: u64,
}

impl RefusalLog {
    fn note(&mut self) -> Option<u64> {
        self.since += 1;
        if self.last.is_some_and(|t| t.elapsed() < REFUSAL_LOG_EVERY) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.since))
    }
}
