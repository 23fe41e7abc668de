//! End-to-end benchmarks of `loupe serve` over HTTP. Each starts the real
//! server binary (`loupe`, next to this executable) as a separate process on
//! a fresh data directory, seeds it through the public API, and measures
//! from this process, the client: ingest throughput with durable acks, M4
//! series queries, the runs table sorted by a summary, log search, and the
//! server's resident memory.
//!
//! Every benchmark prints its details, then one `[PASS]`/`[MISS]` line with
//! its target, then one JSON line.

mod scrape;
mod series_list;
mod soak;

pub use scrape::{ScrapeArgs, scrape};
pub use series_list::{SeriesListArgs, series_list};
pub use soak::{SoakArgs, soak};

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

/// Unix seconds of the first point the benchmarks write.
const T0_S: f64 = 1_764_000_000.0;
/// Seconds per training step in the generated data.
const STEP_S: f64 = 0.15;

// ---------------------------------------------------------------------------
// The server process

/// Where and how the server under test runs.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerOpts {
    /// Parent of the data directories (default: the system temp dir). Use a
    /// real disk: on tmpfs an fsync costs nothing and "durable" means little.
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
    /// Passed to `loupe serve --fsync` (always, group, never).
    #[arg(long, default_value = "group")]
    fsync: String,
    /// Keep the data directories and server logs (their paths are printed).
    #[arg(long)]
    keep: bool,
}

/// A data directory and the server's log, deleted afterwards unless `--keep`.
struct BenchDir {
    dir: tempfile::TempDir,
    keep: bool,
}

impl BenchDir {
    fn new(opts: &ServerOpts, what: &str) -> anyhow::Result<Self> {
        let prefix = format!("loupe-bench-{what}-");
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix);
        let dir = match &opts.tmp_dir {
            Some(p) => b.tempdir_in(p),
            None => b.tempdir(),
        }
        .context("creating a temporary directory")?;
        Ok(Self {
            dir,
            keep: opts.keep,
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn start(&self, opts: &ServerOpts) -> anyhow::Result<Server> {
        Server::start(
            &self.data(),
            &self.log(),
            &["--fsync".to_string(), opts.fsync.clone()],
        )
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        if self.keep {
            self.dir.disable_cleanup(true);
            eprintln!("kept {}", self.dir.path().display());
        }
    }
}

/// The `loupe` binary next to this one (or `$LOUPE_BIN`).
fn server_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("LOUPE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the loupe-bench executable")?;
    let dir = exe
        .parent()
        .context("the loupe-bench executable has no parent directory")?;
    let bin = dir.join("loupe");
    if !bin.is_file() {
        bail!(
            "the server binary {} is missing: build it first with `cargo build --release -p loupe` \
             (the HTTP benchmarks run the real server as a separate process; set LOUPE_BIN to use another one)",
            bin.display()
        );
    }
    Ok(bin)
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A running `loupe serve`.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
    startup: Duration,
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss: u64,
    peak: u64,
    /// The anonymous part of `rss` (heap, stacks): what the process holds.
    /// The rest is mostly mapped segment files, page cache the kernel
    /// takes back under pressure.
    anon: u64,
}

impl Server {
    fn start(data: &Path, log: &Path, extra: &[String]) -> anyhow::Result<Server> {
        let bin = server_binary()?;
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let t = Instant::now();
        let mut cmd = Command::new(&bin);
        // Safety: prctl is async-signal-safe. The server dies with this
        // process (with the spawning thread, strictly: always the main one
        // here), so an interrupted benchmark leaves no server behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(logf))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address, then drains stdout until the server exits.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("loupe serve listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => Ok(Server {
                child,
                base,
                log: log.to_path_buf(),
                startup: t.elapsed(),
            }),
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                bail!(
                    "{} did not print `loupe serve listening on http://…` ({e}; exit status {status:?}); its log:\n{}",
                    bin.display(),
                    log_tail(log)
                )
            }
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// VmRSS and VmHWM from `/proc/<pid>/status`.
    fn mem(&self) -> anyhow::Result<Mem> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("reading the server's /proc status")?;
        let kb = |field: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(field))
                .with_context(|| format!("{field} missing from /proc status"))?;
            let n: u64 = line[field.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(n * 1024)
        };
        Ok(Mem {
            rss: kb("VmRSS:")?,
            peak: kb("VmHWM:")?,
            anon: kb("RssAnon:")?,
        })
    }

    fn cpu_s(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }

    /// SIGTERM, then waits for the server to flush and exit.
    fn stop(mut self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        // Safety: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(st) = self.child.try_wait()? {
                if !st.success() {
                    bail!(
                        "the server exited with {st} on SIGTERM; its log:\n{}",
                        log_tail(&self.log)
                    );
                }
                return Ok(t.elapsed());
            }
            if Instant::now() > deadline {
                bail!("the server did not stop within 300 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// User + system CPU seconds from a `/proc/*/stat` file.
fn cpu_seconds(stat_path: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(stat_path) else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces), from field 3.
    let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Safety: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn client_cpu_s() -> f64 {
    cpu_seconds("/proc/self/stat")
}

/// The filesystem of `p`, by name where known.
fn fs_type(p: &Path) -> String {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return "?".into();
    };
    // Safety: statfs writes into the zeroed struct we own.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return "?".into();
    }
    match s.f_type as u64 {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        t => format!("fs type {t:#x}"),
    }
}

// ---------------------------------------------------------------------------
// The client

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// The whole response body; an error naming `what` unless the status is 2xx.
fn body_of(
    what: &str,
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> anyhow::Result<Vec<u8>> {
    let mut resp = r.with_context(|| format!("{what}: request failed"))?;
    let status = resp.status();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .with_context(|| format!("{what}: reading the response"))?;
    if !status.is_success() {
        bail!(
            "{what}: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
        );
    }
    Ok(bytes)
}

fn get(ag: &ureq::Agent, url: &str) -> anyhow::Result<Vec<u8>> {
    body_of(url, ag.get(url).call())
}

fn get_json(ag: &ureq::Agent, url: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_slice(&get(ag, url)?)?)
}

