//! OTLP metrics (`ExportMetricsServiceRequest`) into Loupe series outside
//! runs, in the shapes Prometheus gives the same data, so a query written
//! for one reads the other.
//!
//! **Names** are kept as the instrument names them, dots included
//! (`http.server.request.duration`): Loupe's series names are any UTF-8 up
//! to 256 bytes, so nothing needs replacing, and the name a user typed into
//! their instrumentation is the name they search for. The unit is not
//! appended. The suffixes below are added with `_`.
//!
//! **Labels**: see [`super::attributes`] (resource attributes `service.name`,
//! `service.namespace`, `service.instance.id`, `host.name` as `service`,
//! `service_namespace`, `instance`, `host`; other resource and scope
//! attributes dropped; point attributes as they are).
//!
//! | OTLP                       | series                                                     |
//! |----------------------------|------------------------------------------------------------|
//! | gauge                      | `name`                                                     |
//! | sum (cumulative or delta, monotonic or not) | `name`, each point's value as sent        |
//! | histogram                  | `name_bucket{le}` (cumulative, `le="+Inf"` last), `name_sum` (when sent), `name_count` |
//! | exponential histogram      | the same three, its buckets converted to cumulative `le` boundaries |
//! | summary                    | `name{quantile}`, `name_sum`, `name_count`                 |
//!
//! **Temporality.** Points are stored as sent. A cumulative sum is a counter
//! as Prometheus has it (a restart shows as a drop, with a new
//! `start_time_unix_nano`, and a rate over it handles the drop as
//! Prometheus does). A delta sum (or delta histogram) stores each point's
//! increment at its time: keeping a running total instead would need state
//! across requests that a restart of Loupe, or two collectors, would get
//! wrong; the increments are what was measured, and their sum over a window
//! is the total.
//!
//! **Exponential histograms**: bucket `i` at scale `s` covers
//! `(base^i, base^(i+1)]` with `base = 2^(2^-s)`; each becomes a cumulative
//! `le` of `base^(i+1)` (negative buckets `le = -base^i`, from the most
//! negative up, leading empty ones left out; the zero bucket `le = zero_threshold`), then `le="+Inf"`
//! with the whole count. A boundary is a series, so a histogram is at most
//! about as many series as it has buckets (160 by the SDKs' default).
//!
//! **Values.** Integers become doubles (exact to 2^53). NaN and ±Inf are
//! stored as values. A point with the flag `NO_RECORDED_VALUE` carries no
//! value (a series that ended) and is skipped, not refused. `le` and
//! `quantile` are written the shortest way that reads back to the same
//! double, without exponent (`0.005`, `1`, `250`).
//!
//! **Refused points** (OTLP's partial success): a point without a time,
//! with a time outside 1970–2255, without a value, a histogram whose bucket
//! counts do not match its bounds, an exponential histogram with a scale
//! outside −10..=20, an attribute `run` or `project` (set by the server), a
//! label given twice, a label set over the key limits, a metric without a
//! name or data. The rest of the request is stored.

use std::collections::HashMap;

use loupe_model::SeriesKey;

use super::attributes::{point_labels, resource_labels};
use super::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use super::proto::common::v1::KeyValue;
use super::proto::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
    metric::Data, number_data_point,
};
use super::{OtlpEncoding, Rejections, decode_message, time_ns};
use crate::error::DecodeError;
use crate::{DecodeErrorKind, Limits, MAX_EXTERNAL_LABELS, Result, SeriesColumns};

/// `DataPointFlags.NO_RECORDED_VALUE`.
const NO_RECORDED_VALUE: u32 = 1;
/// Why a number point without a value is refused.
const NO_VALUE: &str = "has no value (asDouble or asInt)";
/// The scales OTLP allows an exponential histogram.
const EXPONENTIAL_SCALES: std::ops::RangeInclusive<i32> = -10..=20;

