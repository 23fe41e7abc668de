//! Alerting end to end: the real `loupe serve --rules FILE` against real
//! receivers — an HTTP receiver (a `TcpListener` thread here) and a real
//! SMTP server (`python3 -m aiosmtpd`, skipped with a message when the
//! module is not installed).
//!
//! "A receiver down for a minute" is tested with a shorter outage (a few
//! seconds, `max_backoff = "1s"`): the same code path (per-channel queue,
//! exponential backoff, delivery once the receiver answers) at any length.

#[path = "api/support.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Api, Server, wait_for};

const KEY: &str = "test-hmac-key";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on a fixed port; answers 200 to every POST.
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

fn read_request(s: &mut TcpStream) -> Option<Got> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Got { headers, body })
}

impl Receiver {
    fn start_on(port: u16) -> Receiver {
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind receiver");
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).ok();
                        if let Some(req) = read_request(&mut s) {
                            g.lock().unwrap().push(req);
                            let _ = s.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                            );
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver { got, stop, port }
    }

    fn start() -> Receiver {
        Receiver::start_on(0)
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (panics after `within`).
    fn wait(&self, n: usize, within: Duration) -> Vec<Got> {
        wait_for(within, &format!("{n} webhook deliveries"), || {
            (self.count() >= n).then(|| self.all())
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A port nobody listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rules_file(dir: &std::path::Path, body: &str) -> PathBuf {
    let p = dir.join("rules.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn webhook_rules(port: u16, extra: &str) -> String {
    format!(
        r#"
[settings]
evaluation_interval = "300ms"
max_backoff = "1s"
base_url = "http://loupe.test"

[defaults]
stalled_run = false

[[channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{port}/hook"
secret = "{KEY}"
timeout = "2s"

[[rules]]
name = "gpu-hot"
kind = "threshold"
expr = "gpu/temp > 85"
severity = "warning"
{extra}
"#
    )
}

fn serve(rules: &std::path::Path) -> (Server, Api) {
    let s = Server::with_args(&["--rules", rules.to_str().unwrap()]);
    let api = s.api();
    (s, api)
}

fn temp(api: &Api, run: &str, v: f64) {
    api.post_metrics(
        run,
        &json!({"series": [{"name": "gpu/temp", "step": [1], "value": [v]}]}),
    );
}

fn alert_state(api: &Api, rule: &str) -> Option<Value> {
    api.get("/api/v1/alerts").expect(200)["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == rule)
        .cloned()
}

#[test]
fn fires_once_within_5s_then_resolves_with_a_signed_webhook() {
    let recv = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), &webhook_rules(recv.port, ""));
    let (_s, api) = serve(&rules);
    api.create_run(json!({"id": "r1", "project": "p"}));
    temp(&api, "r1", 70.0);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(recv.count(), 0, "normal data: nothing sent");

    let t0 = Instant::now();
    temp(&api, "r1", 92.5);
    let got = recv.wait(1, Duration::from_secs(5));
    let took = t0.elapsed();
    let n = got[0].json();
    assert_eq!(n["status"], "firing");
    assert_eq!(n["alerts"][0]["alert"], "gpu-hot");
    assert_eq!(n["alerts"][0]["state"], "firing");
    assert_eq!(n["alerts"][0]["labels"]["run"], "r1");
    assert_eq!(n["alerts"][0]["value"], 92.5);
    assert_eq!(n["alerts"][0]["links"][0]["url"], "http://loupe.test/r/r1");
    assert!(
        n["alerts"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("gpu/temp = 92.5")
    );
    assert_eq!(
        got[0].header("X-Loupe-Signature").unwrap(),
        loupe_alert::channels::webhook::signature(KEY.as_bytes(), &got[0].body),
        "HMAC over the exact body"
    );
    // Dedup: evaluations keep finding it hot, but it is sent once.
    temp(&api, "r1", 95.0);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(recv.count(), 1, "exactly one notification");
    eprintln!("first notification after {took:?}");

    // Back to normal: one resolve.
    temp(&api, "r1", 60.0);
    let got = recv.wait(2, Duration::from_secs(5));
    let r = got[1].json();
    assert_eq!(r["status"], "resolved");
    assert_eq!(r["alerts"][0]["state"], "resolved");
    assert!(
        r["alerts"][0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("resolved: ")
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(recv.count(), 2);
    assert_eq!(alert_state(&api, "gpu-hot").unwrap()["state"], "resolved");

    let metrics = api.get("/metrics").text();
    assert!(
        metrics
            .contains(r#"loupe_alert_notifications_total{channel="hook",outcome="delivered"} 2"#),
        "{metrics}"
    );
    let list = api.get("/api/v1/alerts").expect(200);
    assert_eq!(list["channels"]["hook"]["delivered"], 2);
}

#[test]
fn a_silence_suppresses_but_keeps_the_record() {
    let recv = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), &webhook_rules(recv.port, ""));
    let (_s, api) = serve(&rules);
    api.create_run(json!({"id": "quiet"}));
    api.create_run(json!({"id": "loud"}));
    let sil = api
        .post_json(
            "/api/v1/silences",
            &json!({"matchers": {"run": "quiet", "alertname": "gpu-*"}, "duration": "1h", "comment": "maintenance"}),
        )
        .expect(201);
    let id = sil["id"].as_str().unwrap().to_string();
    api.post_json(
        "/api/v1/silences",
        &json!({"matchers": {}, "duration": "1h"}),
    )
    .expect_error(400, "matchers");
    temp(&api, "quiet", 99.0);
    let a = wait_for(Duration::from_secs(5), "the silenced alert firing", || {
        alert_state(&api, "gpu-hot").filter(|a| a["state"] == "firing")
    });
    assert_eq!(a["silenced_by"], id.as_str());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(recv.count(), 0, "silenced: not sent");
    // Another run is not silenced.
    temp(&api, "loud", 99.0);
    let got = recv.wait(1, Duration::from_secs(5));
    assert_eq!(got[0].json()["alerts"][0]["labels"]["run"], "loud");
    assert_eq!(
        api.get("/api/v1/silences").expect(200)["silences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    api.delete(&format!("/api/v1/silences/{id}")).expect(204);
    // Ending the silence lets the still-firing alert out.
    let got = recv.wait(2, Duration::from_secs(5));
    assert_eq!(got[1].json()["alerts"][0]["labels"]["run"], "quiet");
}

#[test]
fn a_queued_notification_is_delivered_once_after_a_restart() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), &webhook_rules(port, ""));
    let (mut s, api) = serve(&rules);
    api.create_run(json!({"id": "r1"}));
    temp(&api, "r1", 90.0);
    // The receiver is down: the notification waits in the queue.
    wait_for(Duration::from_secs(10), "a failed attempt", || {
        let v = api.get("/api/v1/alerts").expect(200);
        v["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["state"] == "pending" && n["attempts"].as_u64() >= Some(1))
            .cloned()
    });
    let m = api.get("/metrics").text();
    assert!(
        m.contains(r#"loupe_alert_notifications_total{channel="hook",outcome="retry"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"loupe_alert_queue_pending{channel="hook"} 1"#),
        "{m}"
    );
    s.crash_and_restart();
    let api = s.api();
    let recv = Receiver::start_on(port);
    let got = recv.wait(1, Duration::from_secs(10));
    assert_eq!(got[0].json()["status"], "firing");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        recv.count(),
        1,
        "delivered once, not re-sent after the restart"
    );
    let v = api.get("/api/v1/alerts").expect(200);
    assert_eq!(v["channels"]["hook"]["delivered"], 1);
    assert_eq!(v["channels"]["hook"]["pending"], 0);
}

#[test]
fn a_receiver_down_for_a_while_gets_it_afterwards_once() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), &webhook_rules(port, ""));
    let (_s, api) = serve(&rules);
    api.create_run(json!({"id": "r1"}));
    temp(&api, "r1", 90.0);
    std::thread::sleep(Duration::from_secs(8));
    let recv = Receiver::start_on(port);
    let got = recv.wait(1, Duration::from_secs(5));
    assert_eq!(got[0].json()["alerts"][0]["alert"], "gpu-hot");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(recv.count(), 1, "once");
}

#[test]
fn builtins_group_by_run_and_a_greater_alert_inhibits_a_lesser_one() {
    let recv = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), &webhook_rules(recv.port, ""));
    let (_s, api) = serve(&rules);
    api.create_run(json!({"id": "r9"}));
    // Three things wrong with one run in one evaluation: two NaN losses
    // (critical, built-in) go out in one message; the hot GPU (warning) is
    // muted by them (inhibition) but keeps its record.
    api.post_metrics(
        "r9",
        &json!({"series": [
            {"name": "gpu/temp", "step": [1], "value": [99.0]},
            {"name": "train/loss", "step": [1], "value": ["NaN"]},
            {"name": "val/loss", "step": [1], "value": ["NaN"]}
        ]}),
    );
    let got = recv.wait(1, Duration::from_secs(5));
    let n = got[0].json();
    let mut series: Vec<String> = n["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["alert"], "builtin:nan_loss");
            assert_eq!(a["value"], "NaN");
            a["labels"]["series"].as_str().unwrap().to_string()
        })
        .collect();
    series.sort();
    assert_eq!(series, ["train/loss", "val/loss"], "{n:#}");
    assert_eq!(n["group"]["run"], "r9");
    let hot = alert_state(&api, "gpu-hot").unwrap();
    assert_eq!(hot["state"], "firing");
    assert!(hot["inhibited_by"].is_string(), "{hot:#}");
    api.patch_json("/api/v1/runs/r9", &json!({"status": "crashed"}))
        .expect(200);
    let got = recv.wait(2, Duration::from_secs(5));
    let alerts = got[1].json()["alerts"].clone();
    assert_eq!(alerts[0]["alert"], "builtin:crashed_run", "{alerts:#}");
    assert_eq!(alerts[0]["labels"]["status"], "crashed");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(recv.count(), 2, "the hot GPU stays muted");
}

#[test]
fn rules_api_validates_and_lists() {
    let recv = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), &webhook_rules(recv.port, ""));
    let (mut s, api) = serve(&rules);
    let e = api
        .post_json(
            "/api/v1/alerts/rules",
            &json!({"name": "bad", "kind": "threshold", "expr": "x >> 1", "for": "5q"}),
        )
        .expect_error(400, "field `for`");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"rule "bad""#),
        "{e}"
    );
    api.post_json(
        "/api/v1/alerts/rules",
        &json!({"name": "x", "kind": "nope"}),
    )
    .expect_error(400, "field `kind`");
    api.post_json(
        "/api/v1/alerts/rules",
        &json!({"name": "x", "kind": "absence", "fro": "1m"}),
    )
    .expect_error(400, "fro");
    api.post_json(
        "/api/v1/alerts/rules",
        &json!({"name": "gpu-hot", "kind": "absence", "for": "1m"}),
    )
    .expect_error(400, "rules-file");
    api.post_json(
        "/api/v1/alerts/rules",
        &json!({"name": "quiet", "kind": "absence", "for": "10m"}),
    )
    .expect(201);
    let list = api.get("/api/v1/alerts/rules").expect(200);
    let src = |name: &str| {
        list["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"]["name"] == name)
            .map(|r| r["source"].clone())
    };
    assert_eq!(src("quiet"), Some(json!("api")));
    assert_eq!(src("gpu-hot"), Some(json!("file")));
    assert_eq!(src("builtin:nan_loss"), Some(json!("builtin")));
    assert_eq!(src("builtin:stalled_run"), None, "switched off in the file");
    // API rules survive a restart.
    s.crash_and_restart();
    let api = s.api();
    let list = api.get("/api/v1/alerts/rules").expect(200);
    assert!(
        list["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"]["name"] == "quiet")
    );
    api.delete("/api/v1/alerts/rules/quiet").expect(204);
    api.delete("/api/v1/alerts/rules/quiet")
        .expect_error(404, "quiet");
    let doc = api.get("/api/v1/openapi.json").expect(200);
    assert!(doc["paths"]["/api/v1/silences"].is_object());
}

