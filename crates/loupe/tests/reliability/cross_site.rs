//! A page from another site must change nothing and, through DNS rebinding,
//! read nothing; Loupe's own clients must still get through. Raw requests
//! here carry exactly what a browser would send.

use serde_json::{Value, json};

use crate::raw::{exchange, request};
use crate::support::{Server, loupe_cmd};

const EVIL: &str = "http://evil.example";
const RULE: &[u8] = br#"{"name":"pwned","kind":"threshold","expr":"loss > 1","for":"1m"}"#;
const SILENCE: &[u8] = br#"{"matchers":{"run":"victim"},"duration":"2h","comment":"x"}"#;
const RUN: &[u8] = br#"{"id":"csrf","project":"p"}"#;
const METRICS: &[u8] = br#"{"series":[{"name":"loss","step":[1],"value":[1]}]}"#;

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

#[test]
fn cross_site_writes_are_refused_and_write_nothing() {
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "victim", "project": "p"}));
    let before = snapshot(&server);
    let host = server.addr.to_string();
    let other_local = format!("http://127.0.0.1:{}", server.addr.port() ^ 1);
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a [u8],
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        // What a page may send without asking first: a text/plain fetch,
        // a form post, a multipart form.
        (
            "POST",
            "/api/v1/runs",
            vec![
                ("Content-Type", "text/plain;charset=UTF-8"),
                ("Origin", EVIL),
            ],
            RUN,
            403,
            "origin_not_allowed",
        ),
        (
            "POST",
            "/api/v1/runs",
            vec![
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", EVIL),
            ],
            RUN,
            403,
            "origin_not_allowed",
        ),
        (
            "POST",
            "/api/v1/runs",
            vec![
                ("Content-Type", "multipart/form-data; boundary=x"),
                ("Origin", EVIL),
            ],
            RUN,
            403,
            "origin_not_allowed",
        ),
        (
            "POST",
            "/api/v1/runs/victim/metrics",
            vec![("Content-Type", "text/plain"), ("Origin", EVIL)],
            METRICS,
            403,
            "origin_not_allowed",
        ),
        (
            "POST",
            "/api/v1/runs/victim/logs",
            vec![("Content-Type", "text/plain"), ("Origin", EVIL)],
            br#"{"records":[{"text":"x"}]}"#,
            403,
            "origin_not_allowed",
        ),
        (
            "POST",
            "/api/v1/alerts/rules",
            vec![("Content-Type", "text/plain"), ("Origin", EVIL)],
            RULE,
            403,
            "origin_not_allowed",
        ),
        (
            "POST",
            "/api/v1/silences",
            vec![
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", EVIL),
            ],
            SILENCE,
            403,
            "origin_not_allowed",
        ),
        // Had the browser asked first (a JSON type), it would have been told
        // no; sent anyway, the origin is refused.
        (
            "POST",
            "/api/v1/runs",
            vec![("Content-Type", "application/json"), ("Origin", EVIL)],
            RUN,
            403,
            "origin_not_allowed",
        ),
        (
            "PATCH",
            "/api/v1/runs/victim",
            vec![("Content-Type", "application/json"), ("Origin", EVIL)],
            br#"{"status":"crashed"}"#,
            403,
            "origin_not_allowed",
        ),
        (
            "DELETE",
            "/api/v1/runs/victim",
            vec![("Origin", EVIL)],
            b"",
            403,
            "origin_not_allowed",
        ),
        // A sandboxed frame or a file:// page, and another local server's page.
        (
            "POST",
            "/api/v1/runs",
            vec![("Content-Type", "application/json"), ("Origin", "null")],
            RUN,
            403,
            "origin_not_allowed",
        ),
        (
            "POST",
            "/api/v1/runs",
            vec![
                ("Content-Type", "application/json"),
                ("Origin", &other_local),
            ],
            RUN,
            403,
            "origin_not_allowed",
        ),
        // No Origin at all (an old browser, a beacon): the type decides.
        (
            "POST",
            "/api/v1/runs",
            vec![("Content-Type", "text/plain")],
            RUN,
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/api/v1/runs/victim/metrics",
            vec![("Content-Type", "text/plain")],
            METRICS,
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/api/v1/alerts/rules",
            vec![],
            RULE,
            415,
            "unsupported_media_type",
        ),
        (
            "DELETE",
            "/api/v1/runs/victim",
            vec![("Content-Type", "text/plain")],
            b"x",
            415,
            "unsupported_media_type",
        ),
    ];
    for (method, path, headers, body, status, code) in &cases {
        let mut h = vec![("Host", host.as_str())];
        h.extend(headers.iter().copied());
        let r = exchange(server.addr, &request(method, path, &h, body));
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{method} {path}: CORS header on a refusal"
        );
        let v = r.expect_error(*status, code);
        eprintln!(
            "{method} {path} {headers:?} -> {} {}",
            r.status, v["error"]["message"]
        );
    }
    assert_eq!(
        snapshot(&server),
        before,
        "a refused request changed something"
    );

    // The server's own pages (same origin) and its clients still write.
    let same = format!("http://{host}");
    let r = exchange(
        server.addr,
        &request(
            "POST",
            "/api/v1/runs",
            &[
                ("Host", &host),
                ("Origin", &same),
                ("Content-Type", "application/json"),
            ],
            RUN,
        ),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = exchange(
        server.addr,
        &request(
            "POST",
            "/api/v1/runs/csrf/metrics",
            &[
                ("Host", &host),
                ("Content-Type", "text/plain"),
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