/// A decoded metrics request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OtlpMetrics {
    /// One entry per distinct series, in the order first seen; times in
    /// request order. Keys carry no `project` (the server adds it).
    pub series: Vec<(SeriesKey, SeriesColumns)>,
    /// OTLP data points stored (a histogram point is one, whatever the
    /// number of series it fills).
    pub data_points: u64,
    /// Points flagged `NO_RECORDED_VALUE`, skipped.
    pub no_value: u64,
    /// Points refused, and the first reason.
    pub rejected: Rejections,
    /// Metrics without data and points without a value among the refused:
    /// in OTLP/JSON, possibly a oneof that did not read (see `json_check`).
    pub unread_oneofs: u64,
}

impl OtlpMetrics {
    /// Loupe points (samples) to store.
    pub fn points(&self) -> usize {
        self.series.iter().map(|(_, c)| c.len()).sum()
    }
}

/// Decodes an OTLP/HTTP metrics body (after its `Content-Encoding`).
pub fn decode_otlp_metrics(
    body: &[u8],
    encoding: OtlpEncoding,
    limits: &Limits,
) -> Result<OtlpMetrics> {
    let request: ExportMetricsServiceRequest = decode_message(body, encoding, limits)?;
    let batch = otlp_metrics(&request, limits)?;
    if encoding == OtlpEncoding::Json
        && batch.unread_oneofs > 0
        && let Some(e) = super::json_check::explain_metrics(body)
    {
        return Err(e);
    }
    Ok(batch)
}

/// Maps a decoded request (gRPC hands one over already decoded).
pub fn otlp_metrics(request: &ExportMetricsServiceRequest, limits: &Limits) -> Result<OtlpMetrics> {
    let mut out = Builder {
        limits,
        index: HashMap::new(),
        batch: OtlpMetrics::default(),
        points: 0,
        samples: Vec::new(),
        last: None,
    };
    for (ri, rm) in request.resource_metrics.iter().enumerate() {
        let base = rm
            .resource
            .as_ref()
            .map(|r| resource_labels(&r.attributes))
            .unwrap_or_default();
        for (si, sm) in rm.scope_metrics.iter().enumerate() {
            for (mi, metric) in sm.metrics.iter().enumerate() {
                let at = Place { ri, si, mi, metric };
                out.metric(&at, &base)?;
            }
        }
    }
    Ok(out.batch)
}

/// Where a point is in the request, for error messages.
struct Place<'m> {
    ri: usize,
    si: usize,
    mi: usize,
    metric: &'m Metric,
}

impl Place<'_> {
    fn metric(&self) -> String {
        format!(
            "resourceMetrics[{}].scopeMetrics[{}].metrics[{}] ({:?})",
            self.ri, self.si, self.mi, self.metric.name
        )
    }

    fn point(&self, kind: &str, pi: usize) -> String {
        format!("{}.{kind}.dataPoints[{pi}]", self.metric())
    }
}

/// One series value a data point expands into: a name suffix, an extra
/// label (`le`, `quantile`), the value.
struct Sample {
    suffix: &'static str,
    extra: Option<(&'static str, String)>,
    value: f64,
}

impl Sample {
    fn plain(suffix: &'static str, value: f64) -> Self {
        Sample {
            suffix,
            extra: None,
            value,
        }
    }
}

/// What a data point shares whatever its type.
struct PointHead<'p> {
    attributes: &'p [KeyValue],
    time_unix_nano: u64,
    flags: u32,
}

struct Builder<'l> {
    limits: &'l Limits,
    index: HashMap<SeriesKey, usize>,
    batch: OtlpMetrics,
    /// Loupe points so far, against `max_points_per_request`.
    points: usize,
    /// Reused buffer of one point's samples.
    samples: Vec<Sample>,
    /// The previous point's series, for the next point of the same series.
    last: Option<LastPoint>,
}

