//! What the supervisor has collected and not yet handed to the sender:
//! points per series (columnar, as the API takes them) and log records,
//! turned into the JSON bodies of `POST /api/v1/runs/{id}/metrics` and
//! `/logs`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// Points of one series, split by whether they carry a step: the API takes
/// steps for all of a series object's points or for none.
#[derive(Debug, Default)]
struct Columns {
    steps: Vec<i64>,
    times: Vec<f64>,
    values: Vec<f64>,
}

/// A log record waiting to be sent.
#[derive(Debug)]
struct LogLine {
    time: f64,
    stderr: bool,
    level: &'static str,
    text: String,
}

/// Points and records since the last [`Batch::take`].
#[derive(Debug, Default)]
pub struct Batch {
    /// (name, has step) → columns; `order` keeps first-seen order so a
    /// body lists series the way they were logged.
    series: HashMap<(String, bool), Columns>,
    order: Vec<(String, bool)>,
    logs: Vec<LogLine>,
    log_bytes: usize,
    points: usize,
}

/// The request bodies of one flush.
#[derive(Debug, Default)]
pub struct Bodies {
    pub metrics: Option<Vec<u8>>,
    pub logs: Option<Vec<u8>>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// One point; `step` `None` for a point with only a time.
    pub fn point(&mut self, name: &str, step: Option<i64>, time: f64, value: f64) {
        let key = (name.to_owned(), step.is_some());
        let cols = match self.series.get_mut(&key) {
            Some(c) => c,
            None => {
                self.order.push(key.clone());
                self.series.entry(key).or_default()
            }
        };
        if let Some(s) = step {
            cols.steps.push(s);
        }
        cols.times.push(time);
        cols.values.push(value);
        self.points += 1;
    }

    pub fn log(&mut self, time: f64, stderr: bool, level: &'static str, text: &str) {
        self.log_bytes += text.len() + 64;
        self.logs.push(LogLine {
            time,
            stderr,
            level,
            text: text.to_owned(),
        });
    }

    /// Whether enough is pending to send now rather than at the next tick
    /// (keeps memory and request sizes bounded under a flood of output).
    pub fn is_large(&self) -> bool {
        self.points >= 20_000 || self.log_bytes >= 2 << 20 || self.logs.len() >= 20_000
    }

    /// The pending data as request bodies; the batch is empty afterwards.
    pub fn take(&mut self) -> Bodies {
        let mut out = Bodies::default();
        if !self.order.is_empty() {
            let mut series = Vec::with_capacity(self.order.len());
            for key in self.order.drain(..) {
                let Some(c) = self.series.remove(&key) else {
                    continue;
                };
                let mut obj = Map::new();
                obj.insert("name".into(), Value::String(key.0));
                if key.1 {
                    obj.insert("step".into(), json!(c.steps));
                }
                obj.insert("time".into(), json!(c.times));
                obj.insert(
                    "value".into(),
                    Value::Array(c.values.iter().map(|v| number(*v)).collect()),
                );
                series.push(Value::Object(obj));
            }
            out.metrics = serde_json::to_vec(&json!({ "series": series })).ok();
        }
        if !self.logs.is_empty() {
            let records: Vec<Value> = self
                .logs
                .drain(..)
                .map(|l| {
                    json!({
                        "time": l.time,
                        "stream": if l.stderr { "stderr" } else { "stdout" },
                        "level": l.level,
                        "text": l.text,
                    })
                })
                .collect();
            out.logs = serde_json::to_vec(&json!({ "records": records })).ok();
        }
        self.series.clear();
        self.points = 0;
        self.log_bytes = 0;
        out
    }
}

use loupe_model::nonfinite::to_json as number;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let mut b = Batch::new();
        b.point("loss", Some(1), 10.5, 0.5);
        b.point("loss", None, 11.0, f64::NAN);
        b.point("loss", Some(2), 12.0, f64::NEG_INFINITY);
        b.log(10.0, true, "error", "boom");
        let out = b.take();
        let m: Value = serde_json::from_slice(&out.metrics.unwrap()).unwrap();
        assert_eq!(
            m,
            json!({"series": [
                {"name": "loss", "step": [1, 2], "time": [10.5, 12.0], "value": [0.5, "-Infinity"]},
                {"name": "loss", "time": [11.0], "value": ["NaN"]},
            ]})
        );
        let l: Value = serde_json::from_slice(&out.logs.unwrap()).unwrap();
        assert_eq!(l["records"][0]["stream"], "stderr");
        let empty = b.take();
        assert!(empty.metrics.is_none() && empty.logs.is_none());
    }
}
