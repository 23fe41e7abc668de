//! The OTLP decoders on what the real OpenTelemetry Python exporter sent
//! (`crates/loupe/tests/fixtures/otlp/*.pb`, captured by `capture.py`
//! there), rendered as text and compared with `tests/golden/otlp/*.txt`
//! (`LOUPE_BLESS=1` rewrites them); and the mapping's edges on messages
//! built here.

use std::fmt::Write as _;
use std::path::PathBuf;

use loupe_ingest::Limits;
use loupe_ingest::otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use loupe_ingest::otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use loupe_ingest::otlp::proto::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, exponential_histogram_data_point::Buckets, metric::Data,
    number_data_point,
};
use loupe_ingest::otlp::{
    OtlpEncoding, decode_otlp_logs, decode_otlp_metrics, metrics::otlp_metrics,
};
use prost::Message;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../loupe/tests/fixtures/otlp")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check_golden(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/otlp")
        .join(name);
    if std::env::var_os("LOUPE_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (LOUPE_BLESS=1 writes it)", path.display()));
    assert_eq!(
        got,
        want,
        "{} differs (LOUPE_BLESS=1 rewrites it)",
        path.display()
    );
}

fn render_metrics(body: &[u8]) -> String {
    let m = decode_otlp_metrics(body, OtlpEncoding::Protobuf, &Limits::default()).unwrap();
    let mut out = String::new();
    writeln!(
        out,
        "data_points {} no_value {} rejected {}",
        m.data_points,
        m.no_value,
        m.rejected.message()
    )
    .unwrap();
    for (key, cols) in &m.series {
        for (t, v) in cols.times_ns.iter().zip(&cols.values) {
            writeln!(out, "{key} {t} {v}").unwrap();
        }
    }
    out
}

#[test]
fn python_exporter_metrics_match_their_golden_rendering() {
    for name in [
        "metrics_cumulative.pb",
        "metrics_delta_1.pb",
        "metrics_delta_2.pb",
    ] {
        check_golden(&format!("{name}.txt"), &render_metrics(&fixture(name)));
    }
}

#[test]
fn python_exporter_logs_match_their_golden_rendering() {
    let logs = decode_otlp_logs(
        &fixture("logs.pb"),
        OtlpEncoding::Protobuf,
        1,
        &Limits::default(),
    )
    .unwrap();
    let mut out = String::new();
    for s in &logs.services {
        writeln!(out, "service {} resource {:?}", s.service, s.resource).unwrap();
        for r in &s.records {
            // The capture's own paths and line numbers are not the mapping's business.
            let attrs: Vec<_> = r
                .attributes
                .iter()
                .filter(|(k, _)| !k.starts_with("code."))
                .collect();
            writeln!(
                out,
                "{} {:?} {:?} {:?} {attrs:?}",
                r.time, r.level, r.stream, r.text
            )
            .unwrap();
        }
    }
    check_golden("logs.pb.txt", &out);
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

fn point(t: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

#[test]
fn nan_and_infinities_are_values_and_attributes_become_text() {
    let mut p = point(5, f64::NAN);
    p.attributes = vec![
        kv("i", any_value::Value::IntValue(-3)),
        kv("d", any_value::Value::DoubleValue(0.25)),
        kv("b", any_value::Value::BytesValue(vec![0xab, 0x01])),
        kv(
            "a",
            any_value::Value::ArrayValue(loupe_ingest::otlp::proto::common::v1::ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::StringValue("x".into())),
                }],
            }),
        ),
        kv("empty", any_value::Value::StringValue(String::new())),
    ];
    let req = request(vec![gauge("g", vec![p, point(6, f64::INFINITY)])]);
    let m = decode_otlp_metrics(
        &req.encode_to_vec(),
        OtlpEncoding::Protobuf,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(m.series.len(), 2);
    let (key, cols) = &m.series[0];
    assert_eq!(
        key.to_string(),
        r#"g{a="[\"x\"]",b="ab01",d="0.25",i="-3"}"#
    );
    assert!(cols.values[0].is_nan());
    assert_eq!(m.series[1].1.values, [f64::INFINITY]);
}