impl Builder<'_> {
    fn metric(&mut self, at: &Place<'_>, base: &[(String, String)]) -> Result<()> {
        let metric = at.metric;
        let Some(data) = &metric.data else {
            self.batch.unread_oneofs += 1;
            self.batch.rejected.add(
                || at.metric(),
                "has no data (gauge, sum, histogram, exponentialHistogram or summary)",
            );
            return Ok(());
        };
        if metric.name.is_empty() {
            let n = match data {
                Data::Gauge(g) => g.data_points.len(),
                Data::Sum(s) => s.data_points.len(),
                Data::Histogram(h) => h.data_points.len(),
                Data::ExponentialHistogram(h) => h.data_points.len(),
                Data::Summary(s) => s.data_points.len(),
            };
            for _ in 0..n.max(1) {
                self.batch.rejected.add(|| at.metric(), "has no name");
            }
            return Ok(());
        }
        match data {
            Data::Gauge(g) => self.number_points(at, "gauge", base, &g.data_points),
            Data::Sum(s) => self.number_points(at, "sum", base, &s.data_points),
            Data::Histogram(h) => {
                for (pi, p) in h.data_points.iter().enumerate() {
                    let head = PointHead {
                        attributes: &p.attributes,
                        time_unix_nano: p.time_unix_nano,
                        flags: p.flags,
                    };
                    self.point(at, "histogram", pi, base, head, |s| histogram(p, s))?;
                }
                Ok(())
            }
            Data::ExponentialHistogram(h) => {
                for (pi, p) in h.data_points.iter().enumerate() {
                    let head = PointHead {
                        attributes: &p.attributes,
                        time_unix_nano: p.time_unix_nano,
                        flags: p.flags,
                    };
                    self.point(at, "exponentialHistogram", pi, base, head, |s| {
                        exponential_histogram(p, s)
                    })?;
                }
                Ok(())
            }
            Data::Summary(sm) => {
                for (pi, p) in sm.data_points.iter().enumerate() {
                    let head = PointHead {
                        attributes: &p.attributes,
                        time_unix_nano: p.time_unix_nano,
                        flags: p.flags,
                    };
                    self.point(at, "summary", pi, base, head, |s| summary(p, s))?;
                }
                Ok(())
            }
        }
    }

    fn number_points(
        &mut self,
        at: &Place<'_>,
        kind: &str,
        base: &[(String, String)],
        points: &[NumberDataPoint],
    ) -> Result<()> {
        for (pi, p) in points.iter().enumerate() {
            let head = PointHead {
                attributes: &p.attributes,
                time_unix_nano: p.time_unix_nano,
                flags: p.flags,
            };
            self.point(at, kind, pi, base, head, |s| {
                let value = match p.value {
                    Some(number_data_point::Value::AsDouble(v)) => v,
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    None => return Err(NO_VALUE.into()),
                };
                s.push(Sample::plain("", value));
                Ok(())
            })?;
        }
        Ok(())
    }

    /// One data point: its samples stored whole, or the point refused
    /// whole (never half a histogram).
    fn point(
        &mut self,
        at: &Place<'_>,
        kind: &str,
        pi: usize,
        base: &[(String, String)],
        head: PointHead<'_>,
        samples: impl FnOnce(&mut Vec<Sample>) -> Result<(), String>,
    ) -> Result<()> {
        if head.flags & NO_RECORDED_VALUE != 0 {
            self.batch.no_value += 1;
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.samples);
        buf.clear();
        let result = self.point_samples(at, base, &head, &mut buf, samples);
        self.samples = buf;
        match result? {
            Ok(()) => self.batch.data_points += 1,
            Err(why) => {
                if why == NO_VALUE {
                    self.batch.unread_oneofs += 1;
                }
                self.batch.rejected.add(|| at.point(kind, pi), &why);
            }
        }
        Ok(())
    }

    /// Stores a point's samples: `Ok(Err(why))` refuses the point alone,
    /// `Err` the whole request (a limit).
    fn point_samples(
        &mut self,
        at: &Place<'_>,
        base: &[(String, String)],
        head: &PointHead<'_>,
        buf: &mut Vec<Sample>,
        samples: impl FnOnce(&mut Vec<Sample>) -> Result<(), String>,
    ) -> Result<Result<(), String>> {
        let time = match time_ns(head.time_unix_nano).and_then(|t| samples(buf).map(|()| t)) {
            Ok(t) => t,
            Err(why) => return Ok(Err(why)),
        };
        // The next point of the series the previous point went to (the
        // usual shape: a series' points one after another) skips building
        // and hashing its keys.
        if let Some(last) = &self.last
            && last.fits(at.metric, base, head.attributes, buf)
        {
            let indices = last.indices.clone();
            for (s, i) in buf.iter().zip(indices) {
                self.push_at(i, time, s.value)?;
            }
            return Ok(Ok(()));
        }
        let keys = match self.keys(at.metric, base, head.attributes, buf) {
            Ok(keys) => keys,
            Err(why) => return Ok(Err(why)),
        };
        let mut indices = Vec::with_capacity(keys.len());
        for (key, s) in keys.into_iter().zip(buf.iter()) {
            let i = self.series_index(key)?;
            self.push_at(i, time, s.value)?;
            indices.push(i);
        }
        self.last = Some(LastPoint {
            metric: at.metric,
            base: base.as_ptr(),
            attributes: head.attributes.to_vec(),
            layout: buf.iter().map(|s| (s.suffix, s.extra.clone())).collect(),
            indices,
        });
        Ok(Ok(()))
    }

    /// The series keys of a point's samples, or why it cannot have them.
    fn keys(
        &self,
        metric: &Metric,
        base: &[(String, String)],
        attributes: &[KeyValue],
        buf: &[Sample],
    ) -> Result<Vec<SeriesKey>, String> {
        let labels = point_labels(base, attributes)?;
        let extra = usize::from(buf.iter().any(|s| s.extra.is_some()));
        if labels.len() + extra > MAX_EXTERNAL_LABELS {
            return Err(format!(
                "{} labels, over the limit of {MAX_EXTERNAL_LABELS} (the server adds `project`)",
                labels.len() + extra
            ));
        }
        let mut keys = Vec::with_capacity(buf.len());
        for s in buf {
            let name = format!("{}{}", metric.name, s.suffix);
            if name.len() > self.limits.name_bytes() {
                return Err(format!(
                    "name {name:?} is over the limit of {} bytes",
                    self.limits.name_bytes()
                ));
            }
            let mut l = labels.clone();
            if let Some((k, v)) = &s.extra {
                l.push((k.to_string(), v.clone()));
            }
            keys.push(SeriesKey::new(name, l).map_err(|e| e.to_string())?);
        }
        Ok(keys)
    }

    /// The index of `key`'s series in the batch, added when new.
    fn series_index(&mut self, key: SeriesKey) -> Result<usize> {
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        if self.batch.series.len() == self.limits.max_series_per_request {
            return Err(over_limit(format!(
                "more than {} series in one request",
                self.limits.max_series_per_request
            )));
        }
        let cols = SeriesColumns {
            name: key.name().to_string(),
            steps: None,
            times_ns: Vec::new(),
            values: Vec::new(),
        };
        self.batch.series.push((key.clone(), cols));
        self.index.insert(key, self.batch.series.len() - 1);
        Ok(self.batch.series.len() - 1)
    }

    fn push_at(&mut self, i: usize, time: i64, value: f64) -> Result<()> {
        self.points += 1;
        if self.points > self.limits.max_points_per_request {
            return Err(over_limit(format!(
                "more than {} points in one request",
                self.limits.max_points_per_request
            )));
        }
        let cols = &mut self.batch.series[i].1;
        cols.times_ns.push(time);
        cols.values.push(value);
        Ok(())
    }
}

