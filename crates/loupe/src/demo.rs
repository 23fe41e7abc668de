//! `loupe demo`: everything Loupe does, in one command, on a laptop.
//!
//! Starts `loupe serve` on the embedded store (a fresh data directory, a
//! free port) in this process, then plays realistic workloads into it
//! through the public HTTP API, in accelerated time:
//!
//! 1. a pre-training job of 8 ranks on 2 nodes (loss, learning rate, grad
//!    norm, tokens/s, step time, GPU and host metrics, console logs) with
//!    faults at known steps: a loss spike after a grad-norm spike at the end
//!    of warm-up, a data-loader stall (input-bound), a rank that turns into
//!    a thermal straggler, and a GPU memory leak that ends in a CUDA
//!    out-of-memory crash with its traceback;
//! 2. a healthy baseline run;
//! 3. an LLM inference service (latency, time to first token, requests,
//!    errors) with a burst of errors.
//!
//! It prints the UI's address, a progress bar, each incident as diagnosis
//! finds it (cause and fix), and a summary that checks every injected
//! fault against what was found. The workloads come from
//! `loupe_diagnose::scenario`, the generator of the fault-injection suite.
//!
//! Time is compressed by `--speed`, so the diagnosis windows that are
//! measured on the server's clock (joining findings into incidents,
//! resolving them, stalls) are divided by the same factor: the demo's
//! server sees an hour of training in six minutes and judges it as an hour.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use loupe_client::api::{
    CreateRun, IncidentQuery, LogBatch, LogLine, MetricsBatch, PatchRun, RunFailure, RunStatus,
    SeriesColumns,
};
use loupe_client::{Client, ClientOptions};
use loupe_diagnose::scenario::quality::{evaluate, touches};
use loupe_diagnose::scenario::{Event, FaultKind, Injected, JobSpec, Scenario, generate};
use loupe_diagnose::{DiagnoseConfig, Incident};
use loupe_model::clock::now_s;
use loupe_model::run_url;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How long the demo plays, in seconds of wall-clock time.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Simulated seconds per second: 10 plays 10 minutes of training in one.
    #[arg(long, default_value_t = 10.0)]
    speed: f64,
    /// Keep serving afterwards (Ctrl-C to stop) so the UI can be explored.
    #[arg(long)]
    follow: bool,
    /// Where the server listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: std::net::SocketAddr,
    /// Data directory (default: a fresh temporary one, removed at the end
    /// unless --follow).
    #[arg(long)]
    data: Option<PathBuf>,
}

const PROJECT: &str = "demo";
const JOB: &str = "pretrain-7b";
const BASELINE: &str = "baseline-7b";
const SERVICE: &str = "chat-api";

