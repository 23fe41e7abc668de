//! OTLP/HTTP on the real server: payloads the real OpenTelemetry Python
//! exporter sent (golden files in `tests/fixtures/otlp`, captured by
//! `capture.py` there) and OTLP/JSON, read back through Loupe's own API;
//! partial success, errors naming the field, tokens and projects, limits.

use std::io::Write;

use serde_json::{Value, json};

use crate::support::{Api, Resp, Server, create_token};

const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON: (&str, &str) = ("content-type", "application/json");

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/otlp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The labels the golden payloads' resource gives every series.
const RESOURCE: [(&str, &str); 4] = [
    ("service", "checkout"),
    ("service_namespace", "shop"),
    ("instance", "checkout-1"),
    ("host", "node-7"),
];

/// A series' values, by its exact labels (the resource's plus `extra`).
fn values(api: &Api, project: &str, name: &str, extra: &[(&str, &str)]) -> Value {
    let mut labels: Vec<(&str, &str)> = RESOURCE.to_vec();
    labels.extend_from_slice(extra);
    exact(api, project, name, &labels)["y"].clone()
}

fn exact(api: &Api, project: &str, name: &str, labels: &[(&str, &str)]) -> Value {
    let keys: Vec<String> = labels.iter().map(|(k, _)| format!("label.{k}")).collect();
    let mut q = vec![("project", project), ("name", name)];
    for ((_, v), k) in labels.iter().zip(&keys) {
        q.push((k.as_str(), v));
    }
    api.get_q("/api/v1/metrics/data", &q).expect(200)
}

