//! Prometheus remote write: what a Prometheus server (or an agent that
//! speaks its protocol: Grafana Alloy, vmagent, the OpenTelemetry
//! collector's exporter) sends to `/api/v1/write`.
//!
//! Two versions, told apart by `Content-Type`:
//! - **1.0** (`application/x-protobuf`, or with `;proto=prometheus.WriteRequest`):
//!   `prometheus.WriteRequest`, each series with its labels spelled out.
//! - **2.0** (`application/x-protobuf;proto=io.prometheus.write.v2.Request`):
//!   `io.prometheus.write.v2.Request`, labels as pairs of references into
//!   one table of strings (`symbols`, whose first entry is the empty string).
//!
//! The body is the protobuf message compressed with snappy's block format
//! (`Content-Encoding: snappy`), which [`crate::decode_body`] undoes before
//! this decoder runs.
//!
//! **Mapping.** The `__name__` label is the series' name; the other labels
//! are its labels, labels with an empty value left out (Prometheus reads an
//! empty label as an absent one). `run` and `project` are Loupe's own: a
//! series carrying one keeps it as `exported_run` / `exported_project`,
//! the way Prometheus keeps a target's label that clashes with its own.
//! Sample timestamps are Unix milliseconds. Values are kept bit for bit,
//! NaN payloads included: Prometheus' staleness marker (the NaN
//! `0x7ff0000000000002`) reaches the store as such, and readers tell it
//! from a NaN the series really had.
//!
//! **Native histograms** are kept as the two series a classic histogram
//! also has, `{name}_count` and `{name}_sum`; their buckets are not stored
//! (counted in [`RemoteWriteBatch::histogram_buckets_dropped`]).
//! **Exemplars** and **metadata** are not stored; exemplars are counted.
//!
//! **A bad series refuses the whole request** (answered 400, which
//! Prometheus does not retry): nothing of it is stored, and the error names
//! the series by index and, where it has one, by name.

use std::collections::HashMap;

use loupe_model::SeriesKey;
use prost::Message;

use crate::error::DecodeError;
use crate::{DecodeErrorKind, Limits, RESERVED_LABELS, Result, SeriesColumns};

pub use loupe_model::stale::STALE_NAN_BITS;

/// Which message a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteWriteVersion {
    V1,
    V2,
}

impl RemoteWriteVersion {
    /// Reads a request's `Content-Type`: `application/x-protobuf`, with
    /// `proto=prometheus.WriteRequest` (1.0, also the default when no
    /// `proto` parameter is given) or `proto=io.prometheus.write.v2.Request`
    /// (2.0). `Err` says what was found, for a 415 answer.
    pub fn from_content_type(content_type: Option<&str>) -> std::result::Result<Self, String> {
        let Some(ct) = content_type else {
            return Ok(RemoteWriteVersion::V1);
        };
        let mut parts = ct.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(format!(
                "Content-Type {ct:?}: remote write sends application/x-protobuf"
            ));
        }
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("proto") {
                return match v.trim().trim_matches('"') {
                    "prometheus.WriteRequest" => Ok(RemoteWriteVersion::V1),
                    "io.prometheus.write.v2.Request" => Ok(RemoteWriteVersion::V2),
                    other => Err(format!(
                        "proto={other:?}: expected prometheus.WriteRequest (remote write 1.0) or io.prometheus.write.v2.Request (2.0)"
                    )),
                };
            }
        }
        Ok(RemoteWriteVersion::V1)
    }
}

/// A decoded request: its series, and what was read but not stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteWriteBatch {
    /// One entry per distinct series in the order first seen.
    pub series: Vec<(SeriesKey, SeriesColumns)>,
    /// Float samples read.
    pub samples: u64,
    /// Native histogram samples read (each stored as a `_count` and a `_sum` point).
    pub histograms: u64,
    /// Buckets of native histograms not stored.
    pub histogram_buckets_dropped: u64,
    /// Exemplars read and not stored.
    pub exemplars_dropped: u64,
}

impl RemoteWriteBatch {
    pub fn points(&self) -> usize {
        self.series.iter().map(|(_, c)| c.len()).sum()
    }
}