/// Where the previous data point's samples went, and what made them go
/// there: a point of the same metric (by address: the request is not
/// changed while it is mapped) and resource, with equal attributes and the
/// same samples (suffixes, `le`/`quantile`), goes to the same series.
struct LastPoint {
    metric: *const Metric,
    base: *const (String, String),
    attributes: Vec<KeyValue>,
    layout: Vec<(&'static str, Option<(&'static str, String)>)>,
    indices: Vec<usize>,
}

impl LastPoint {
    fn fits(
        &self,
        metric: &Metric,
        base: &[(String, String)],
        attributes: &[KeyValue],
        samples: &[Sample],
    ) -> bool {
        std::ptr::eq(self.metric, metric)
            && std::ptr::eq(self.base, base.as_ptr())
            && self.attributes == attributes
            && self.layout.len() == samples.len()
            && self
                .layout
                .iter()
                .zip(samples)
                .all(|((suffix, extra), s)| *suffix == s.suffix && *extra == s.extra)
    }
}

fn over_limit(message: String) -> DecodeError {
    DecodeError::body(DecodeErrorKind::LimitExceeded, message)
}

/// A bound or quantile as a label value: `+Inf`, `-Inf`, `NaN`, or the
/// shortest decimal that reads back to the same double (`0.005`, `1`).
fn float_label(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn histogram(p: &HistogramDataPoint, out: &mut Vec<Sample>) -> Result<(), String> {
    if !p.bucket_counts.is_empty() {
        if p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            return Err(format!(
                "{} bucket counts for {} explicit bounds: expected one more count than bounds",
                p.bucket_counts.len(),
                p.explicit_bounds.len()
            ));
        }
        let mut cumulative = 0u64;
        for (bound, count) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
            cumulative = cumulative.saturating_add(*count);
            out.push(bucket(float_label(*bound), cumulative));
        }
        cumulative = cumulative.saturating_add(p.bucket_counts[p.explicit_bounds.len()]);
        out.push(bucket("+Inf".into(), cumulative));
    }
    if let Some(sum) = p.sum {
        out.push(Sample::plain("_sum", sum));
    }
    out.push(Sample::plain("_count", p.count as f64));
    Ok(())
}