fn series_names(api: &Api, project: &str) -> Vec<(String, Value)> {
    api.get_q("/api/v1/metrics/series", &[("project", project)])
        .expect(200)["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["labels"].clone()))
        .collect()
}

fn post(api: &Api, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
    api.post_raw(path, body, headers)
}

#[test]
fn the_python_exporters_metrics_land_as_prometheus_shaped_series() {
    let server = Server::start();
    let api = server.api();
    let r = post(
        &api,
        "/v1/metrics?project=shop",
        &golden("metrics_cumulative.pb"),
        &[PROTOBUF],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type, "application/x-protobuf");
    // An ExportMetricsServiceResponse without partial success: no bytes.
    assert!(r.body.is_empty(), "{:?}", r.body);

    // Counter and up-down counter (cumulative sums), a bool attribute as text.
    let pay = [("route", "/pay"), ("ok", "true")];
    assert_eq!(values(&api, "shop", "http.requests", &pay), json!([5.0]));
    assert_eq!(
        values(
            &api,
            "shop",
            "http.requests",
            &[("route", "/cart"), ("ok", "true")]
        ),
        json!([2.0])
    );
    assert_eq!(values(&api, "shop", "queue.depth", &[]), json!([3.0]));
    // Observable gauge.
    assert_eq!(
        values(&api, "shop", "gpu.temperature", &[("gpu", "0")]),
        json!([71.5])
    );
    assert_eq!(
        values(&api, "shop", "gpu.temperature", &[("gpu", "1")]),
        json!([64.0])
    );

    // Explicit histogram (3, 7, 30, 300 ms): cumulative buckets with +Inf.
    let bucket = |le: &str| {
        values(
            &api,
            "shop",
            "http.server.duration_bucket",
            &[("route", "/pay"), ("le", le)],
        )
    };
    for (le, n) in [
        ("0", 0.0),
        ("5", 1.0),
        ("10", 2.0),
        ("25", 2.0),
        ("50", 3.0),
        ("250", 3.0),
        ("500", 4.0),
        ("10000", 4.0),
        ("+Inf", 4.0),
    ] {
        assert_eq!(bucket(le), json!([n]), "le={le}");
    }
    let route = [("route", "/pay")];
    assert_eq!(
        values(&api, "shop", "http.server.duration_sum", &route),
        json!([340.0])
    );
    assert_eq!(
        values(&api, "shop", "http.server.duration_count", &route),
        json!([4.0])
    );

    // Exponential histogram (100, 1000, 1000, 5000 at scale 1, base √2):
    // bucket i holds (2^(i/2), 2^((i+1)/2)].
    let exp = |le: &str| values(&api, "shop", "request.size_bucket", &[("le", le)]);
    assert_eq!(exp("128"), json!([1.0]));
    assert_eq!(exp("1024"), json!([3.0]));
    assert_eq!(exp(&format!("{}", 2f64.powf(12.5))), json!([4.0]));
    assert_eq!(exp("+Inf"), json!([4.0]));
    assert_eq!(
        values(&api, "shop", "request.size_sum", &[]),
        json!([7100.0])
    );
    assert_eq!(
        values(&api, "shop", "request.size_count", &[]),
        json!([4.0])
    );

    // The resource's other attributes (the SDK's, deployment.environment)
    // are not labels; the four it maps are, on every series.
    for (name, labels) in series_names(&api, "shop") {
        let l = labels.as_object().unwrap();
        assert!(
            !l.keys()
                .any(|k| k.contains("telemetry") || k.contains("deployment")),
            "{name}: {labels}"
        );
        assert_eq!(l["service"], "checkout", "{name}");
        assert_eq!(l["host"], "node-7", "{name}");
    }

    // The next collection, gzip (as `compression=Gzip` sent it): the
    // counter's same total at a later time.
    let r = post(
        &api,
        "/v1/metrics?project=shop",
        &golden("metrics_cumulative.pb.gz"),
        &[PROTOBUF, ("content-encoding", "gzip")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        values(&api, "shop", "http.requests", &pay),
        json!([5.0, 5.0])
    );
    assert_eq!(
        values(&api, "shop", "http.server.duration_count", &route),
        json!([4.0, 4.0])
    );
}

#[test]
fn delta_sums_are_stored_as_the_increments_sent() {
    let server = Server::start();
    let api = server.api();
    for name in ["metrics_delta_1.pb", "metrics_delta_2.pb"] {
        let r = post(&api, "/v1/metrics", &golden(name), &[PROTOBUF]);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // No running total: each collection's increment at its time (3, then 4),
    // so a restart of either side changes nothing.
    assert_eq!(
        values(&api, "default", "jobs.done", &[("queue", "a")]),
        json!([3.0, 4.0])
    );
}

/// OTLP/JSON, as the Collector's `otlphttp` exporter with `encoding: json`
/// sends it: 64-bit integers as strings, enums as numbers.
fn json_metrics() -> Value {
    json!({"resourceMetrics": [{
    "resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "vllm"}},
        {"key": "host.name", "value": {"stringValue": "gpu-3"}},
        {"key": "process.pid", "value": {"intValue": "4242"}}]},
    "scopeMetrics": [{"scope": {"name": "vllm", "attributes": [{"key": "lib", "value": {"stringValue": "x"}}]},
      "metrics": [
        {"name": "vllm.num_requests_running", "gauge": {"dataPoints": [
            {"timeUnixNano": "1733500000000000000", "asInt": "7",
             "attributes": [{"key": "model", "value": {"stringValue": "llama"}}]},
            {"timeUnixNano": "1733500001000000000", "asDouble": 8.5,
             "attributes": [{"key": "model", "value": {"stringValue": "llama"}}]}]}},
        {"name": "tokens", "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [
            {"startTimeUnixNano": "1733499000000000000", "timeUnixNano": "1733500000000000000", "asInt": "900"},
            // A restart: a new start time and a lower value, stored as sent.
            {"startTimeUnixNano": "1733500000500000000", "timeUnixNano": "1733500001000000000", "asInt": "20"},
            // No recorded value: skipped, not refused.
            {"timeUnixNano": "1733500002000000000", "flags": 1}]}},
        {"name": "latency", "summary": {"dataPoints": [
            {"timeUnixNano": "1733500000000000000", "count": "10", "sum": 2.5,
             "quantileValues": [{"quantile": 0.5, "value": 0.2}, {"quantile": 0.99, "value": 0.9}]}]}}
      ]}]}]})
}

