//! A page from another site must change nothing and, through DNS rebinding,
//! read nothing; Loupe's own clients must still get through. Raw requests
//! here carry exactly what a browser would send.

use serde_json::{Value, json};

use crate::raw::{RawResp, exchange, request};
use crate::support::{Server, loupe_cmd};

const EVIL: &str = "http://evil.example";
const RULE: &[u8] = br#"{"name":"pwned","kind":"threshold","expr":"loss > 1","for":"1m"}"#;
const SILENCE: &[u8] = br#"{"matchers":{"run":"victim"},"duration":"2h","comment":"x"}"#;
const RUN: &[u8] = br#"{"id":"csrf","project":"p"}"#;
const METRICS: &[u8] = br#"{"series":[{"name":"loss","step":[1],"value":[1]}]}"#;
const CRASHED: &[u8] = br#"{"status":"crashed"}"#;
const LOGS: &[u8] = br#"{"records":[{"text":"x"}]}"#;

/// What the stores hold that a cross-site request could change.
fn snapshot(server: &Server) -> Value {
    let api = server.api();
    json!({
        "runs": api.get("/api/v1/runs").expect(200)["runs"]
            .as_array().unwrap().iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        "victim": api.run("victim")["status"],
        "series": api.series("victim").keys().cloned().collect::<Vec<_>>(),
        "rules": api.get("/api/v1/alerts/rules").expect(200),
        "silences": api.get("/api/v1/silences").expect(200),
    })
}

/// The error code a cross-site request is refused with, by its status.
fn refusal_code(status: u16) -> &'static str {
    match status {
        403 => "origin_not_allowed",
        415 => "unsupported_media_type",
        _ => unreachable!("no refusal has status {status}"),
    }
}

/// A request that must be refused: method, path, content type, origin,
/// body, status.
type Refused<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [u8], u16);

/// Sends a raw request to the server under its own address as `Host`, with
/// `Content-Type` and `Origin` when not empty.
fn send(
    server: &Server,
    method: &str,
    path: &str,
    ctype: &str,
    origin: &str,
    body: &[u8],
) -> RawResp {
    let host = server.addr.to_string();
    let mut h = vec![("Host", host.as_str())];
    if !ctype.is_empty() {
        h.push(("Content-Type", ctype));
    }
    if !origin.is_empty() {
        h.push(("Origin", origin));
    }
    exchange(server.addr, &request(method, path, &h, body))
}

