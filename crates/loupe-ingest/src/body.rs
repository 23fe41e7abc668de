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
    /// Snappy's block format (not its framing format): what Prometheus
    /// remote write sends.
    Snappy,
}

/// Largest zstd window accepted (2^25 = 32 MiB). zstd's own default is 2^27;
/// the window is allocated up front, so this bounds the memory a crafted
/// frame header can make one request reserve. Ordinary compression levels
/// (up to 19, without long-distance mode) stay below 2^24.
const ZSTD_WINDOW_LOG_MAX: u32 = 25;

impl ContentEncoding {
    /// Parses a `Content-Encoding` header value: `identity` (or empty),
    /// `gzip` / `x-gzip`, `zstd`, `snappy`; case-insensitive, surrounding spaces
    /// ignored. A list of several codings is refused.
    pub fn parse(header: &str) -> Result<Self, BodyError> {
        let name = header.trim();
        if name.is_empty() || name.eq_ignore_ascii_case("identity") {
            Ok(ContentEncoding::Identity)
        } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            Ok(ContentEncoding::Gzip)
        } else if name.eq_ignore_ascii_case("zstd") {
            Ok(ContentEncoding::Zstd)
        } else if name.eq_ignore_ascii_case("snappy") {
            Ok(ContentEncoding::Snappy)
        } else {
            Err(BodyError::UnsupportedEncoding(name.to_string()))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContentEncoding::Identity => "identity",
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Zstd => "zstd",
            ContentEncoding::Snappy => "snappy",
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
    decode_body_metered(raw, content_encoding, limits, &mut |_| true)
}

/// [`decode_body`], asking `meter` before each piece of decompressed
/// output is kept (`meter(bytes)`; `false` stops with
/// [`BodyError::OverBudget`]), so a caller can charge a memory budget for
/// what decompression costs as it costs it, not for the compressed size.
pub fn decode_body_metered<'a>(
    raw: &'a [u8],
    content_encoding: Option<&str>,
    limits: &Limits,
    meter: &mut dyn FnMut(usize) -> bool,
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
            read_capped(decoder, cap, "gzip", meter).map(Cow::Owned)
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
            read_capped(decoder, cap, "zstd", meter).map(Cow::Owned)
        }
        ContentEncoding::Snappy => decode_snappy(raw, cap, meter).map(Cow::Owned),
    }
}

/// A snappy block states its decompressed length up front: it is checked
/// against the cap and metered before anything is allocated, so a small
/// block that claims gigabytes costs nothing.
fn decode_snappy(
    raw: &[u8],
    cap: usize,
    meter: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, BodyError> {
    require_data(raw, "snappy")?;
    let corrupt = |e: snap::Error| BodyError::Corrupt {
        encoding: "snappy",
        message: e.to_string(),
    };
    let len = snap::raw::decompress_len(raw).map_err(corrupt)?;
    if len > cap {
        return Err(BodyError::TooLarge {
            limit: cap,
            compressed: true,
        });
    }
    if !meter(len) {
        return Err(BodyError::OverBudget);
    }
    let mut out = vec![0u8; len];
    let n = snap::raw::Decoder::new()
        .decompress(raw, &mut out)
        .map_err(corrupt)?;
    out.truncate(n);
    Ok(out)
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
/// too large without decompressing the rest. Output is read a piece at a
/// time and each piece is metered before it is kept, so the memory it
/// takes is asked for as it grows (the buffer's doubling may hold up to
/// twice what was metered).
fn read_capped(
    reader: impl Read,
    cap: usize,
    encoding: &'static str,
    meter: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, BodyError> {
    const PIECE: usize = 256 << 10;
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut reader = reader.take(limit);
    let mut out = Vec::new();
    let mut piece = vec![0u8; PIECE];
    loop {
        let n = match reader.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(BodyError::Corrupt {
                    encoding,
                    message: e.to_string(),
                });
            }
        };
        if out.len() + n > cap {
            return Err(BodyError::TooLarge {
                limit: cap,
                compressed: true,
            });
        }
        if !meter(n) {
            return Err(BodyError::OverBudget);
        }
        out.extend_from_slice(&piece[..n]);
    }
    Ok(out)
}
