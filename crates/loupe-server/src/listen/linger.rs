//! A lingering close. When the server answers before reading a whole
//! request body — `413` for a body over the size limit, a refusal before
//! the body — and then closes, the bytes the client is still sending arrive
//! at a closed socket; the kernel answers them with a reset, and the reset
//! throws away the answer the client has not read yet, so it sees "broken
//! pipe" instead of the error. [`Lingering`] makes the close half-close
//! first and then read and drop what the client still sends, until it
//! closes its side, for at most [`LINGER_TIME`] and [`LINGER_BYTES`]. A
//! client that already closed (the usual case) costs one read.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::rt::{Read, ReadBuf, Write};
use tokio::time::Sleep;

/// How long a close waits for the client to stop sending.
pub const LINGER_TIME: Duration = Duration::from_secs(1);
/// How much a close reads and drops at most.
pub const LINGER_BYTES: usize = 256 << 20;

pub struct Lingering<T> {
    inner: T,
    /// Set once the write side is shut: the linger's deadline and count.
    linger: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<T> Lingering<T> {
    pub fn new(inner: T) -> Self {
        Lingering {
            inner,
            linger: None,
        }
    }
}

impl<T: Read + Write + Unpin> Write for Lingering<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some((Box::pin(tokio::time::sleep(LINGER_TIME)), 0));
        }
        let Some((deadline, drained)) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [MaybeUninit::<u8>::uninit(); 16 * 1024];
        loop {
            if deadline.as_mut().poll(cx).is_ready() || *drained >= LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::uninit(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, buf.unfilled()) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => *drained += buf.filled().len(),
                // A reset or any other error: the client is gone.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

super::passthrough::read_from_inner!(Lingering);
