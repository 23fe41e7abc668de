//! `loupe-bench series-list`: listing a run's million series through the
//! paged `GET /api/v1/runs/{id}/series`, and the server's resident memory
//! around it and around a burst of large bodies.
//!
//! Figures: time to the first page, time to list every page, the server's
//! peak RSS while listing (VmHWM, reset before through `clear_refs`), and
//! RSS idle, right after each burst and 10 s later (with the server's
//! periodic `malloc_trim`, or without it: `--malloc-trim-secs 0`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{
    BenchDir, Mem, Outcome, Server, ServerOpts, agent, create_run, get_json, mb, post, qenc, report,
};

#[derive(clap::Args, Clone, Debug)]
pub struct SeriesListArgs {
    /// Series in the run.
    #[arg(long, default_value_t = 1_000_000)]
    pub series: usize,
    /// Series per listing page (`limit`; the server allows 1 to 10000).
    #[arg(long, default_value_t = 10_000)]
    pub page: usize,
    /// Concurrent large bodies in the burst.
    #[arg(long, default_value_t = 4)]
    pub bodies: usize,
    /// Size of each body of the burst, in MB.
    #[arg(long, default_value_t = 49)]
    pub body_mb: usize,
    /// Passed to `loupe serve --malloc-trim-secs` (0: never give freed
    /// memory back, as before).
    #[arg(long, default_value_t = 5)]
    pub malloc_trim_secs: u64,
    #[command(flatten)]
    pub server: ServerOpts,
}

/// Resets the process' peak RSS (VmHWM) to its current RSS.
fn reset_peak(srv: &Server) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{}/clear_refs", srv.pid()), "5")
        .context("resetting VmHWM through /proc/<pid>/clear_refs")
}

fn line(what: &str, m: Mem) -> String {
    format!(
        "{what}: VmRSS {:.0} MB (anon {:.0} MB), VmHWM {:.0} MB",
        mb(m.rss),
        mb(m.anon),
        mb(m.peak)
    )
}

/// A body of about `bytes` of JSON the server decodes whole and then
/// refuses (its last series has columns of different lengths): memory
/// used and freed, nothing of it kept.
fn refused_body(bytes: usize) -> Vec<u8> {
    let n = bytes / 24;
    let mut s = String::with_capacity(bytes + 1024);
    s.push_str("{\"series\":[{\"name\":\"burst\",\"step\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&i.to_string());
    }
    s.push_str("],\"value\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{}", i as f64 * 0.123_456_7));
    }
    s.push_str("]},{\"name\":\"bad\",\"step\":[1],\"value\":[1.0,2.0]}]}");
    s.into_bytes()
}