#[test]
fn cross_site_writes_are_refused_and_write_nothing() {
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "victim", "project": "p"}));
    let before = snapshot(&server);
    let other_local = format!("http://127.0.0.1:{}", server.addr.port() ^ 1);
    const TEXT: &str = "text/plain";
    const FORM: &str = "application/x-www-form-urlencoded";
    const JSON: &str = "application/json";
    // (method, path, content type, origin, body, status); "" leaves the
    // header out. Aligned by hand: rustfmt would put each field on a line.
    #[rustfmt::skip]
    let cases: [Refused; 16] = [
        // What a page may send without asking first: a text/plain fetch,
        // a form post, a multipart form.
        ("POST",   "/api/v1/runs",                "text/plain;charset=UTF-8",        EVIL,         RUN,     403),
        ("POST",   "/api/v1/runs",                FORM,                              EVIL,         RUN,     403),
        ("POST",   "/api/v1/runs",                "multipart/form-data; boundary=x", EVIL,         RUN,     403),
        ("POST",   "/api/v1/runs/victim/metrics", TEXT,                              EVIL,         METRICS, 403),
        ("POST",   "/api/v1/runs/victim/logs",    TEXT,                              EVIL,         LOGS,    403),
        ("POST",   "/api/v1/alerts/rules",        TEXT,                              EVIL,         RULE,    403),
        ("POST",   "/api/v1/silences",            FORM,                              EVIL,         SILENCE, 403),
        // Had the browser asked first (a JSON type), it would have been told
        // no; sent anyway, the origin is refused.
        ("POST",   "/api/v1/runs",                JSON,                              EVIL,         RUN,     403),
        ("PATCH",  "/api/v1/runs/victim",         JSON,                              EVIL,         CRASHED, 403),
        ("DELETE", "/api/v1/runs/victim",         "",                                EVIL,         b"",     403),
        // A sandboxed frame or a file:// page, and another local server's page.
        ("POST",   "/api/v1/runs",                JSON,                              "null",       RUN,     403),
        ("POST",   "/api/v1/runs",                JSON,                              &other_local, RUN,     403),
        // No Origin at all (an old browser, a beacon): the type decides.
        ("POST",   "/api/v1/runs",                TEXT,                              "",           RUN,     415),
        ("POST",   "/api/v1/runs/victim/metrics", TEXT,                              "",           METRICS, 415),
        ("POST",   "/api/v1/alerts/rules",        "",                                "",           RULE,    415),
        ("DELETE", "/api/v1/runs/victim",         TEXT,                              "",           b"x",    415),
    ];
    for (method, path, ctype, origin, body, status) in cases {
        let r = send(&server, method, path, ctype, origin, body);
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{method} {path}: CORS header on a refusal"
        );
        let v = r.expect_error(status, refusal_code(status));
        eprintln!(
            "{method} {path} {ctype:?} {origin:?} -> {} {}",
            r.status, v["error"]["message"]
        );
    }
    assert_eq!(
        snapshot(&server),
        before,
        "a refused request changed something"
    );

    // The server's own pages (same origin) and its clients still write.
    let same = format!("http://{}", server.addr);
    let r = send(&server, "POST", "/api/v1/runs", JSON, &same, RUN);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let host = server.addr.to_string();
    let r = exchange(
        server.addr,
        &request(
            "POST",
            "/api/v1/runs/csrf/metrics",
            &[
                ("Host", &host),
                ("Content-Type", TEXT),
                ("X-Loupe-Client", "script"),
            ],
            METRICS,
        ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(api.series("csrf").len(), 1);
}

#[test]
fn dns_rebinding_hosts_are_refused_reads_included() {
    let server = Server::with_args(&["--allowed-host", "loupe.example.com,.corp.example"]);
    let api = server.api();
    api.create_run(json!({"id": "secret", "project": "p"}));
    let port = server.addr.port();
    // The attacker's name, now resolving to 127.0.0.1.
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("corp.example.evil:{port}"),
    ] {
        for path in [
            "/api/v1/runs",
            "/api/v1/runs/secret",
            "/api/v1/live",
            "/",
            "/metrics",
        ] {
            let r = exchange(server.addr, &request("GET", path, &[("Host", &host)], b""));
            let v = r.expect_error(403, "host_not_allowed");
            assert!(
                !String::from_utf8_lossy(&r.body).contains("secret\""),
                "{host} {path}: {v}"
            );
        }
        let r = exchange(
            server.addr,
            &request(
                "POST",
                "/api/v1/runs",
                &[
                    ("Host", &host),
                    ("Content-Type", "application/json"),
                    ("Origin", &format!("http://{host}")),
                ],
                RUN,
            ),
        );
        r.expect_error(403, "host_not_allowed");
    }
    // Loopback and IP literals on any port (SSH tunnels), localhost names,
    // and the configured names are answered.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost:9999".to_string(),
        format!("[::1]:{port}"),
        format!("app.localhost:{port}"),
        "10.0.0.7:7070".to_string(),
        "loupe.example.com".to_string(),
        "LOUPE.example.com:443".to_string(),
        "gpu3.corp.example:7070".to_string(),
    ] {
        let r = exchange(
            server.addr,
            &request("GET", "/api/v1/runs", &[("Host", &host)], b""),
        );
        assert_eq!(
            r.status,
            200,
            "{host}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // A configured name behind a TLS proxy: its own pages may write.
    let r = exchange(
        server.addr,
        &request(
            "POST",
            "/api/v1/runs",
            &[
                ("Host", "loupe.example.com"),
                ("Origin", "https://loupe.example.com"),
                ("Content-Type", "application/json"),
            ],
            RUN,
        ),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn cors_only_for_configured_origins() {
    // By default: no CORS header on any answer, pre-flights are not granted.
    let server = Server::start();
    let host = server.addr.to_string();
    for (method, extra) in [
        ("GET", vec![]),
        (
            "OPTIONS",
            vec![
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
        ),
    ] {
        let mut h = vec![("Host", host.as_str()), ("Origin", EVIL)];
        h.extend(extra);
        let r = exchange(server.addr, &request(method, "/api/v1/runs", &h, b""));
        assert!(
            r.headers
                .iter()
                .all(|(k, _)| !k.starts_with("access-control-")),
            "{method}: {:?}",
            r.headers
        );
        assert!(method == "GET" || r.status >= 400, "{method}: {}", r.status);
    }
    drop(server);

    let dash = "https://dash.example.com";
    let server = Server::with_args(&["--allowed-origin", dash]);
    let host = server.addr.to_string();
    let pre = exchange(
        server.addr,
        &request(
            "OPTIONS",
            "/api/v1/runs",
            &[
                ("Host", &host),
                ("Origin", dash),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            b"",
        ),
    );
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some(dash));
    assert!(
        pre.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    let r = exchange(
        server.addr,
        &request(
            "POST",
            "/api/v1/runs",
            &[
                ("Host", &host),
                ("Origin", dash),
                ("Content-Type", "application/json"),
            ],
            RUN,
        ),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("access-control-allow-origin"), Some(dash));
    // Another origin still gets nothing.
    let r = exchange(
        server.addr,
        &request(
            "GET",
            "/api/v1/runs",
            &[("Host", &host), ("Origin", EVIL)],
            b"",
        ),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn loupe_run_and_the_cli_still_write() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = loupe_cmd()
        .current_dir(dir.path())
        .args([
            "run",
            "--server",
            &server.base(),
            "--no-gpu",
            "--name",
            "legit",
            "--dir",
        ])
        .arg(dir.path().join("spool"))
        .args([
            "--",
            "sh",
            "-c",
            "echo 'step=1 loss=0.5'; echo 'step=2 loss=0.25'",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("loupe run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api = server.api();
    let runs = api.get("/api/v1/runs").expect(200);
    let run = runs["runs"][0]["id"].as_str().expect("a run").to_string();
    let p = api.read_all(&run, "loss", "step", 100);
    assert_eq!(p.y, [0.5, 0.25]);
    // The CLI's writes: a silence added (POST) and removed (DELETE).
    let base = server.base();
    let out = loupe_cmd()
        .args(["silence", "add", "--server", &base, "--match"])
        .arg(format!("run={run}"))
        .output()
        .expect("loupe silence add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        api.get("/api/v1/silences").expect(200)["silences"][0]["id"],
        id.as_str()
    );
    let out = loupe_cmd()
        .args(["silence", "rm", "--server", &base, &id])
        .output()
        .expect("loupe silence rm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
