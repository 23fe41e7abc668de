//! Request bodies: `Content-Encoding` → plain bytes, never more than
//! [`Limits::max_body_bytes`] of them.
//!
//! Decompression streams into a buffer and stops one byte past the limit, so
//! a small compressed body that would expand to gigabytes (a "zip bomb")
//! costs at most the limit in memory and the time to produce it.

use std::borrow::Cow;
use std::io::Read;

use crate::{BodyError, Limits, Result};

/// The encodings Loupe accepts for request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentEncoding {
    Identity,
    Gzip,
    Zstd,
}

/// Largest zstd window accepted (2^25 = 32 MiB). zstd's own default is 2^27;
/// the window is allocated up front, so this bounds the memory a crafted
/// frame header can make one request reserve. Ordinary compression levels
/// (up to 19, without long-distance mode) stay below 2^24.
const ZSTD_WINDOW_LOG_MAX: u32 = 25;

impl ContentEncoding {
    /// Parses a `Content-Encoding` header value: `identity` (or empty),
    /// `gzip` / `x-gzip`, `zstd`; case-insensitive, surrounding spaces
    /// ignored. A list of several codings is refused.
    pub fn parse(header: &str) -> Result<Self, BodyError> {
        let name = header.trim();
        if name.is_empty() || name.eq_ignore_ascii_case("identity") {
            Ok(ContentEncoding::Identity)
        } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            Ok(ContentEncoding::Gzip)
        } else if name.eq_ignore_ascii_case("zstd") {
            Ok(ContentEncoding::Zstd)
        } else {
            Err(BodyError::UnsupportedEncoding(name.to_string()))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContentEncoding::Identity => "identity",
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Zstd => "zstd",
        }
    }
}

/// Decodes a request body according to its `Content-Encoding` header
/// (`None` = identity). An identity body is borrowed, not copied.
///
/// Errors: [`BodyError::UnsupportedEncoding`] for an unknown encoding,
/// [`BodyError::TooLarge`] past `limits.max_body_bytes` (checked on the raw
/// body too), [`BodyError::Corrupt`] when the bytes are not in the declared
/// encoding (including an empty compressed body and trailing garbage).
pub fn decode_body<'a>(
    raw: &'a [u8],
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Cow<'a, [u8]>, BodyError> {
    let encoding = match content_encoding {
        Some(header) => ContentEncoding::parse(header)?,
        None => ContentEncoding::Identity,
    };
    let cap = limits.max_body_bytes;
    match encoding {
        ContentEncoding::Identity => {
            if raw.len() > cap {
                return Err(BodyError::TooLarge {
                    limit: cap,
                    compressed: false,
                });
            }
            Ok(Cow::Borrowed(raw))
        }
        ContentEncoding::Gzip => {
            require_data(raw, "gzip")?;
            // Multi-member: RFC 1952 allows concatenated members, and
            // `cat a.gz b.gz` is a valid gzip body.
            let decoder = flate2::bufread::MultiGzDecoder::new(raw);
            read_capped(decoder, raw.len(), cap, "gzip").map(Cow::Owned)
        }
        ContentEncoding::Zstd => {
            require_data(raw, "zstd")?;
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| BodyError::Corrupt {
                    encoding: "zstd",
                    message: e.to_string(),
                })?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| BodyError::Corrupt {
                    encoding: "zstd",
                    message: e.to_string(),
                })?;
            read_capped(decoder, raw.len(), cap, "zstd").map(Cow::Owned)
        }
    }
}

fn require_data(raw: &[u8], encoding: &'static str) -> Result<(), BodyError> {
    if raw.is_empty() {
        return Err(BodyError::Corrupt {
            encoding,
            message: "the body is empty".to_string(),
        });
    }
    Ok(())
}

/// Reads at most `cap + 1` bytes: one byte past the cap proves the body is
/// too large without decompressing the rest.
fn read_capped(
    reader: impl Read,
    compressed_len: usize,
    cap: usize,
    encoding: &'static str,
) -> Result<Vec<u8>, BodyError> {
    // Typical metric JSON compresses 4–10×; guessing avoids most regrowth
    // without trusting any size the stream itself claims.
    let mut out = Vec::with_capacity(compressed_len.saturating_mul(6).min(cap));
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Corrupt {
            encoding,
            message: e.to_string(),
        })?;
    if out.len() > cap {
        return Err(BodyError::TooLarge {
            limit: cap,
            compressed: true,
        });
    }
    Ok(out)
}
