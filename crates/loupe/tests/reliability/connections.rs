//! Slow clients are cut, connections are capped with a log line saying so,
//! and the answers the HTTP layer gives on its own have the API's error
//! shape.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::raw::{connect, exchange, parse_response, request};
use crate::support::{Server, wait_for};

#[test]
fn slow_headers_and_trickling_bodies_are_cut() {
    let server = Server::with_args(&["--header-read-timeout", "1", "--body-read-timeout", "2"]);
    let host = server.addr.to_string();

    // Half a head, then nothing: disconnected after the header timeout.
    let mut s = connect(server.addr);
    write!(s, "GET /api/v1/runs HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let took = t.elapsed();
    eprintln!("partial head cut after {took:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // A head sent a byte at a time is cut the same way.
    let mut s = connect(server.addr);
    let t = Instant::now();
    let head = format!(
        "GET /api/v1/runs HTTP/1.1\r\nHost: {host}\r\nX-Slow: {}\r\n\r\n",
        "x".repeat(100)
    );
    for b in head.bytes() {
        if s.write_all(&[b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if t.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let _ = s.read_to_end(&mut buf);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // A body trickling in: 408 with the JSON error after the body timeout.
    let mut s = connect(server.addr);
    write!(
        s,
        "POST /api/v1/runs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: 10000\r\n\r\n{{"
    )
    .unwrap();
    let t = Instant::now();
    let mut reader = s.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        buf
    });
    while !answer.is_finished() && t.elapsed() < Duration::from_secs(10) {
        if s.write_all(b" ").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = t.elapsed();
    let r = parse_response(&answer.join().unwrap()).expect("an answer");
    eprintln!("trickling body cut after {took:?}");
    r.expect_error(408, "body_timeout");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Nothing of it was written, and the server still answers.
    let runs = server.api().get("/api/v1/runs").expect(200);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0);
}

#[test]
fn the_connection_cap_refuses_the_excess_with_a_log_line() {
    let mut server = Server::with_args(&["--max-connections", "4"]);
    let host = server.addr.to_string();
    // Four clients that keep their connections (event streams).
    let mut held: Vec<_> = (0..4)
        .map(|_| {
            let mut s = connect(server.addr);
            write!(s, "GET /api/v1/live HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
            let mut b = [0u8; 64];
            assert!(s.read(&mut b).unwrap() > 0);
            s
        })
        .collect();
    for _ in 0..3 {
        let r = exchange(
            server.addr,
            &request("GET", "/healthz", &[("Host", &host)], b""),
        );
        r.expect_error(503, "too_many_connections");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let log = wait_for(
        Duration::from_secs(5),
        "the connection-limit log line",
        || {
            let l = server.stderr();
            l.contains("connection limit reached").then_some(l)
        },
    );
    assert!(log.contains("--max-connections"), "{log}");
    // Logged once, not once per refusal.
    assert_eq!(log.matches("connection limit reached").count(), 1, "{log}");
    // One closes: a new connection is served again.
    drop(held.pop());
    wait_for(Duration::from_secs(5), "a free connection slot", || {
        let r = exchange(
            server.addr,
            &request("GET", "/healthz", &[("Host", &host)], b""),
        );
        (r.status == 200).then_some(())
    });
    // And SIGTERM still finishes with the slots full.
    held.push(connect(server.addr));
    let t = Instant::now();
    assert!(server.sigterm().success());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn the_http_layers_own_refusals_have_the_error_shape() {
    let server = Server::start();
    let host = server.addr.to_string();
    let long_uri = format!("/api/v1/runs?q={}", "x".repeat(70_000));
    let r = exchange(
        server.addr,
        &request("GET", &long_uri, &[("Host", &host)], b""),
    );
    r.expect_error(414, "uri_too_long");

    let many: Vec<(String, String)> = (0..150)
        .map(|i| (format!("X-H{i}"), "v".to_string()))
        .collect();
    let mut h: Vec<(&str, &str)> = vec![("Host", &host)];
    h.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let r = exchange(server.addr, &request("GET", "/api/v1/runs", &h, b""));
    r.expect_error(431, "headers_too_large");

    let r = exchange(server.addr, b"NOT HTTP AT ALL\r\n\r\n");
    r.expect_error(400, "invalid_request");

    // The server is fine after all of them.
    server.api().get("/api/v1/runs").expect(200);
}
