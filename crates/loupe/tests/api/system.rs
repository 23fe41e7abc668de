//! The server itself: OpenAPI document, Prometheus metrics, graceful
//! shutdown, and runs that go quiet.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Server, prom_sample, same_value, to_json, value_at, wait_for};

/// `(path, method)` of every route the server's router registers with a
/// plain `.route(…)`, read from its source. Routes registered through
/// `utoipa-axum`'s `routes!` are in the OpenAPI document by construction;
/// a plain `.route` would be served but not documented.
fn router_routes() -> BTreeSet<(String, String)> {
    let src_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../loupe-server/src/routes.rs");
    let src = std::fs::read_to_string(src_path).expect("reading routes.rs");
    let mut out = BTreeSet::new();
    let mut rest = src.as_str();
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        // The call's extent: up to the matching parenthesis.
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let call = &rest[..end];
        let q1 = call.find('"').expect("route path literal");
        let q2 = q1 + 1 + call[q1 + 1..].find('"').unwrap();
        let path = &call[q1 + 1..q2];
        let after = &call[q2 + 1..];
        for method in ["get", "post", "put", "patch", "delete"] {
            let needle = format!("{method}(");
            let mut s = after;
            while let Some(i) = s.find(&needle) {
                let before = s[..i].chars().last();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    out.insert((path.to_string(), method.to_string()));
                }
                s = &s[i + needle.len()..];
            }
        }
        rest = &rest[end..];
    }
    out
}

#[test]
fn openapi_lists_every_route_with_its_methods() {
    let server = Server::start();
    let api = server.api();
    let routes = router_routes();

    let r = api.get("/api/v1/openapi.json");
    assert!(r.content_type.starts_with("application/json"));
    let doc = r.expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete", "head", "options"]
                .contains(&method.as_str())
            {
                assert!(op["responses"].is_object(), "{method} {path} has responses");
                documented.insert((path.clone(), method.clone()));
            }
        }
    }
    assert!(documented.len() >= 30, "too few operations: {documented:?}");
    assert!(documented.contains(&("/api/v1/runs/{id}".into(), "patch".into())));
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );

    // Every documented operation is really routed: a request reaches a
    // handler (an unrouted one gets axum's bare 404 or 405).
    for (path, method) in &documented {
        let p = format!(
            "{}?run=no-such-run&name=x",
            path.replace("{id}", "no-such-run")
        );
        let r = api.request(method, &p);
        assert_ne!(r.status, 405, "{method} {path}");
        assert!(
            !(r.status == 404 && r.body.is_empty()),
            "{method} {path} is not routed"
        );
    }
}

#[test]
fn prometheus_metrics_count_ingest() {
    let server = Server::start();
    let api = server.api();
    let r = api.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    let before = r.text();
    assert_eq!(prom_sample(&before, "loupe_ingest_points_total"), Some(0.0));
    assert!(before.contains("# TYPE loupe_ingest_points_total counter"));
    assert!(before.contains("# TYPE loupe_wal_fsync_seconds histogram"));

    api.create_run(json!({"id": "m", "project": "p"}));
    let steps: Vec<i64> = (0..1234).collect();
    api.post_metrics(
        "m",
        &json!({"series": [{"name": "a", "step": steps, "value": steps}]}),
    );
    api.post_metrics(
        "m",
        &json!({"series": [{"name": "b", "value": [1, 2, 3]}, {"name": "c", "value": [4]}]}),
    );
    api.post_logs(
        "m",
        &json!({"records": (0..10).map(|i| json!({"text": format!("line {i}")})).collect::<Vec<_>>()}),
    );
    let after = api.prometheus();
    assert_eq!(
        prom_sample(&after, "loupe_ingest_points_total"),
        Some(1238.0)
    );
    assert_eq!(
        prom_sample(&after, "loupe_ingest_log_records_total"),
        Some(10.0)
    );
    assert_eq!(
        prom_sample(&after, "loupe_ingest_requests_total"),
        Some(2.0)
    );
    assert_eq!(prom_sample(&after, "loupe_tsdb_series"), Some(3.0));
    // The fsync histogram: cumulative buckets ending in +Inf = count >= 1.
    let buckets: Vec<f64> = after
        .lines()
        .filter(|l| l.starts_with("loupe_wal_fsync_seconds_bucket{le=\""))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(buckets.len() >= 2, "{after}");
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "buckets are cumulative"
    );
    let inf = prom_sample(&after, "loupe_wal_fsync_seconds_bucket{le=\"+Inf\"}").unwrap();
    assert!(inf >= 1.0);
    assert_eq!(
        prom_sample(&after, "loupe_wal_fsync_seconds_count"),
        Some(inf)
    );
    assert!(prom_sample(&after, "loupe_wal_fsync_seconds_sum").unwrap() >= 0.0);
    for part in ["wal", "sqlite", "segments"] {
        let v = prom_sample(&after, &format!("loupe_store_bytes{{part=\"{part}\"}}"))
            .unwrap_or_else(|| panic!("loupe_store_bytes{{part={part}}} missing"));
        if part != "segments" {
            assert!(v > 0.0, "{part} bytes: {v}");
        }
    }
    // Reads are counted, and a refusal too.
    api.get_q("/api/v1/runs/m/series/data", &[("name", "a")])
        .expect(200);
    api.post_raw(
        "/api/v1/runs/m/metrics",
        b"{",
        &[("Content-Type", "application/json")],
    )
    .expect_error(400, "");
    let last = api.prometheus();
    assert!(prom_sample(&last, "loupe_query_requests_total").unwrap() >= 1.0);
    assert_eq!(
        prom_sample(&last, "loupe_rejected_requests_total"),
        Some(1.0)
    );
    assert_eq!(
        prom_sample(&last, "loupe_ingest_points_total"),
        Some(1238.0)
    );
}

