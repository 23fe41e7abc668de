//! `loupe-bench scrape`: `loupe serve --scrape-config` scraping 1,000
//! targets × 1,000 series every 15 s, and Debian's Prometheus scraping the
//! same targets with the same config file in the same run.
//!
//! The targets are served by this process on 127.0.0.1 (one listener per
//! target, bodies prebuilt: a few variants per target, rotated per request,
//! so values change between scrapes as real counters and gauges do).
//! Figures: each scraper's CPU over whole intervals after a warm-up interval
//! (user + system from `/proc/<pid>/stat`, as % of one core) and the ratio;
//! then both are stopped and their directories measured: bytes per stored
//! sample, Loupe's store (WAL + segments) against Prometheus' (its WAL and
//! head chunks: no block is cut within two hours, so a short run's data is
//! all in the WAL and `chunks_head`, which the report says).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use super::{BenchDir, Outcome, Server, ServerOpts, agent, cpu_seconds, get, mb, prom, report};

#[derive(clap::Args, Clone, Debug)]
pub struct ScrapeArgs {
    /// Targets.
    #[arg(long, default_value_t = 1000)]
    pub targets: usize,
    /// Series each target exposes.
    #[arg(long, default_value_t = 1000)]
    pub series: usize,
    /// Scrape interval, seconds.
    #[arg(long, default_value_t = 15)]
    pub interval: u64,
    /// Intervals measured.
    #[arg(long, default_value_t = 3)]
    pub intervals: u64,
    /// Intervals of warm-up before measuring (the first scrapes create
    /// the series, which costs more than a steady-state scrape).
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Run Loupe with `--no-diagnose` (the scraper's own cost, without
    /// live diagnosis of every scraped series).
    #[arg(long)]
    pub no_diagnose: bool,
    /// Debian's Prometheus; the comparison is skipped when it is missing.
    #[arg(long, default_value = "/usr/bin/prometheus")]
    pub prometheus: PathBuf,
    #[command(flatten)]
    pub server: ServerOpts,
}

/// Body variants per target (rotated per request).
const VARIANTS: usize = 4;

/// A target's bodies: half counters (rising from variant to variant), half
/// gauges; names and labels as an exporter writes them.
fn bodies(series: usize, seed: usize) -> Vec<Arc<Vec<u8>>> {
    (0..VARIANTS)
        .map(|v| {
            let mut s = String::with_capacity(series * 64);
            s.push_str(
                "# HELP bench_requests_total Requests.\n# TYPE bench_requests_total counter\n",
            );
            for i in 0..series / 2 {
                let base = ((seed * 7919 + i * 104_729) % 1_000_000) as u64;
                s.push_str(&format!(
                    "bench_requests_total{{path=\"/api/v{}\",code=\"{}\"}} {}\n",
                    i / 10,
                    200 + i % 10,
                    base + (v as u64) * (i as u64 % 17 + 1)
                ));
            }
            s.push_str("# HELP bench_gpu_util Utilisation.\n# TYPE bench_gpu_util gauge\n");
            for i in 0..series - series / 2 {
                let x = ((seed * 31 + i * 131 + v * 977) % 10_000) as f64 / 100.0;
                s.push_str(&format!(
                    "bench_gpu_util{{gpu=\"{}\",node=\"n{}\"}} {x}\n",
                    i % 8,
                    i / 8
                ));
            }
            Arc::new(s.into_bytes())
        })
        .collect()
}

/// Serves `bodies` on a fresh loopback port; returns the address.
fn serve_target(bodies: Vec<Arc<Vec<u8>>>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let served = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (bodies, served) = (bodies.clone(), served.clone());
                // One thread per connection: each scraper keeps one alive.
                let _ = std::thread::Builder::new()
                    .stack_size(64 << 10)
                    .spawn(move || {
                        let mut w = stream.try_clone().expect("clone");
                        let mut r = BufReader::new(stream);
                        let mut line = String::new();
                        loop {
                            // A request's head (scrapes have no body).
                            loop {
                                line.clear();
                                match r.read_line(&mut line) {
                                    Ok(0) | Err(_) => return,
                                    Ok(_) if line == "\r\n" => break,
                                    Ok(_) => {}
                                }
                            }
                            let b = &bodies[served.fetch_add(1, Ordering::Relaxed) % bodies.len()];
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                                b.len()
                            );
                            if w.write_all(head.as_bytes()).is_err() || w.write_all(b).is_err() {
                                return;
                            }
                        }
                    });
            }
        })?;
    Ok(addr)
}

/// Bytes of the regular files under `dir` whose path contains `part`.
fn bytes_under(dir: &Path, part: &str) -> u64 {
    let mut total = 0;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            total += bytes_under(&p, part);
        } else if p.to_string_lossy().contains(part) {
            total += m.len();
        }
    }
    total
}

struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(bin: &Path, config: &Path, data: &Path, log: &Path) -> anyhow::Result<Prometheus> {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let logf = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(logf))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let p = Prometheus { child, port };
        let ag = agent();
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&ag, &format!("http://127.0.0.1:{port}/-/ready")).is_err() {
            if Instant::now() > deadline {
                bail!("prometheus did not become ready within 60 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(p)
    }

    fn cpu_s(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// The sum of a family's samples, whatever their labels.
    fn metric(&self, name: &str) -> f64 {
        let ag = agent();
        let Some(text) = get(&ag, &format!("http://127.0.0.1:{}/metrics", self.port))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return f64::NAN;
        };
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn stop(mut self) {
        // Safety: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub fn scrape(a: &ScrapeArgs) -> anyhow::Result<Outcome> {
    let dir = BenchDir::new(&a.server, "scrape")?;
    eprintln!(
        "scrape: serving {} targets × {} series",
        a.targets, a.series
    );
    let mut addrs = Vec::with_capacity(a.targets);
    for t in 0..a.targets {
        addrs.push(serve_target(bodies(a.series, t))?);
    }
    let config = dir.dir.path().join("scrape.yml");
    let mut yml = format!(
        "global:\n  scrape_interval: {i}s\n  scrape_timeout: 10s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets:\n",
        i = a.interval
    );
    for addr in &addrs {
        yml.push_str(&format!("          - '{addr}'\n"));
    }
    std::fs::write(&config, yml)?;

    let mut args = vec![
        "--fsync".to_string(),
        a.server.fsync.clone(),
        "--scrape-config".to_string(),
        config.display().to_string(),
        // Every target's 1,000 series in one project.
        "--max-series-per-project".to_string(),
        "0".to_string(),
    ];
    if a.no_diagnose {
        args.push("--no-diagnose".to_string());
    }
    let srv = Server::start(&dir.data(), &dir.log(), &args)?;
    let with_prom = a.prometheus.is_file();
    let prom_data = dir.dir.path().join("prometheus");
    let p = if with_prom {
        Some(Prometheus::start(
            &a.prometheus,
            &config,
            &prom_data,
            &dir.dir.path().join("prometheus.log"),
        )?)
    } else {
        eprintln!("scrape: {} missing; Loupe alone", a.prometheus.display());
        None
    };
    let interval = Duration::from_secs(a.interval);
    eprintln!("scrape: {} intervals of warm-up", a.warmup);
    std::thread::sleep(interval * a.warmup as u32);
    let (l0, p0) = (srv.cpu_s(), p.as_ref().map(|p| p.cpu_s()));
    let t0 = Instant::now();
    let measured = interval * a.intervals as u32;
    eprintln!("scrape: measuring {}s", measured.as_secs());
    std::thread::sleep(measured);
    let wall = t0.elapsed().as_secs_f64();
    let loupe_pct = (srv.cpu_s() - l0) / wall * 100.0;
    let prom_pct = p
        .as_ref()
        .zip(p0)
        .map(|(p, c0)| (p.cpu_s() - c0) / wall * 100.0);

    let ag = agent();
    let metrics = String::from_utf8(get(&ag, &srv.url("/metrics"))?)?;
    let loupe_samples = prom(&metrics, "loupe_ingest_points_total");
    let failures = prom(&metrics, "loupe_scrape_failures_total");
    let prom_samples = p
        .as_ref()
        .map(|p| p.metric("prometheus_tsdb_head_samples_appended_total"));
    // Stopped before measuring: Loupe flushes its head into segments on
    // SIGTERM; Prometheus keeps its WAL and head chunks (no block yet).
    srv.stop()?;
    if let Some(p) = p {
        p.stop();
    }
    let tsdb = dir.data().join("tsdb");
    let loupe_bytes = bytes_under(&tsdb, "");
    let loupe_wal = bytes_under(&tsdb, "wal");
    let prom_wal = bytes_under(&prom_data, "/wal/");
    let prom_head = bytes_under(&prom_data, "chunks_head");
    let prom_total = bytes_under(&prom_data, "");
    let per = |b: u64, n: f64| b as f64 / n;

    let mut summary = format!(
        "Loupe{} {loupe_pct:.2}% of a core scraping {} targets × {} series every {}s ({failures} failed scrapes); {:.2} bytes/sample ({:.1} MB for {loupe_samples} points, WAL {:.1} MB)",
        if a.no_diagnose {
            " (--no-diagnose)"
        } else {
            ""
        },
        a.targets,
        a.series,
        a.interval,
        per(loupe_bytes, loupe_samples),
        mb(loupe_bytes),
        mb(loupe_wal)
    );
    if let (Some(pp), Some(ps)) = (prom_pct, prom_samples) {
        summary.push_str(&format!(
            "; Prometheus {pp:.2}% (Loupe/Prometheus CPU {:.2}), {:.2} bytes/sample on disk ({:.1} MB: WAL {:.1} MB + head chunks {:.1} MB, no block cut yet, for {ps} samples)",
            loupe_pct / pp,
            per(prom_total, ps),
            mb(prom_total),
            mb(prom_wal),
            mb(prom_head)
        ));
    }
    let o = Outcome::new("scrape", loupe_pct < 5.0 && failures == 0.0, summary);
    report(
        &o,
        json!({
            "targets": a.targets, "series": a.series, "interval_s": a.interval,
            "warmup_intervals": a.warmup, "no_diagnose": a.no_diagnose,
            "measured_s": wall,
            "loupe_cpu_pct": loupe_pct, "prometheus_cpu_pct": prom_pct,
            "loupe_samples": loupe_samples, "loupe_bytes": loupe_bytes, "loupe_wal_bytes": loupe_wal,
            "prometheus_samples": prom_samples, "prometheus_bytes": prom_total,
            "prometheus_wal_bytes": prom_wal, "prometheus_head_chunk_bytes": prom_head,
            "failed_scrapes": failures,
        }),
    );
    Ok(o)
}
