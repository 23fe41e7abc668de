//! Why an OTLP/JSON metric came out without data or a value.
//!
//! The generated types read OTLP's `oneof`s (a metric's `gauge`/`sum`/…, a
//! point's `asDouble`/`asInt`) through serde's `flatten`, which reads a
//! flattened `Option` that fails as `None`: a wrong type anywhere inside a
//! metric's data would otherwise surface as "has no data", its cause lost.
//! When a JSON request has such metrics or points, this walks the body once
//! more and reads each oneof on its own, so the error names the field
//! (`resourceMetrics[0].scopeMetrics[0].metrics[2].gauge.dataPoints[0].asInt: …`)
//! and the request is refused as malformed, as OTLP asks. Well-formed
//! requests never pay for it.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::proto::metrics::v1::{ExponentialHistogram, Gauge, Histogram, Sum, Summary};
use crate::DecodeErrorKind;
use crate::error::DecodeError;

/// The first oneof of `body` (a JSON metrics request) that does not read,
/// if any.
pub(crate) fn explain_metrics(body: &[u8]) -> Option<DecodeError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    for (ri, rm) in items(&v, "resourceMetrics") {
        for (si, sm) in items(rm, "scopeMetrics") {
            for (mi, m) in items(sm, "metrics") {
                let at = format!("resourceMetrics[{ri}].scopeMetrics[{si}].metrics[{mi}]");
                if let Some(e) = explain_metric(&at, m) {
                    return Some(e);
                }
            }
        }
    }
    None
}

fn explain_metric(at: &str, m: &Value) -> Option<DecodeError> {
    let checks: [(&str, Check); 5] = [
        ("gauge", reads::<Gauge>),
        ("sum", reads::<Sum>),
        ("histogram", reads::<Histogram>),
        ("exponentialHistogram", reads::<ExponentialHistogram>),
        ("summary", reads::<Summary>),
    ];
    for (key, check) in checks {
        let Some(data) = m.get(key) else { continue };
        if let Err((path, message)) = check(data) {
            let path = if path == "." {
                format!("{at}.{key}")
            } else {
                format!("{at}.{key}.{path}")
            };
            return Some(invalid(path, message));
        }
        for (pi, p) in items(data, "dataPoints") {
            let here = format!("{at}.{key}.dataPoints[{pi}]");
            if let Some(x) = p.get("asInt") {
                let ok =
                    x.as_i64().is_some() || x.as_str().is_some_and(|s| s.parse::<i64>().is_ok());
                if !ok {
                    return Some(invalid(
                        format!("{here}.asInt"),
                        format!("{x} is not a 64-bit integer (a number or a string of digits)"),
                    ));
                }
            }
            if let Some(x) = p.get("asDouble")
                && !x.is_number()
            {
                return Some(invalid(
                    format!("{here}.asDouble"),
                    format!(
                        "{x} is not a JSON number (\"NaN\" and \"Infinity\" are not read here: send them in protobuf)"
                    ),
                ));
            }
        }
    }
    None
}

/// Reads a oneof's value as its type: `Err((path, message))` when it does not.
type Check = fn(&Value) -> Result<(), (String, String)>;

fn reads<T: DeserializeOwned>(v: &Value) -> Result<(), (String, String)> {
    serde_path_to_error::deserialize::<_, T>(v)
        .map(drop)
        .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
}

fn items<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = (usize, &'v Value)> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

fn invalid(path: String, message: String) -> DecodeError {
    DecodeError {
        path,
        message,
        kind: DecodeErrorKind::Invalid,
    }
}
