//! `loupe serve --scrape-config`: the real server scrapes HTTP targets
//! served by the test (bodies changed between scrapes), and what it stored
//! is read back through the API and, after a clean stop, from the store
//! itself (to see the staleness markers' exact bits).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loupe_model::SeriesKey;
use loupe_model::stale::{STALE_NAN_BITS, is_stale_marker};
use serde_json::Value;

use crate::support::{Api, Server};

/// An exposition endpoint: answers every GET with the current body (or
/// 503 while marked down).
struct Target {
    addr: String,
    body: Arc<Mutex<String>>,
    up: Arc<AtomicBool>,
}

impl Target {
    fn serve(body: &str) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let body = Arc::new(Mutex::new(body.to_string()));
        let up = Arc::new(AtomicBool::new(true));
        let (b, u) = (body.clone(), up.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                // The request's head; scrapes have no body.
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let text = b.lock().unwrap().clone();
                let reply = if u.load(Ordering::SeqCst) {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    )
                } else {
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = s.write_all(reply.as_bytes());
            }
        });
        Target { addr, body, up }
    }

    fn set(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_string();
    }
}

fn write_config(dir: &Path, yml: &str) -> String {
    let p = dir.join("scrape.yml");
    std::fs::write(&p, yml).unwrap();
    p.display().to_string()
}

/// The values of a series outside runs (`"NaN"` for NaN, stale or not).
fn values(api: &Api, name: &str, labels: &[(&str, &str)]) -> Vec<Value> {
    let keys: Vec<String> = labels.iter().map(|(k, _)| format!("label.{k}")).collect();
    let mut q = vec![("project", "default"), ("name", name)];
    for ((_, v), k) in labels.iter().zip(&keys) {
        q.push((k.as_str(), v));
    }
    let r = api.get_q("/api/v1/metrics/data", &q);
    if r.status != 200 {
        return Vec::new();
    }
    r.json()["y"].as_array().cloned().unwrap_or_default()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "waited 30 s for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn series_names(api: &Api) -> Vec<(String, BTreeMap<String, String>)> {
    api.get_q("/api/v1/metrics/series", &[("project", "default")])
        .expect(200)["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = serde_json::from_value(s["labels"].clone()).unwrap_or_default();
            (s["name"].as_str().unwrap().to_string(), labels)
        })
        .collect()
}

/// The points of a series, read from the stopped server's store.
fn stored(data: &Path, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let tsdb = loupe_tsdb::Tsdb::open(data.join("tsdb"), Default::default()).unwrap();
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.push(("project".into(), "default".into()));
    let key = SeriesKey::new(name, l).unwrap();
    let p = tsdb.read_all(&key).unwrap();
    tsdb.close().unwrap();
    p.values
}

#[test]
fn series_that_leave_and_targets_that_fail_end_with_stale_markers() {
    let t = Target::serve("# TYPE a gauge\na 1\nb{k=\"v\"} 2\n");
    let dir = Server::temp_data_dir();
    let cfg = write_config(
        dir.path(),
        &format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr
        ),
    );
    let mut server = Server::with_args(&["--scrape-config", &cfg]);
    let api = server.api();
    let inst = t.addr.as_str();
    let lb = [("instance", inst), ("job", "app"), ("k", "v")];
    let la = [("instance", inst), ("job", "app")];
    wait_for("b scraped", || !values(&api, "b", &lb).is_empty());
    t.set("a 1\n");
    wait_for("b's stale marker", || {
        values(&api, "b", &lb).iter().any(|v| v == "NaN")
    });
    t.up.store(false, Ordering::SeqCst);
    wait_for("up 0", || values(&api, "up", &la).iter().any(|v| v == 0.0));
    wait_for("a's stale marker", || {
        values(&api, "a", &la).iter().any(|v| v == "NaN")
    });
    let report = series_names(&api);
    for name in [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        assert!(
            report.iter().any(|(n, _)| n == name),
            "{name} missing: {report:?}"
        );
    }
    let metrics = api.get("/metrics").text();
    assert!(metrics.contains("loupe_scrape_targets 1"), "{metrics}");
    assert!(
        !metrics.contains("loupe_scrape_failures_total 0\n"),
        "{metrics}"
    );
    assert!(server.sigterm().success());

    // Bit for bit: ingest, WAL, segments and reads keep StaleNaN's payload.
    let b = stored(server.data_dir(), "b", &lb);
    assert_eq!(
        b.iter().filter(|v| is_stale_marker(**v)).count(),
        1,
        "{b:?}"
    );
    assert_eq!(b.last().unwrap().to_bits(), STALE_NAN_BITS);
    assert!(b[..b.len() - 1].iter().all(|v| *v == 2.0));
    let a = stored(server.data_dir(), "a", &la);
    assert!(a.iter().any(|v| is_stale_marker(*v)), "{a:?}");
    let up = stored(server.data_dir(), "up", &la);
    assert!(up.contains(&1.0) && up.contains(&0.0), "{up:?}");
}

