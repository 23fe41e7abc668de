//! The sender against a tiny HTTP server started by the test (a std
//! `TcpListener` thread): outages, 5xx, refusals, order and exactly-once
//! delivery, the disk buffer across restarts.

#[path = "support/test_server.rs"]
mod test_server;

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loupe_agent::{Sender, SenderConfig};
use test_server::TestServer;

fn config(server: &str, dir: &std::path::Path) -> SenderConfig {
    let mut c = SenderConfig::new(server, dir.to_path_buf());
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.request_timeout = Duration::from_secs(2);
    c.memory_records = 4;
    c
}

fn body(i: usize) -> Vec<u8> {
    format!("{{\"series\":[],\"n\":{i}}}").into_bytes()
}

fn wait_for(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

#[test]
fn an_outage_is_buffered_and_replayed_exactly_once_in_order() {
    // A port with nobody listening: connections are refused.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    let dir = tempfile::tempdir().expect("tmp");
    let sender = Sender::start(config(&format!("http://{addr}"), dir.path())).expect("start");
    for i in 0..50 {
        sender.submit("/api/v1/metrics", body(i));
    }
    assert!(wait_for(|| sender.stats().server_down, 10));
    // While the server is away everything goes to disk.
    assert!(wait_for(|| sender.stats().queued_memory == 0, 10));
    for i in 50..80 {
        sender.submit("/api/v1/metrics", body(i));
    }
    let st = sender.stats();
    assert_eq!(st.queued_memory, 0, "{st:?}");
    assert_eq!(st.queued_disk, 80, "{st:?}");
    assert_eq!(st.sent, 0);

    // The server comes back on the same port; it first answers 500 twice.
    let server = TestServer::on(TcpListener::bind(addr).expect("rebind"));
    server.script.fail_status.store(500, Ordering::SeqCst);
    server.script.fail_next.store(2, Ordering::SeqCst);
    for i in 80..100 {
        sender.submit("/api/v1/metrics", body(i));
    }
    assert!(
        sender.flush(Duration::from_secs(30)),
        "{:?}",
        sender.stats()
    );
    let want: Vec<Vec<u8>> = (0..100).map(body).collect();
    assert_eq!(server.bodies(), want);
    let st = sender.stats();
    assert_eq!((st.sent, st.dropped, st.queued_disk), (100, 0, 0), "{st:?}");
    assert!(st.spooled >= 80);
    assert!(!st.server_down);
}

#[test]
fn server_errors_and_throttling_are_retried_in_order() {
    let server = TestServer::start();
    server.script.fail_status.store(503, Ordering::SeqCst);
    server.script.fail_next.store(3, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tmp");
    let sender = Sender::start(config(&server.url(), dir.path())).expect("start");
    for i in 0..10 {
        sender.submit("/api/v1/metrics", body(i));
    }
    assert!(sender.flush(Duration::from_secs(20)));
    // 429 is "later", not "never".
    server.script.fail_status.store(429, Ordering::SeqCst);
    server.script.fail_next.store(2, Ordering::SeqCst);
    for i in 10..20 {
        sender.submit("/api/v1/metrics", body(i));
    }
    assert!(sender.flush(Duration::from_secs(20)));
    assert_eq!(server.bodies(), (0..20).map(body).collect::<Vec<_>>());
    assert_eq!(sender.stats().dropped, 0);
}

#[test]
fn a_refusal_is_dropped_not_retried() {
    let server = TestServer::start();
    *server.script.refuse_prefix.lock().unwrap() = Some("/api/v1/bad".into());
    let dir = tempfile::tempdir().expect("tmp");
    let sender = Sender::start(config(&server.url(), dir.path())).expect("start");
    sender.submit("/api/v1/metrics", body(0));
    sender.submit("/api/v1/bad", body(1));
    sender.submit("/api/v1/bad", body(2));
    sender.submit("/api/v1/metrics", body(3));
    assert!(sender.flush(Duration::from_secs(10)));
    assert_eq!(server.bodies(), vec![body(0), body(3)]);
    // Each refused request was tried exactly once.
    let bad = server
        .attempts
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.starts_with("/api/v1/bad"))
        .count();
    assert_eq!(bad, 2);
    let st = sender.stats();
    assert_eq!((st.sent, st.refused, st.dropped), (2, 2, 2), "{st:?}");
}

#[test]
fn bodies_are_gzipped_and_carry_the_token() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = config(&server.url(), dir.path());
    c.token = Some("lp_secret".into());
    let sender = Sender::start(c).expect("start");
    sender.submit("/api/v1/metrics", body(7));
    assert!(sender.flush(Duration::from_secs(10)));
    let got = server.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/api/v1/metrics");
    assert_eq!(got[0].body, body(7));
    assert_eq!(got[0].auth.as_deref(), Some("Bearer lp_secret"));
}

#[test]
fn what_was_not_sent_survives_a_restart() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    let dir = tempfile::tempdir().expect("tmp");
    {
        let sender = Sender::start(config(&format!("http://{addr}"), dir.path())).expect("start");
        for i in 0..30 {
            sender.submit("/api/v1/metrics", body(i));
        }
        // The server never answers: shutdown gives up after its bound.
        let t = Instant::now();
        assert!(!sender.shutdown(Duration::from_millis(500)));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
    let server = TestServer::on(TcpListener::bind(addr).expect("rebind"));
    let sender = Sender::start(config(&server.url(), dir.path())).expect("restart");
    sender.submit("/api/v1/metrics", body(30));
    assert!(sender.flush(Duration::from_secs(20)));
    assert_eq!(server.bodies(), (0..31).map(body).collect::<Vec<_>>());
}

#[test]
fn submit_never_waits_on_a_hung_server() {
    let server = TestServer::start();
    server.script.hang.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tmp");
    let sender = Sender::start(config(&server.url(), dir.path())).expect("start");
    sender.submit("/api/v1/metrics", body(0));
    // The first request is now hanging in the sender thread.
    assert!(wait_for(|| !server.attempts.lock().unwrap().is_empty(), 10));
    let t = Instant::now();
    for i in 1..200 {
        sender.submit("/api/v1/metrics", body(i));
    }
    // Memory holds 4; the rest overflowed to disk (fsync'd writes, still
    // far from the 2 s request timeout).
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let st = sender.stats();
    assert!(st.queued_memory <= 4, "{st:?}");
    assert!(st.spooled >= 195, "{st:?}");
}
