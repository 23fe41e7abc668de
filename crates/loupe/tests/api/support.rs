//! The harness: the real `loupe` binary serving a temporary data directory,
//! and a small blocking HTTP client for its API.
//!
//! [`Server`] starts `loupe serve --addr 127.0.0.1:0 --data DIR …`, learns the
//! port from the `loupe serve listening on http://ADDR` line on stdout, keeps
//! the process's stderr (to check what the server logs), and kills the
//! process when dropped. It can be SIGKILLed or SIGTERMed and started again
//! on the same data directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The `loupe` binary under test.
pub fn loupe_bin() -> &'static str {
    env!("CARGO_BIN_EXE_loupe")
}

/// A `loupe` command with no inherited configuration that could point it
/// somewhere else (server, token, data directory, proxies).
pub fn loupe_cmd() -> Command {
    let mut c = Command::new(loupe_bin());
    for var in [
        "LOUPE_SERVER",
        "LOUPE_TOKEN",
        "LOUPE_DATA",
        "LOUPE_LOG",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        c.env_remove(var);
    }
    c
}

/// Runs a `loupe` CLI command to completion; panics unless it succeeds.
/// Returns its stdout.
pub fn run_cli(args: &[&str]) -> String {
    let out = loupe_cmd()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running loupe");
    assert!(
        out.status.success(),
        "loupe {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("CLI output is UTF-8")
}

/// Creates a token with `loupe token create` and returns its secret.
pub fn create_token(data: &Path, project: &str, role: &str) -> String {
    let out = run_cli(&[
        "token",
        "create",
        "--project",
        project,
        "--role",
        role,
        "--data",
        data.to_str().unwrap(),
    ]);
    let secret = out.trim().to_string();
    assert!(
        !secret.is_empty() && !secret.contains(char::is_whitespace),
        "token create printed {out:?}"
    );
    secret
}

/// A running `loupe serve` over a temporary data directory.
pub struct Server {
    child: Option<Child>,
    /// Where to connect (loopback even when the server binds 0.0.0.0).
    pub addr: SocketAddr,
    bind: String,
    args: Vec<String>,
    data: PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// Everything the server wrote to stderr, over all its lifetimes.
    log: Arc<Mutex<String>>,
}

impl Server {
    /// A loopback server with default settings.
    pub fn start() -> Server {
        Server::with_args(&[])
    }

    /// A loopback server with extra `loupe serve` arguments.
    pub fn with_args(args: &[&str]) -> Server {
        Server::configured("127.0.0.1:0", args, None)
    }

    /// A server on `bind`, with extra arguments, on `data` (a fresh
    /// temporary directory when `None`).
    pub fn configured(bind: &str, args: &[&str], data: Option<PathBuf>) -> Server {
        let (dir, data) = match data {
            Some(d) => (None, d),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("loupe-api-")
                    .tempdir()
                    .expect("temp dir");
                let p = dir.path().to_path_buf();
                (Some(dir), p)
            }
        };
        let mut s = Server {
            child: None,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            bind: bind.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            data,
            _dir: dir,
            log: Arc::default(),
        };
        s.launch();
        s
    }

    /// A data directory that outlives servers (for tokens made before start).
    pub fn temp_data_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("loupe-api-")
            .tempdir()
            .expect("temp dir")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client without a token.
    pub fn api(&self) -> Api {
        Api::new(&self.base())
    }

    /// Everything the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server running").id() as i32
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut cmd = loupe_cmd();
        cmd.arg("serve")
            .arg("--addr")
            .arg(&self.bind)
            .arg("--data")
            .arg(&self.data)
            .args(&self.args)
            .env("LOUPE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // If the test process dies without dropping us (a timeout, a
        // signal), the server must not outlive it.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs between
            // fork and exec here.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawning loupe serve");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("LOUPE_API_VERBOSE").is_some() {
                    eprintln!("[server] {line}");
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let rest = line
                    .strip_prefix("loupe serve listening on http://")
                    .or_else(|| line.strip_prefix("loupe serve listening on https://"));
                if let Some(rest) = rest
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "loupe serve did not report its address ({status:?}); stderr:\n{}",
                    self.stderr()
                );
            }
        };
        let mut addr: SocketAddr = addr.parse().expect("listening address");
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        self.addr = addr;
        self.child = Some(child);
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and waits for the process to exit (panics after 30 s).
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("server running");
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM)");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().expect("waiting for loupe serve") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!(
                    "loupe serve did not exit within 30 s of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data directory (after a kill).
    pub fn start_again(&mut self) {
        self.launch();
    }

    /// SIGKILL and start again.
    pub fn crash_and_restart(&mut self) {
        self.kill9();
        self.launch();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Resp {
    /// A header's value, if the answer has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {:?}",
                self.status,
                truncate(&self.text(), 500)
            )
        })
    }

    /// The JSON body; panics unless the status is `status`.
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            truncate(&self.text(), 1000)
        );
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts an API error: the status, a JSON content type and the body
    /// `{"error":{"code":"…","message":"…"}}` whose message contains `needle`.
    pub fn expect_error(&self, status: u16, needle: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected {status} containing {needle:?}; body: {}",
            truncate(&self.text(), 1000)
        );
        assert_error_shape(self);
        let v = self.json();
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "error message {msg:?} does not contain {needle:?}"
        );
        v
    }
}