/// Decodes a remote-write message (already snappy-decompressed).
pub fn decode_remote_write(
    body: &[u8],
    version: RemoteWriteVersion,
    limits: &Limits,
) -> Result<RemoteWriteBatch> {
    let series = match version {
        RemoteWriteVersion::V1 => {
            let req = v1::WriteRequest::decode(body)
                .map_err(|e| malformed("prometheus.WriteRequest", &e))?;
            req.timeseries
                .into_iter()
                .map(|ts| Incoming {
                    labels: ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                    samples: ts
                        .samples
                        .into_iter()
                        .map(|s| (s.timestamp, s.value))
                        .collect(),
                    histograms: ts.histograms,
                    exemplars: ts.exemplars.len(),
                })
                .collect::<Vec<_>>()
        }
        RemoteWriteVersion::V2 => {
            let req = v2::Request::decode(body)
                .map_err(|e| malformed("io.prometheus.write.v2.Request", &e))?;
            if req.symbols.first().is_some_and(|s| !s.is_empty()) {
                return Err(DecodeError {
                    path: "symbols[0]".into(),
                    message: "the first symbol must be the empty string".into(),
                    kind: DecodeErrorKind::Invalid,
                });
            }
            let mut out = Vec::with_capacity(req.timeseries.len());
            for (i, ts) in req.timeseries.into_iter().enumerate() {
                out.push(Incoming {
                    labels: resolve_refs(&req.symbols, &ts.labels_refs, i)?,
                    samples: ts
                        .samples
                        .into_iter()
                        .map(|s| (s.timestamp, s.value))
                        .collect(),
                    histograms: ts.histograms,
                    exemplars: ts.exemplars.len(),
                });
            }
            out
        }
    };
    Assembler::new(limits).run(series)
}

/// One series as either version sends it.
struct Incoming {
    labels: Vec<(String, String)>,
    samples: Vec<(i64, f64)>,
    histograms: Vec<Histogram>,
    exemplars: usize,
}

fn malformed(message: &str, e: &prost::DecodeError) -> DecodeError {
    DecodeError::body(
        DecodeErrorKind::Malformed,
        format!("not a valid {message} protobuf message: {e}"),
    )
}

/// A 2.0 series' label pairs from their references into `symbols`.
fn resolve_refs(symbols: &[String], refs: &[u32], series: usize) -> Result<Vec<(String, String)>> {
    if !refs.len().is_multiple_of(2) {
        return Err(DecodeError {
            path: format!("timeseries[{series}].labels_refs"),
            message: format!("{} references: labels come in name/value pairs", refs.len()),
            kind: DecodeErrorKind::Invalid,
        });
    }
    let symbol = |r: u32| {
        symbols.get(r as usize).cloned().ok_or_else(|| DecodeError {
            path: format!("timeseries[{series}].labels_refs"),
            message: format!("reference {r} is past the {} symbols", symbols.len()),
            kind: DecodeErrorKind::Invalid,
        })
    };
    refs.chunks_exact(2)
        .map(|p| Ok((symbol(p[0])?, symbol(p[1])?)))
        .collect()
}

/// Turns incoming series into keyed columns, enforcing the limits.
struct Assembler<'a> {
    limits: &'a Limits,
    batch: RemoteWriteBatch,
    index: HashMap<SeriesKey, usize>,
    points: usize,
}

impl<'a> Assembler<'a> {
    fn new(limits: &'a Limits) -> Self {
        Self {
            limits,
            batch: RemoteWriteBatch::default(),
            index: HashMap::new(),
            points: 0,
        }
    }

