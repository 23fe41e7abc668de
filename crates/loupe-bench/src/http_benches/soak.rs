//! `loupe-bench soak`: a long run of mixed ingest and queries at a fixed
//! fraction of the measured ingest capacity, sampled every window.
//!
//! The verdict (issue 19's soak): no failed request; resident memory flat;
//! latency stable. Both are judged on the run's trend, first third against
//! last third of the windows after the warm-up, because the server's heap
//! is a sawtooth by design: the head grows until it holds
//! `flush_points` and drops when flushed, so one sample taken at a random
//! phase says nothing. So:
//! - **memory**: anonymous RSS (heap, not the mapped segment files, which
//!   are the kernel's page cache) is read every second; its peak over the
//!   last third, less the store's page cache (decoded pages kept for
//!   repeated reads, which fills slowly up to its configured bound, 64 MiB
//!   by default), must be within `--rss-growth` of the same over the first
//!   third. A leak raises the peaks; a sawtooth does not. Each window also
//!   prints what the store says it holds (`loupe_tsdb_memory_bytes`: head,
//!   page cache, segment indexes) so a failure points at its part;
//! - **latency**: the p99 of ingest and of queries over the last third
//!   within `--p99-growth` × the first third's, with a floor of a few
//!   milliseconds so that sub-millisecond jitter does not count.
//!
//! Everything runs against 127.0.0.1 and stops by itself.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use super::{
    BenchDir, HttpIngestArgs, Lat, Outcome, Server, ServerOpts, agent, create_run, get,
    http_ingest, mb, metrics_body, post, qenc, report,
};

#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    /// How long to run, in seconds (issue 19 asks for 1800).
    #[arg(long, default_value_t = 1800)]
    pub seconds: u64,
    /// Ingest at this fraction of the capacity measured first.
    #[arg(long, default_value_t = 0.5)]
    pub load: f64,
    /// Ingest rate in points/s instead of measuring capacity first.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds per sampling window.
    #[arg(long, default_value_t = 30)]
    pub window: u64,
    /// Windows at the start not judged (the page cache and the first
    /// segments fill up).
    #[arg(long, default_value_t = 4)]
    pub warmup_windows: usize,
    /// Peak RSS over the last third may exceed the first third's by this
    /// fraction.
    #[arg(long, default_value_t = 0.25)]
    pub rss_growth: f64,
    /// The last third's p99 may be this many times the first third's.
    #[arg(long, default_value_t = 3.0)]
    pub p99_growth: f64,
    #[command(flatten)]
    pub server: ServerOpts,
}

const SERIES: usize = 50;
const STEPS_PER_BATCH: usize = 40;
const INGEST_THREADS: usize = 2;
/// Latencies under this (ms) are never a regression.
const P99_FLOOR_MS: f64 = 5.0;

/// What every thread records in the current window.
#[derive(Default)]
struct Window {
    ingest: Vec<Duration>,
    query: Vec<Duration>,
}

struct Shared {
    stop: AtomicBool,
    errors: AtomicU64,
    points: AtomicU64,
    window: Mutex<Window>,
}

/// One window: its memory peaks and everything timed in it.
struct Sample {
    at_s: f64,
    /// Peaks of the per-second readings.
    rss: u64,
    anon: u64,
    /// The store's page cache at the window's end.
    page_cache: u64,
    ingest: Vec<Duration>,
    query: Vec<Duration>,
    points: u64,
}

/// The windows a verdict compares: the first and last third of those
/// after the warm-up.
struct Thirds<'a> {
    first: &'a [Sample],
    last: &'a [Sample],
}

impl<'a> Thirds<'a> {
    fn of(samples: &'a [Sample], warmup: usize) -> Option<Self> {
        let judged = &samples[warmup.min(samples.len())..];
        if judged.len() < 3 {
            return None;
        }
        let k = judged.len() / 3;
        Some(Thirds {
            first: &judged[..k],
            last: &judged[judged.len() - k..],
        })
    }
}

fn peak(w: &[Sample], f: impl Fn(&Sample) -> u64) -> u64 {
    w.iter().map(f).max().unwrap_or(0)
}

fn p99(w: &[Sample], f: impl Fn(&Sample) -> &[Duration]) -> Option<f64> {
    let all: Vec<Duration> = w.iter().flat_map(|s| f(s).iter().copied()).collect();
    (!all.is_empty()).then(|| Lat::of(all).p99)
}