fn post_with(
    ag: &ureq::Agent,
    url: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> anyhow::Result<Vec<u8>> {
    let mut req = ag.post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    body_of(url, req.send(body))
}

fn post(ag: &ureq::Agent, url: &str, body: &[u8], gzip: bool) -> anyhow::Result<Vec<u8>> {
    let mut req = ag.post(url).header("content-type", "application/json");
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    body_of(url, req.send(body))
}

/// The `accepted` count of an ingest answer.
fn accepted(answer: &[u8]) -> anyhow::Result<u64> {
    let v: Value = serde_json::from_slice(answer)?;
    v["accepted"]
        .as_u64()
        .with_context(|| format!("no `accepted` in {}", String::from_utf8_lossy(answer)))
}

/// Creates a run; its id.
fn create_run(ag: &ureq::Agent, srv: &Server, body: Value) -> anyhow::Result<String> {
    let answer = post(
        ag,
        &srv.url("/api/v1/runs"),
        body.to_string().as_bytes(),
        false,
    )?;
    let v: Value = serde_json::from_slice(&answer)?;
    Ok(v["id"]
        .as_str()
        .with_context(|| format!("no run id in {v}"))?
        .to_string())
}

/// Percent-encodes a query value (keeping `/`, which is legal there).
fn qenc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A value from the server's Prometheus text (`GET /metrics`).
fn prom(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn server_metrics(ag: &ureq::Agent, srv: &Server) -> anyhow::Result<String> {
    Ok(String::from_utf8(get(ag, &srv.url("/metrics"))?)?)
}

// ---------------------------------------------------------------------------
// Figures

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Lat {
    n: usize,
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Lat {
    fn of(mut v: Vec<Duration>) -> Lat {
        assert!(!v.is_empty(), "no samples");
        v.sort();
        let q = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        Lat {
            n: v.len(),
            min: v[0].as_secs_f64() * 1e3,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: v[v.len() - 1].as_secs_f64() * 1e3,
        }
    }

    fn json(&self) -> Value {
        json!({"n": self.n, "min_ms": self.min, "p50_ms": self.p50, "p90_ms": self.p90, "p99_ms": self.p99, "max_ms": self.max})
    }
}

/// The result of one benchmark against its target.
pub struct Outcome {
    name: String,
    pass: bool,
    summary: String,
}

impl Outcome {
    fn new(name: &str, pass: bool, summary: String) -> Self {
        Self {
            name: name.to_string(),
            pass,
            summary,
        }
    }

    fn line(&self) -> String {
        format!(
            "[{}] {}: {}",
            if self.pass { "PASS" } else { "MISS" },
            self.name,
            self.summary
        )
    }
}

/// Prints the verdict line and the JSON line of one benchmark.
fn report(o: &Outcome, mut j: Value) {
    println!("{}", o.line());
    j["bench"] = o.name.clone().into();
    j["pass"] = o.pass.into();
    println!("{j}");
}

fn mb(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

// ---------------------------------------------------------------------------
// Generated data

/// Appends `v` in Rust's shortest round-trip form (what `repr()` gives in
/// Python), or the API's string for a non-finite value.
fn push_f64(s: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(s, "{v}");
    } else if v.is_nan() {
        s.push_str("\"NaN\"");
    } else if v > 0.0 {
        s.push_str("\"Infinity\"");
    } else {
        s.push_str("\"-Infinity\"");
    }
}

fn push_list<T>(
    s: &mut String,
    items: impl IntoIterator<Item = T>,
    mut f: impl FnMut(&mut String, T),
) {
    s.push('[');
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        f(s, x);
    }
    s.push(']');
}

/// A columnar metrics batch: every series gets the steps `steps`, times
/// 0.15 s apart with a little jitter, and full-precision values.
fn metrics_body(names: &[String], steps: std::ops::Range<i64>, rng: &mut StdRng) -> String {
    let per = (steps.end - steps.start) as usize;
    let mut s = String::with_capacity(names.len() * (per * 48 + 64) + 16);
    s.push_str("{\"series\":[");
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{{\"name\":\"{name}\",\"step\":");
        push_list(&mut s, steps.clone(), |s, st| {
            let _ = write!(s, "{st}");
        });
        s.push_str(",\"time\":");
        let times: Vec<f64> = steps
            .clone()
            .map(|st| T0_S + st as f64 * STEP_S + rng.gen_range(0.0..0.01))
            .collect();
        push_list(&mut s, times, push_f64);
        s.push_str(",\"value\":");
        let scale = 1.0 + i as f64 * 0.01;
        let values: Vec<f64> = steps
            .clone()
            .map(|st| scale * (2.0 + 8.0 * (-(st as f64) / 1e5).exp()) * rng.gen_range(0.98..1.02))
            .collect();
        push_list(&mut s, values, push_f64);
        s.push('}');
    }
    s.push_str("]}");
    s
}

fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::new(level),
    );
    e.write_all(bytes).expect("writing to memory");
    e.finish().expect("writing to memory")
}

// ---------------------------------------------------------------------------
// http-ingest

#[derive(clap::Args, Clone, Debug)]
pub struct HttpIngestArgs {
    /// Points to send in all.
    #[arg(long, default_value_t = 20_000_000)]
    pub points: usize,
    /// Concurrent client threads, each with its own keep-alive connection
    /// and its own run (as the ranks of a training job would).
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Series per batch.
    #[arg(long, default_value_t = 100)]
    pub series: usize,
    /// Points per series per batch (a batch holds series × this).
    #[arg(long, default_value_t = 100)]
    pub points_per_series: usize,
    /// Distinct bodies encoded ahead of time per thread, with increasing
    /// steps, then sent again in turn (so steps repeat after that many
    /// requests). 0: every request its own body, steps always increasing
    /// (memory: all bodies at once, ~43 bytes per point).
    #[arg(long, default_value_t = 50)]
    pub bodies: usize,
    /// The wire format: Loupe's JSON to a run, InfluxDB line protocol
    /// (`/api/v2/write`, ten fields a line as Telegraf sends them) or
    /// Prometheus remote write 1.0 (`/api/v1/write`, snappy protobuf);
    /// the last two write series outside runs.
    #[arg(long, value_enum, default_value_t = WireFormat::Json)]
    pub format: WireFormat,
    /// Send the bodies gzip-compressed (`Content-Encoding: gzip`).
    #[arg(long)]
    pub gzip: bool,
    /// gzip level (Python's gzip.compress defaults to 9, zlib to 6).
    #[arg(long, default_value_t = 6)]
    pub gzip_level: u32,
    /// Live-stream clients (`GET /api/v1/live`, as open UI tabs) connected
    /// and reading while the points are sent.
    #[arg(long, default_value_t = 0)]
    pub subscribers: usize,
    #[command(flatten)]
    pub server: ServerOpts,
}

/// What `http-ingest` sends.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireFormat {
    Json,
    LineProtocol,
    RemoteWrite,
}

impl WireFormat {
    /// The path a thread posts to (its run's for JSON).
    fn path(self, run: &str) -> String {
        match self {
            WireFormat::Json => format!("/api/v1/runs/{run}/metrics"),
            WireFormat::LineProtocol => "/api/v2/write?bucket=bench&precision=ns".into(),
            WireFormat::RemoteWrite => "/api/v1/write?project=bench".into(),
        }
    }

