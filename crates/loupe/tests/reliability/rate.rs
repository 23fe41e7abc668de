//! `--rate-limit`: each token has its own request rate; past its burst a
//! token gets 429 with `Retry-After`, and other tokens are unaffected.

use std::time::Duration;

use crate::support::{Server, create_token, prom_sample};

#[test]
fn a_token_over_its_rate_waits_and_others_do_not() {
    let dir = Server::temp_data_dir();
    let a = create_token(dir.path(), "A", "read");
    let b = create_token(dir.path(), "B", "read");
    let server = Server::configured(
        "127.0.0.1:0",
        &["--require-auth", "--rate-limit", "2", "--rate-burst", "5"],
        Some(dir.path().into()),
    );
    let api = server.api();
    let a_secret = a.clone();
    let (a, b) = (api.with_token(&a), api.with_token(&b));

    let statuses: Vec<u16> = (0..8).map(|_| a.get("/api/v1/runs").status).collect();
    let passed = statuses.iter().filter(|&&s| s == 200).count();
    assert!(
        (5..=6).contains(&passed),
        "the burst of 5 passes (one more may refill meanwhile): {statuses:?}"
    );
    let refused = a.get("/api/v1/runs");
    refused.expect_error(429, "--rate-limit");
    assert_eq!(refused.json()["error"]["code"], "rate_limited");

    // B has its own bucket.
    assert_eq!(b.get("/api/v1/runs").status, 200);
    // A comes back once its bucket refills (2 a second).
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(a.get("/api/v1/runs").status, 200);

    // The refusal says when to come back.
    let head = raw_head(&server, &a_secret);
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(head.to_lowercase().contains("retry-after: 1"), "{head}");

    let m = b.get("/metrics").text();
    let name = "loupe_limit_refused_requests_total{reason=\"rate_per_token\"}";
    let n = prom_sample(&m, name).unwrap_or_else(|| panic!("no {name} in:\n{m}"));
    assert!(n >= 3.0, "{n}");
}

/// The head of the answer to one more request than the bucket holds.
fn raw_head(server: &Server, token: &str) -> String {
    use std::io::{Read, Write};
    let mut last = String::new();
    for _ in 0..10 {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        write!(
            s,
            "GET /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        last = got.split("\r\n\r\n").next().unwrap_or("").to_string();
        if last.starts_with("HTTP/1.1 429") {
            break;
        }
    }
    last
}