#[test]
fn exponential_histograms_with_negative_buckets_are_cumulative_from_the_most_negative() {
    let p = ExponentialHistogramDataPoint {
        time_unix_nano: 10,
        count: 6,
        sum: Some(-1.0),
        scale: 0,
        zero_count: 1,
        zero_threshold: 0.0,
        // Bucket i holds [-2^(i+1), -2^i): -1.5 (i=0) and -3 (i=1).
        negative: Some(Buckets {
            offset: 0,
            bucket_counts: vec![1, 2],
        }),
        // 1.5 (i=0, (1, 2]) and 3 (i=1, (2, 4]).
        positive: Some(Buckets {
            offset: 0,
            bucket_counts: vec![1, 1],
        }),
        ..Default::default()
    };
    let req = request(vec![Metric {
        name: "h".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![p],
            aggregation_temporality: 2,
        })),
        ..Default::default()
    }]);
    let m = otlp_metrics(&req, &Limits::default()).unwrap();
    let got: Vec<String> = m
        .series
        .iter()
        .map(|(k, c)| format!("{k} {}", c.values[0]))
        .collect();
    assert_eq!(
        got,
        [
            r#"h_bucket{le="-2"} 2"#,
            r#"h_bucket{le="-1"} 3"#,
            r#"h_bucket{le="0"} 4"#,
            r#"h_bucket{le="2"} 5"#,
            r#"h_bucket{le="4"} 6"#,
            r#"h_bucket{le="+Inf"} 6"#,
            "h_sum -1",
            "h_count 6",
        ]
    );
}

#[test]
fn a_refused_point_keeps_the_others_and_limits_refuse_the_whole_request() {
    let mut dup = point(1, 1.0);
    dup.attributes = vec![
        kv("k", any_value::Value::StringValue("a".into())),
        kv("k", any_value::Value::StringValue("b".into())),
    ];
    let no_value = NumberDataPoint {
        time_unix_nano: 1,
        ..Default::default()
    };
    let flagged = NumberDataPoint {
        time_unix_nano: 1,
        flags: 1,
        ..Default::default()
    };
    let req = request(vec![gauge(
        "g",
        vec![dup, point(2, 2.0), no_value, flagged, point(u64::MAX, 1.0)],
    )]);
    let m = otlp_metrics(&req, &Limits::default()).unwrap();
    assert_eq!(m.data_points, 1);
    assert_eq!(m.no_value, 1);
    assert_eq!(m.rejected.count, 3);
    assert!(
        m.rejected
            .message()
            .contains(r#"metrics[0] ("g").gauge.dataPoints[0]: attribute "k" is given twice"#),
        "{}",
        m.rejected.message()
    );

    let limits = Limits {
        max_series_per_request: 2,
        ..Limits::default()
    };
    let many: Vec<NumberDataPoint> = (0..3)
        .map(|i| {
            let mut p = point(1, 1.0);
            p.attributes = vec![kv("i", any_value::Value::IntValue(i))];
            p
        })
        .collect();
    let err = otlp_metrics(&request(vec![gauge("g", many)]), &limits).unwrap_err();
    assert!(
        err.to_string()
            .contains("more than 2 series in one request"),
        "{err}"
    );
}

#[test]
fn malformed_bodies_are_errors_never_panics() {
    for body in [
        &b"\xff\xff\xff"[..],
        b"\x0a\x05\x0a",
        b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
    ] {
        let err =
            decode_otlp_metrics(body, OtlpEncoding::Protobuf, &Limits::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("body: not an OTLP protobuf message"),
            "{err}"
        );
    }
    let err = decode_otlp_metrics(
        br#"{"resourceMetrics": 3}"#,
        OtlpEncoding::Json,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("resourceMetrics: invalid type"),
        "{err}"
    );
}
