//! [`BatchBuilder`]: samples with times → the JSON body of
//! `POST /api/v1/metrics` (series outside runs).
//!
//! ```json
//! {"series":[{"name":"host.cpu.percent","labels":{"host":"h1","cpu":"total"},
//!             "time":[1732000000.5,1732000001.5],"value":[12.5,"NaN"]}]}
//! ```
//!
//! Points of one series across rounds share one entry (columns), so a
//! batch of 5 s at 1 Hz costs one name and label set per series, not five.
//! The server adds `project` and refuses `run`/`project` labels from
//! clients, and allows at most 31 labels: samples that would break either
//! rule are dropped here (and counted) instead of failing the whole batch.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::sample::Sample;

/// Labels the server sets itself and refuses from a client.
const RESERVED_LABELS: &[&str] = &["run", "project"];
/// The server's limit for labels on an external series (32 minus `project`).
const MAX_LABELS: usize = 31;

struct Column {
    name: String,
    /// Sorted by key; the common labels included.
    labels: Vec<(String, String)>,
    times: Vec<f64>,
    values: Vec<f64>,
}

/// Accumulates rounds of samples; see the module docs.
pub struct BatchBuilder {
    common: Vec<(String, String)>,
    index: HashMap<(String, Vec<(String, String)>), usize>,
    columns: Vec<Column>,
    points: usize,
    rejected: u64,
}

impl BatchBuilder {
    /// A builder that adds `common` labels (e.g. `host`) to every series.
    /// A sample's own label of the same name wins.
    pub fn new(common: Vec<(String, String)>) -> BatchBuilder {
        BatchBuilder {
            common,
            index: HashMap::new(),
            columns: Vec::new(),
            points: 0,
            rejected: 0,
        }
    }

    /// Points held now.
    pub fn points(&self) -> usize {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// Samples dropped for reserved or too many labels, since creation.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Adds one round of samples taken at `time` (Unix seconds).
    pub fn add(&mut self, time: f64, samples: &[Sample]) {
        for s in samples {
            let mut labels: Vec<(String, String)> = s.labels.clone();
            for (k, v) in &self.common {
                if !labels.iter().any(|(lk, _)| lk == k) {
                    labels.push((k.clone(), v.clone()));
                }
            }
            if labels.len() > MAX_LABELS
                || labels
                    .iter()
                    .any(|(k, _)| RESERVED_LABELS.contains(&k.as_str()))
            {
                self.rejected += 1;
                continue;
            }
            labels.sort();
            let key = (s.name.clone(), labels);
            let i = match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    let i = self.columns.len();
                    self.columns.push(Column {
                        name: key.0.clone(),
                        labels: key.1.clone(),
                        times: Vec::new(),
                        values: Vec::new(),
                    });
                    self.index.insert(key, i);
                    i
                }
            };
            let c = &mut self.columns[i];
            c.times.push(time);
            c.values.push(s.value);
            self.points += 1;
        }
    }

    /// The JSON body of everything added since the last call, and a fresh
    /// start; `None` when there is nothing.
    pub fn take_body(&mut self) -> Option<Vec<u8>> {
        if self.points == 0 {
            return None;
        }
        let mut out = String::with_capacity(64 + self.points * 24);
        out.push_str("{\"series\":[");
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            push_json_str(&mut out, &c.name);
            out.push_str(",\"labels\":{");
            for (j, (k, v)) in c.labels.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_json_str(&mut out, k);
                out.push(':');
                push_json_str(&mut out, v);
            }
            out.push_str("},\"time\":[");
            for (j, t) in c.times.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_number(&mut out, *t);
            }
            out.push_str("],\"value\":[");
            for (j, v) in c.values.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_number(&mut out, *v);
            }
            out.push_str("]}");
        }
        out.push_str("]}");
        self.index.clear();
        self.columns.clear();
        self.points = 0;
        Some(out.into_bytes())
    }
}

use loupe_model::nonfinite::write_json as push_number;

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_become_columns_with_the_common_labels() {
        let mut b = BatchBuilder::new(vec![("host".into(), "h\"1".into())]);
        b.add(
            1732000000.5,
            &[
                Sample::new("host.cpu.percent", &[("cpu", "total")], 12.5),
                Sample::new("host.load1", &[], f64::NAN),
            ],
        );
        b.add(
            1732000001.5,
            &[
                Sample::new("host.cpu.percent", &[("cpu", "total")], 13.0),
                Sample::new("host.load1", &[], f64::INFINITY),
                Sample::new("bad", &[("run", "x")], 1.0),
            ],
        );
        assert_eq!(b.points(), 4);
        assert_eq!(b.rejected(), 1);
        let body = b.take_body().expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"series":[
                {"name":"host.cpu.percent","labels":{"cpu":"total","host":"h\"1"},
                 "time":[1732000000.5,1732000001.5],"value":[12.5,13]},
                {"name":"host.load1","labels":{"host":"h\"1"},
                 "time":[1732000000.5,1732000001.5],"value":["NaN","Infinity"]}
            ]})
        );
        assert!(b.take_body().is_none());
    }

    #[test]
    fn too_many_labels_are_refused_here_not_by_the_server() {
        let mut b = BatchBuilder::new(vec![("host".into(), "h".into())]);
        let many: Vec<(String, String)> = (0..31).map(|i| (format!("l{i}"), "v".into())).collect();
        b.add(
            1.0,
            &[Sample {
                name: "x".into(),
                labels: many,
                value: 1.0,
            }],
        );
        assert_eq!((b.points(), b.rejected()), (0, 1));
    }
}
