//! `SIGTERM` always finishes: within 5 s whatever the clients do, with
//! everything acknowledged still there after a restart.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::raw::connect;
use crate::support::{Api, Server, same_value, to_json, value_at};

/// What the issue promises: `SIGTERM` → exit within this, in every case.
pub(crate) const EXIT_WITHIN: Duration = Duration::from_secs(5);
/// Steps per batch.
pub(crate) const B: i64 = 200;

pub(crate) fn batch(k: i64) -> Value {
    let steps: Vec<i64> = (k * B..(k + 1) * B).collect();
    json!({"series": [{
        "name": "loss",
        "step": steps,
        "value": steps.iter().map(|&s| to_json(value_at(7, s))).collect::<Vec<_>>(),
    }]})
}

/// Posts batches `from..to` to run `r`, each acknowledged.
pub(crate) fn write(api: &Api, from: i64, to: i64) {
    for k in from..to {
        assert_eq!(api.post_metrics("r", &batch(k)), B as u64);
    }
}

/// SIGTERM; the exit status must be success and come within [`EXIT_WITHIN`].
fn sigterm_timed(server: &mut Server, case: &str) -> Duration {
    let t = Instant::now();
    let status = server.sigterm();
    let took = t.elapsed();
    eprintln!("SIGTERM {case}: exited in {took:?}");
    assert!(
        status.success(),
        "{case}: exit {status:?}\n{}",
        server.stderr()
    );
    assert!(
        took < EXIT_WITHIN,
        "{case}: SIGTERM took {took:?}\n{}",
        server.stderr()
    );
    took
}

/// After a restart, every acknowledged batch is there, exactly.
pub(crate) fn check_acked(api: &Api, acked: &[i64]) {
    let p = api.read_all("r", "loss", "step", 100_000);
    let got: std::collections::BTreeMap<i64, f64> = p
        .step
        .iter()
        .zip(&p.y)
        .map(|(s, y)| (s.expect("step"), *y))
        .collect();
    for &k in acked {
        for s in k * B..(k + 1) * B {
            let v = got
                .get(&s)
                .unwrap_or_else(|| panic!("acknowledged step {s} is missing"));
            assert!(same_value(*v, value_at(7, s)), "step {s}: {v}");
        }
    }
}

fn started() -> Server {
    let server = Server::start();
    server.api().create_run(json!({"id": "r", "project": "p"}));
    server
}

/// An open `/api/v1/live` stream of run `r`, its head read (a token scoped
/// to a project may only follow a run). `auth` is header lines to add
/// (`Authorization: Bearer …\r\n`), or empty.
pub(crate) fn open_stream(addr: SocketAddr, auth: &str) -> TcpStream {
    let mut s = connect(addr);
    write!(
        s,
        "GET /api/v1/live?run=r HTTP/1.1\r\nHost: {addr}\r\n{auth}Accept: text/event-stream\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "stream closed early");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.contains("text/event-stream"), "{head}");
    s
}

/// A client that sends half a request head and then nothing (`auth` as
/// for [`open_stream`]).
pub(crate) fn partial_head(addr: SocketAddr, auth: &str) -> TcpStream {
    let mut s = connect(addr);
    write!(
        s,
        "POST /api/v1/runs/r/metrics HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Ty"
    )
    .unwrap();
    s
}

/// The rest of an event stream after the server stopped; it must end with
/// the last chunk (a clean end, so a browser reconnects).
pub(crate) fn assert_stream_ended(mut stream: TcpStream) {
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "stream did not end with the last chunk: {:?}",
        String::from_utf8_lossy(&rest[rest.len().saturating_sub(200)..])
    );
}

/// A client posting batches to run `r` until told to stop or the server is
/// gone, recording the batches acknowledged.
pub(crate) struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Starts writing batches `from..`.
    pub(crate) fn start(api: Api, from: i64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let api = api.with_timeout(Duration::from_secs(10));
                for k in from.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match api.try_post_json("/api/v1/runs/r/metrics", &batch(k)) {
                        Ok(r) if r.status == 200 => acked.lock().unwrap().push(k),
                        Ok(r) if r.status == 503 => {}
                        Ok(r) => panic!("batch {k}: HTTP {} {}", r.status, r.text()),
                        // The server is gone.
                        Err(_) => break,
                    }
                }
            })
        };
        Writer {
            stop,
            acked,
            thread,
        }
    }

    /// Stops it; the batches acknowledged.
    pub(crate) fn finish(self) -> Vec<i64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.acked.lock().unwrap().clone()
    }
}

