//! Prometheus remote write on the real server: 1.0 and 2.0 messages in,
//! series out through Loupe's own read API; the statuses a sender acts on
//! (what it retries, what it drops); tokens and projects. Debian's real
//! Prometheus writing into Loupe is python/tests/test_remote_write.py.

use loupe_ingest::remote_write::{STALE_NAN_BITS, v1, v2};
use prost::Message;
use serde_json::json;

use crate::support::{Server, create_token, external_data as data};

/// What Prometheus sends with a 1.0 request.
pub const HEADERS_V1: &[(&str, &str)] = &[
    ("content-type", "application/x-protobuf"),
    ("content-encoding", "snappy"),
    ("x-prometheus-remote-write-version", "0.1.0"),
];

const HEADERS_V2: &[(&str, &str)] = &[
    (
        "content-type",
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    ),
    ("content-encoding", "snappy"),
    ("x-prometheus-remote-write-version", "2.0.0"),
];

fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).unwrap()
}

/// One series of a request: its labels (`__name__` included) and its
/// (ms, value) samples.
pub type SeriesSpec<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

/// A snappy-compressed 1.0 request.
pub fn v1_body(series: &[SeriesSpec<'_>]) -> Vec<u8> {
    let req = v1::WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| v1::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(k, v)| v1::Label {
                        name: k.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(timestamp, value)| v1::Sample { value, timestamp })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    };
    snappy(&req.encode_to_vec())
}

#[test]
fn a_v1_request_lands_as_series_with_ms_times_and_nan_bits_kept() {
    let server = Server::start();
    let api = server.api();
    let stale = f64::from_bits(STALE_NAN_BITS);
    let body = v1_body(&[
        (
            &[
                ("__name__", "node_load1"),
                ("instance", "n1:9100"),
                ("job", "node"),
            ],
            &[
                (1_733_500_000_000, 0.5),
                (1_733_500_015_000, 0.75),
                (1_733_500_030_000, stale),
            ],
        ),
        (
            &[("__name__", "up"), ("instance", "n1:9100"), ("job", "node")],
            &[(1_733_500_000_000, 1.0)],
        ),
    ]);
    let r = api.post_raw("/api/v1/write?project=fleet", &body, HEADERS_V1);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    // 1.0 senders read no counts.
    assert_eq!(r.header("x-prometheus-remote-write-samples-written"), None);

    let load = data(
        &api,
        "fleet",
        "node_load1",
        &[("instance", "n1:9100"), ("job", "node")],
    );
    assert_eq!(load["x"], json!([1733500000.0, 1733500015.0, 1733500030.0]));
    assert_eq!(load["y"], json!([0.5, 0.75, "NaN"]));
    let up = data(
        &api,
        "fleet",
        "up",
        &[("instance", "n1:9100"), ("job", "node")],
    );
    assert_eq!(up["y"], json!([1.0]));
    let metrics = api.get("/metrics").text();
    assert!(metrics.contains("loupe_ingest_points_total 4"), "{metrics}");
}

#[test]
fn a_v2_request_resolves_its_symbols_and_answers_the_counts() {
    let server = Server::start();
    let api = server.api();
    let req = v2::Request {
        symbols: [
            "",
            "__name__",
            "vllm:num_requests_waiting",
            "model",
            "llama",
        ]
        .map(String::from)
        .to_vec(),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![
                v1::Sample {
                    value: 3.0,
                    timestamp: 1_733_500_000_000,
                },
                v1::Sample {
                    value: 5.0,
                    timestamp: 1_733_500_001_000,
                },
            ],
            ..Default::default()
        }],
    };
    let r = api.post_raw("/api/v1/write", &snappy(&req.encode_to_vec()), HEADERS_V2);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        r.header("x-prometheus-remote-write-samples-written"),
        Some("2")
    );
    assert_eq!(
        r.header("x-prometheus-remote-write-histograms-written"),
        Some("0")
    );
    // No project asked for and an open server: `default`.
    let w = data(
        &api,
        "default",
        "vllm:num_requests_waiting",
        &[("model", "llama")],
    );
    assert_eq!(w["y"], json!([3.0, 5.0]));
}

#[test]
fn statuses_say_what_a_sender_should_retry() {
    let server = Server::start();
    let api = server.api();
    let good = v1_body(&[(&[("__name__", "x")], &[(1_733_500_000_000, 1.0)])]);

    // A type or encoding Loupe does not read: 415, never retried.
    let r = api.post_raw(
        "/api/v1/write",
        &good,
        &[
            (
                "content-type",
                "application/x-protobuf;proto=io.prometheus.write.v9.Request",
            ),
            ("content-encoding", "snappy"),
        ],
    );
    r.expect_error(415, "io.prometheus.write.v9.Request");
    let r = api.post_raw(
        "/api/v1/write",
        &good,
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "br"),
        ],
    );
    r.expect_error(415, "br");

    // Not snappy, not protobuf, a series without a name: 400 naming it,
    // and nothing of the request stored.
    let r = api.post_raw("/api/v1/write", b"not snappy at all", HEADERS_V1);
    r.expect_error(400, "snappy");
    let r = api.post_raw("/api/v1/write", &snappy(b"\xff\xff\xff\xff"), HEADERS_V1);
    r.expect_error(400, "protobuf");
    let mixed = v1_body(&[
        (
            &[("__name__", "kept_if_whole")],
            &[(1_733_500_000_000, 1.0)],
        ),
        (&[("job", "nameless")], &[(1_733_500_000_000, 1.0)]),
    ]);
    let r = api.post_raw("/api/v1/write?project=bad", &mixed, HEADERS_V1);
    let e = r.expect_error(400, "timeseries[1].labels");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("__name__"),
        "{e}"
    );
    let listed = api
        .get_q("/api/v1/metrics/series", &[("project", "bad")])
        .expect(200);
    assert_eq!(listed["series"], json!([]));
}

#[test]
fn tokens_and_projects() {
    let dir = Server::temp_data_dir();
    let ingest_a = create_token(dir.path(), "A", "ingest");
    let read_a = create_token(dir.path(), "A", "read");
    let server = Server::configured(
        "127.0.0.1:0",
        &["--require-auth"],
        Some(dir.path().to_path_buf()),
    );
    let api = server.api();
    let body = v1_body(&[(
        &[("__name__", "x"), ("host", "h")],
        &[(1_733_500_000_000, 1.0)],
    )]);
    let post = |path: &str, token: &str| {
        let auth = format!("Bearer {token}");
        let mut h = HEADERS_V1.to_vec();
        h.push(("authorization", &auth));
        api.post_raw(path, &body, &h)
    };
    assert_eq!(post("/api/v1/write?project=A", &ingest_a).status, 204);
    // The token's project when none is named.
    assert_eq!(post("/api/v1/write", &ingest_a).status, 204);
    post("/api/v1/write?project=B", &ingest_a).expect_error(403, "\"A\"");
    assert_eq!(post("/api/v1/write?project=A", &read_a).status, 403);
    assert_eq!(post("/api/v1/write?project=A", "nope").status, 401);
    let a = api.with_token(&read_a);
    let x = data(&a, "A", "x", &[("host", "h")]);
    assert_eq!(x["y"], json!([1.0]));
}