pub fn soak(a: &SoakArgs) -> anyhow::Result<Outcome> {
    let rate = match a.rate {
        Some(r) => r,
        None => {
            println!("measuring ingest capacity first (5M points)…");
            let cap = http_ingest(&HttpIngestArgs::plain(5_000_000, 4, &a.server))?;
            let pps = cap_points_per_s(&cap)?;
            pps * a.load
        }
    };
    let bd = BenchDir::new(&a.server, "soak")?;
    let srv = Arc::new(bd.start(&a.server)?);
    let ag = agent();
    let runs: Vec<String> = (0..INGEST_THREADS)
        .map(|i| {
            create_run(
                &ag,
                &srv,
                json!({"project": "soak", "name": format!("soak-{i}")}),
            )
        })
        .collect::<anyhow::Result<_>>()?;
    println!(
        "soak: {} s at {:.2} M points/s ({} ingest threads, 1 query thread), windows of {} s",
        a.seconds,
        rate / 1e6,
        INGEST_THREADS,
        a.window
    );
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        points: AtomicU64::new(0),
        window: Mutex::new(Window::default()),
    });
    let mut threads = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let (srv, shared, run) = (srv.clone(), shared.clone(), run.clone());
        let per_thread = rate / INGEST_THREADS as f64;
        threads.push(std::thread::spawn(move || {
            ingest_loop(&srv, &shared, &run, i, per_thread)
        }));
    }
    {
        let (srv, shared, run) = (srv.clone(), shared.clone(), runs[0].clone());
        threads.push(std::thread::spawn(move || query_loop(&srv, &shared, &run)));
    }
    let samples = sample(a, &srv, &shared);
    shared.stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    let errors = shared.errors.load(Ordering::SeqCst);
    let srv = Arc::try_unwrap(srv).map_err(|_| anyhow::anyhow!("server still shared"))?;
    srv.stop()?;
    verdict(a, rate, &samples, errors)
}

/// The points/s an `http-ingest` outcome reports.
fn cap_points_per_s(o: &Outcome) -> anyhow::Result<f64> {
    let m = o
        .summary
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok());
    match m {
        Some(v) if o.summary.contains("M points/s") => Ok(v * 1e6),
        _ => bail!("cannot read the capacity from {:?}", o.summary),
    }
}