/// A client that sends a head and then its body a byte at a time, until the
/// server stops it. Returns what the server answered (empty if nothing).
fn trickle(server: &Server, every: Duration) -> std::thread::JoinHandle<Vec<u8>> {
    let mut s = connect(server.addr);
    write!(
        s,
        "POST /api/v1/runs/r/metrics HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100000\r\n\r\n{{",
        server.addr
    )
    .unwrap();
    std::thread::spawn(move || {
        let mut reader = s.try_clone().unwrap();
        let answer = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = reader.read_to_end(&mut buf);
            buf
        });
        for _ in 0..100_000 {
            std::thread::sleep(every);
            if s.write_all(b" ").is_err() || answer.is_finished() {
                break;
            }
        }
        answer.join().unwrap()
    })
}

#[test]
fn sigterm_with_an_open_event_stream() {
    let mut server = started();
    write(&server.api(), 0, 5);
    let stream = open_stream(server.addr, "");
    write(&server.api(), 5, 10);
    sigterm_timed(&mut server, "with an open event stream");
    assert_stream_ended(stream);
    server.start_again();
    check_acked(&server.api(), &(0..10).collect::<Vec<_>>());
}

#[test]
fn sigterm_with_a_client_stuck_in_its_headers() {
    let mut server = started();
    write(&server.api(), 0, 10);
    let _stuck = partial_head(server.addr, "");
    std::thread::sleep(Duration::from_millis(200));
    sigterm_timed(&mut server, "with a partial-header client");
    server.start_again();
    check_acked(&server.api(), &(0..10).collect::<Vec<_>>());
}

#[test]
fn sigterm_with_a_client_trickling_its_body() {
    let mut server = started();
    write(&server.api(), 0, 10);
    let client = trickle(&server, Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(300));
    sigterm_timed(&mut server, "with a body-trickling client");
    let answer = client.join().unwrap();
    // It was told to come back (503), not left hanging.
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("shutting down"), "{text}");
    server.start_again();
    check_acked(&server.api(), &(0..10).collect::<Vec<_>>());
    assert!(server.api().series("r").len() == 1);
}

/// Everything at once, while a writer keeps writing: every batch it saw
/// acknowledged is there after the restart.
#[test]
fn sigterm_with_every_kind_of_client_while_writing() {
    let mut server = started();
    let writer = Writer::start(server.api(), 0);
    let streams: Vec<_> = (0..3).map(|_| open_stream(server.addr, "")).collect();
    let stuck: Vec<_> = (0..3).map(|_| partial_head(server.addr, "")).collect();
    let tricklers: Vec<_> = (0..3)
        .map(|_| trickle(&server, Duration::from_millis(100)))
        .collect();
    let idle = connect(server.addr);
    std::thread::sleep(Duration::from_millis(800));
    sigterm_timed(
        &mut server,
        "with 3 streams, 3 partial heads, 3 tricklers, an idle connection and a writer",
    );
    let acked = writer.finish();
    for t in tricklers {
        t.join().unwrap();
    }
    drop((streams, stuck, idle));
    assert!(acked.len() >= 2, "the writer got only {} acks", acked.len());
    server.start_again();
    check_acked(&server.api(), &acked);
}

/// 300 slow clients (half stuck in their heads, half in their bodies) take
/// no more than their share: the server still answers, and SIGTERM still
/// finishes in time.
#[test]
fn sigterm_with_300_slow_clients() {
    let mut server = started();
    write(&server.api(), 0, 5);
    let host = server.addr.to_string();
    let mut slow = Vec::new();
    for i in 0..300 {
        let mut s = connect(server.addr);
        if i % 2 == 0 {
            write!(s, "GET /api/v1/runs HTTP/1.1\r\nHost: {host}\r\nX-Sl").unwrap();
        } else {
            write!(
                s,
                "POST /api/v1/runs/r/metrics HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{\"se"
            )
            .unwrap();
        }
        slow.push(s);
    }
    write(&server.api(), 5, 10);
    sigterm_timed(&mut server, "with 300 slow clients");
    drop(slow);
    server.start_again();
    check_acked(&server.api(), &(0..10).collect::<Vec<_>>());
}
