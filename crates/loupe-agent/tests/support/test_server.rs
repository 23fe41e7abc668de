//! A tiny HTTP/1.1 server on a std `TcpListener`, scripted by the test:
//! records what it receives (gunzipped), and can fail, refuse, hang, or
//! answer GETs with a fixed body.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the test server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Vec<u8>,
    pub auth: Option<String>,
}

/// How the server answers: a status for the next `n` requests, then 200.
#[derive(Default)]
pub struct Script {
    pub fail_next: AtomicU32,
    pub fail_status: AtomicU32,
    /// Paths answered 400 forever.
    pub refuse_prefix: Mutex<Option<String>>,
    /// Never answer (a hung server).
    pub hang: AtomicBool,
    /// The body of every GET answer (200); 404 when `None`.
    pub get_body: Mutex<Option<String>>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    /// Every request seen, answered or not (for "not retried" checks).
    pub attempts: Arc<Mutex<Vec<String>>>,
    pub script: Arc<Script>,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::on(TcpListener::bind("127.0.0.1:0").expect("bind"))
    }

    pub fn on(listener: TcpListener) -> TestServer {
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Script::default());
        let (g, a, s) = (got.clone(), attempts.clone(), script.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (g, a, s) = (g.clone(), a.clone(), s.clone());
                std::thread::spawn(move || serve(conn, &g, &a, &s));
            }
        });
        TestServer {
            addr,
            got,
            attempts,
            script,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }
}

fn serve(conn: TcpStream, got: &Mutex<Vec<Received>>, attempts: &Mutex<Vec<String>>, s: &Script) {
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let path = words.next().unwrap_or("").to_string();
        let (mut len, mut gzip, mut auth) = (0usize, false, None);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "content-encoding" => gzip = v.trim() == "gzip",
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if gzip {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("valid gzip");
            body = out;
        }
        attempts.lock().unwrap().push(path.clone());
        if method == "GET" {
            let answer = s.get_body.lock().unwrap().clone();
            let (status, text) = match answer {
                Some(b) => (200, b),
                None => (404, "{}".to_string()),
            };
            let msg = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                text.len()
            );
            if w.write_all(msg.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if s.hang.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(3600));
        }
        let refuse = s
            .refuse_prefix
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|p| path.starts_with(p.as_str()));
        let status = if refuse {
            400
        } else if s
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            s.fail_status.load(Ordering::SeqCst)
        } else {
            got.lock().unwrap().push(Received { path, body, auth });
            200
        };
        let msg = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
        );
        if w.write_all(msg.as_bytes()).is_err() {
            return;
        }
    }
}