/// Paced batches of one run: steps go up forever, as in training.
fn ingest_loop(srv: &Server, shared: &Shared, run: &str, seed: usize, rate: f64) {
    let ag = agent();
    let names: Vec<String> = (0..SERIES).map(|i| format!("train/m{i:02}")).collect();
    let mut rng = StdRng::seed_from_u64(seed as u64);
    let batch = (SERIES * STEPS_PER_BATCH) as f64;
    let every = Duration::from_secs_f64(batch / rate.max(1.0));
    let url = srv.url(&format!("/api/v1/runs/{run}/metrics"));
    let start = Instant::now();
    let mut step = 0i64;
    let mut sent = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        let due = start + every * sent;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body = metrics_body(&names, step..step + STEPS_PER_BATCH as i64, &mut rng);
        let t = Instant::now();
        match post(&ag, &url, body.as_bytes(), false) {
            Ok(_) => {
                shared
                    .window
                    .lock()
                    .expect("window lock")
                    .ingest
                    .push(t.elapsed());
                shared.points.fetch_add(batch as u64, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("ingest: {e:#}");
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        step += STEPS_PER_BATCH as i64;
        sent += 1;
    }
}

/// What the UI asks while a job trains: a chart (M4), the runs table, a
/// log search, ten times a second.
fn query_loop(srv: &Server, shared: &Shared, run: &str) {
    let ag = agent();
    let urls = [
        srv.url(&format!(
            "/api/v1/runs/{run}/series/data?name={}&width=1000",
            qenc("train/m07")
        )),
        srv.url("/api/v1/runs?project=soak&sort=-summary.train/m00.last&limit=50"),
        srv.url(&format!("/api/v1/runs/{run}/logs?q=error&limit=50")),
        srv.url(&format!("/api/v1/runs/{run}/series")),
    ];
    let mut i = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match get(&ag, &urls[i % urls.len()]) {
            Ok(_) => shared
                .window
                .lock()
                .expect("window lock")
                .query
                .push(t.elapsed()),
            Err(e) => {
                eprintln!("query: {e:#}");
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every window: the peaks of RSS read each second, and the latencies of
/// what was sent in it.
fn sample(a: &SoakArgs, srv: &Server, shared: &Shared) -> Vec<Sample> {
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let ag = agent();
    let mut out = Vec::new();
    let mut last_points = 0;
    println!(
        "{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>11} {:>11} {:>7}",
        "t (s)",
        "RSS MiB",
        "anon MiB",
        "head",
        "pg cache",
        "seg idx",
        "Mpts/s",
        "ingest p99",
        "query p99",
        "errors"
    );
    while Instant::now() < end {
        let next = (Instant::now() + Duration::from_secs(a.window)).min(end);
        let (mut rss, mut anon) = (0, 0);
        while Instant::now() < next {
            if let Ok(m) = srv.mem() {
                rss = rss.max(m.rss);
                anon = anon.max(m.anon);
            }
            std::thread::sleep(
                Duration::from_secs(1).min(next.saturating_duration_since(Instant::now())),
            );
        }
        let w = std::mem::take(&mut *shared.window.lock().expect("window lock"));
        let points = shared.points.load(Ordering::Relaxed);
        let parts = store_memory(&ag, srv);
        let s = Sample {
            at_s: start.elapsed().as_secs_f64(),
            rss,
            anon,
            page_cache: parts
                .iter()
                .find(|(n, _)| n == "page_cache")
                .map_or(0, |(_, b)| *b),
            ingest: w.ingest,
            query: w.query,
            points: points - last_points,
        };
        last_points = points;
        let p = |v: &[Duration]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1} ms", Lat::of(v.to_vec()).p99)
            }
        };
        let part = |name: &str| {
            parts
                .iter()
                .find(|(n, _)| n == name)
                .map_or("-".into(), |(_, b)| format!("{:.1}", mb(*b)))
        };
        println!(
            "{:>7.0} {:>9.1} {:>9.1} {:>9} {:>9} {:>9} {:>8.2} {:>11} {:>11} {:>7}",
            s.at_s,
            mb(s.rss),
            mb(s.anon),
            part("head"),
            part("page_cache"),
            part("segment_index"),
            s.points as f64 / a.window as f64 / 1e6,
            p(&s.ingest),
            p(&s.query),
            shared.errors.load(Ordering::Relaxed)
        );
        out.push(s);
    }
    out
}

/// `loupe_tsdb_memory_bytes{part}` from the server's `/metrics` (empty if
/// it cannot be read: the figures are for the reader, not the verdict).
fn store_memory(ag: &ureq::Agent, srv: &Server) -> Vec<(String, u64)> {
    let Ok(body) = get(ag, &srv.url("/metrics")) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("loupe_tsdb_memory_bytes{part=\"")?;
            let (part, value) = rest.split_once("\"} ")?;
            Some((part.to_string(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

fn verdict(a: &SoakArgs, rate: f64, samples: &[Sample], errors: u64) -> anyhow::Result<Outcome> {
    let Some(t) = Thirds::of(samples, a.warmup_windows) else {
        bail!(
            "the soak was too short to judge: run it for at least {} windows (the warm-up and three more)",
            a.warmup_windows + 3
        );
    };
    let (anon_first, anon_last) = (peak(t.first, |s| s.anon), peak(t.last, |s| s.anon));
    let (rss_first, rss_last) = (peak(t.first, |s| s.rss), peak(t.last, |s| s.rss));
    let heap = |s: &Sample| s.anon.saturating_sub(s.page_cache);
    let (heap_first, heap_last) = (peak(t.first, heap), peak(t.last, heap));
    let rss_ok = heap_last as f64 <= heap_first as f64 * (1.0 + a.rss_growth);
    let ingest = (p99(t.first, |s| &s.ingest), p99(t.last, |s| &s.ingest));
    let query = (p99(t.first, |s| &s.query), p99(t.last, |s| &s.query));
    let stable = |(f, l): (Option<f64>, Option<f64>)| match (f, l) {
        (Some(f), Some(l)) => l <= f.max(P99_FLOOR_MS) * a.p99_growth,
        _ => false,
    };
    let ingest_ok = stable(ingest);
    let query_ok = stable(query);
    let pass = errors == 0 && rss_ok && ingest_ok && query_ok;
    let ms = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let summary = format!(
        "{} s at {:.2} M points/s: {errors} errors; peak anonymous RSS less the page cache, first → last third {:.0} → {:.0} MiB (anonymous {:.0} → {:.0}, all RSS {:.0} → {:.0}); ingest p99 {:.1} → {:.1} ms; query p99 {:.1} → {:.1} ms",
        a.seconds,
        rate / 1e6,
        mb(heap_first),
        mb(heap_last),
        mb(anon_first),
        mb(anon_last),
        mb(rss_first),
        mb(rss_last),
        ms(ingest.0),
        ms(ingest.1),
        ms(query.0),
        ms(query.1),
    );
    let o = Outcome::new("soak", pass, summary);
    report(
        &o,
        json!({
            "seconds": a.seconds, "rate_points_per_s": rate, "errors": errors,
            "windows_per_third": t.first.len(),
            "rss_first_bytes": rss_first, "rss_last_bytes": rss_last,
            "anon_first_bytes": anon_first, "anon_last_bytes": anon_last,
            "heap_first_bytes": heap_first, "heap_last_bytes": heap_last,
            "ingest_p99_first_ms": ms(ingest.0), "ingest_p99_last_ms": ms(ingest.1),
            "query_p99_first_ms": ms(query.0), "query_p99_last_ms": ms(query.1),
            "rss_ok": rss_ok, "ingest_stable": ingest_ok, "query_stable": query_ok,
            "windows": samples.iter().map(|s| json!({
                "at_s": s.at_s, "rss_peak_bytes": s.rss, "anon_peak_bytes": s.anon,
                "page_cache_bytes": s.page_cache, "points": s.points,
            })).collect::<Vec<_>>(),
        }),
    );
    Ok(o)
}