#[test]
fn otlp_json_is_read_with_its_encoding_rules_and_answered_in_json() {
    let server = Server::start();
    let api = server.api();
    let body = serde_json::to_vec(&json_metrics()).unwrap();
    let r = post(&api, "/v1/metrics?project=serve", &body, &[JSON]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.json(), json!({}));

    let base = [("service", "vllm"), ("host", "gpu-3")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut l = base.to_vec();
        l.extend_from_slice(extra);
        l
    };
    let running = exact(
        &api,
        "serve",
        "vllm.num_requests_running",
        &with(&[("model", "llama")]),
    );
    assert_eq!(running["y"], json!([7.0, 8.5]));
    assert_eq!(running["x"], json!([1733500000.0, 1733500001.0]));
    assert_eq!(
        exact(&api, "serve", "tokens", &base)["y"],
        json!([900.0, 20.0])
    );
    assert_eq!(
        exact(&api, "serve", "latency", &with(&[("quantile", "0.99")]))["y"],
        json!([0.9])
    );
    assert_eq!(
        exact(&api, "serve", "latency_sum", &base)["y"],
        json!([2.5])
    );
    assert_eq!(
        exact(&api, "serve", "latency_count", &base)["y"],
        json!([10.0])
    );
    // process.pid (resource) and the scope's attributes are not labels.
    for (name, labels) in series_names(&api, "serve") {
        assert!(
            labels.get("process.pid").is_none() && labels.get("lib").is_none(),
            "{name}: {labels}"
        );
    }

    // gzip JSON.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&body).unwrap();
    let r = post(
        &api,
        "/v1/metrics?project=serve2",
        &gz.finish().unwrap(),
        &[JSON, ("content-encoding", "gzip")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        exact(&api, "serve2", "tokens", &base)["y"],
        json!([900.0, 20.0])
    );
}

#[test]
fn refused_points_are_a_partial_success_and_the_rest_is_stored() {
    let server = Server::start();
    let api = server.api();
    let body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "ok", "gauge": {"dataPoints": [{"timeUnixNano": "1733500000000000000", "asDouble": 1.5}]}},
        {"name": "no_time", "gauge": {"dataPoints": [{"asDouble": 2.0}]}},
        {"name": "reserved", "gauge": {"dataPoints": [{"timeUnixNano": "1733500000000000000", "asDouble": 3.0,
            "attributes": [{"key": "project", "value": {"stringValue": "other"}}]}]}},
        {"name": "hist", "histogram": {"aggregationTemporality": 2, "dataPoints": [{"timeUnixNano": "1733500000000000000",
            "count": "3", "bucketCounts": ["1", "2"], "explicitBounds": [1.0, 2.0, 3.0]}]}}
    ]}]}]});
    let r = post(
        &api,
        "/v1/metrics",
        &serde_json::to_vec(&body).unwrap(),
        &[JSON],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let partial = &r.json()["partialSuccess"];
    assert_eq!(partial["rejectedDataPoints"], "3", "{partial}");
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("3 refused; the first: resourceMetrics[0].scopeMetrics[0].metrics[1] (\"no_time\").gauge.dataPoints[0]: time_unix_nano is missing"),
        "{message}"
    );
    assert_eq!(exact(&api, "default", "ok", &[])["y"], json!([1.5]));
    let names: Vec<String> = series_names(&api, "default")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["ok"]);

    // In protobuf, the answer is an ExportMetricsServiceResponse whose
    // error message is there as text.
    let r = post(
        &api,
        "/v1/metrics?project=pb",
        &golden("metrics_cumulative.pb"),
        &[PROTOBUF],
    );
    assert!(r.body.is_empty());
}

#[test]
fn bad_bodies_are_400_naming_the_field_in_the_requests_encoding() {
    let server = Server::start();
    let api = server.api();
    // Not protobuf: a google.rpc.Status in protobuf, its message readable.
    let r = post(
        &api,
        "/v1/metrics",
        b"\xff\xff\xff\xff not protobuf",
        &[PROTOBUF],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.content_type, "application/x-protobuf");
    assert!(
        r.text().contains("not an OTLP protobuf message"),
        "{}",
        r.text()
    );
    // Field 1 (code) = 3, INVALID_ARGUMENT.
    assert_eq!(&r.body[..2], &[0x08, 3]);

    // JSON with a wrong type deep inside: the path names it.
    let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","sum":{"dataPoints":[{"timeUnixNano":"soon","asInt":"7"}]}}]}]}]}"#;
    let r = post(&api, "/v1/metrics", body, &[JSON]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.content_type, "application/json");
    let status = r.json();
    assert_eq!(status["code"], 3);
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].timeUnixNano: "
        ),
        "{message}"
    );

    // A wrong value inside a point's oneof (which serde would otherwise
    // read as "no value"): still a 400 naming it.
    let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"timeUnixNano":"1","asInt":"seven"}]}}]}]}]}"#;
    let r = post(&api, "/v1/metrics", body, &[JSON]);
    assert_eq!(r.status, 400, "{}", r.text());
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with(
            "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].asInt: "
        ),
        "{message}"
    );

    // Not JSON at all.
    let r = post(&api, "/v1/logs", b"{\"resourceLogs\": [", &[JSON]);
    assert_eq!(r.status, 400, "{}", r.text());
    // A type OTLP does not have: 415.
    let r = post(
        &api,
        "/v1/metrics",
        b"x",
        &[("content-type", "text/plain"), ("x-loupe-client", "t")],
    );
    assert_eq!(r.status, 415, "{}", r.text());
    // A gzip body that is not gzip.
    let r = post(
        &api,
        "/v1/metrics",
        b"plain",
        &[PROTOBUF, ("content-encoding", "gzip")],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(series_names(&api, "default").is_empty());
}

