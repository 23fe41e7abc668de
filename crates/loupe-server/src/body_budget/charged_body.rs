//! A request body that charges the budget for each chunk before the route
//! sees it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};

use super::BodyCharge;

/// Why a body stopped short: the budget refused its next chunk (the layer
/// answers with the reason it kept).
#[derive(Debug, thiserror::Error)]
#[error("the budget for request bodies in flight refused the rest of this body")]
pub struct Refused;

type Growing = Pin<Box<dyn Future<Output = Result<(), ()>> + Send>>;

/// Wraps a request body: each data frame is charged before it is handed on.
pub struct ChargedBody {
    inner: Body,
    charge: BodyCharge,
    /// A frame read from the client, waiting for its charge.
    waiting: Option<(Frame<Bytes>, Growing)>,
}

impl ChargedBody {
    pub fn new(inner: Body, charge: BodyCharge) -> Self {
        ChargedBody {
            inner,
            charge,
            waiting: None,
        }
    }
}

impl http_body::Body for ChargedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.waiting.is_none() {
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other),
            };
            let n = frame.data_ref().map_or(0, Bytes::len);
            if n == 0 {
                return Poll::Ready(Some(Ok(frame)));
            }
            let charge = this.charge.clone();
            this.waiting = Some((frame, Box::pin(async move { charge.grow(n).await })));
        }
        let (_, growing) = this.waiting.as_mut().expect("set above");
        let granted = ready!(growing.as_mut().poll(cx));
        let (frame, _) = this.waiting.take().expect("set above");
        Poll::Ready(Some(match granted {
            Ok(()) => Ok(frame),
            Err(()) => Err(axum::Error::new(Refused)),
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
