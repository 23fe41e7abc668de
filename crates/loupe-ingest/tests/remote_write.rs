//! Prometheus remote write against a body the real Prometheus sent (see
//! tests/data/remote_write/README.md), decoded and compared with its
//! reviewed golden decoding.

use std::path::Path;

use loupe_ingest::{Limits, RemoteWriteVersion, decode_body, decode_remote_write};
use serde_json::{Value, json};

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/remote_write")
        .join(name)
}

/// The decoded batch as reviewable JSON: series in the order sent, values
/// as their bit patterns where they are not finite.
fn as_json(b: &loupe_ingest::RemoteWriteBatch) -> Value {
    let series: Vec<Value> = b
        .series
        .iter()
        .map(|(k, c)| {
            let values: Vec<Value> = c
                .values
                .iter()
                .map(|v| {
                    if v.is_finite() {
                        json!(v)
                    } else {
                        json!(format!("bits:{:#018x}", v.to_bits()))
                    }
                })
                .collect();
            json!({"name": k.name(), "labels": k.labels(), "times_ns": c.times_ns, "values": values})
        })
        .collect();
    json!({
        "samples": b.samples, "histograms": b.histograms,
        "exemplars_dropped": b.exemplars_dropped, "series": series,
    })
}

#[test]
fn a_body_prometheus_sent_decodes_to_its_golden_series() {
    let raw = std::fs::read(data("prometheus-2.42.0.v1.snappy")).unwrap();
    let limits = Limits::default();
    let proto = decode_body(&raw, Some("snappy"), &limits).unwrap();
    let batch = decode_remote_write(&proto, RemoteWriteVersion::V1, &limits).unwrap();
    let got = serde_json::to_string_pretty(&as_json(&batch)).unwrap() + "\n";
    let golden = data("prometheus-2.42.0.v1.json");
    if std::env::var_os("LOUPE_BLESS").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        got, want,
        "rerun with LOUPE_BLESS=1 and review the difference"
    );

    // What the exporter held, independently of the golden file.
    let value = |name: &str, label: Option<(&str, &str)>| {
        batch
            .series
            .iter()
            .find(|(k, _)| k.name() == name && label.is_none_or(|(l, v)| k.label(l) == Some(v)))
            .map(|(_, c)| c.values[0])
    };
    assert_eq!(
        value("app_requests_total", Some(("route", "/a"))),
        Some(3.0)
    );
    assert_eq!(value("app_queue_depth", None), Some(-2.5));
    assert_eq!(
        value("app_latency_seconds_bucket", Some(("le", "0.1"))),
        Some(1.0)
    );
    assert_eq!(
        value("app_latency_seconds_bucket", Some(("le", "+Inf"))),
        Some(2.0)
    );
    assert_eq!(value("app_latency_seconds_sum", None), Some(0.55));
    assert!(
        batch
            .series
            .iter()
            .all(|(k, _)| k.label("job") == Some("app"))
    );
}

#[test]
fn every_cut_of_the_real_body_is_an_error_not_a_panic() {
    let raw = std::fs::read(data("prometheus-2.42.0.v1.snappy")).unwrap();
    let limits = Limits::default();
    let proto = decode_body(&raw, Some("snappy"), &limits)
        .unwrap()
        .into_owned();
    for cut in 0..proto.len() {
        // A cut message may still parse (protobuf has no end marker); it
        // must never panic, and what it yields must hold whole series.
        if let Ok(b) = decode_remote_write(&proto[..cut], RemoteWriteVersion::V1, &limits) {
            assert!(
                b.series
                    .iter()
                    .all(|(_, c)| c.times_ns.len() == c.values.len())
            );
        }
    }
    for cut in 0..raw.len() {
        let _ = decode_body(&raw[..cut], Some("snappy"), &limits);
    }
}