#[test]
fn relabelling_keeps_and_drops_and_honor_labels_decides_clashes() {
    let body = "kept{job=\"inner\"} 1\ndropped 2\nother 3\n";
    let t = Target::serve(body);
    let dir = Server::temp_data_dir();
    let cfg = write_config(
        dir.path(),
        &format!(
            "global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: plain
    static_configs: [{{targets: ['{a}'], labels: {{team: ml}}}}]
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: 'kept|other', action: keep}}
      - {{source_labels: [__name__], regex: other, action: drop}}
  - job_name: honoured
    honor_labels: true
    static_configs: [{{targets: ['{a}']}}]
    relabel_configs:
      - {{source_labels: [__address__], regex: '(.*):\\d+', target_label: host, replacement: '$1'}}
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: kept, action: keep}}
",
            a = t.addr
        ),
    );
    let server = Server::with_args(&["--scrape-config", &cfg]);
    let api = server.api();
    wait_for("both jobs scraped", || {
        series_names(&api)
            .iter()
            .filter(|(n, _)| n == "kept")
            .count()
            == 2
    });
    let all = series_names(&api);
    assert!(
        !all.iter().any(|(n, _)| n == "dropped" || n == "other"),
        "{all:?}"
    );
    let kept: Vec<&BTreeMap<String, String>> = all
        .iter()
        .filter(|(n, _)| n == "kept")
        .map(|(_, l)| l)
        .collect();
    let plain = kept
        .iter()
        .find(|l| l.get("exported_job").is_some())
        .expect("plain");
    assert_eq!(plain["job"], "plain");
    assert_eq!(plain["exported_job"], "inner");
    assert_eq!(plain["team"], "ml");
    let honoured = kept
        .iter()
        .find(|l| l.get("exported_job").is_none())
        .expect("honoured");
    assert_eq!(honoured["job"], "inner");
    assert_eq!(honoured["host"], "127.0.0.1");
    assert_eq!(honoured["instance"], t.addr);
}

#[test]
fn file_sd_changes_are_picked_up_and_a_removed_target_goes_stale() {
    let one = Target::serve("m 1\n");
    let two = Target::serve("m 2\n");
    let dir = Server::temp_data_dir();
    let sd = dir.path().join("targets.json");
    std::fs::write(
        &sd,
        format!(
            r#"[{{"targets":["{}"],"labels":{{"pool":"a"}}}}]"#,
            one.addr
        ),
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: sd\n    file_sd_configs: [{{files: ['{}/*.json']}}]\n",
            dir.path().display()
        ),
    );
    let mut server = Server::with_args(&["--scrape-config", &cfg]);
    let api = server.api();
    let l1 = [
        ("instance", one.addr.as_str()),
        ("job", "sd"),
        ("pool", "a"),
    ];
    let l2 = [
        ("instance", two.addr.as_str()),
        ("job", "sd"),
        ("pool", "b"),
    ];
    wait_for("the first target", || !values(&api, "m", &l1).is_empty());
    // Written whole, then renamed in: a reader never sees half a file.
    let tmp = dir.path().join("targets.tmp");
    std::fs::write(
        &tmp,
        format!(
            r#"[{{"targets":["{}"],"labels":{{"pool":"b"}}}}]"#,
            two.addr
        ),
    )
    .unwrap();
    std::fs::rename(&tmp, &sd).unwrap();
    wait_for("the second target", || !values(&api, "m", &l2).is_empty());
    wait_for("the first's stale marker", || {
        values(&api, "m", &l1).iter().any(|v| v == "NaN")
    });
    assert!(server.sigterm().success());
    let up1 = stored(
        server.data_dir(),
        "up",
        &[
            ("instance", one.addr.as_str()),
            ("job", "sd"),
            ("pool", "a"),
        ],
    );
    assert_eq!(up1.last().unwrap().to_bits(), STALE_NAN_BITS, "{up1:?}");
}
