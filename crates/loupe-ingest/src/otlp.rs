//! OpenTelemetry's OTLP: what the OpenTelemetry SDKs and the Collector send
//! to `/v1/metrics` and `/v1/logs` (HTTP) and to `MetricsService/Export` and
//! `LogsService/Export` (gRPC).
//!
//! The messages are the OpenTelemetry project's own generated types (the
//! `opentelemetry-proto` crate): protobuf through `prost`, OTLP/JSON through
//! its serde rules (lowerCamelCase names, 64-bit integers as strings, trace
//! and span ids in hex, enums as numbers).
//!
//! - [`decode_otlp_metrics`]: data points into Loupe series outside runs
//!   (the mapping is on [`metrics`]).
//! - [`decode_otlp_logs`]: log records into Loupe log records, each with the
//!   service it came from (see [`logs`]).
//!
//! **Errors.** A body that is not an OTLP message at all (bad protobuf, bad
//! JSON, a wrong type in a field) is refused whole, the error naming the
//! field. A well-formed request whose *individual points* cannot be stored
//! (no time, no value, a reserved or duplicated label) keeps the rest: the
//! refused points are counted in [`Rejections`], which OTLP answers as a
//! partial success. Limits (points and series per request) refuse the whole
//! request, as for every other protocol.

mod attributes;
mod json_check;
pub mod logs;
pub mod metrics;

pub use logs::{OtlpLogs, ServiceLog, decode_otlp_logs};
pub use metrics::{OtlpMetrics, decode_otlp_metrics};

/// The generated OTLP types, for the server's answers and gRPC services.
pub use opentelemetry_proto::tonic as proto;

use crate::error::DecodeError;
use crate::{DecodeErrorKind, Limits, Result};

/// How an OTLP body is encoded: its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf` (and gRPC's messages).
    Protobuf,
    /// `application/json`: OTLP/JSON.
    Json,
}

impl OtlpEncoding {
    /// The encoding a `Content-Type` names (parameters such as `charset`
    /// ignored); `None` for anything else.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(OtlpEncoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(OtlpEncoding::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` to answer in.
    pub fn content_type(self) -> &'static str {
        match self {
            OtlpEncoding::Protobuf => "application/x-protobuf",
            OtlpEncoding::Json => "application/json",
        }
    }
}

/// Points (or log records) of a request that were not stored, and why:
/// OTLP's partial success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    /// OTLP data points (or log records) refused.
    pub count: u64,
    /// The first refusal, naming the point by its place in the request.
    pub first: Option<String>,
}

impl Rejections {
    pub(crate) fn add(&mut self, place: impl FnOnce() -> String, why: &str) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!("{}: {why}", place()));
        }
    }

    /// The message OTLP's `error_message` carries; empty when nothing was
    /// refused.
    pub fn message(&self) -> String {
        match &self.first {
            None => String::new(),
            Some(first) if self.count == 1 => format!("1 refused: {first}"),
            Some(first) => format!("{} refused; the first: {first}", self.count),
        }
    }
}

/// Decodes a whole OTLP message in either encoding. JSON errors name the
/// field by its path (`resourceMetrics[0].scopeMetrics[0].metrics[1].sum.dataPoints[0].asInt`);
/// protobuf errors name the message and field `prost` stopped at.
fn decode_message<T>(body: &[u8], encoding: OtlpEncoding, limits: &Limits) -> Result<T>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    if body.len() > limits.max_body_bytes {
        return Err(DecodeError::body(
            DecodeErrorKind::LimitExceeded,
            format!("body is over the limit of {} bytes", limits.max_body_bytes),
        ));
    }
    match encoding {
        OtlpEncoding::Protobuf => T::decode(body).map_err(|e| {
            DecodeError::body(
                DecodeErrorKind::Malformed,
                format!("not an OTLP protobuf message: {e}"),
            )
        }),
        OtlpEncoding::Json => {
            let mut de = serde_json::Deserializer::from_slice(body);
            let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let kind = if inner.is_data() {
                    DecodeErrorKind::Invalid
                } else {
                    DecodeErrorKind::Malformed
                };
                DecodeError {
                    path: if path == "." { "body".into() } else { path },
                    message: inner.to_string(),
                    kind,
                }
            })?;
            de.end().map_err(|e| {
                DecodeError::body(
                    DecodeErrorKind::Malformed,
                    format!("trailing characters after the JSON message: {e}"),
                )
            })?;
            Ok(value)
        }
    }
}

/// Unix nanoseconds as Loupe stores them, or why not.
fn time_ns(ns: u64) -> Result<i64, String> {
    if ns == 0 {
        return Err("time_unix_nano is missing (0)".into());
    }
    let max = (crate::MAX_TIME_SECONDS * 1e9) as u64;
    if ns > max {
        return Err(format!(
            "time_unix_nano {ns} is not a time Loupe can store (1970 to 2255)"
        ));
    }
    Ok(ns as i64)
}