fn bucket(le: String, cumulative: u64) -> Sample {
    Sample {
        suffix: "_bucket",
        extra: Some(("le", le)),
        value: cumulative as f64,
    }
}

fn exponential_histogram(
    p: &ExponentialHistogramDataPoint,
    out: &mut Vec<Sample>,
) -> Result<(), String> {
    if !EXPONENTIAL_SCALES.contains(&p.scale) {
        return Err(format!(
            "scale {} is outside OTLP's {}..={}",
            p.scale,
            EXPONENTIAL_SCALES.start(),
            EXPONENTIAL_SCALES.end()
        ));
    }
    // base^i = 2^(i * 2^-scale), computed from the index so no error builds up.
    let step = (-f64::from(p.scale)).exp2();
    let power = |i: i64| (i as f64 * step).exp2();
    let mut cumulative = 0u64;
    if let Some(neg) = &p.negative {
        // Bucket i holds values in [-base^(i+1), -base^i): the most negative
        // (the highest index) comes first in cumulative order.
        for (k, count) in neg.bucket_counts.iter().enumerate().rev() {
            // Empty buckets below every value say nothing a later bound does
            // not (the SDKs send an empty negative range for positive-only
            // data): no series for them.
            if cumulative == 0 && *count == 0 {
                continue;
            }
            cumulative = cumulative.saturating_add(*count);
            let i = i64::from(neg.offset) + k as i64;
            out.push(bucket(float_label(-power(i)), cumulative));
        }
    }
    if p.zero_count > 0 || p.negative.is_some() || p.positive.is_some() {
        cumulative = cumulative.saturating_add(p.zero_count);
        out.push(bucket(float_label(p.zero_threshold.abs()), cumulative));
    }
    if let Some(pos) = &p.positive {
        for (k, count) in pos.bucket_counts.iter().enumerate() {
            cumulative = cumulative.saturating_add(*count);
            let i = i64::from(pos.offset) + k as i64;
            out.push(bucket(float_label(power(i + 1)), cumulative));
        }
    }
    out.push(bucket("+Inf".into(), p.count.max(cumulative)));
    if let Some(sum) = p.sum {
        out.push(Sample::plain("_sum", sum));
    }
    out.push(Sample::plain("_count", p.count as f64));
    Ok(())
}

fn summary(p: &SummaryDataPoint, out: &mut Vec<Sample>) -> Result<(), String> {
    for q in &p.quantile_values {
        out.push(Sample {
            suffix: "",
            extra: Some(("quantile", float_label(q.quantile))),
            value: q.value,
        });
    }
    out.push(Sample::plain("_sum", p.sum));
    out.push(Sample::plain("_count", p.count as f64));
    Ok(())
}