/// Every error answer is `{"error":{"code","message"}}` with a JSON content type.
pub fn assert_error_shape(r: &Resp) {
    if let Err(msg) = error_shape(r) {
        panic!("{msg}");
    }
}

/// Like [`assert_error_shape`], as a result.
pub fn error_shape(r: &Resp) -> Result<(), String> {
    if !r.content_type.starts_with("application/json") {
        return Err(format!(
            "HTTP {} error has content type {:?}, not JSON; body: {:?}",
            r.status,
            r.content_type,
            truncate(&r.text(), 300)
        ));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
        format!(
            "HTTP {} error body is not JSON ({e}): {:?}",
            r.status,
            truncate(&r.text(), 300)
        )
    })?;
    let e = &v["error"];
    if e["code"].as_str().is_none_or(str::is_empty) {
        return Err(format!("error body lacks error.code: {v}"));
    }
    if e["message"].as_str().is_none_or(str::is_empty) {
        return Err(format!("error body lacks error.message: {v}"));
    }
    Ok(())
}

pub fn truncate(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A blocking client of the API, with or without a token.
#[derive(Clone)]
pub struct Api {
    agent: ureq::Agent,
    pub base: String,
    token: Option<String>,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

type Sent = Result<http_resp::Response, ureq::Error>;

mod http_resp {
    pub type Response = ureq::http::Response<ureq::Body>;
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            agent: agent(Duration::from_secs(60)),
            base: base.trim_end_matches('/').to_string(),
            token: None,
        }
    }

    /// The same server, with this bearer token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// The same client with a shorter overall timeout per request.
    pub fn with_timeout(&self, t: Duration) -> Api {
        Api {
            agent: agent(t),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    fn finish(sent: Sent) -> Result<Resp, ureq::Error> {
        let mut r = sent?;
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r.body_mut().with_config().limit(1 << 30).read_to_vec()?;
        Ok(Resp {
            status,
            content_type,
            body,
            headers,
        })
    }

    /// GET with query pairs (encoded here).
    pub fn try_get(&self, path: &str, query: &[(&str, &str)]) -> Result<Resp, ureq::Error> {
        let mut req = self.auth(self.agent.get(self.url(path)));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        Self::finish(req.call())
    }

    /// GET with extra headers (and this client's token, if any).
    pub fn get_h(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self.auth(self.agent.get(self.url(path)));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::finish(req.call()).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.get_q(path, &[])
    }

    pub fn get_q(&self, path: &str, query: &[(&str, &str)]) -> Resp {
        self.try_get(path, query)
            .unwrap_or_else(|e| panic!("GET {path} {query:?}: {e}"))
    }

    pub fn try_post_raw(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Resp, ureq::Error> {
        let mut req = self.auth(self.agent.post(self.url(path)));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::finish(req.send(body))
    }

    pub fn post_raw(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
        self.try_post_raw(path, body, headers)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub fn try_post_json(&self, path: &str, body: &Value) -> Result<Resp, ureq::Error> {
        let bytes = serde_json::to_vec(body).unwrap();
        self.try_post_raw(path, &bytes, &[("Content-Type", "application/json")])
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.try_post_json(path, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub fn patch_json(&self, path: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        let req = self
            .auth(self.agent.patch(self.url(path)))
            .header("Content-Type", "application/json");
        Self::finish(req.send(&bytes[..])).unwrap_or_else(|e| panic!("PATCH {path}: {e}"))
    }

    pub fn delete(&self, path: &str) -> Resp {
        let req = self.auth(self.agent.delete(self.url(path)));
        Self::finish(req.call()).unwrap_or_else(|e| panic!("DELETE {path}: {e}"))
    }

    /// Any method, no body (for probing routes).
    pub fn request(&self, method: &str, path: &str) -> Resp {
        let url = self.url(path);
        let sent = match method {
            "get" => self.auth(self.agent.get(url)).call(),
            "delete" => self.auth(self.agent.delete(url)).call(),
            "post" => self
                .auth(self.agent.post(url))
                .header("Content-Type", "application/json")
                .send(&b"{}"[..]),
            "patch" => self
                .auth(self.agent.patch(url))
                .header("Content-Type", "application/json")
                .send(&b"{}"[..]),
            "put" => self
                .auth(self.agent.put(url))
                .header("Content-Type", "application/json")
                .send(&b"{}"[..]),
            other => panic!("method {other}"),
        };
        Self::finish(sent).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    // ---- API helpers -----------------------------------------------------

    /// Creates (201) a run with these fields; returns it.
    pub fn create_run(&self, fields: Value) -> Value {
        self.post_json("/api/v1/runs", &fields).expect(201)
    }

    /// Posts a metrics batch; panics unless it is accepted. Returns `accepted`.
    pub fn post_metrics(&self, run: &str, batch: &Value) -> u64 {
        let v = self
            .post_json(&format!("/api/v1/runs/{run}/metrics"), batch)
            .expect(200);
        v["accepted"].as_u64().expect("accepted")
    }

    /// Posts a logs batch; panics unless it is accepted. Returns `accepted`.
    pub fn post_logs(&self, run: &str, batch: &Value) -> u64 {
        let v = self
            .post_json(&format!("/api/v1/runs/{run}/logs"), batch)
            .expect(200);
        v["accepted"].as_u64().expect("accepted")
    }

    pub fn run(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/runs/{id}")).expect(200)
    }

    /// The run's series list, by name (every page).
    pub fn series(&self, run: &str) -> std::collections::BTreeMap<String, Value> {
        self.series_pages(&format!("/api/v1/runs/{run}/series"), &[], None)
            .into_iter()
            .flatten()
            .map(|s| (s["name"].as_str().unwrap().to_string(), s))
            .collect()
    }

    /// Every page of a series listing (`path` with `query`), following
    /// `next_cursor`, with pages of `limit` (the server's default: none).
    pub fn series_pages(
        &self,
        path: &str,
        query: &[(&str, &str)],
        limit: Option<usize>,
    ) -> Vec<Vec<Value>> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        let limit = limit.map(|l| l.to_string());
        for _ in 0..1_000_000 {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if let Some(l) = &limit {
                q.push(("limit", l.as_str()));
            }
            if let Some(c) = &cursor {
                q.push(("cursor", c.as_str()));
            }
            let page = self.get_q(path, &q).expect(200);
            pages.push(page["series"].as_array().expect("series array").clone());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return pages,
            }
        }
        panic!("pagination did not end");
    }

    /// Every point of a series, read raw page by page (`x=step` or `time`).
    pub fn read_all(&self, run: &str, name: &str, x: &str, limit: usize) -> Points {
        let mut out = Points::default();
        let mut cursor: Option<String> = None;
        let limit_s = limit.to_string();
        for _ in 0..1_000_000 {
            let mut q = vec![("name", name), ("x", x), ("limit", limit_s.as_str())];
            if let Some(c) = &cursor {
                q.push(("cursor", c.as_str()));
            }
            let page = self
                .get_q(&format!("/api/v1/runs/{run}/series/data"), &q)
                .expect(200);
            out.extend_page(&page);
            match page["next_cursor"].as_str() {
                Some(c) => {
                    out.pages += 1;
                    cursor = Some(c.to_string())
                }
                None => {
                    out.pages += 1;
                    return out;
                }
            }
        }
        panic!("pagination did not end");
    }

    /// All log records of a run matching `query`, following cursors.
    pub fn all_logs(&self, run: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100_000 {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if let Some(c) = &cursor {
                q.push(("cursor", c.as_str()));
            }
            let page = self
                .get_q(&format!("/api/v1/runs/{run}/logs"), &q)
                .expect(200);
            out.extend(page["records"].as_array().unwrap().iter().cloned());
            match cursor_text(&page["next_cursor"]) {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
        panic!("log pagination did not end");
    }

    /// The server's own Prometheus metrics.
    pub fn prometheus(&self) -> String {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200);
        r.text()
    }
}

/// A cursor as the API gives it: a string, or a number.
pub fn cursor_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Points read back raw.
#[derive(Debug, Default, Clone)]
pub struct Points {
    pub x: Vec<Value>,
    pub y: Vec<f64>,
    pub step: Vec<Option<i64>>,
    pub time_ns: Vec<i64>,
    pub pages: usize,
}

impl Points {
    fn extend_page(&mut self, page: &Value) {
        let xs = page["x"].as_array().expect("x");
        let ys = page["y"].as_array().expect("y");
        let steps = page["step"].as_array().expect("raw pages carry step");
        let times = page["time_ns"].as_array().expect("raw pages carry time_ns");
        assert_eq!(xs.len(), ys.len());
        assert_eq!(steps.len(), ys.len());
        assert_eq!(times.len(), ys.len());
        assert_eq!(page["count"].as_u64(), Some(ys.len() as u64), "page count");
        assert_eq!(page["downsampled"], json!(false));
        self.x.extend(xs.iter().cloned());
        self.y.extend(ys.iter().map(from_json));
        self.step.extend(steps.iter().map(|s| s.as_i64()));
        self.time_ns
            .extend(times.iter().map(|t| t.as_i64().expect("time_ns integer")));
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }
}

/// A value as the API writes it: a number, or "NaN"/"Infinity"/"-Infinity".
/// Written out here on purpose rather than taken from `loupe_model::nonfinite`:
/// the tests check the server's encoding against the documented one, so
/// the oracle must not share the code under test.
pub fn to_json(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

pub fn from_json(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::String(s) if s == "NaN" => f64::NAN,
        Value::String(s) if s == "Infinity" => f64::INFINITY,
        Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
        other => panic!("not a value: {other}"),
    }
}

/// Bit-exact equality, where every NaN equals every NaN (JSON has one NaN).
pub fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sample's value in Prometheus text (`name` includes any labels).
pub fn prom_sample(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse::<f64>().ok()).flatten()
    })
}

/// A small deterministic PRNG (splitmix64), so failures reproduce.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// A finite f64 from random bits (any exponent, subnormals included).
    pub fn finite_f64(&mut self) -> f64 {
        loop {
            let v = f64::from_bits(self.next_u64());
            if v.is_finite() {
                return v;
            }
        }
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The deterministic value of `step` in series `seed`: any bits, now and
/// then NaN or an infinity.
pub fn value_at(seed: u64, step: i64) -> f64 {
    let mut r = Rng::new(seed ^ (step as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    match r.range(0, 50) {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => f64::NEG_INFINITY,
        _ => r.finite_f64(),
    }
}

/// Unix nanoseconds now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// `GET /api/v1/metrics/data` for one series outside runs: its name and
/// every label (the `project` label is the `project` parameter).
pub fn external_data(api: &Api, project: &str, name: &str, labels: &[(&str, &str)]) -> Value {
    let mut q = vec![("project", project), ("name", name)];
    let keys: Vec<String> = labels.iter().map(|(k, _)| format!("label.{k}")).collect();
    for ((_, v), k) in labels.iter().zip(&keys) {
        q.push((k.as_str(), v));
    }
    api.get_q("/api/v1/metrics/data", &q).expect(200)
}