pub fn run(a: &DemoArgs) -> Result<()> {
    if !(a.speed > 0.0 && a.speed <= 1000.0) {
        bail!("--speed must be in (0, 1000], not {}", a.speed);
    }
    if a.duration < 10 {
        bail!("--duration must be at least 10 seconds");
    }
    let temp = tempfile::Builder::new().prefix("loupe-demo-").tempdir()?;
    let data = a.data.clone().unwrap_or_else(|| temp.path().join("data"));
    let server = DemoServer::start(a.addr, data.clone(), demo_config(a.speed))?;
    let base = format!("http://{}", server.addr);
    println!("loupe serve listening on {base}");
    println!(
        "Loupe demo: open {} in a browser",
        loupe_model::project_url(&base, PROJECT)
    );
    let sim_seconds = a.duration as f64 * a.speed;
    // The simulated past ends now, so data and incident times agree at the end.
    let t0 = now_s() - sim_seconds;
    let scenario = workloads(sim_seconds, t0);
    println!(
        "playing {:.0} simulated minutes in {} s: job {JOB} (8 ranks, 2 nodes), run {BASELINE}, service {SERVICE}; {} points",
        sim_seconds / 60.0,
        a.duration,
        scenario.points()
    );
    let client = DemoClient::new(&base);
    client.create_runs(&scenario, t0)?;
    let mut seen: HashMap<String, String> = HashMap::new();
    play(&client, &scenario, t0, a.speed, &mut seen)?;
    // Let diagnosis see the last batches and the time-driven checks run.
    std::thread::sleep(Duration::from_secs(2));
    let incidents = client.incidents()?;
    for i in &incidents {
        if seen.get(&i.id) != Some(&i.kind) {
            client.announce(i, seen.contains_key(&i.id));
        }
    }
    summary(&scenario, &incidents, &client)?;
    if a.follow {
        crate::serve_cmd::block_until_signal(|| {
            // Whoever reads our output may be gone by now: not an error.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "loupe demo finished: {base}/");
            let _ = writeln!(out, "still serving {base}/ — Ctrl-C to stop");
            let _ = out.flush();
        })?;
    } else {
        println!("loupe demo finished: {base}/");
    }
    server.stop()?;
    if a.data.is_none() && !a.follow {
        drop(temp);
    } else {
        // Kept: the user may want to look again with `loupe serve --data`.
        let kept = temp.keep();
        if a.data.is_none() {
            let _ = writeln!(std::io::stdout(), "data kept in {}", kept.display());
        }
    }
    Ok(())
}

/// The server's diagnosis windows for the demo's compressed time.
fn demo_config(speed: f64) -> DiagnoseConfig {
    let mut c = DiagnoseConfig::default();
    // Windows on data time (simulated seconds) are tighter than the
    // defaults: the demo packs four faults of one job into ten minutes, a
    // real job spreads them out. Windows on arrival time (resolving a quiet
    // incident, stalls, silences) are divided by the speed.
    c.incident.join_window_s = 30.0;
    c.incident.repeat_window_s = 60.0;
    c.incident.lookback_s = 30.0;
    c.incident.resolve_after_s = 60.0 / speed;
    c.stall.min_seconds /= speed;
    c.silence.min_seconds /= speed;
    c
}

/// The three workloads, in simulated time from `t0`.
fn workloads(sim_seconds: f64, t0: f64) -> Scenario {
    let steps = sim_seconds.floor() as i64;
    let at = |f: f64| (steps as f64 * f) as i64;
    let mut job = JobSpec::new(JOB, 8, steps, 42);
    job.project = PROJECT.into();
    job.ranks_per_node = 4;
    job.start_time = t0;
    job.warmup_steps = at(0.10);
    job.faults = vec![
        Injected::new(FaultKind::LossSpike, at(0.10) + 2, 0),
        Injected {
            length: at(0.08),
            ..Injected::new(FaultKind::InputBound, at(0.25), 0)
        },
        Injected {
            length: at(0.12),
            ..Injected::new(FaultKind::ThermalStraggler, at(0.45), 3)
        },
        Injected {
            length: at(0.30),
            ..Injected::new(FaultKind::GpuMemoryLeak, at(0.62), 5)
        },
    ];
    // torchrun tears the job down once rank 5 has crashed.
    job.stop = Some((at(0.62) + at(0.30) + 5, "failed".into()));
    let mut baseline = JobSpec::new(BASELINE, 1, steps, 7);
    baseline.project = PROJECT.into();
    baseline.start_time = t0;
    baseline.warmup_steps = at(0.10);
    let mut service = JobSpec::new(SERVICE, 1, steps, 9);
    service.project = PROJECT.into();
    service.service = true;
    service.start_time = t0;
    service.fault = Some(FaultKind::ServingErrors);
    service.fault_step = at(0.78);
    generate(&job)
        .merge(generate(&baseline))
        .merge(generate(&service))
}

