//! The `Read` half shared by the connection wrappers ([`super::canned`],
//! [`super::linger`]): each rewrites or delays only what the server writes,
//! and reads go straight to the connection it wraps.
//!
//! A macro rather than a blanket impl because `hyper::rt::Read` is a foreign
//! trait: the orphan rule allows an impl only per wrapper type.

/// Implements `hyper::rt::Read` for `$wrapper<T>` by reading from its
/// `inner` field.
macro_rules! read_from_inner {
    ($wrapper:ident) => {
        impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for $wrapper<T> {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: hyper::rt::ReadBufCursor<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
            }
        }
    };
}

pub(super) use read_from_inner;
