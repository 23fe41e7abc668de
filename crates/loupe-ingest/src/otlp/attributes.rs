//! OTLP attributes as Loupe labels.
//!
//! **Resource attributes** say which process sent the data. Four have a
//! meaning in Loupe and become labels under Loupe's names, so diagnosis
//! attaches an OTLP series to the same host and service as the agent's
//! (it keys series outside runs by `host` and `service`):
//!
//! | resource attribute    | label               |
//! |-----------------------|---------------------|
//! | `service.name`        | `service`           |
//! | `service.namespace`   | `service_namespace` |
//! | `service.instance.id` | `instance`          |
//! | `host.name`           | `host`              |
//!
//! Every other resource attribute, and every scope attribute, is dropped:
//! SDKs attach `process.pid`, `telemetry.sdk.version` and the like to every
//! series, and a process id as a label would make every restart a new set
//! of series and spend the project's series limit on nothing.
//!
//! **Data-point attributes** are the series' own dimensions and become
//! labels under their own keys (`http.route` stays `http.route`). Values
//! become text: strings as they are, integers in decimal, doubles in their
//! JSON form (`0.5`, `1.0`; `"NaN"`, `"Infinity"` as text), booleans `true`/`false`, bytes in
//! lowercase hex, arrays and key-value lists as JSON. An attribute with an
//! empty value is left out (as Prometheus drops empty labels).

use loupe_model::label;
use serde_json::Value as Json;

use crate::otlp::proto::common::v1::{AnyValue, KeyValue, any_value::Value};

/// The resource attributes kept, and the label each becomes.
pub(crate) const RESOURCE_LABELS: [(&str, &str); 4] = [
    ("service.name", "service"),
    ("service.namespace", "service_namespace"),
    ("service.instance.id", "instance"),
    ("host.name", label::HOST),
];

/// The labels a resource contributes to each of its series.
pub(crate) fn resource_labels(attributes: &[KeyValue]) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    for (attribute, name) in RESOURCE_LABELS {
        if let Some(value) = attributes
            .iter()
            .find(|kv| kv.key == attribute)
            .and_then(|kv| kv.value.as_ref())
            .map(any_value_text)
            .filter(|v| !v.is_empty())
        {
            labels.push((name.to_string(), value));
        }
    }
    labels
}

/// A data point's attributes as labels, after `base` (the resource's);
/// `Err` names the first attribute that cannot be a label.
pub(crate) fn point_labels(
    base: &[(String, String)],
    attributes: &[KeyValue],
) -> Result<Vec<(String, String)>, String> {
    let mut labels = base.to_vec();
    for kv in attributes {
        if label::RESERVED.contains(&kv.key.as_str()) {
            return Err(format!(
                "attribute {:?} is a label the server sets and may not be sent",
                kv.key
            ));
        }
        let value = kv.value.as_ref().map(any_value_text).unwrap_or_default();
        if value.is_empty() {
            continue;
        }
        if labels.iter().any(|(k, _)| *k == kv.key) {
            return Err(format!(
                "attribute {:?} is given twice (or also set from the resource)",
                kv.key
            ));
        }
        labels.push((kv.key.clone(), value));
    }
    Ok(labels)
}

/// An attribute value as text (see the module documentation).
pub(crate) fn any_value_text(value: &AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        None => String::new(),
        Some(_) => match any_value_json(value) {
            Json::String(s) => s,
            other => other.to_string(),
        },
    }
}

/// An attribute value as JSON: what arrays, key-value lists and structured
/// log bodies are written as.
pub(crate) fn any_value_json(value: &AnyValue) -> Json {
    match &value.value {
        None => Json::Null,
        Some(Value::StringValue(s)) => Json::String(s.clone()),
        Some(Value::BoolValue(b)) => Json::Bool(*b),
        Some(Value::IntValue(i)) => Json::from(*i),
        // NaN and infinities as Loupe writes them everywhere ("NaN", "Infinity").
        Some(Value::DoubleValue(d)) => loupe_model::nonfinite::to_json(*d),
        Some(Value::BytesValue(b)) => Json::String(hex(b)),
        Some(Value::ArrayValue(a)) => Json::Array(a.values.iter().map(any_value_json).collect()),
        Some(Value::KvlistValue(kv)) => Json::Object(
            kv.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().map_or(Json::Null, any_value_json);
                    (kv.key.clone(), v)
                })
                .collect(),
        ),
        // Dictionary references of the profiling signal; never in metrics or logs.
        Some(Value::StringValueStrindex(i)) => Json::String(format!("strindex:{i}")),
    }
}

/// Bytes in lowercase hex (trace and span ids are written so too).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
