//! OTLP logs (`ExportLogsServiceRequest`) into Loupe log records, grouped
//! by the service that sent them.
//!
//! | OTLP log record                  | Loupe log record                                  |
//! |----------------------------------|---------------------------------------------------|
//! | `time_unix_nano`                 | `time`; `observed_time_unix_nano` when absent, "now" when both are |
//! | `severity_number` 1–8 / 9–12 / 13–16 / 17–20 / 21–24 | `debug` / `info` / `warning` / `error` / `critical`; when 0, read from `severity_text`; else `info` |
//! | `body`                           | `text`: a string as it is; any other value as JSON text |
//! | `attributes`                     | `attributes`, values as text (see `attributes.rs`) |
//! | `trace_id`, `span_id`            | attributes `trace_id`, `span_id` (lowercase hex)  |
//! | `severity_text`, `event_name`    | attributes of the same names, when set            |
//! | —                                | `stream`: `app`                                   |
//!
//! The resource's `service.name` (OpenTelemetry's `unknown_service` when
//! absent) names the [`ServiceLog`] a record belongs to, with `host.name`,
//! `service.namespace` and `service.instance.id`; the server keeps each
//! service's lines together (see docs/protocols.md).
//!
//! **Refused records** (partial success): a body over
//! [`Limits::max_log_text_bytes`], more than [`Limits::max_attributes`]
//! attributes, an attribute name over [`Limits::max_name_bytes`] or value
//! over [`Limits::max_attribute_value_bytes`], a time outside 1970–2255.

use std::collections::BTreeMap;

use loupe_model::{LogLevel, LogRecord, LogStream};

use super::attributes::{any_value_json, any_value_text, hex, resource_labels};
use super::proto::collector::logs::v1::ExportLogsServiceRequest;
use super::proto::logs::v1::LogRecord as OtlpLogRecord;
use super::{OtlpEncoding, Rejections, decode_message, time_ns};
use crate::{DecodeErrorKind, Limits, Result};

/// OpenTelemetry's name for a service that did not say its name.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// One resource's records.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceLog {
    /// `service.name`, or [`UNKNOWN_SERVICE`].
    pub service: String,
    /// The resource's labels as metrics get them (`service`, `host`, …).
    pub resource: Vec<(String, String)>,
    pub records: Vec<LogRecord>,
}

impl ServiceLog {
    /// The resource's `host.name`.
    pub fn host(&self) -> Option<&str> {
        self.resource
            .iter()
            .find(|(k, _)| k == loupe_model::label::HOST)
            .map(|(_, v)| v.as_str())
    }
}

/// A decoded logs request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OtlpLogs {
    /// Per resource, in request order (two resources of one service stay
    /// two entries).
    pub services: Vec<ServiceLog>,
    pub rejected: Rejections,
}

impl OtlpLogs {
    pub fn records(&self) -> usize {
        self.services.iter().map(|s| s.records.len()).sum()
    }
}

/// Decodes an OTLP/HTTP logs body (after its `Content-Encoding`); `now_ns`
/// stamps records with neither time.
pub fn decode_otlp_logs(
    body: &[u8],
    encoding: OtlpEncoding,
    now_ns: i64,
    limits: &Limits,
) -> Result<OtlpLogs> {
    let request: ExportLogsServiceRequest = decode_message(body, encoding, limits)?;
    otlp_logs(&request, now_ns, limits)
}

/// Maps a decoded request (gRPC hands one over already decoded).
pub fn otlp_logs(
    request: &ExportLogsServiceRequest,
    now_ns: i64,
    limits: &Limits,
) -> Result<OtlpLogs> {
    let mut out = OtlpLogs::default();
    let mut total = 0usize;
    for (ri, rl) in request.resource_logs.iter().enumerate() {
        let resource = rl
            .resource
            .as_ref()
            .map(|r| resource_labels(&r.attributes))
            .unwrap_or_default();
        let service = resource
            .iter()
            .find(|(k, _)| k == "service")
            .map_or(UNKNOWN_SERVICE.to_string(), |(_, v)| v.clone());
        let mut records = Vec::new();
        for (si, sl) in rl.scope_logs.iter().enumerate() {
            for (li, r) in sl.log_records.iter().enumerate() {
                total += 1;
                if total > limits.max_log_records_per_request {
                    return Err(crate::error::DecodeError::body(
                        DecodeErrorKind::LimitExceeded,
                        format!(
                            "more than {} log records in one request",
                            limits.max_log_records_per_request
                        ),
                    ));
                }
                match record(r, now_ns, limits) {
                    Ok(rec) => records.push(rec),
                    Err(why) => out.rejected.add(
                        || format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]"),
                        &why,
                    ),
                }
            }
        }
        if !records.is_empty() {
            out.services.push(ServiceLog {
                service,
                resource,
                records,
            });
        }
    }
    Ok(out)
}

fn record(r: &OtlpLogRecord, now_ns: i64, limits: &Limits) -> Result<LogRecord, String> {
    let time = match (r.time_unix_nano, r.observed_time_unix_nano) {
        (0, 0) => now_ns,
        (0, t) | (t, _) => time_ns(t)?,
    };
    let text = match r.body.as_ref().map(|b| &b.value) {
        None | Some(None) => String::new(),
        Some(Some(super::proto::common::v1::any_value::Value::StringValue(s))) => s.clone(),
        Some(Some(_)) => any_value_json(r.body.as_ref().expect("matched Some")).to_string(),
    };
    if text.len() > limits.max_log_text_bytes {
        return Err(format!(
            "body is {} bytes, over the limit of {}",
            text.len(),
            limits.max_log_text_bytes
        ));
    }
    let mut attributes = BTreeMap::new();
    for kv in &r.attributes {
        let value = kv.value.as_ref().map(any_value_text).unwrap_or_default();
        attributes.insert(kv.key.clone(), value);
    }
    for (name, value) in [
        ("trace_id", hex(&r.trace_id)),
        ("span_id", hex(&r.span_id)),
        ("severity_text", r.severity_text.clone()),
        ("event_name", r.event_name.clone()),
    ] {
        if !value.is_empty() {
            attributes.insert(name.to_string(), value);
        }
    }
    if attributes.len() > limits.max_attributes {
        return Err(format!(
            "{} attributes, over the limit of {}",
            attributes.len(),
            limits.max_attributes
        ));
    }
    for (k, v) in &attributes {
        if k.is_empty() || k.len() > limits.name_bytes() {
            return Err(format!(
                "attribute name {k:?} is empty or over {} bytes",
                limits.name_bytes()
            ));
        }
        if v.len() > limits.max_attribute_value_bytes {
            return Err(format!(
                "attribute {k:?} is {} bytes, over the limit of {}",
                v.len(),
                limits.max_attribute_value_bytes
            ));
        }
    }
    Ok(LogRecord {
        time: time as f64 / 1e9,
        stream: LogStream::App,
        level: level(r.severity_number, &r.severity_text),
        text,
        attributes,
    })
}

/// OTLP's severity ranges (each of four steps) onto Loupe's five levels.
fn level(number: i32, text: &str) -> LogLevel {
    match number {
        1..=8 => LogLevel::Debug,
        9..=12 => LogLevel::Info,
        13..=16 => LogLevel::Warning,
        17..=20 => LogLevel::Error,
        21..=24 => LogLevel::Critical,
        _ => text.parse().unwrap_or(LogLevel::Info),
    }
}