#[test]
fn a_body_over_the_limit_is_413() {
    let server = Server::with_args(&["--max-body-mib", "1"]);
    let api = server.api();
    let big = vec![0u8; 2 << 20];
    let r = post(&api, "/v1/metrics", &big, &[PROTOBUF]);
    assert_eq!(r.status, 413, "{}", r.text());
    // Over the limit once decompressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&big).unwrap();
    let r = post(
        &api,
        "/v1/metrics",
        &gz.finish().unwrap(),
        &[PROTOBUF, ("content-encoding", "gzip")],
    );
    assert_eq!(r.status, 413, "{}", r.text());
}

#[test]
fn tokens_and_projects_hold_for_otlp() {
    let dir = Server::temp_data_dir();
    let ingest_a = create_token(dir.path(), "A", "ingest");
    let read_a = create_token(dir.path(), "A", "read");
    let server = Server::configured(
        "127.0.0.1:0",
        &["--require-auth"],
        Some(dir.path().to_path_buf()),
    );
    let api = server.api();
    let body = golden("metrics_delta_1.pb");
    let bearer = format!("Bearer {ingest_a}");
    let send = |path: &str, headers: &[(&str, &str)]| {
        let mut h = vec![PROTOBUF];
        h.extend_from_slice(headers);
        post(&api, path, &body, &h)
    };
    assert_eq!(send("/v1/metrics", &[]).status, 401);
    assert_eq!(
        send(
            "/v1/metrics",
            &[("authorization", &format!("Bearer {read_a}"))]
        )
        .status,
        403
    );
    // The token's project, named or not, by query or header.
    assert_eq!(
        send("/v1/metrics", &[("authorization", &bearer)]).status,
        200
    );
    assert_eq!(
        send("/v1/metrics?project=A", &[("authorization", &bearer)]).status,
        200
    );
    assert_eq!(
        send(
            "/v1/metrics",
            &[("authorization", &bearer), ("x-loupe-project", "A")]
        )
        .status,
        200
    );
    // Another project's: 403, by query or header.
    let r = send("/v1/metrics?project=B", &[("authorization", &bearer)]);
    assert_eq!(r.status, 403);
    assert_eq!(r.body[..2], [0x08, 7], "PERMISSION_DENIED");
    assert_eq!(
        send(
            "/v1/metrics",
            &[("authorization", &bearer), ("x-loupe-project", "B")]
        )
        .status,
        403
    );
    let logs = post(
        &api,
        "/v1/logs?project=B",
        &golden("logs.pb"),
        &[PROTOBUF, ("authorization", &bearer)],
    );
    assert_eq!(logs.status, 403);
    let reader = api.with_token(&read_a);
    assert_eq!(
        values(&reader, "A", "jobs.done", &[("queue", "a")]),
        json!([3.0])
    );
}

