//! One target's scrape loop: a tokio task that wakes every interval (first
//! at an offset within it fixed by the target's labels, so targets spread
//! over the interval as Prometheus spreads them), fetches, and stores
//! through the one ingest path, off the async runtime.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_ingest::exposition::{decode_exposition, format_of};
use loupe_model::clock;
use tokio::sync::watch;

use super::ScrapeMetrics;
use super::assemble::{Report, ScrapeMemory, TargetSpec, assemble, report, report_stale};
use super::client::TargetClient;
use crate::ingest::Ingest;

/// Why a target's loop is told to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep scraping.
    No,
    /// The target left its job (service discovery): its series end with
    /// staleness markers.
    Removed,
    /// The server is shutting down: nothing more is written (as
    /// Prometheus writes no markers at shutdown).
    Shutdown,
}

/// What one loop needs.
pub struct TargetRun {
    pub spec: Arc<TargetSpec>,
    pub ingest: Ingest,
    pub metrics: Arc<ScrapeMetrics>,
    /// Largest body taken, decompressed.
    pub body_limit: usize,
}

/// Scrapes until told to stop.
pub async fn run(t: TargetRun, mut stop: watch::Receiver<Stop>) {
    let spec = t.spec.clone();
    let interval = spec.target.interval;
    let offset = jitter(&spec, interval);
    let first = tokio::time::Instant::now() + offset;
    let mut tick = tokio::time::interval_at(first, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut client = TargetClient::default();
    let mut memory = ScrapeMemory::default();
    let reason = loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = stop.changed() => {
                break if changed.is_err() { Stop::Shutdown } else { *stop.borrow() };
            }
        }
        if *stop.borrow() != Stop::No {
            break *stop.borrow();
        }
        memory = scrape_once(&t, &mut client, memory).await;
    };
    if reason == Stop::Removed {
        let ingest = t.ingest.clone();
        let project = spec.project.clone();
        let now_ms = clock::now_ns() / 1_000_000;
        let mut series = memory.fail(now_ms);
        series.extend(report_stale(&spec, now_ms));
        let n = series.len() as u64;
        let stored = tokio::task::spawn_blocking(move || ingest.scraped(&project, series)).await;
        if matches!(stored, Ok(Ok(_))) {
            t.metrics.stale_markers.inc_by(n);
        }
    }
}

/// A fixed offset in `[0, interval)` from the target's identity.
fn jitter(spec: &TargetSpec, interval: Duration) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    spec.job.job_name.hash(&mut h);
    spec.target.hash(&mut h);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h.finish() % ms)
}

async fn scrape_once(
    t: &TargetRun,
    client: &mut TargetClient,
    memory: ScrapeMemory,
) -> ScrapeMemory {
    let spec = &t.spec;
    let scrape_ms = clock::now_ns() / 1_000_000;
    let started = Instant::now();
    let target = &spec.target;
    let fetched = tokio::time::timeout(
        target.timeout,
        client.fetch(
            &target.address,
            &target.path_and_query,
            target.timeout,
            t.body_limit,
        ),
    )
    .await;
    let fetched = match fetched {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            // The connection may be mid-answer: open a fresh one next time.
            *client = TargetClient::default();
            Err(format!("timed out after {:?}", target.timeout))
        }
    };
    let duration_s = started.elapsed().as_secs_f64();
    let spec = spec.clone();
    let ingest = t.ingest.clone();
    let metrics = t.metrics.clone();
    let limits_body = t.body_limit;
    let done = tokio::task::spawn_blocking(move || {
        let mut memory = memory;
        store(
            &spec,
            &ingest,
            &metrics,
            fetched,
            scrape_ms,
            duration_s,
            limits_body,
            &mut memory,
        );
        memory
    })
    .await;
    done.unwrap_or_default()
}

/// Decodes and stores one scrape's result, with its report series; a
/// failure stores `up` 0 and ends the target's series.
#[allow(clippy::too_many_arguments)]
fn store(
    spec: &TargetSpec,
    ingest: &Ingest,
    metrics: &ScrapeMetrics,
    fetched: Result<super::client::Fetched, String>,
    scrape_ms: i64,
    duration_s: f64,
    body_limit: usize,
    memory: &mut ScrapeMemory,
) {
    metrics.scrapes.inc();
    let job = &spec.job.job_name;
    let instance = &spec.target.address;
    let decoded = fetched.and_then(|f| {
        let mut limits = ingest.limits().clone();
        limits.max_body_bytes = body_limit;
        let body = loupe_ingest::decode_body(&f.body, f.content_encoding.as_deref(), &limits)
            .map_err(|e| e.to_string())?;
        let exposition = decode_exposition(&body, format_of(f.content_type.as_deref()))
            .map_err(|e| e.to_string())?;
        metrics
            .exemplars_dropped
            .inc_by(exposition.exemplars_dropped);
        assemble(spec, &exposition, scrape_ms, memory)
    });
    let outcome = match decoded {
        Ok(a) => {
            if a.out_of_range > 0 {
                tracing::warn!(
                    job,
                    instance,
                    "{} samples with a timestamp outside 1970 to 2255 left out",
                    a.out_of_range
                );
            }
            let r = Report {
                up: true,
                duration_s,
                samples_scraped: a.samples_scraped,
                post_relabel: a.post_relabel,
                series_added: a.series_added,
            };
            let mut series = a.series;
            let samples = a.post_relabel;
            let stale = a.stale_markers;
            series.extend(report(spec, scrape_ms, &r));
            match ingest.scraped(&spec.project, series) {
                Ok(_) => {
                    metrics.samples.inc_by(samples);
                    metrics.stale_markers.inc_by(stale);
                    if memory.up == Some(false) {
                        tracing::info!(job, instance, "target is up again");
                    }
                    memory.up = Some(true);
                    return;
                }
                Err(e) => format!("storing: {e}"),
            }
        }
        Err(e) => e,
    };
    metrics.failures.inc();
    if memory.up == Some(false) {
        tracing::debug!(job, instance, "scrape failed again: {outcome}");
    } else {
        tracing::warn!(
            job,
            instance,
            "scrape failed (up 0; later failures of this target are logged at debug until it is up again): {outcome}"
        );
    }
    memory.up = Some(false);
    let mut series = memory.fail(scrape_ms);
    let stale = series.len() as u64;
    series.extend(report(
        spec,
        scrape_ms,
        &Report {
            up: false,
            duration_s,
            samples_scraped: 0,
            post_relabel: 0,
            series_added: 0,
        },
    ));
    match ingest.scraped(&spec.project, series) {
        Ok(_) => {
            metrics.stale_markers.inc_by(stale);
        }
        Err(e) => tracing::warn!(job, instance, "storing a failed scrape's up=0: {e}"),
    }
}