    fn headers(self, gzip: bool) -> Vec<(&'static str, &'static str)> {
        let mut h = match self {
            WireFormat::Json => vec![("content-type", "application/json")],
            WireFormat::LineProtocol => vec![
                ("content-type", "text/plain; charset=utf-8"),
                ("authorization", "Token bench"),
            ],
            WireFormat::RemoteWrite => vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "snappy"),
                ("x-prometheus-remote-write-version", "0.1.0"),
            ],
        };
        if gzip && self != WireFormat::RemoteWrite {
            h.push(("content-encoding", "gzip"));
        }
        h
    }

    /// One request's body: `names` × `steps`, values from `rng`, for
    /// client thread `th` (its label keeps the threads' series apart).
    fn body(
        self,
        names: &[String],
        steps: std::ops::Range<i64>,
        th: usize,
        rng: &mut StdRng,
    ) -> Vec<u8> {
        const T0_NS: i64 = 1_733_500_000_000_000_000;
        match self {
            WireFormat::Json => metrics_body(names, steps, rng).into_bytes(),
            WireFormat::LineProtocol => {
                use std::fmt::Write;
                let mut out = String::new();
                for s in steps {
                    for (g, group) in names.chunks(10).enumerate() {
                        let _ = write!(out, "train,rank={th},group={g} ");
                        for (i, name) in group.iter().enumerate() {
                            let sep = if i == 0 { "" } else { "," };
                            let field = name.trim_start_matches("train/");
                            let _ = write!(out, "{sep}{field}={}", rng.r#gen::<f64>());
                        }
                        let _ = writeln!(out, " {}", T0_NS + s * 1_000_000_000);
                    }
                }
                out.into_bytes()
            }
            WireFormat::RemoteWrite => {
                use loupe_ingest::remote_write::v1;
                use prost::Message;
                let rank = th.to_string();
                let req = v1::WriteRequest {
                    timeseries: names
                        .iter()
                        .map(|n| v1::TimeSeries {
                            labels: [("__name__", n.replace('/', "_")), ("rank", rank.clone())]
                                .into_iter()
                                .map(|(k, v)| v1::Label {
                                    name: k.into(),
                                    value: v,
                                })
                                .collect(),
                            samples: steps
                                .clone()
                                .map(|s| v1::Sample {
                                    value: rng.r#gen::<f64>(),
                                    timestamp: T0_NS / 1_000_000 + s * 1_000,
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                };
                snap::raw::Encoder::new()
                    .compress_vec(&req.encode_to_vec())
                    .expect("snappy compresses any input")
            }
        }
    }
}

/// Durable ingest over HTTP: points per second the server acknowledges.
impl HttpIngestArgs {
    /// The default workload (100 series × 100 points a batch, plain JSON,
    /// no live clients) with these points and threads.
    fn plain(points: usize, threads: usize, server: &ServerOpts) -> Self {
        HttpIngestArgs {
            points,
            threads,
            series: 100,
            points_per_series: 100,
            bodies: 50,
            format: WireFormat::Json,
            gzip: false,
            gzip_level: 6,
            subscribers: 0,
            server: server.clone(),
        }
    }
}

pub fn http_ingest(a: &HttpIngestArgs) -> anyhow::Result<Outcome> {
    let bd = BenchDir::new(&a.server, "ingest")?;
    let srv = bd.start(&a.server)?;
    let ag = agent();
    let batch_points = a.series * a.points_per_series;
    let requests = a.points.div_ceil(batch_points).max(a.threads);
    let names: Vec<String> = (0..a.series)
        .map(|i| format!("train/metric_{i:03}"))
        .collect();

    // Runs and bodies, before the clock starts.
    let t = Instant::now();
    let prepared = prepare_ingest(a, &ag, &srv, &names, requests)?;
    let prep_s = t.elapsed().as_secs_f64();
    let body_bytes = prepared[0].1.iter().map(Vec::len).sum::<usize>() / prepared[0].1.len();
    let plain_bytes = if a.gzip {
        let mut rng = StdRng::seed_from_u64(0);
        a.format
            .body(&names, 0..a.points_per_series as i64, 0, &mut rng)
            .len()
    } else {
        body_bytes
    };

    let live = LiveClients::connect(&srv.base, a.subscribers)?;
    let before = server_metrics(&ag, &srv)?;
    let (srv_cpu0, cli_cpu0) = (srv.cpu_s(), client_cpu_s());
    let (took, results) = send_ingest(a, &srv, &prepared, requests);
    let (srv_cpu, cli_cpu) = (srv.cpu_s() - srv_cpu0, client_cpu_s() - cli_cpu0);
    let mut acked = 0;
    let mut lats = Vec::new();
    for r in results {
        let (n, l) = r?;
        acked += n;
        lats.extend(l);
    }
    let after = server_metrics(&ag, &srv)?;
    let mem = srv.mem()?;
    let live_bytes = live.close();
    if a.subscribers > 0 {
        println!(
            "  {} live clients read {:.1} MB of events meanwhile",
            a.subscribers,
            live_bytes as f64 / 1e6
        );
    }
    let expected = (requests * batch_points) as u64;
    if acked != expected {
        bail!("the server acknowledged {acked} points, {expected} were sent");
    }
    let secs = took.as_secs_f64();
    let d = |name: &str| prom(&after, name) - prom(&before, name);
    let fsyncs = d("loupe_wal_fsync_seconds_count");
    let f = IngestFigures {
        acked,
        requests,
        batch_points,
        secs,
        pps: acked as f64 / secs,
        rps: requests as f64 / secs,
        lat: Lat::of(lats),
        body_bytes,
        plain_bytes,
        srv_cpu,
        cli_cpu,
        fsyncs,
        fsync_ms: d("loupe_wal_fsync_seconds_sum") / fsyncs * 1e3,
        flushes: d("loupe_tsdb_flushes_total"),
        mem,
        stop: srv.stop()?,
        distinct_bodies: prepared[0].1.len(),
        prep_s,
        fs: fs_type(&bd.data()),
    };
    f.print(a);
    Ok(f.outcome(a))
}

/// Open live streams, each read (and thrown away) by its own thread, as
/// browser tabs would; they end when closed or when the server stops.
struct LiveClients {
    streams: Vec<std::net::TcpStream>,
    readers: Vec<std::thread::JoinHandle<u64>>,
}

impl LiveClients {
    fn connect(base: &str, n: usize) -> anyhow::Result<LiveClients> {
        use std::io::{Read, Write};
        let host = base.trim_start_matches("http://").trim_end_matches('/');
        let mut streams = Vec::with_capacity(n);
        let mut readers = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = std::net::TcpStream::connect(host)?;
            write!(s, "GET /api/v1/live HTTP/1.1\r\nHost: {host}\r\n\r\n")?;
            let mut r = s.try_clone()?;
            streams.push(s);
            readers.push(
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        let mut total = 0u64;
                        while let Ok(k) = r.read(&mut buf) {
                            if k == 0 {
                                break;
                            }
                            total += k as u64;
                        }
                        total
                    })?,
            );
        }
        Ok(LiveClients { streams, readers })
    }

    /// Closes every stream; the bytes they read.
    fn close(self) -> u64 {
        for s in &self.streams {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.readers
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .sum()
    }
}

/// Creates one run per client thread and encodes its distinct bodies.
fn prepare_ingest(
    a: &HttpIngestArgs,
    ag: &ureq::Agent,
    srv: &Server,
    names: &[String],
    requests: usize,
) -> anyhow::Result<Vec<(String, Vec<Vec<u8>>)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.threads)
            .map(|th| {
                s.spawn(move || -> anyhow::Result<(String, Vec<Vec<u8>>)> {
                    let run = create_run(
                        ag,
                        srv,
                        json!({"project": "bench", "name": format!("ingest-rank{th}"), "rank": th, "world_size": a.threads}),
                    )?;
                    let mut rng = StdRng::seed_from_u64(th as u64);
                    let pps = a.points_per_series as i64;
                    let mine = requests / a.threads + usize::from(th < requests % a.threads);
                    let distinct = if a.bodies == 0 { mine } else { a.bodies.min(mine) };
                    let bodies = (0..distinct as i64)
                        .map(|j| {
                            let body = a.format.body(names, j * pps..(j + 1) * pps, th, &mut rng);
                            if a.gzip && a.format != WireFormat::RemoteWrite {
                                gzip(&body, a.gzip_level)
                            } else {
                                body
                            }
                        })
                        .collect();
                    Ok((run, bodies))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("body generator"))
            .collect::<anyhow::Result<Vec<_>>>()
    })
}

/// One client thread's acknowledged points and request latencies.
type Sent = anyhow::Result<(u64, Vec<Duration>)>;

/// The timed part: every thread posts its share of the requests, starting
/// together; returns the wall time and what each thread sent.
fn send_ingest(
    a: &HttpIngestArgs,
    srv: &Server,
    prepared: &[(String, Vec<Vec<u8>>)],
    requests: usize,
) -> (Duration, Vec<Sent>) {
    let barrier = Barrier::new(a.threads + 1);
    let url = |run: &str| srv.url(&a.format.path(run));
    let headers = a.format.headers(a.gzip);
    let batch_points = (a.series * a.points_per_series) as u64;
    std::thread::scope(|s| {
        let handles: Vec<_> = prepared
            .iter()
            .enumerate()
            .map(|(th, (run, bodies))| {
                let barrier = &barrier;
                let headers = &headers;
                let url = url(run);
                // This thread's share of the requests.
                let mine = requests / a.threads + usize::from(th < requests % a.threads);
                s.spawn(move || -> Sent {
                    let ag = agent();
                    let mut lat = Vec::with_capacity(mine);
                    let mut acked = 0;
                    barrier.wait();
                    for i in 0..mine {
                        let t = Instant::now();
                        let answer = post_with(&ag, &url, &bodies[i % bodies.len()], headers)?;
                        lat.push(t.elapsed());
                        // The protocols answer 204: everything or nothing.
                        acked += if a.format == WireFormat::Json {
                            accepted(&answer)?
                        } else {
                            batch_points
                        };
                    }
                    Ok((acked, lat))
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect();
        (t.elapsed(), results)
    })
}

/// What one `http-ingest` run measured.
struct IngestFigures {
    acked: u64,
    requests: usize,
    batch_points: usize,
    secs: f64,
    /// Points and requests per second.
    pps: f64,
    rps: f64,
    lat: Lat,
    body_bytes: usize,
    plain_bytes: usize,
    /// CPU seconds during the timed part.
    srv_cpu: f64,
    cli_cpu: f64,
    fsyncs: f64,
    fsync_ms: f64,
    flushes: f64,
    mem: Mem,
    stop: Duration,
    distinct_bodies: usize,
    prep_s: f64,
    fs: String,
}

impl IngestFigures {
    const TARGET: f64 = 1e6;

    fn variant(a: &HttpIngestArgs) -> String {
        let format = match a.format {
            WireFormat::Json => "json",
            WireFormat::LineProtocol => "line protocol",
            WireFormat::RemoteWrite => "remote write (snappy)",
        };
        if a.gzip && a.format != WireFormat::RemoteWrite {
            format!("{format}, gzip -{}", a.gzip_level)
        } else {
            format.to_string()
        }
    }

    fn print(&self, a: &HttpIngestArgs) {
        let secs = self.secs;
        println!(
            "http-ingest ({}): {} points in {} requests of {} points ({} series x {}), {} client threads, fsync {} on {}: {:.2} s",
            Self::variant(a),
            self.acked,
            self.requests,
            self.batch_points,
            a.series,
            a.points_per_series,
            a.threads,
            a.server.fsync,
            self.fs,
            secs
        );
        println!(
            "  {:.3} M points/s, {:.0} requests/s; request latency p50 {:.1} ms, p90 {:.1}, p99 {:.1}, max {:.1}",
            self.pps / 1e6,
            self.rps,
            self.lat.p50,
            self.lat.p90,
            self.lat.p99,
            self.lat.max
        );
        println!(
            "  body {:.0} KB{} ({:.1} bytes/point on the wire); CPU during the run: server {:.2} cores ({:.2} us/point), client {:.2} cores; {} CPUs here",
            self.body_bytes as f64 / 1e3,
            if a.gzip {
                format!(" gzip of {:.0} KB", self.plain_bytes as f64 / 1e3)
            } else {
                String::new()
            },
            self.body_bytes as f64 / self.batch_points as f64,
            self.srv_cpu / secs,
            self.srv_cpu / self.acked as f64 * 1e6,
            self.cli_cpu / secs,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "  server: {} WAL fsyncs (avg {:.2} ms) for {} requests, {} head flushes; RSS {:.0} MB (peak {:.0} MB); shutdown {:.2} s; {} distinct bodies per thread prepared in {:.1} s (not timed)",
            self.fsyncs,
            self.fsync_ms,
            self.requests,
            self.flushes,
            mb(self.mem.rss),
            mb(self.mem.peak),
            self.stop.as_secs_f64(),
            self.distinct_bodies,
            self.prep_s
        );
    }

    /// The verdict against the target, reported with its JSON line.
    fn outcome(&self, a: &HttpIngestArgs) -> Outcome {
        let (secs, lat) = (self.secs, &self.lat);
        let name = match (a.format, a.gzip) {
            (WireFormat::LineProtocol, _) => "http-ingest-line-protocol",
            (WireFormat::RemoteWrite, _) => "http-ingest-remote-write",
            (WireFormat::Json, true) => "http-ingest-gzip",
            (WireFormat::Json, false) => "http-ingest",
        };
        let o = Outcome::new(
            name,
            self.pps >= Self::TARGET,
            format!(
                "{:.3} M points/s durable (target >= 1 M/s), {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, {} threads",
                self.pps / 1e6,
                self.rps,
                lat.p50,
                lat.p99,
                a.threads
            ),
        );
        report(
            &o,
            json!({
                "variant": Self::variant(a), "points": self.acked, "requests": self.requests, "batch_points": self.batch_points,
                "threads": a.threads, "distinct_bodies_per_thread": self.distinct_bodies, "seconds": secs, "points_per_sec": self.pps, "requests_per_sec": self.rps,
                "latency": lat.json(), "body_bytes": self.body_bytes, "plain_body_bytes": self.plain_bytes,
                "server_cpu_cores": self.srv_cpu / secs, "client_cpu_cores": self.cli_cpu / secs,
                "server_cpu_us_per_point": self.srv_cpu / self.acked as f64 * 1e6,
                "fsyncs": self.fsyncs, "fsync_avg_ms": self.fsync_ms, "server_rss_bytes": self.mem.rss,
                "server_peak_rss_bytes": self.mem.peak, "fs": self.fs,
            }),
        );
        o
    }
}

// ---------------------------------------------------------------------------
// http-query

#[derive(clap::Args, Clone, Debug)]
pub struct HttpQueryArgs {
    /// Series lengths, in points (the target applies to 10M).
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub lengths: Vec<usize>,
    /// Chart width (`width=`): at most 4 x width points come back.
    #[arg(long, default_value_t = 2000)]
    pub width: u32,
    /// Queries per measurement.
    #[arg(long, default_value_t = 200)]
    pub repeats: usize,
    /// Points per seeding request (one series).
    #[arg(long, default_value_t = 100_000)]
    pub batch: usize,
    /// Skip the second measurement after a restart (all data in segments).
    #[arg(long)]
    pub no_restart: bool,
    #[command(flatten)]
    pub server: ServerOpts,
}

/// One series' body: loss-like values with rare spikes.
fn loss_body(steps: std::ops::Range<i64>, n_total: usize, rng: &mut StdRng) -> String {
    let mut s = String::with_capacity((steps.end - steps.start) as usize * 48 + 64);
    s.push_str("{\"series\":[{\"name\":\"train/loss\",\"step\":");
    push_list(&mut s, steps.clone(), |s, st| {
        let _ = write!(s, "{st}");
    });
    s.push_str(",\"time\":");
    let times: Vec<f64> = steps
        .clone()
        .map(|st| T0_S + st as f64 * STEP_S + rng.gen_range(0.0..0.01))
        .collect();
    push_list(&mut s, times, push_f64);
    s.push_str(",\"value\":");
    let values: Vec<f64> = steps
        .map(|st| {
            let base = 2.5 + 7.5 * (-(st as f64) / (n_total as f64 / 10.0)).exp();
            let spike = if rng.gen_bool(1e-5) { 20.0 } else { 1.0 };
            (base * spike * (1.0 + 0.02 * (rng.r#gen::<f64>() - 0.5))) as f32 as f64
        })
        .collect();
    push_list(&mut s, values, push_f64);
    s.push_str("}]}");
    s
}

/// Times `repeats` GETs of `url(i)`; the latencies and the last body.
fn time_gets(
    ag: &ureq::Agent,
    repeats: usize,
    mut url: impl FnMut(usize) -> String,
) -> anyhow::Result<(Vec<Duration>, Vec<u8>)> {
    let mut lat = Vec::with_capacity(repeats);
    let mut last = Vec::new();
    for i in 0..repeats {
        let u = url(i);
        let t = Instant::now();
        last = get(ag, &u)?;
        lat.push(t.elapsed());
    }
    Ok((lat, last))
}

struct M4Figures {
    cold_ms: f64,
    full: Lat,
    zoom: Lat,
    bytes: usize,
}

fn measure_m4(
    ag: &ureq::Agent,
    srv: &Server,
    run: &str,
    n: usize,
    a: &HttpQueryArgs,
) -> anyhow::Result<M4Figures> {
    let full_url = srv.url(&format!(
        "/api/v1/runs/{run}/series/data?name={}&width={}",
        qenc("train/loss"),
        a.width
    ));
    let t = Instant::now();
    let first = get(ag, &full_url)?;
    let cold_ms = t.elapsed().as_secs_f64() * 1e3;
    let v: Value = serde_json::from_slice(&first)?;
    let count = v["count"].as_u64().unwrap_or(0);
    let xs = v["x"].as_array().map_or(0, Vec::len);
    if count != n as u64 || xs == 0 || xs > 4 * a.width as usize || v["downsampled"] != true {
        bail!(
            "unexpected M4 answer for {n} points: count {count}, {xs} points, downsampled {}",
            v["downsampled"]
        );
    }
    let (full, last) = time_gets(ag, a.repeats, |_| full_url.clone())?;
    if last != first {
        bail!("the same full-range query answered differently");
    }
    let mut rng = StdRng::seed_from_u64(7);
    let last_step = n as i64 - 1;
    let zooms: Vec<(i64, i64)> = (0..a.repeats)
        .map(|_| {
            let lo = rng.gen_range(0..last_step);
            (lo, rng.gen_range(lo + 1..=last_step))
        })
        .collect();
    let (zoom, _) = time_gets(ag, a.repeats, |i| {
        format!("{full_url}&from={}&to={}", zooms[i].0, zooms[i].1)
    })?;
    Ok(M4Figures {
        cold_ms,
        full: Lat::of(full),
        zoom: Lat::of(zoom),
        bytes: first.len(),
    })
}

/// M4 series queries over HTTP on long series.
pub fn http_query(a: &HttpQueryArgs) -> anyhow::Result<Outcome> {
    const TARGET_MS: f64 = 10.0;
    let bd = BenchDir::new(&a.server, "query")?;
    let mut srv = bd.start(&a.server)?;
    let ag = agent();
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    for &n in &a.lengths {
        let run = create_run(
            &ag,
            &srv,
            json!({"project": "bench", "name": format!("query-{n}")}),
        )?;
        let mut rng = StdRng::seed_from_u64(n as u64);
        let url = srv.url(&format!("/api/v1/runs/{run}/metrics"));
        let (mut post_s, mut sent) = (0.0, 0usize);
        let t = Instant::now();
        while sent < n {
            let m = a.batch.min(n - sent);
            let body = loss_body(sent as i64..(sent + m) as i64, n, &mut rng);
            let tp = Instant::now();
            let acked = accepted(&post(&ag, &url, body.as_bytes(), false)?)?;
            post_s += tp.elapsed().as_secs_f64();
            if acked != m as u64 {
                bail!("seeding: {acked} of {m} points acknowledged");
            }
            sent += m;
        }
        println!(
            "http-query: seeded {n} points of train/loss in {} requests of {} points: {:.1} s ({:.2} M points/s in requests, body generation excluded)",
            n.div_ceil(a.batch),
            a.batch,
            t.elapsed().as_secs_f64(),
            n as f64 / post_s / 1e6
        );
        runs.push((n, run));
    }
    let mut phases = vec!["just after ingest"];
    if !a.no_restart {
        phases.push("after a restart");
    }
    for (pi, phase) in phases.iter().enumerate() {
        if pi == 1 {
            let stop = srv.stop()?;
            srv = bd.start(&a.server)?;
            println!(
                "http-query: restarted the server (stop {:.2} s, start {:.2} s): all points now in segments",
                stop.as_secs_f64(),
                srv.startup.as_secs_f64()
            );
        }
        let m = server_metrics(&ag, &srv)?;
        println!(
            "http-query, {phase}: the server holds {} points in its head (not yet in segments) and {} segments",
            prom(&m, "loupe_tsdb_head_points"),
            prom(&m, "loupe_tsdb_segments")
        );
        for (n, run) in &runs {
            let f = measure_m4(&ag, &srv, run, *n, a)?;
            println!(
                "http-query {:>9} points, width {}, {phase}: full range p50 {:.2} ms (min {:.2}, p90 {:.2}, p99 {:.2}; first {:.2}) | random zoom p50 {:.2} ms p90 {:.2} | {:.0} KB answer",
                n,
                a.width,
                f.full.p50,
                f.full.min,
                f.full.p90,
                f.full.p99,
                f.cold_ms,
                f.zoom.p50,
                f.zoom.p90,
                f.bytes as f64 / 1e3
            );
            rows.push((*n, phase.to_string(), f));
        }
    }
    let mem = srv.mem()?;
    srv.stop()?;
    // The target applies to the longest series, in every phase.
    let longest = a.lengths.iter().copied().max().unwrap_or(0);
    let worst = rows
        .iter()
        .filter(|r| r.0 == longest)
        .map(|r| r.2.full.p50)
        .fold(0.0, f64::max);
    let mut summary = format!(
        "{}M points, width {}: full-range p50 {}",
        longest as f64 / 1e6,
        a.width,
        rows.iter()
            .filter(|r| r.0 == longest)
            .map(|r| format!("{:.2} ms {}", r.2.full.p50, r.1))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = write!(summary, " (target <= {TARGET_MS} ms)");
    for r in &rows {
        let _ = write!(
            summary,
            "; {}M {}: p90 {:.2}, zoom p50 {:.2}",
            r.0 as f64 / 1e6,
            if r.1.starts_with("after") {
                "restarted"
            } else {
                "live"
            },
            r.2.full.p90,
            r.2.zoom.p50
        );
    }
    let o = Outcome::new("http-query", worst <= TARGET_MS, summary);
    report(
        &o,
        json!({
            "width": a.width,
            "results": rows.iter().map(|(n, phase, f)| json!({
                "points": n, "phase": phase, "first_ms": f.cold_ms, "full": f.full.json(),
                "zoom": f.zoom.json(), "answer_bytes": f.bytes,
            })).collect::<Vec<_>>(),
            "server_rss_bytes": mem.rss,
        }),
    );
    Ok(o)
}

// ---------------------------------------------------------------------------
// runs-list (and the memory figures after it)

#[derive(clap::Args, Clone, Debug)]
pub struct RunsListArgs {
    /// Runs to create.
    #[arg(long, default_value_t = 10_000)]
    pub runs: usize,
    /// Client threads for seeding.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Points per metric per run.
    #[arg(long, default_value_t = 20)]
    pub points: usize,
    /// Queries per measurement.
    #[arg(long, default_value_t = 200)]
    pub repeats: usize,
    #[command(flatten)]
    pub server: ServerOpts,
}

const RUN_METRICS: [&str; 5] = [
    "train/loss",
    "train/lr",
    "eval/loss",
    "eval/accuracy",
    "train/grad_norm",
];

/// Runs whose `train/loss` summary passes `ok` (pages through all runs).
/// Seconds until all `runs` runs have a `train/loss` summary that passes
/// `ok` (summaries reach SQLite about once a second); fails after 300 s.
fn wait_for_summaries(
    ag: &ureq::Agent,
    srv: &Server,
    runs: usize,
    ok: impl Fn(&Value) -> bool + Copy,
    what: &str,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    loop {
        let n = runs_with_summary(ag, srv, ok)?;
        if n == runs {
            return Ok(t.elapsed().as_secs_f64());
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("only {n} of {runs} runs {what} after 300 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn runs_with_summary(
    ag: &ureq::Agent,
    srv: &Server,
    ok: impl Fn(&Value) -> bool,
) -> anyhow::Result<usize> {
    let mut cursor: Option<String> = None;
    let mut n = 0;
    loop {
        let mut url = srv.url("/api/v1/runs?project=bench&limit=1000");
        if let Some(c) = &cursor {
            let _ = write!(url, "&cursor={}", qenc(c));
        }
        let v = get_json(ag, &url)?;
        for r in v["runs"].as_array().context("no runs array")? {
            if r["summary"].get("train/loss").is_some_and(&ok) {
                n += 1;
            }
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(n),
        }
    }
}

struct RunsListFigures {
    outcome: Outcome,
    /// RSS two seconds after seeding finished and summaries were flushed.
    rss_seeded: Mem,
    /// RSS two seconds after a restart on the seeded directory.
    rss_restarted: Mem,
}

fn runs_list_inner(a: &RunsListArgs) -> anyhow::Result<RunsListFigures> {
    const TARGET_MS: f64 = 50.0;
    let bd = BenchDir::new(&a.server, "runs")?;
    let mut srv = bd.start(&a.server)?;
    let ag = agent();
    let t = Instant::now();
    let run_ids = seed_listed_runs(a, &srv)?;
    let seed_s = t.elapsed().as_secs_f64();
    // Summaries reach SQLite about once a second, off the ingest path.
    let flush_s = wait_for_summaries(&ag, &srv, a.runs, |_| true, "have a train/loss summary")?;
    println!(
        "runs-list: created {} runs with 3-5 metrics of {} points each in {:.1} s ({:.0} runs/s, 2 requests each, {} threads); all summaries listed {:.1} s later",
        a.runs,
        a.points,
        seed_s,
        a.runs as f64 / seed_s,
        a.threads,
        flush_s
    );
    std::thread::sleep(Duration::from_secs(2));
    let rss_seeded = srv.mem()?;

    // A burst: one new train/loss point for every run, as if all were
    // training at once; then how long until every summary shows it.
    let burst_step = a.points as i64;
    let t = Instant::now();
    post_burst(&srv, &run_ids, burst_step)?;
    let burst_post_s = t.elapsed().as_secs_f64();
    let burst_lag_s = wait_for_summaries(
        &ag,
        &srv,
        a.runs,
        |l| l["last_step"].as_i64() == Some(burst_step),
        "show the burst",
    )?;
    println!(
        "runs-list: burst of one train/loss point to each of the {} runs posted in {:.1} s ({:.0} requests/s); every summary current {:.1} s after the last post",
        a.runs,
        burst_post_s,
        a.runs as f64 / burst_post_s,
        burst_lag_s
    );
    std::thread::sleep(Duration::from_secs(2));

    let mut rows = Vec::new();
    for phase in ["seeded", "restarted"] {
        if phase == "restarted" {
            srv.stop()?;
            srv = bd.start(&a.server)?;
        }
        let (sorted, by_start) = time_listings(a, &bd, &srv, &ag, phase)?;
        rows.push((phase, sorted, by_start));
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss_restarted = srv.mem()?;
    srv.stop()?;
    let meta_bytes: u64 = ["meta.sqlite", "meta.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(bd.data().join(f)).ok())
        .map(|m| m.len())
        .sum();
    let worst = rows.iter().map(|r| r.1.p50).fold(0.0, f64::max);
    let outcome = Outcome::new(
        "runs-list",
        worst <= TARGET_MS,
        format!(
            "{} runs, sort=-summary.train/loss.last limit=50: p50 {:.2} ms live, {:.2} ms after restart (target <= {TARGET_MS} ms); p90 {:.2}; default sort p50 {:.2} ms",
            a.runs, rows[0].1.p50, rows[1].1.p50, rows[0].1.p90, rows[0].2.p50
        ),
    );
    report(
        &outcome,
        json!({
            "runs": a.runs, "seed_seconds": seed_s, "summary_flush_wait_seconds": flush_s,
            "burst_post_seconds": burst_post_s, "burst_summary_lag_seconds": burst_lag_s,
            "results": rows.iter().map(|(p, s, d)| json!({"phase": p, "summary_sort": s.json(), "default_sort": d.json()})).collect::<Vec<_>>(),
            "sqlite_bytes": meta_bytes,
            "server_rss_seeded_bytes": rss_seeded.rss, "server_rss_restarted_bytes": rss_restarted.rss,
        }),
    );
    Ok(RunsListFigures {
        outcome,
        rss_seeded,
        rss_restarted,
    })
}

/// Creates `a.runs` runs of a sweep over `a.threads` threads, each with 3–5
/// metrics of `a.points` points; returns each thread's run ids.
fn seed_listed_runs(a: &RunsListArgs, srv: &Server) -> anyhow::Result<Vec<Vec<String>>> {
    std::thread::scope(|s| -> anyhow::Result<Vec<Vec<String>>> {
        let handles: Vec<_> = (0..a.threads)
            .map(|th| {
                s.spawn(move || -> anyhow::Result<Vec<String>> {
                    let ag = agent();
                    let mut rng = StdRng::seed_from_u64(th as u64 + 100);
                    (th..a.runs)
                        .step_by(a.threads)
                        .map(|i| seed_listed_run(a, srv, &ag, i, &mut rng))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("seeding thread"))
            .collect()
    })
}

/// Run `i` of the sweep: created, then its metrics in one request.
fn seed_listed_run(
    a: &RunsListArgs,
    srv: &Server,
    ag: &ureq::Agent,
    i: usize,
    rng: &mut StdRng,
) -> anyhow::Result<String> {
    let run = create_run(
        ag,
        srv,
        json!({
            "project": "bench",
            "name": format!("sweep-{i:05}"),
            "group": format!("sweep-{}", i / 100),
            "tags": [format!("lr-{}", i % 7), "baseline"],
            "config": {"lr": 1e-4 * (1 + i % 10) as f64, "batch_size": 32 << (i % 4), "layers": 12 + i % 24},
            "host": format!("node-{:03}", i % 64),
        }),
    )?;
    let k = 3 + i % 3;
    let steps = 0..a.points as i64;
    let mut body = String::from("{\"series\":[");
    for (j, name) in RUN_METRICS[..k].iter().enumerate() {
        if j > 0 {
            body.push(',');
        }
        let _ = write!(body, "{{\"name\":\"{name}\",\"step\":");
        push_list(&mut body, steps.clone(), |s, st| {
            let _ = write!(s, "{st}");
        });
        body.push_str(",\"value\":");
        let level: f64 = rng.gen_range(0.5..5.0);
        push_list(&mut body, steps.clone(), |s, st| {
            push_f64(
                s,
                level * (1.0 + 1.0 / (1.0 + st as f64)) * rng.gen_range(0.99..1.01),
            )
        });
        body.push('}');
    }
    body.push_str("]}");
    let url = srv.url(&format!("/api/v1/runs/{run}/metrics"));
    let acked = accepted(&post(ag, &url, body.as_bytes(), false)?)?;
    if acked != (k * a.points) as u64 {
        bail!("run {run}: {acked} points acknowledged of {}", k * a.points);
    }
    Ok(run)
}

/// One new train/loss point at `step` for every run, each thread posting
/// for the runs it created.
fn post_burst(srv: &Server, run_ids: &[Vec<String>], step: i64) -> anyhow::Result<()> {
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = run_ids
            .iter()
            .map(|ids| {
                s.spawn(move || -> anyhow::Result<()> {
                    let ag = agent();
                    for (i, run) in ids.iter().enumerate() {
                        let body = format!(
                            "{{\"series\":[{{\"name\":\"train/loss\",\"step\":[{step}],\"value\":[{}]}}]}}",
                            0.5 + (i % 1000) as f64 / 1000.0
                        );
                        let url = srv.url(&format!("/api/v1/runs/{run}/metrics"));
                        accepted(&post(&ag, &url, body.as_bytes(), false)?)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("burst thread")?;
        }
        Ok(())
    })
}

/// The listing sorted by the last train/loss and by start time, timed;
/// checks the sorted one is 50 runs by descending loss.
fn time_listings(
    a: &RunsListArgs,
    bd: &BenchDir,
    srv: &Server,
    ag: &ureq::Agent,
    phase: &str,
) -> anyhow::Result<(Lat, Lat)> {
    let wal = std::fs::metadata(bd.data().join("meta.sqlite-wal")).map_or(0, |m| m.len());
    println!(
        "runs-list, {phase}: meta.sqlite-wal is {:.1} MB",
        wal as f64 / 1e6
    );
    let sorted_url = srv.url(&format!(
        "/api/v1/runs?sort={}&limit=50",
        qenc("-summary.train/loss.last")
    ));
    let (sorted, body) = time_gets(ag, a.repeats, |_| sorted_url.clone())?;
    check_sorted_by_loss(&body, a.runs)?;
    let sorted = Lat::of(sorted);
    let (by_start, _) = time_gets(ag, a.repeats, |_| srv.url("/api/v1/runs?limit=50"))?;
    let by_start = Lat::of(by_start);
    println!(
        "runs-list, {phase}: GET /api/v1/runs?sort=-summary.train/loss.last&limit=50 p50 {:.2} ms, p90 {:.2}, p99 {:.2} ({:.0} KB) | default sort (-start_time) p50 {:.2} ms",
        sorted.p50,
        sorted.p90,
        sorted.p99,
        body.len() as f64 / 1e3,
        by_start.p50
    );
    Ok((sorted, by_start))
}

fn check_sorted_by_loss(body: &[u8], runs: usize) -> anyhow::Result<()> {
    let v: Value = serde_json::from_slice(body)?;
    let listed = v["runs"].as_array().context("no runs")?;
    let lasts: Vec<f64> = listed
        .iter()
        .map(|r| {
            r["summary"]["train/loss"]["last"]
                .as_f64()
                .unwrap_or(f64::NAN)
        })
        .collect();
    if listed.len() != 50.min(runs)
        || lasts.windows(2).any(|w| {
            !matches!(
                w[0].partial_cmp(&w[1]),
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            )
        })
    {
        bail!("the sorted listing is not 50 runs by descending train/loss: {lasts:?}");
    }
    Ok(())
}

/// The runs table sorted by a summary statistic, over 10k runs.
pub fn runs_list(a: &RunsListArgs) -> anyhow::Result<Outcome> {
    runs_list_inner(a).map(|f| f.outcome)
}

// ---------------------------------------------------------------------------
// idle-rss

#[derive(clap::Args, Clone, Debug)]
pub struct IdleRssArgs {
    #[command(flatten)]
    pub runs: RunsListArgs,
}

/// The server's resident memory: idle on an empty directory, then after
/// the runs-list seeding (live, and after a restart on that directory).
pub fn idle_rss(a: &IdleRssArgs) -> anyhow::Result<Vec<Outcome>> {
    const TARGET_MB: f64 = 50.0;
    let bd = BenchDir::new(&a.runs.server, "idle")?;
    let srv = bd.start(&a.runs.server)?;
    std::thread::sleep(Duration::from_secs(2));
    let empty = srv.mem()?;
    srv.stop()?;
    println!(
        "idle-rss: empty data directory, 2 s after start: VmRSS {:.1} MB (VmHWM {:.1} MB)",
        mb(empty.rss),
        mb(empty.peak)
    );
    let f = runs_list_inner(&a.runs)?;
    println!(
        "idle-rss: after seeding {} runs: VmRSS {:.1} MB (VmHWM {:.1} MB); after a restart on that directory: {:.1} MB (VmHWM {:.1} MB)",
        a.runs.runs,
        mb(f.rss_seeded.rss),
        mb(f.rss_seeded.peak),
        mb(f.rss_restarted.rss),
        mb(f.rss_restarted.peak)
    );
    let o = Outcome::new(
        "idle-rss",
        mb(empty.rss) <= TARGET_MB,
        format!(
            "empty {:.1} MB (target <= {TARGET_MB} MB); after {} runs seeded {:.1} MB, after restart {:.1} MB",
            mb(empty.rss),
            a.runs.runs,
            mb(f.rss_seeded.rss),
            mb(f.rss_restarted.rss)
        ),
    );
    report(
        &o,
        json!({
            "empty_rss_bytes": empty.rss, "empty_peak_bytes": empty.peak,
            "runs": a.runs.runs,
            "seeded_rss_bytes": f.rss_seeded.rss, "seeded_peak_bytes": f.rss_seeded.peak,
            "restarted_rss_bytes": f.rss_restarted.rss, "restarted_peak_bytes": f.rss_restarted.peak,
        }),
    );
    Ok(vec![o, f.outcome])
}

// ---------------------------------------------------------------------------
// log-search

#[derive(clap::Args, Clone, Debug)]
pub struct LogSearchArgs {
    /// Log lines in the run.
    #[arg(long, default_value_t = 1_000_000)]
    pub lines: usize,
    /// Lines per request.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Queries per word.
    #[arg(long, default_value_t = 200)]
    pub repeats: usize,
    #[command(flatten)]
    pub server: ServerOpts,
}

/// Rare words and how often they are seeded (spread evenly).
const RARE: [(&str, usize); 3] = [("xylophone", 1), ("segfault", 7), ("checkpoint", 50)];

/// The text of line `i`: ordinary training chatter, with the rare words
/// at fixed places.
fn log_line(i: usize, lines: usize, rng: &mut StdRng) -> String {
    for (word, count) in RARE {
        let every = lines / count;
        if every > 0 && i % every == every / 2 && i / every < count {
            return match word {
                "xylophone" => format!(
                    "WARNING rank {} xylophone handler tripped at step {i}",
                    i % 8
                ),
                "segfault" => format!(
                    "worker {} died: segfault in dataloader (signal 11) at step {i}",
                    i % 16
                ),
                _ => format!(
                    "saved checkpoint step-{i} to /ckpt/run/step-{i}.pt in {:.2} s",
                    rng.gen_range(1.0..9.0)
                ),
            };
        }
    }
    match i % 10 {
        0..=6 => format!(
            "step {i} loss={:.4} lr={:.3e} grad_norm={:.3} tokens/s={}",
            2.0 + 8.0 * (-(i as f64) / 2e5).exp() * rng.gen_range(0.98..1.02),
            3e-4,
            rng.gen_range(0.5..2.0),
            rng.gen_range(90_000..110_000)
        ),
        7 => format!(
            "[rank{}] allreduce bucket {} done in {:.2} ms",
            i % 8,
            i % 97,
            rng.gen_range(1.0..30.0)
        ),
        8 => format!(
            "dataloader worker {} prefetched {} batches, queue depth {}",
            i % 16,
            rng.gen_range(1..128),
            rng.gen_range(0..64)
        ),
        _ => format!(
            "eval step {i} accuracy={:.4} perplexity={:.3}",
            rng.gen_range(0.5..0.9),
            rng.gen_range(5.0..40.0)
        ),
    }
}

/// Full-text search of one run's logs.
pub fn log_search(a: &LogSearchArgs) -> anyhow::Result<Outcome> {
    const TARGET_MS: f64 = 50.0;
    let bd = BenchDir::new(&a.server, "logs")?;
    let srv = bd.start(&a.server)?;
    let ag = agent();
    let run = create_run(&ag, &srv, json!({"project": "bench", "name": "logs"}))?;
    let url = srv.url(&format!("/api/v1/runs/{run}/logs"));
    let mut rng = StdRng::seed_from_u64(11);
    let (mut post_s, mut sent) = (0.0, 0);
    let t = Instant::now();
    while sent < a.lines {
        let m = a.batch.min(a.lines - sent);
        let mut body = String::with_capacity(m * 120);
        body.push_str("{\"records\":[");
        for i in sent..sent + m {
            if i > sent {
                body.push(',');
            }
            let text = log_line(i, a.lines, &mut rng);
            let level = if text.starts_with("WARNING") || text.contains("died") {
                "error"
            } else {
                "info"
            };
            let _ = write!(
                body,
                "{{\"time\":{},\"stream\":\"stdout\",\"level\":\"{level}\",\"text\":{}}}",
                T0_S + i as f64 * 0.05,
                Value::from(text)
            );
        }
        body.push_str("]}");
        let tp = Instant::now();
        let acked = accepted(&post(&ag, &url, body.as_bytes(), false)?)?;
        post_s += tp.elapsed().as_secs_f64();
        if acked != m as u64 {
            bail!("{acked} of {m} log lines acknowledged");
        }
        sent += m;
    }
    println!(
        "log-search: {} lines posted in {} requests of {}: {:.1} s ({:.0} lines/s in requests)",
        a.lines,
        a.lines.div_ceil(a.batch),
        a.batch,
        t.elapsed().as_secs_f64(),
        a.lines as f64 / post_s
    );
    let mut rows = Vec::new();
    let words: Vec<(&str, Option<usize>)> = RARE
        .iter()
        .map(|&(w, c)| (w, Some(c.min(a.lines))))
        .chain([("zzyzx", Some(0)), ("loss", None), ("\"grad_norm\"", None)])
        .collect();
    for (word, expect) in &words {
        let u = format!("{url}?q={}", qenc(word));
        let (lat, body) = time_gets(&ag, a.repeats, |_| u.clone())?;
        let v: Value = serde_json::from_slice(&body)?;
        let recs = v["records"].as_array().context("no records")?;
        let plain = word.trim_matches('"');
        if let Some(n) = expect
            && recs.len() != *n
        {
            bail!("q={word}: {} records, expected {n}", recs.len());
        }
        if recs
            .iter()
            .any(|r| !r["text"].as_str().unwrap_or("").contains(plain))
        {
            bail!("q={word}: a record without the word");
        }
        let lat = Lat::of(lat);
        println!(
            "log-search q={word:<12} {:>4} records: p50 {:.2} ms, p90 {:.2}, p99 {:.2}",
            recs.len(),
            lat.p50,
            lat.p90,
            lat.p99
        );
        rows.push((word.to_string(), recs.len(), expect.is_some(), lat));
    }
    let mem = srv.mem()?;
    srv.stop()?;
    let worst = rows
        .iter()
        .filter(|r| r.2)
        .map(|r| r.3.p50)
        .fold(0.0, f64::max);
    let o = Outcome::new(
        "log-search",
        worst <= TARGET_MS,
        format!(
            "{} lines, rare-word search p50 {} (target <= {TARGET_MS} ms); common words: {}",
            a.lines,
            rows.iter()
                .filter(|r| r.2)
                .map(|r| format!("{} {:.2} ms", r.0, r.3.p50))
                .collect::<Vec<_>>()
                .join(", "),
            rows.iter()
                .filter(|r| !r.2)
                .map(|r| format!("{} {:.2} ms", r.0, r.3.p50))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    report(
        &o,
        json!({
            "lines": a.lines,
            "results": rows.iter().map(|(w, n, rare, l)| json!({"q": w, "records": n, "rare": rare, "latency": l.json()})).collect::<Vec<_>>(),
            "server_rss_bytes": mem.rss,
        }),
    );
    Ok(o)
}

// ---------------------------------------------------------------------------
// http-all

#[derive(clap::Args, Clone, Debug)]
pub struct HttpAllArgs {
    /// Points for each ingest run (plain JSON, then gzip).
    #[arg(long, default_value_t = 20_000_000)]
    pub ingest_points: usize,
    /// Client threads for ingest.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Series lengths for the query benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub query_lengths: Vec<usize>,
    /// Runs for runs-list (and the memory figure after it).
    #[arg(long, default_value_t = 10_000)]
    pub runs: usize,
    /// Log lines for log-search.
    #[arg(long, default_value_t = 1_000_000)]
    pub log_lines: usize,
    /// Queries per measurement.
    #[arg(long, default_value_t = 200)]
    pub repeats: usize,
    /// Skip the gzip ingest run.
    #[arg(long)]
    pub no_gzip: bool,
    #[command(flatten)]
    pub server: ServerOpts,
}

/// Every HTTP benchmark in turn, then their verdicts together.
pub fn http_all(a: &HttpAllArgs) -> anyhow::Result<()> {
    let mut outcomes = Vec::new();
    let mut ingest = HttpIngestArgs::plain(a.ingest_points, a.threads, &a.server);
    outcomes.push(http_ingest(&ingest)?);
    if !a.no_gzip {
        ingest.gzip = true;
        outcomes.push(http_ingest(&ingest)?);
    }
    outcomes.push(http_query(&HttpQueryArgs {
        lengths: a.query_lengths.clone(),
        width: 2000,
        repeats: a.repeats,
        batch: 100_000,
        no_restart: false,
        server: a.server.clone(),
    })?);
    outcomes.extend(idle_rss(&IdleRssArgs {
        runs: RunsListArgs {
            runs: a.runs,
            threads: a.threads,
            points: 20,
            repeats: a.repeats,
            server: a.server.clone(),
        },
    })?);
    outcomes.push(log_search(&LogSearchArgs {
        lines: a.log_lines,
        batch: 10_000,
        repeats: a.repeats,
        server: a.server.clone(),
    })?);
    println!("\nhttp-all summary:");
    for o in &outcomes {
        println!("{}", o.line());
    }
    println!(
        "{}",
        json!({
            "bench": "http-all",
            "pass": outcomes.iter().all(|o| o.pass),
            "results": outcomes.iter().map(|o| json!({"bench": o.name, "pass": o.pass, "summary": o.summary})).collect::<Vec<_>>(),
        })
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Diagnosis delay

#[derive(clap::Args, Clone, Debug)]
pub struct DiagnoseDelayArgs {
    #[command(flatten)]
    pub server: ServerOpts,
    /// Runs, each with one loss spike, measured one after another.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

/// From the acknowledgement of the batch holding a loss spike to the
/// incident being listed by the API, per run; the target is ≤ 2 s.
pub fn diagnose_delay(a: &DiagnoseDelayArgs) -> anyhow::Result<Vec<Outcome>> {
    const TARGET_S: f64 = 2.0;
    let bd = BenchDir::new(&a.server, "diagnose")?;
    let srv = bd.start(&a.server)?;
    let ag = agent();
    let mut delays = Vec::new();
    for r in 0..a.runs {
        let id = create_run(&ag, &srv, json!({"name": format!("delay-{r}")}))?;
        let t0 = 1_767_225_600.0 + r as f64 * 10_000.0;
        // 400 calm steps, then a batch whose last point is a spike.
        for (from, to) in [(0i64, 200i64), (200, 400), (400, 410)] {
            let steps: Vec<i64> = (from..to).collect();
            let times: Vec<f64> = steps.iter().map(|s| t0 + *s as f64).collect();
            let loss: Vec<f64> = steps
                .iter()
                .map(|&s| {
                    let wiggle = ((s * 7919) % 13) as f64 / 13.0 - 0.5;
                    let l = 2.0 + 4.0 * (-(s as f64) / 300.0).exp() + 0.02 * wiggle;
                    if s == 409 { l * 2.0 } else { l }
                })
                .collect();
            let body = json!({"series": [{"name": "train/loss", "step": steps, "time": times, "value": loss}]});
            post(
                &ag,
                &srv.url(&format!("/api/v1/runs/{id}/metrics")),
                body.to_string().as_bytes(),
                false,
            )?;
        }
        let acked = Instant::now();
        let url = srv.url(&format!("/api/v1/runs/{id}/incidents"));
        loop {
            let v = get_json(&ag, &url)?;
            if v["incidents"].as_array().is_some_and(|a| !a.is_empty()) {
                break;
            }
            if acked.elapsed() > Duration::from_secs(30) {
                bail!("no incident 30 s after the spike was acknowledged (run {id})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        delays.push(acked.elapsed().as_secs_f64());
    }
    srv.stop()?;
    delays.sort_by(|a, b| a.total_cmp(b));
    let p50 = delays[delays.len() / 2];
    let max = *delays.last().unwrap_or(&0.0);
    println!(
        "diagnose-delay: spike acknowledged → incident listed, {} runs: p50 {:.0} ms, max {:.0} ms",
        delays.len(),
        p50 * 1e3,
        max * 1e3
    );
    let o = Outcome::new(
        "diagnose-delay",
        max <= TARGET_S,
        format!(
            "p50 {:.0} ms, max {:.0} ms (target <= {TARGET_S} s)",
            p50 * 1e3,
            max * 1e3
        ),
    );
    report(&o, json!({"delays_s": delays}));
    Ok(vec![o])
}