/// Sends the events as their simulated time comes, batched per run every
/// tenth of a second, with a progress bar.
fn play(
    client: &DemoClient,
    sc: &Scenario,
    t0: f64,
    speed: f64,
    seen: &mut HashMap<String, String>,
) -> Result<()> {
    let events: Vec<&Event> = sc.events.iter().filter(|e| e.time().is_finite()).collect();
    let last = events.last().map_or(t0, |e| e.time());
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut next = 0usize;
    let mut last_poll = Instant::now();
    let mut last_bar = -1i64;
    let mut tails: HashMap<String, VecDeque<String>> = HashMap::new();
    while next < events.len() {
        let sim_now = t0 + start.elapsed().as_secs_f64() * speed;
        let mut batch = Batch::default();
        while next < events.len() && events[next].time() <= sim_now {
            batch.add(events[next], &mut tails);
            next += 1;
        }
        client.send(batch)?;
        if last_poll.elapsed() >= Duration::from_millis(500) {
            last_poll = Instant::now();
            for i in client.incidents()? {
                let changed = seen.get(&i.id) != Some(&i.kind);
                if changed {
                    if tty {
                        eprint!("\r\x1b[K");
                    }
                    client.announce(&i, seen.contains_key(&i.id));
                    seen.insert(i.id.clone(), i.kind.clone());
                }
            }
        }
        let pct = ((sim_now - t0) / (last - t0).max(1.0) * 100.0).clamp(0.0, 100.0);
        let bar = pct as i64;
        if tty {
            let filled = (pct / 5.0) as usize;
            eprint!(
                "\r[{}{}] {pct:3.0}%  simulated {}  incidents {}",
                "#".repeat(filled),
                ".".repeat(20 - filled.min(20)),
                clock(sim_now - t0),
                seen.len()
            );
        } else if bar / 10 != last_bar / 10 {
            eprintln!(
                "progress {:3}% (simulated {})",
                bar / 10 * 10,
                clock(sim_now - t0)
            );
        }
        last_bar = bar;
        std::thread::sleep(Duration::from_millis(100));
    }
    if tty {
        eprintln!();
    }
    Ok(())
}