#[test]
fn sigterm_exits_cleanly_and_keeps_everything() {
    let mut server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "g", "project": "p"}));
    let n = 20_000i64;
    let mut sent = Vec::new();
    for (k, name) in ["loss", "grad/norm", "lr"].iter().enumerate() {
        let steps: Vec<i64> = (0..n).collect();
        let values: Vec<f64> = steps.iter().map(|&s| value_at(k as u64, s)).collect();
        // Distinct times: a constant column hits a separate bug (see
        // metrics::constant_columns_read_after_flush).
        let times: Vec<f64> = steps
            .iter()
            .map(|&s| 1_732_000_000.0 + s as f64 * 0.5)
            .collect();
        api.post_metrics(
            "g",
            &json!({"series": [{"name": name, "step": steps, "time": times,
                                "value": values.iter().map(|&v| to_json(v)).collect::<Vec<_>>()}]}),
        );
        sent.push((name.to_string(), values));
    }
    let texts: Vec<String> = (0..500).map(|i| format!("shutdown line {i}")).collect();
    api.post_logs(
        "g",
        &json!({"records": texts.iter().map(|t| json!({"text": t})).collect::<Vec<_>>()}),
    );

    let status = server.sigterm();
    assert!(status.success(), "SIGTERM exit: {status:?}");
    assert_eq!(status.code(), Some(0));
    let log = server.stderr();
    assert!(log.contains("everything flushed"), "{log}");

    server.start_again();
    let api = server.api();
    for (name, values) in &sent {
        let got = api.read_all("g", name, "step", 100_000);
        assert_eq!(got.len(), n as usize, "{name}");
        for (i, v) in values.iter().enumerate() {
            assert!(same_value(got.y[i], *v), "{name} step {i}");
        }
    }
    let logs = api.all_logs("g", &[("limit", "10000")]);
    let got: Vec<&str> = logs.iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(got, texts.iter().map(String::as_str).collect::<Vec<_>>());
    // The run summaries pending at shutdown were written too.
    let run = api.run("g");
    for (name, values) in &sent {
        let s = &run["summary"][name];
        assert_eq!(
            s["count"].as_u64(),
            Some(n as u64),
            "summary of {name}: {run}"
        );
        assert!(same_value(
            crate::support::from_json(&s["last"]),
            values[n as usize - 1]
        ));
    }
    assert!(!server.stderr().contains("damaged"));
}

#[test]
fn quiet_runs_become_lost_and_come_back() {
    let server = Server::with_args(&["--lost-after", "2"]);
    let api = server.api();
    let t0 = Instant::now();
    api.create_run(json!({"id": "quiet", "project": "p"}));
    api.create_run(json!({"id": "busy", "project": "p"}));
    api.create_run(json!({"id": "done", "project": "p"}));
    api.patch_json("/api/v1/runs/done", &json!({"status": "finished"}))
        .expect(200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beat = {
        let api = api.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                api.patch_json("/api/v1/runs/busy", &json!({"heartbeat": true}))
                    .expect(200);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    wait_for(Duration::from_secs(15), "the quiet run to be lost", || {
        (api.run("quiet")["status"] == "lost").then_some(())
    });
    let took = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    beat.join().unwrap();
    assert!(took < Duration::from_secs(12), "lost after {took:?}");
    assert_eq!(
        api.run("busy")["status"],
        "running",
        "heartbeats keep a run alive"
    );
    assert_eq!(
        api.run("done")["status"],
        "finished",
        "finished runs are never lost"
    );
    let lost = api.get_q("/api/v1/runs", &[("status", "lost")]).expect(200);
    assert_eq!(lost["runs"].as_array().unwrap().len(), 1);

    // A heartbeat brings it back.
    let back = api
        .patch_json("/api/v1/runs/quiet", &json!({"heartbeat": true}))
        .expect(200);
    assert_eq!(back["status"], "running");
    assert_eq!(api.run("quiet")["status"], "running");
}
