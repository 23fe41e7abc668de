//! Bodies at the connection layer. [`ReadDeadline`]: a request body must
//! arrive whole within the body read timeout, and is cut when shutdown
//! begins; routes see the cut as a body error, which
//! [`crate::error::body_rejection`] answers `408` or `503`. [`Tracked`]: a
//! response body that counts as a request in progress until it is sent or
//! dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyCut {
    #[error(
        "the request body did not arrive within {0:?} (the body read timeout, --body-read-timeout)"
    )]
    Timeout(Duration),
    #[error("the server is shutting down; send the request again")]
    ShuttingDown,
}

impl BodyCut {
    /// The cut somewhere in an error's chain of sources.
    pub fn find(e: &(dyn std::error::Error + 'static)) -> Option<BodyCut> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(cut) = err.downcast_ref::<BodyCut>() {
                return Some(*cut);
            }
            cur = err.source();
        }
        None
    }
}

/// The body as hyper reads it, with a deadline and the shutdown signal.
/// The timer and the shutdown watch are set up only if the body is ever
/// waited for (a GET's empty body costs nothing).
pub struct ReadDeadline {
    inner: Incoming,
    deadline: Instant,
    limit: Duration,
    stop: watch::Receiver<bool>,
    waiting: Option<Waiting>,
}

struct Waiting {
    sleep: Pin<Box<Sleep>>,
    stopped: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
}

impl ReadDeadline {
    pub fn new(inner: Incoming, limit: Duration, stop: watch::Receiver<bool>) -> Self {
        ReadDeadline {
            inner,
            deadline: Instant::now() + limit,
            limit,
            stop,
            waiting: None,
        }
    }
}

impl Body for ReadDeadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let waiting = this.waiting.get_or_insert_with(|| {
            let mut stop = this.stop.clone();
            Waiting {
                sleep: Box::pin(tokio::time::sleep_until(this.deadline)),
                stopped: Box::pin(async move {
                    let _ = stop.wait_for(|s| *s).await;
                }),
            }
        });
        if waiting.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyCut::Timeout(this.limit).into())));
        }
        if waiting.stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyCut::ShuttingDown.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One request in progress on a connection, until dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body holding its request's [`InFlight`].
pub struct Tracked {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl Tracked {
    pub fn new(inner: axum::body::Body, in_flight: InFlight) -> Self {
        Tracked {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