#[test]
fn rules_check_cli_exits_1_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = rules_file(dir.path(), &webhook_rules(9, ""));
    let out = support::loupe_cmd()
        .args(["rules", "check", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[rules]]\nname = \"hot\"\nkind = \"threshold\"\nexpr = \"t > 85\"\nfor = \"5x\"\n\n[[rules]]\nname = \"slo\"\nkind = \"burn_rate\"\nerrors = \"e\"\n",
    )
    .unwrap();
    let out = support::loupe_cmd()
        .args(["rules", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#"rule "hot": field `for`"#), "{err}");
    assert!(
        err.contains(r#"rule "slo": field `total`: is required"#),
        "{err}"
    );
    // The server refuses to start on it, with the same message.
    let out = support::loupe_cmd()
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(["--rules", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("field `total`"));
}

/// `python3 -m aiosmtpd` on a free port, printing what it receives.
struct Smtp {
    child: Child,
    out: Arc<Mutex<String>>,
    port: u16,
}

impl Smtp {
    fn start() -> Option<Smtp> {
        let ok = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("SKIPPED: the e-mail test needs aiosmtpd (pip install aiosmtpd)");
            return None;
        }
        let port = free_port();
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-c",
                "aiosmtpd.handlers.Debugging",
                "-l",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take()?;
        let out = Arc::new(Mutex::new(String::new()));
        let o = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut o = o.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
        wait_for(Duration::from_secs(10), "aiosmtpd listening", || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Some(Smtp { child, out, port })
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn email_over_real_smtp_with_text_html_and_a_chart() {
    let Some(smtp) = Smtp::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = format!(
        r#"
[settings]
evaluation_interval = "300ms"
max_backoff = "1s"

[[channels]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = {}
tls = "none"
from = "loupe@example.com"
to = ["oncall@example.com"]
timeout = "5s"

[[rules]]
name = "gpu-hot"
kind = "threshold"
expr = "gpu/temp > 85"
"#,
        smtp.port
    );
    let rules = rules_file(dir.path(), &rules);
    let (_s, api) = serve(&rules);
    api.create_run(json!({"id": "m1"}));
    for v in [70.0, 75.0, 80.0] {
        temp(&api, "m1", v);
    }
    std::thread::sleep(Duration::from_millis(600));
    temp(&api, "m1", 97.0);
    let text = wait_for(Duration::from_secs(5), "an e-mail", || {
        let t = smtp.text();
        t.contains("image/png").then_some(t)
    });
    assert!(text.contains("Subject: [FIRING] gpu-hot"), "{text}");
    assert!(text.contains("text/plain"), "{text}");
    assert!(text.contains("text/html"), "{text}");
    assert!(text.contains("oncall@example.com"), "{text}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(smtp.text().matches("Subject: ").count(), 1, "one e-mail");
    temp(&api, "m1", 50.0);
    wait_for(Duration::from_secs(5), "the resolve e-mail", || {
        smtp.text()
            .contains("Subject: [RESOLVED] gpu-hot")
            .then_some(())
    });
}

/// Reads `/api/v1/live?run=RUN` until an event of `kind` arrives.
fn live_event(base: &str, run: &str, kind: &str, within: Duration) -> Value {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /api/v1/live?run={run} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    let mut r = BufReader::new(s);
    let deadline = Instant::now() + within;
    let mut current = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end();
        if let Some(ev) = line.strip_prefix("event: ") {
            current = ev.to_string();
        } else if let Some(data) = line.strip_prefix("data: ")
            && current == kind
        {
            return serde_json::from_str(data).unwrap();
        }
    }
    panic!("no {kind} event within {within:?}");
}

#[test]
fn burn_rate_absence_and_the_live_alert_event() {
    let recv = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[[rules]]
name = "api-slo"
kind = "burn_rate"
errors = "serve/errors"
total = "serve/requests"
labels = { service = "api" }
objective = 0.999
windows = [{ long = "1m", short = "10s", factor = 14.4, severity = "critical" }]

[[rules]]
name = "silent-run"
kind = "absence"
for = "2s"
"#;
    let rules = rules_file(dir.path(), &webhook_rules(recv.port, extra));
    let (s, api) = serve(&rules);
    // 20 errors in 100 requests: 20% against a 0.1% budget is 200×.
    let ext = |name: &str, v: f64| json!({"series": [{"name": name, "labels": {"service": "api", "host": "n1"}, "value": [v]}]});
    api.post_json("/api/v1/metrics", &ext("serve/requests", 100.0))
        .expect(200);
    api.post_json("/api/v1/metrics", &ext("serve/errors", 20.0))
        .expect(200);
    let got = recv.wait(1, Duration::from_secs(5));
    let n = got[0].json();
    assert_eq!(n["alerts"][0]["alert"], "api-slo", "{n:#}");
    assert_eq!(n["alerts"][0]["severity"], "critical");
    assert!(
        (n["alerts"][0]["value"].as_f64().unwrap() - 200.0).abs() < 1e-6,
        "{n:#}"
    );
    assert!(
        n["alerts"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("200.0× over 1m")
    );

    // A running run that goes quiet: the absence alert, also as a live event.
    api.create_run(json!({"id": "hush"}));
    let base = s.base();
    let watcher =
        std::thread::spawn(move || live_event(&base, "hush", "alert", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(300));
    temp(&api, "hush", 50.0);
    let ev = watcher.join().unwrap();
    assert_eq!(ev["run"], "hush");
    assert_eq!(ev["data"]["rule"], "silent-run");
    let got = recv.wait(2, Duration::from_secs(8));
    let n = got
        .iter()
        .map(Got::json)
        .find(|n| n["alerts"][0]["alert"] == "silent-run")
        .expect("absence notification");
    assert!(
        n["alerts"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("no data from run")
    );
}

#[test]
fn silence_cli_adds_lists_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), &webhook_rules(free_port(), ""));
    let (s, api) = serve(&rules);
    let base = s.base();
    let cli = |args: &[&str]| {
        let out = support::loupe_cmd()
            .args(args)
            .args(["--server", &base])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let id = cli(&[
        "silence",
        "add",
        "--match",
        "run=r-1",
        "--match",
        "alertname=gpu-hot",
        "--duration",
        "30m",
        "--comment",
        "driver update",
    ]);
    assert!(id.starts_with("sil-"), "{id}");
    let list = api.get("/api/v1/silences").expect(200);
    assert_eq!(list["silences"][0]["matchers"]["run"], "r-1");
    assert_eq!(list["silences"][0]["comment"], "driver update");
    let shown = cli(&["silence", "list"]);
    assert!(shown.contains(&id) && shown.contains("active"), "{shown}");
    cli(&["silence", "rm", &id]);
    assert_eq!(
        api.get("/api/v1/silences").expect(200)["silences"],
        json!([])
    );
    let out = support::loupe_cmd()
        .args(["silence", "add", "--match", "nolabel", "--server", &base])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LABEL=VALUE"));
}

#[test]
fn an_incident_rule_fires_from_diagnosis() {
    let recv = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[[rules]]
name = "oom"
kind = "incident"
causes = ["cuda_out_of_memory"]
channels = ["hook"]
"#;
    let rules = rules_file(dir.path(), &webhook_rules(recv.port, extra));
    let (_s, api) = serve(&rules);
    api.create_run(json!({"id": "big", "project": "llm"}));
    let lines = [
        "Traceback (most recent call last):",
        "  File \"train.py\", line 88, in <module>",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which 1.12 GiB is free.",
    ];
    let records: Vec<Value> = lines
        .iter()
        .map(|t| json!({"text": t, "stream": "stderr", "level": "error"}))
        .collect();
    api.post_logs("big", &json!({"records": records}));
    let got = recv.wait(1, Duration::from_secs(15));
    let n = got[0].json();
    let a = &n["alerts"][0];
    assert_eq!(a["alert"], "oom", "{n:#}");
    assert_eq!(a["labels"]["kind"], "cuda_out_of_memory");
    assert_eq!(a["labels"]["run"], "big");
    assert!(a["labels"]["incident"].is_string(), "{a:#}");
    // The incident opens on its run's diagnosis tab (the UI's route).
    assert!(
        a["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "incident" && l["url"] == "http://loupe.test/r/big?tab=diagnosis"),
        "{a:#}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(recv.count(), 1);
}

/// A NaN that the loss left behind (its last value is finite again) is
/// still a NaN loss: diagnosis saw it, and the built-in rule fires from
/// diagnosis, not only from the series' current value.
#[test]
fn nan_loss_fires_when_diagnosis_saw_a_nan_the_series_has_left_behind() {
    let recv = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), &webhook_rules(recv.port, ""));
    let (_s, api) = serve(&rules);
    api.create_run(json!({"id": "nanrun"}));
    let steps: Vec<i64> = (1..=40).collect();
    let mut values: Vec<Value> = steps
        .iter()
        .map(|s| json!(2.0 - *s as f64 * 0.01))
        .collect();
    values[30] = json!("NaN");
    api.post_metrics(
        "nanrun",
        &json!({"series": [{"name": "train/loss", "step": steps, "value": values}]}),
    );
    let got = recv.wait(1, Duration::from_secs(15));
    let n = got[0].json();
    let a = &n["alerts"][0];
    assert_eq!(a["alert"], "builtin:nan_loss", "{n:#}");
    assert_eq!(a["labels"]["run"], "nanrun", "{a:#}");
    assert_eq!(a["labels"]["series"], "train/loss", "{a:#}");
    // The series itself ends finite: only diagnosis could have told.
    let last = api.get("/api/v1/runs/nanrun/series").expect(200)["series"][0]["last"].clone();
    assert!(last.as_f64().is_some_and(f64::is_finite), "{last}");
}
