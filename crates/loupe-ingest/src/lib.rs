//! Loupe's ingest decoders: the bytes of an HTTP request in, model types
//! out. Pure decoding and validation: no IO, no clock (the caller passes
//! "now"), no knowledge of runs or storage.
//!
//! A request goes through two steps:
//! 1. [`decode_body`]: `Content-Encoding` (identity, gzip, zstd, snappy) → bytes,
//!    capped at [`Limits::max_body_bytes`] while decompressing.
//! 2. A decoder: JSON ([`decode_metrics`], [`decode_external_metrics`],
//!    [`decode_logs`]), InfluxDB line protocol ([`decode_line_protocol`]) or
//!    Prometheus remote write ([`decode_remote_write`]).
//!    OTLP metrics and logs, protobuf or JSON ([`otlp`]).
//!    A bad batch is refused whole; the [`DecodeError`] names the first
//!    problem by JSON path (or line number), e.g.
//!    `series[2].value[17]: expected a number or "NaN", "Infinity", "-Infinity", found "nan"`.
//!
//! Both errors carry a stable `code()` and the `http_status()` to answer
//! with. The formats are described on each decoder's module.

mod body;
mod error;
pub mod exposition;
mod fast;
pub mod influx;
mod json;
mod limits;
pub mod line_metrics;
mod logs;
mod metrics;
pub mod otlp;
pub mod relabel;
pub mod remote_write;
pub mod scrape_config;

pub use body::{ContentEncoding, decode_body, decode_body_metered};
pub use error::{BodyError, DecodeError, DecodeErrorKind};
pub use influx::{LineBatch, decode_line_protocol, precision_ns};
pub use json::MAX_TIME_SECONDS;
pub use limits::Limits;
pub use line_metrics::{LineMetricExtractor, LineMetrics, PatternError};
pub use logs::decode_logs;
pub use remote_write::{RemoteWriteBatch, RemoteWriteVersion, decode_remote_write};
/// Results of this crate: a [`DecodeError`] unless said otherwise.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;

pub use metrics::{
    MAX_EXTERNAL_LABELS, MetricBatch, RESERVED_LABELS, SeriesColumns, decode_external_metrics,
    decode_metrics,
};
