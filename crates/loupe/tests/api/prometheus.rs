//! `/metrics`: both text formats, the refusal counters, and what each token
//! may see of it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::{Api, Server, create_token, prom_sample, wait_for};

/// What Prometheus 2.x sends on every scrape.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

#[test]
fn openmetrics_for_prometheus_and_the_same_samples_as_text() {
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "om", "project": "p"}));
    api.post_metrics(
        "om",
        &json!({"series": [{"name": "loss", "step": [1, 2, 3], "value": [3, 2, 1]}]}),
    );
    let om = api.get_h("/metrics", &[("Accept", PROMETHEUS_ACCEPT)]);
    assert_eq!(om.status, 200);
    assert_eq!(
        om.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let om = om.text();
    assert!(om.ends_with("# EOF\n"), "{om}");
    // OpenMetrics names a counter's family without `_total`; its sample
    // keeps it, so queries and alerts see the same names in both formats.
    for (family, kind) in [
        ("loupe_ingest_points", "counter"),
        ("loupe_tsdb_damage_found", "counter"),
        ("loupe_http_refused_requests", "counter"),
        ("loupe_tsdb_series", "gauge"),
        ("loupe_wal_fsync_seconds", "histogram"),
        ("loupe_build", "info"),
    ] {
        assert!(
            om.contains(&format!("\n# TYPE {family} {kind}\n")),
            "{family}: {om}"
        );
    }
    assert_eq!(prom_sample(&om, "loupe_ingest_points_total"), Some(3.0));

    let text = api.get("/metrics");
    assert_eq!(
        text.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = text.text();
    assert!(text.contains("\n# TYPE loupe_ingest_points_total counter\n"));
    assert!(!text.contains("# EOF"));
    let series = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(n, _)| n.replace(".0\"", "\"")))
            .collect();
        v.sort();
        v
    };
    assert_eq!(series(&om), series(&text));
}

/// Issue 19: requests the guard refuses and connections over the cap are
/// counted, by reason.
#[test]
fn refused_requests_and_connections_are_counted() {
    let server = Server::with_args(&["--max-connections", "1"]);
    let api = server.api();
    let refused = |reason: &str| {
        prom_sample(
            &api.prometheus(),
            &format!("loupe_http_refused_requests_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(refused("host_not_allowed"), Some(0.0));
    api.get_h("/api/v1/runs", &[("Host", "evil.example")])
        .expect_error(403, "Host");
    api.post_raw("/api/v1/runs", b"{}", &[("Content-Type", "text/plain")])
        .expect_error(415, "");
    api.post_raw(
        "/api/v1/runs",
        b"{}",
        &[
            ("Content-Type", "application/json"),
            ("Origin", "https://evil.example"),
        ],
    )
    .expect_error(403, "Origin");
    assert_eq!(refused("host_not_allowed"), Some(1.0));
    assert_eq!(refused("unsupported_media_type"), Some(1.0));
    assert_eq!(refused("origin_not_allowed"), Some(1.0));

    // One connection held open fills the cap; the next is refused.
    let held = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(server.addr).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut answer = String::new();
    let _ = over.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(held);
    let count = wait_for(Duration::from_secs(5), "a free connection", || {
        api.try_get("/metrics", &[])
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| prom_sample(&r.text(), "loupe_http_refused_connections_total"))
    });
    // At least that one (the client's pooled keep-alive connection may have
    // held the only slot, making the first one a refusal too).
    assert!(count >= 1.0, "{count}");
}

const RULES: &str = r#"
[settings]
evaluation_interval = "300ms"

[defaults]
stalled_run = false

[[channels]]
name = "ops-pager"
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[rules]]
name = "gpu-hot"
kind = "threshold"
expr = "gpu/temp > 85"
severity = "warning"
"#;

/// A hot GPU on `host`, a series of `project` outside runs (its alerts carry
/// the project, which is how the API and `/metrics` scope them).
fn hot(api: &Api, host: &str, project: &str) {
    api.post_json(
        &format!("/api/v1/metrics?project={project}"),
        &json!({"series": [{"name": "gpu/temp", "labels": {"host": host}, "value": [99]}]}),
    )
    .expect(200);
}

fn firing(api: &Api) -> usize {
    api.get("/api/v1/alerts").expect(200)["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "firing")
        .count()
}

/// Issue 19: a token sees in `/metrics` the alerts and incidents of its own
/// project only, and no delivery figures (they span every project and name
/// the operator's channels); the server without tokens sees everything.
#[test]
fn metrics_show_a_token_only_its_project() {
    let dir = Server::temp_data_dir();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let rules = rules.to_str().unwrap();
    let [admin_a, admin_b, read_a, read_b, ingest_a] = [
        ("A", "admin"),
        ("B", "admin"),
        ("A", "read"),
        ("B", "read"),
        ("A", "ingest"),
    ]
    .map(|(p, r)| create_token(dir.path(), p, r));
    {
        let server = Server::configured(
            "127.0.0.1:0",
            &["--require-auth", "--rules", rules],
            Some(dir.path().to_path_buf()),
        );
        let anon = server.api();
        let (ra, rb) = (anon.with_token(&read_a), anon.with_token(&read_b));
        hot(&anon.with_token(&admin_a), "a1", "A");
        hot(&anon.with_token(&admin_a), "a2", "A");
        hot(&anon.with_token(&admin_b), "b1", "B");
        wait_for(Duration::from_secs(10), "A's two alerts", || {
            (firing(&ra) == 2).then_some(())
        });
        wait_for(Duration::from_secs(10), "B's alert", || {
            (firing(&rb) == 1).then_some(())
        });

        for (api, mine, theirs) in [(&ra, 2.0, "B"), (&rb, 1.0, "A")] {
            let m = api.prometheus();
            assert_eq!(
                prom_sample(&m, "loupe_alerts{state=\"firing\"}"),
                Some(mine),
                "{m}"
            );
            assert!(prom_sample(&m, "loupe_incidents_open").is_some(), "{m}");
            assert!(!m.contains("loupe_alert_notifications"), "{m}");
            assert!(!m.contains("loupe_alert_queue_pending"), "{m}");
            assert!(!m.contains("ops-pager"), "{m}");
            assert!(!m.contains(&format!("\"{theirs}\"")), "{m}");
            // The service's own figures, which name no project, stay.
            assert_eq!(prom_sample(&m, "loupe_ingest_points_total"), Some(3.0));
        }
        // A writer's token reads nothing, /metrics included.
        anon.with_token(&ingest_a)
            .get("/metrics")
            .expect_error(403, "role");
        anon.get("/metrics").expect_error(401, "token");
    }

    // Without tokens (loopback), the operator sees every project's alerts
    // and the deliveries.
    let server = Server::configured(
        "127.0.0.1:0",
        &["--rules", rules],
        Some(dir.path().to_path_buf()),
    );
    let api = server.api();
    for (host, project) in [("a1", "A"), ("a2", "A"), ("b1", "B")] {
        hot(&api, host, project);
    }
    wait_for(Duration::from_secs(10), "all three alerts", || {
        (firing(&api) == 3).then_some(())
    });
    let m = api.prometheus();
    assert_eq!(
        prom_sample(&m, "loupe_alerts{state=\"firing\"}"),
        Some(3.0),
        "{m}"
    );
    assert!(
        m.contains("# TYPE loupe_alert_notifications_total counter"),
        "{m}"
    );
    assert!(m.contains("# TYPE loupe_alert_queue_pending gauge"), "{m}");
}