    fn run(mut self, series: Vec<Incoming>) -> Result<RemoteWriteBatch> {
        for (i, ts) in series.into_iter().enumerate() {
            self.batch.exemplars_dropped += ts.exemplars as u64;
            if ts.samples.is_empty() && ts.histograms.is_empty() {
                continue;
            }
            let (name, labels) = name_and_labels(ts.labels, i)?;
            if !ts.samples.is_empty() {
                let slot = self.slot(&name, &labels, i)?;
                for (n, (t, v)) in ts.samples.into_iter().enumerate() {
                    let time = time_ns(t, || format!("timeseries[{i}].samples[{n}].timestamp"))?;
                    self.push(slot, time, v)?;
                    self.batch.samples += 1;
                }
            }
            if !ts.histograms.is_empty() {
                let count = self.slot(&format!("{name}_count"), &labels, i)?;
                let sum = self.slot(&format!("{name}_sum"), &labels, i)?;
                for (n, h) in ts.histograms.into_iter().enumerate() {
                    let time = time_ns(h.timestamp, || {
                        format!("timeseries[{i}].histograms[{n}].timestamp")
                    })?;
                    self.push(count, time, h.count())?;
                    self.push(sum, time, h.sum)?;
                    self.batch.histograms += 1;
                    self.batch.histogram_buckets_dropped += h.buckets() as u64;
                }
            }
        }
        Ok(self.batch)
    }

    /// The batch's column for a series, created on first sight.
    fn slot(&mut self, name: &str, labels: &[(String, String)], i: usize) -> Result<usize> {
        if name.len() > self.limits.name_bytes() {
            return Err(DecodeError {
                path: format!("timeseries[{i}]"),
                message: format!(
                    "series name {:?}… is {} bytes, over the limit of {}",
                    &name[..name.floor_char_boundary(80)],
                    name.len(),
                    self.limits.name_bytes()
                ),
                kind: DecodeErrorKind::LimitExceeded,
            });
        }
        let key = SeriesKey::new(name, labels.iter().cloned()).map_err(|e| DecodeError {
            path: format!("timeseries[{i}]"),
            message: format!("series {name:?}: {e}"),
            kind: DecodeErrorKind::Invalid,
        })?;
        if let Some(&s) = self.index.get(&key) {
            return Ok(s);
        }
        if self.batch.series.len() >= self.limits.max_series_per_request {
            return Err(DecodeError {
                path: format!("timeseries[{i}]"),
                message: format!(
                    "more than {} series in one request",
                    self.limits.max_series_per_request
                ),
                kind: DecodeErrorKind::LimitExceeded,
            });
        }
        let cols = SeriesColumns {
            name: name.to_string(),
            steps: None,
            times_ns: Vec::new(),
            values: Vec::new(),
        };
        self.index.insert(key.clone(), self.batch.series.len());
        self.batch.series.push((key, cols));
        Ok(self.batch.series.len() - 1)
    }

    fn push(&mut self, slot: usize, time_ns: i64, value: f64) -> Result<()> {
        self.points += 1;
        if self.points > self.limits.max_points_per_request {
            return Err(DecodeError::body(
                DecodeErrorKind::LimitExceeded,
                format!(
                    "more than {} points in one request",
                    self.limits.max_points_per_request
                ),
            ));
        }
        let cols = &mut self.batch.series[slot].1;
        cols.times_ns.push(time_ns);
        cols.values.push(value);
        Ok(())
    }
}