fn clock(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// What one tick sends.
#[derive(Default)]
struct Batch {
    /// Per run: its metric series.
    metrics: BTreeMap<String, Vec<SeriesColumns>>,
    logs: BTreeMap<String, Vec<LogLine>>,
    external: Vec<SeriesColumns>,
    /// Per run: its status, failure and end (simulated time).
    ended: Vec<(String, String, Option<RunFailure>, f64)>,
}

impl Batch {
    fn add(&mut self, e: &Event, tails: &mut HashMap<String, VecDeque<String>>) {
        match e {
            Event::Points {
                run,
                series,
                steps,
                times,
                values,
            } => self
                .metrics
                .entry(run.clone())
                .or_default()
                .push(SeriesColumns {
                    name: series.clone(),
                    step: Some(steps.clone()),
                    time: Some(times.clone()),
                    value: values.clone(),
                    labels: None,
                }),
            Event::SourcePoints {
                scope,
                series,
                times,
                values,
                ..
            } => {
                let labels = [("service", &scope.service), ("host", &scope.host)]
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
                    .collect();
                self.external.push(SeriesColumns {
                    name: series.clone(),
                    step: None,
                    time: Some(times.clone()),
                    value: values.clone(),
                    labels: Some(labels),
                })
            }
            Event::Log {
                run,
                time,
                stream,
                level,
                text,
            } => {
                if *stream == loupe_model::LogStream::Stderr {
                    let t = tails.entry(run.clone()).or_default();
                    t.push_back(text.clone());
                    if t.len() > 50 {
                        t.pop_front();
                    }
                }
                self.logs.entry(run.clone()).or_default().push(LogLine {
                    time: Some(*time),
                    stream: Some(*stream),
                    level: Some(*level),
                    text: text.clone(),
                    attributes: BTreeMap::new(),
                })
            }
            Event::RunEnded {
                run, status, time, ..
            } => {
                let failure = (status != "finished").then(|| {
                    let tail: Vec<String> = tails
                        .get(run)
                        .map(|t| t.iter().cloned().collect())
                        .unwrap_or_default();
                    let last = tail
                        .iter()
                        .rev()
                        .find(|l| !l.starts_with(' ') && l.contains(": "));
                    let (ty, msg) = last
                        .and_then(|l| l.split_once(": "))
                        .map(|(a, b)| (Some(a.to_string()), Some(b.to_string())))
                        .unwrap_or((None, None));
                    RunFailure {
                        exception_type: ty,
                        message: msg,
                        stderr_tail: tail,
                        ..Default::default()
                    }
                });
                // A rank the launcher stopped saw no error of its own: no
                // failure to show (an empty one reads as a mystery).
                let failure =
                    failure.filter(|f| f.exception_type.is_some() || !f.stderr_tail.is_empty());
                self.ended
                    .push((run.clone(), status.clone(), failure, *time));
            }
            Event::RunStarted { .. } => {}
        }
    }
}

/// The demo's calls, over the one HTTP client.
struct DemoClient {
    base: String,
    api: Client,
}

/// A page of incidents, read as the diagnoser's own type (the demo scores
/// them with the fault-injection suite's evaluation).
#[derive(serde::Deserialize)]
struct Incidents {
    incidents: Vec<Incident>,
}

impl DemoClient {
    fn new(base: &str) -> Self {
        DemoClient {
            base: base.to_string(),
            api: Client::new(
                base,
                ClientOptions {
                    timeout: Some(Duration::from_secs(30)),
                    ..Default::default()
                },
            ),
        }
    }

    /// Creates every run, started at `t0`: the simulated start its data and
    /// logs count from, so a run's header, logs and incidents agree.
    fn create_runs(&self, sc: &Scenario, t0: f64) -> Result<()> {
        for e in &sc.events {
            if let Event::RunStarted { info, config } = e {
                let world = if info.group.is_some() { Some(8) } else { None };
                let tags = if info.group.is_some() {
                    ["pretrain", "7b"]
                } else {
                    ["baseline", "7b"]
                };
                let req = CreateRun {
                    id: Some(info.id.clone()),
                    name: Some(info.id.clone()),
                    project: Some(PROJECT.into()),
                    group: info.group.clone(),
                    rank: info.rank,
                    world_size: world,
                    host: info.host.clone(),
                    config: Some(config.clone()),
                    tags: tags.map(String::from).to_vec(),
                    command: Some("torchrun --nproc-per-node 4 train.py --config 7b.yaml".into()),
                    start_time: Some(t0),
                    ..Default::default()
                };
                self.api
                    .create_run(&req)
                    .with_context(|| format!("creating run {}", info.id))?;
            }
        }
        Ok(())
    }

    fn send(&self, b: Batch) -> Result<()> {
        for (run, series) in b.metrics {
            self.api
                .post_run_metrics(&run, &MetricsBatch { series })
                .with_context(|| format!("metrics of {run}"))?;
        }
        for (run, records) in b.logs {
            self.api
                .post_logs(&run, &LogBatch { records }, None)
                .with_context(|| format!("logs of {run}"))?;
        }
        if !b.external.is_empty() {
            self.api
                .post_metrics(Some(PROJECT), &MetricsBatch { series: b.external })
                .context("host and service metrics")?;
        }
        for (run, status, failure, end_time) in b.ended {
            let patch = PatchRun {
                status: Some(
                    status
                        .parse::<RunStatus>()
                        .map_err(|e| anyhow::anyhow!("run {run}: {e}"))?,
                ),
                exit_code: Some(if status == "finished" { 0 } else { 1 }),
                failure,
                end_time: Some(end_time),
                ..Default::default()
            };
            self.api
                .patch_run(&run, &patch)
                .with_context(|| format!("ending run {run}"))?;
        }
        Ok(())
    }

    fn incidents(&self) -> Result<Vec<Incident>> {
        let q = IncidentQuery {
            project: Some(PROJECT.into()),
            limit: Some(1000),
            ..Default::default()
        };
        let page: Incidents = self
            .api
            .get("/api/v1/incidents", &q)
            .context("listing incidents")?;
        Ok(page.incidents)
    }

    /// Prints an incident the first time it is seen; `update` when an
    /// incident already printed got a new top cause (one incident, not two).
    fn announce(&self, i: &Incident, update: bool) {
        if update {
            let _ = writeln!(
                std::io::stdout().lock(),
                "  ↳ {} now reads: {}",
                i.id,
                i.title
            );
            return;
        }
        let where_ = i
            .run
            .clone()
            .or_else(|| i.group.clone().map(|g| format!("job {g}")))
            .or_else(|| i.service.clone().map(|s| format!("service {s}")))
            .unwrap_or_default();
        let out = &mut std::io::stdout().lock();
        let _ = writeln!(
            out,
            "⚠ incident [{}] {where_}: {} ({})",
            i.severity.as_str(),
            i.title,
            i.id
        );
        if let Some(c) = i.causes.first() {
            let _ = writeln!(out, "    why: {}", c.explanation);
            if let Some(f) = c.fixes.first() {
                let _ = writeln!(out, "    try: {f}");
            }
        }
        if let Some(run) = i.culprit_run() {
            let _ = writeln!(out, "    see: {}", run_url(&self.base, run));
        }
    }
}

fn summary(sc: &Scenario, incidents: &[Incident], client: &DemoClient) -> Result<()> {
    let report = evaluate(sc, incidents);
    println!("\nsummary: {} incident(s) found", incidents.len());
    for f in &sc.faults {
        let expected = f.kind.expected_cause();
        // The incident that ranks the expected cause best.
        let found = incidents
            .iter()
            .filter(|i| touches(i, f))
            .filter_map(|i| Some((i.causes.iter().position(|c| c.kind == expected)?, i)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, i)| i);
        let mark = match found {
            Some(i) if i.causes.first().is_some_and(|c| c.kind == expected) => "✓",
            Some(_) => "~",
            None => "✗",
        };
        println!(
            "  {mark} {:<18} injected at {} → {}",
            f.kind.as_str(),
            f.start_step
                .map(|s| format!("step {s}"))
                .unwrap_or_else(|| "its burst".into()),
            found.map(|i| i.title.as_str()).unwrap_or("not found")
        );
    }
    let n = client
        .api
        .run_incidents(BASELINE, &IncidentQuery::default())
        .context("the baseline's incidents")?
        .incidents
        .len();
    println!(
        "  {} healthy baseline run {BASELINE}: {n} incident(s)",
        if n == 0 { "✓" } else { "✗" }
    );
    println!(
        "  precision {:.2}, recall {:.2}, true cause first {:.2}",
        report.precision(),
        report.recall(),
        report.top_cause_rate()
    );
    Ok(())
}

/// `loupe serve` on its own thread and runtime.
struct DemoServer {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl DemoServer {
    fn start(addr: std::net::SocketAddr, data: PathBuf, diagnose: DiagnoseConfig) -> Result<Self> {
        let mut cfg = loupe_server::ServerConfig::new(addr, data);
        cfg.diagnose = Some(diagnose);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("loupe-demo-server".into())
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime")?;
                let served = rt.block_on(loupe_server::serve(
                    cfg,
                    async move {
                        let _ = stop_rx.await;
                    },
                    move |a| {
                        let _ = ready_tx.send(a);
                    },
                ));
                // A shutdown step past its budget is not waited for.
                rt.shutdown_timeout(Duration::from_millis(100));
                served?;
                Ok(())
            })?;
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(DemoServer {
                addr,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e.context("the demo's server did not start")),
                _ => bail!("the demo's server did not start"),
            },
        }
    }

    fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("the demo's server panicked"))??;
        }
        Ok(())
    }
}