#[test]
fn logs_go_to_their_services_log_run_searchable_and_diagnosed() {
    let server = Server::start();
    let api = server.api();
    let r = post(
        &api,
        "/v1/logs?project=shop",
        &golden("logs.pb"),
        &[PROTOBUF],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty());

    let runs = api
        .get_q(
            "/api/v1/runs",
            &[("project", "shop"), ("tag", "service-logs")],
        )
        .expect(200);
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run["name"], "checkout");
    assert_eq!(run["host"], "node-7");
    let id = run["id"].as_str().unwrap();
    assert!(id.starts_with("svc-checkout-"), "{id}");

    let page = api.get(&format!("/api/v1/runs/{id}/logs")).expect(200);
    let lines = page["records"].as_array().unwrap();
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["level"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("info", "payment accepted"),
            ("warning", "card declined, retrying"),
            ("error", "payment failed")
        ]
    );
    assert_eq!(lines[0]["attributes"]["order_id"], "42");
    assert_eq!(lines[0]["attributes"]["severity_text"], "INFO");
    assert!(lines[0]["attributes"].get("trace_id").is_none());
    // Inside a span: its ids in hex.
    let trace = lines[1]["attributes"]["trace_id"].as_str().unwrap();
    assert_eq!(trace.len(), 32, "{trace}");
    assert!(
        trace
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(
        lines[1]["attributes"]["span_id"].as_str().unwrap().len(),
        16
    );
    assert_eq!(lines[2]["attributes"]["exception.type"], "RuntimeError");
    // The record's own time (2026-12-08), not the time it arrived.
    assert!((lines[0]["time"].as_f64().unwrap() - 1_796_692_912.198).abs() < 1.0);

    // The existing log search finds them.
    let found = api
        .get_q(&format!("/api/v1/runs/{id}/logs"), &[("q", "declined")])
        .expect(200);
    assert_eq!(found["records"].as_array().unwrap().len(), 1);

    // The log-signature diagnosis reads them as a run's: the error line
    // opens an incident on the service's log run, on its host.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let incidents = loop {
        let found =
            api.get(&format!("/api/v1/runs/{id}/incidents")).expect(200)["incidents"].clone();
        if found.as_array().is_some_and(|a| !a.is_empty()) || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let first = &incidents[0];
    assert_eq!(first["host"], "node-7", "{incidents}");
    assert!(
        first["causes"].to_string().contains("payment failed"),
        "{incidents}"
    );

    // A second batch goes to the same run.
    let r = post(
        &api,
        "/v1/logs?project=shop",
        &golden("logs.pb"),
        &[PROTOBUF],
    );
    assert_eq!(r.status, 200);
    let runs = api
        .get_q("/api/v1/runs", &[("project", "shop")])
        .expect(200);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    let page = api.get(&format!("/api/v1/runs/{id}/logs")).expect(200);
    assert_eq!(page["records"].as_array().unwrap().len(), 6);
}

#[test]
fn json_logs_with_structured_bodies_and_refused_records() {
    let server = Server::start();
    let api = server.api();
    let body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"observedTimeUnixNano": "1733500000000000000", "severityText": "fatal",
         "body": {"kvlistValue": {"values": [{"key": "event", "value": {"stringValue": "oom"}},
                                             {"key": "gpu", "value": {"intValue": "3"}}]}},
         "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"},
        {"timeUnixNano": "1733500001000000000", "severityNumber": 9, "body": {"stringValue": "x".repeat(70_000)}}
    ]}]}]});
    let r = post(
        &api,
        "/v1/logs",
        &serde_json::to_vec(&body).unwrap(),
        &[JSON],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let partial = &r.json()["partialSuccess"];
    assert_eq!(partial["rejectedLogRecords"], "1", "{partial}");
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("resourceLogs[0].scopeLogs[0].logRecords[1]: body is 70000 bytes")
    );

    let runs = api
        .get_q("/api/v1/runs", &[("project", "default"), ("tag", "otlp")])
        .expect(200);
    let run = &runs["runs"][0];
    assert_eq!(run["name"], "unknown_service");
    let page = api
        .get(&format!(
            "/api/v1/runs/{}/logs",
            run["id"].as_str().unwrap()
        ))
        .expect(200);
    let line = &page["records"][0];
    assert_eq!(line["level"], "critical");
    assert_eq!(line["time"], json!(1733500000.0));
    assert_eq!(
        serde_json::from_str::<Value>(line["text"].as_str().unwrap()).unwrap(),
        json!({"event": "oom", "gpu": 3})
    );
    assert_eq!(
        line["attributes"]["trace_id"],
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(line["attributes"]["span_id"], "eee19b7ec3c1b174");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_open_grpc_connection_does_not_hold_shutdown_up() {
    let port = free_port();
    let grpc = format!("127.0.0.1:{port}");
    let mut server = Server::with_args(&["--otlp-grpc-listen", &grpc]);
    // An exporter's idle HTTP/2 connection: the client preface and an
    // empty SETTINGS frame, then nothing.
    let mut conn = std::net::TcpStream::connect(&grpc).unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    // A request answered: the server is past its start and hears signals.
    server.api().get("/healthz").expect(200);
    let status = server.sigterm();
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let log = server.stderr();
    assert!(log.contains("OTLP/gRPC listening"), "{log}");
    // The idle connection never answers the GOAWAY: the gRPC side is left
    // after its grace and everything is still flushed.
    assert!(log.contains("everything flushed"), "{log}");
    drop(conn);
}

#[test]
fn grpc_without_tokens_listens_only_on_loopback() {
    let data = Server::temp_data_dir();
    let out = crate::support::loupe_cmd()
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--otlp-grpc-listen",
            "0.0.0.0:0",
            "--data",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OTLP/gRPC may only listen on loopback"),
        "{err}"
    );
}