/// The `__name__` label apart, reserved labels renamed, empty ones dropped.
fn name_and_labels(
    labels: Vec<(String, String)>,
    series: usize,
) -> Result<(String, Vec<(String, String)>)> {
    let mut name = None;
    let mut out = Vec::with_capacity(labels.len());
    for (k, v) in labels {
        if k == "__name__" {
            if name.is_some() {
                return Err(DecodeError {
                    path: format!("timeseries[{series}].labels"),
                    message: "two __name__ labels".into(),
                    kind: DecodeErrorKind::Invalid,
                });
            }
            name = Some(v);
        } else if !v.is_empty() {
            let k = if RESERVED_LABELS.contains(&k.as_str()) {
                format!("exported_{k}")
            } else {
                k
            };
            out.push((k, v));
        }
    }
    match name {
        Some(n) if !n.is_empty() => Ok((n, out)),
        _ => Err(DecodeError {
            path: format!("timeseries[{series}].labels"),
            message: format!(
                "no __name__ label (labels: {})",
                out.iter()
                    .take(8)
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            kind: DecodeErrorKind::Invalid,
        }),
    }
}

/// Unix milliseconds to nanoseconds, within the times Loupe stores.
fn time_ns(ms: i64, path: impl FnOnce() -> String) -> Result<i64> {
    ms.checked_mul(1_000_000)
        .filter(|t| *t >= 0 && *t as f64 <= crate::MAX_TIME_SECONDS * 1e9)
        .ok_or_else(|| DecodeError {
            path: path(),
            message: format!("{ms} ms is not a time Loupe can store (1970 to 2255)"),
            kind: DecodeErrorKind::Invalid,
        })
}

/// A native histogram sample: only what Loupe keeps of it (its count, sum
/// and timestamp) and the bucket fields it counts; the field numbers are
/// the same in both versions.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(oneof = "HistogramCount", tags = "1, 2")]
    pub count: Option<HistogramCount>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HistogramCount {
    #[prost(uint64, tag = "1")]
    Int(u64),
    #[prost(double, tag = "2")]
    Float(f64),
}

#[derive(Clone, PartialEq, Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

impl Histogram {
    fn count(&self) -> f64 {
        match self.count {
            Some(HistogramCount::Int(n)) => n as f64,
            Some(HistogramCount::Float(f)) => f,
            None => 0.0,
        }
    }

    fn buckets(&self) -> usize {
        self.negative_spans
            .iter()
            .chain(&self.positive_spans)
            .map(|s| s.length as usize)
            .sum()
    }
}

/// `prometheus.WriteRequest` (remote write 1.0), the fields Loupe reads.
pub mod v1 {
    use prost::Message;

    #[derive(Clone, PartialEq, Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Read only to be counted.
        #[prost(bytes = "vec", repeated, tag = "3")]
        pub exemplars: Vec<Vec<u8>>,
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<super::Histogram>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Unix milliseconds.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

/// `io.prometheus.write.v2.Request` (remote write 2.0), the fields Loupe reads.
pub mod v2 {
    use prost::Message;

    #[derive(Clone, PartialEq, Message)]
    pub struct Request {
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct TimeSeries {
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<super::v1::Sample>,
        #[prost(message, repeated, tag = "3")]
        pub histograms: Vec<super::Histogram>,
        /// Read only to be counted.
        #[prost(bytes = "vec", repeated, tag = "4")]
        pub exemplars: Vec<Vec<u8>>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per series: its labels and its (ms, value) samples.
    type Spec<'a> = (Vec<(&'a str, &'a str)>, Vec<(i64, f64)>);

    fn v1_request(series: Vec<Spec<'_>>) -> Vec<u8> {
        v1::WriteRequest {
            timeseries: series
                .into_iter()
                .map(|(labels, samples)| v1::TimeSeries {
                    labels: labels
                        .into_iter()
                        .map(|(k, v)| v1::Label {
                            name: k.into(),
                            value: v.into(),
                        })
                        .collect(),
                    samples: samples
                        .into_iter()
                        .map(|(timestamp, value)| v1::Sample { value, timestamp })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        }
        .encode_to_vec()
    }

    #[test]
    fn content_types_pick_the_version() {
        use RemoteWriteVersion::*;
        let v = RemoteWriteVersion::from_content_type;
        assert_eq!(v(None), Ok(V1));
        assert_eq!(v(Some("application/x-protobuf")), Ok(V1));
        assert_eq!(
            v(Some("application/x-protobuf;proto=prometheus.WriteRequest")),
            Ok(V1)
        );
        assert_eq!(
            v(Some(
                "application/x-protobuf; proto=io.prometheus.write.v2.Request"
            )),
            Ok(V2)
        );
        assert!(v(Some("application/json")).is_err());
        assert!(
            v(Some("application/x-protobuf;proto=foo.Bar"))
                .unwrap_err()
                .contains("foo.Bar")
        );
    }

    #[test]
    fn v1_series_keep_names_labels_ms_times_and_nan_bits() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let body = v1_request(vec![
            (
                vec![
                    ("__name__", "up"),
                    ("job", "node"),
                    ("instance", "a:9100"),
                    ("empty", ""),
                ],
                vec![(1_700_000_000_000, 1.0), (1_700_000_015_000, stale)],
            ),
            (
                vec![("__name__", "x"), ("project", "theirs")],
                vec![(5, 2.5)],
            ),
        ]);
        let b = decode_remote_write(&body, RemoteWriteVersion::V1, &Limits::default()).unwrap();
        assert_eq!(b.samples, 3);
        let (k, c) = &b.series[0];
        assert_eq!(k.name(), "up");
        assert_eq!(
            k.labels(),
            [
                ("instance".into(), "a:9100".into()),
                ("job".into(), "node".into())
            ]
        );
        assert_eq!(
            c.times_ns,
            [1_700_000_000_000_000_000, 1_700_000_015_000_000_000]
        );
        assert_eq!(c.values[1].to_bits(), STALE_NAN_BITS);
        assert_eq!(b.series[1].0.label("exported_project"), Some("theirs"));
        assert_eq!(b.series[1].0.label("project"), None);
    }

    #[test]
    fn v2_labels_resolve_through_symbols() {
        let req = v2::Request {
            symbols: vec![
                "".into(),
                "__name__".into(),
                "rate".into(),
                "job".into(),
                "api".into(),
            ],
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![v1::Sample {
                    value: 4.0,
                    timestamp: 1000,
                }],
                ..Default::default()
            }],
        };
        let b = decode_remote_write(
            &req.encode_to_vec(),
            RemoteWriteVersion::V2,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(b.series[0].0.name(), "rate");
        assert_eq!(b.series[0].0.label("job"), Some("api"));
        assert_eq!(b.series[0].1.times_ns, [1_000_000_000]);

        let mut bad = req.clone();
        bad.timeseries[0].labels_refs = vec![1, 9];
        let e = decode_remote_write(
            &bad.encode_to_vec(),
            RemoteWriteVersion::V2,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(e.path, "timeseries[0].labels_refs");
        assert!(e.message.contains("reference 9"), "{e}");
    }

    #[test]
    fn native_histograms_become_count_and_sum() {
        let req = v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: vec![v1::Label {
                    name: "__name__".into(),
                    value: "latency".into(),
                }],
                histograms: vec![Histogram {
                    count: Some(HistogramCount::Int(12)),
                    sum: 3.5,
                    positive_spans: vec![BucketSpan {
                        offset: 0,
                        length: 4,
                    }],
                    negative_spans: vec![],
                    timestamp: 2000,
                }],
                ..Default::default()
            }],
        };
        let b = decode_remote_write(
            &req.encode_to_vec(),
            RemoteWriteVersion::V1,
            &Limits::default(),
        )
        .unwrap();
        let names: Vec<_> = b
            .series
            .iter()
            .map(|(k, c)| (k.name(), c.values.clone()))
            .collect();
        assert_eq!(
            names,
            [("latency_count", vec![12.0]), ("latency_sum", vec![3.5])]
        );
        assert_eq!((b.histograms, b.histogram_buckets_dropped), (1, 4));
    }

    #[test]
    fn bad_series_are_named() {
        let body = v1_request(vec![
            (vec![("__name__", "ok")], vec![(1, 1.0)]),
            (vec![("job", "x")], vec![(1, 1.0)]),
        ]);
        let e = decode_remote_write(&body, RemoteWriteVersion::V1, &Limits::default()).unwrap_err();
        assert_eq!(e.path, "timeseries[1].labels");
        assert!(
            e.message.contains("no __name__") && e.message.contains("job=\"x\""),
            "{e}"
        );

        let body = v1_request(vec![(vec![("__name__", "t")], vec![(-5, 1.0)])]);
        let e = decode_remote_write(&body, RemoteWriteVersion::V1, &Limits::default()).unwrap_err();
        assert_eq!(e.path, "timeseries[0].samples[0].timestamp");

        let e = decode_remote_write(b"\xff\xff\xff", RemoteWriteVersion::V1, &Limits::default())
            .unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Malformed);
    }

    #[test]
    fn limits_hold() {
        let limits = Limits {
            max_points_per_request: 3,
            ..Limits::default()
        };
        let body = v1_request(vec![(
            vec![("__name__", "t")],
            vec![(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0)],
        )]);
        let e = decode_remote_write(&body, RemoteWriteVersion::V1, &limits).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::LimitExceeded);
    }
}