pub fn series_list(a: &SeriesListArgs) -> anyhow::Result<Vec<Outcome>> {
    let bd = BenchDir::new(&a.server, "series-list")?;
    let extra: Vec<String> = [
        "--fsync",
        &a.server.fsync,
        "--max-series-per-run",
        "0",
        "--max-series-per-project",
        "0",
        "--malloc-trim-secs",
        &a.malloc_trim_secs.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let srv = Server::start(&bd.data(), &bd.log(), &extra)?;
    let ag = agent();
    std::thread::sleep(Duration::from_secs(2));
    let idle = srv.mem()?;
    println!("{}", line("series-list: idle", idle));

    let run = create_run(&ag, &srv, json!({"name": "wide", "project": "bench"}))?;
    let t = Instant::now();
    const BATCH: usize = 10_000;
    for start in (0..a.series).step_by(BATCH) {
        let mut s = String::with_capacity(BATCH * 64);
        s.push_str("{\"series\":[");
        for i in start..(start + BATCH).min(a.series) {
            if i > start {
                s.push(',');
            }
            s.push_str(&format!(
                "{{\"name\":\"layer{}/param{}/grad_norm\",\"step\":[1],\"value\":[0.5]}}",
                i % 997,
                i
            ));
        }
        s.push_str("]}");
        post(
            &ag,
            &srv.url(&format!("/api/v1/runs/{}/metrics", qenc(&run))),
            s.as_bytes(),
            false,
        )?;
    }
    println!(
        "series-list: seeded {} series in {:.1} s",
        a.series,
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(2));
    let seeded = srv.mem()?;
    println!("{}", line("series-list: seeded", seeded));

    reset_peak(&srv)?;
    let path = format!("/api/v1/runs/{}/series", qenc(&run));
    let t = Instant::now();
    let first = get_json(&ag, &srv.url(&path))?;
    let first_page = t.elapsed();
    let first_n = first["series"].as_array().map_or(0, Vec::len);

    let t = Instant::now();
    let mut listed = 0usize;
    let mut pages = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{path}?limit={}", a.page);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", qenc(c)));
        }
        let page: Value = get_json(&ag, &srv.url(&url))?;
        listed += page["series"].as_array().map_or(0, Vec::len);
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let all = t.elapsed();
    if listed != a.series {
        bail!("listed {listed} series of {}", a.series);
    }
    let listing = srv.mem()?;
    println!(
        "series-list: first page ({first_n} series) in {:.1} ms; all {listed} series in {pages} pages of {} in {:.2} s",
        first_page.as_secs_f64() * 1e3,
        a.page,
        all.as_secs_f64()
    );
    println!(
        "{}",
        line("series-list: after listing (peak: while listing)", listing)
    );
    std::thread::sleep(Duration::from_secs(10));
    let listing_settled = srv.mem()?;
    println!(
        "{}",
        line("series-list: 10 s after listing", listing_settled)
    );

    reset_peak(&srv)?;
    let body = std::sync::Arc::new(refused_body(a.body_mb * 1_000_000));
    let url = srv.url(&format!("/api/v1/runs/{}/metrics", qenc(&run)));
    let t = Instant::now();
    let threads: Vec<_> = (0..a.bodies)
        .map(|_| {
            let (ag, body, url) = (ag.clone(), body.clone(), url.clone());
            std::thread::spawn(move || post(&ag, &url, &body, false))
        })
        .collect();
    for th in threads {
        // Refused (422) by design: the point is the memory it took.
        let _ = th.join().expect("burst thread");
    }
    let burst_s = t.elapsed().as_secs_f64();
    let burst = srv.mem()?;
    println!(
        "{} ({} bodies of {} MB in {burst_s:.1} s)",
        line("series-list: after the burst (peak: during it)", burst),
        a.bodies,
        a.body_mb
    );
    std::thread::sleep(Duration::from_secs(10));
    let burst_settled = srv.mem()?;
    println!(
        "{}",
        line("series-list: 10 s after the burst", burst_settled)
    );
    srv.stop()?;

    let o = Outcome::new(
        "series-list",
        first_page < Duration::from_secs(1),
        format!(
            "{} series: first page {:.0} ms, all {:.1} s, peak RSS listing {:.0} MB; RSS idle {:.0} / after burst {:.0} / 10 s later {:.0} MB (malloc_trim every {} s)",
            a.series,
            first_page.as_secs_f64() * 1e3,
            all.as_secs_f64(),
            mb(listing.peak),
            mb(idle.rss),
            mb(burst.rss),
            mb(burst_settled.rss),
            a.malloc_trim_secs
        ),
    );
    report(
        &o,
        json!({
            "series": a.series, "page": a.page, "malloc_trim_secs": a.malloc_trim_secs,
            "first_page_ms": first_page.as_secs_f64() * 1e3, "list_all_s": all.as_secs_f64(), "pages": pages,
            "idle_rss_bytes": idle.rss, "seeded_rss_bytes": seeded.rss,
            "listing_peak_bytes": listing.peak, "listing_rss_bytes": listing.rss,
            "listing_settled_rss_bytes": listing_settled.rss,
            "burst_peak_bytes": burst.peak, "burst_rss_bytes": burst.rss,
            "burst_settled_rss_bytes": burst_settled.rss,
        }),
    );
    Ok(vec![o])
}
