//! Live diagnosis: a worker thread that owns the [`Diagnoser`], fed by the
//! ingest routes through a bounded queue.
//!
//! Ingestion never waits for it: a batch that does not fit in the queue is
//! dropped from the queue (counted in `/metrics`) and its run is marked
//! "behind"; the worker later reads what it missed back from the stores
//! (points newer than the last it saw of each series, log lines after the
//! last seq it saw) and catches up. Twice a second the worker runs the
//! time-driven checks, stores the incidents that changed (with their runs'
//! open-incident counts), streams them to live clients, and every few
//! seconds stores the health of the runs that moved.
//!
//! It is built from narrow inputs ([`DiagnosisDeps`]: the stores, the live
//! hub and an [`IncidentSink`]), not the server's whole state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use loupe_diagnose::{DiagnoseConfig, Diagnoser, Incident, IncidentState, RunInfo, Scope};
use loupe_meta::{IncidentRecord, LogOrder, LogQuery};
use loupe_model::clock::{now_ns, now_s};
use loupe_model::label;
use loupe_model::{LogLevel, LogStream, RunStatus, SeriesMatcher};
use loupe_tsdb::XAxis;
use parking_lot::Mutex;

use crate::live::LiveHub;
use crate::stores::Stores;

/// Who hears of incidents diagnosis opened, changed or resolved (alerting),
/// besides the store and live clients.
pub trait IncidentSink: Send + Sync {
    fn on_incidents(&self, changed: &[Incident]);
}

/// What the diagnosis worker reads and writes.
pub struct DiagnosisDeps {
    pub stores: Stores,
    pub live: Arc<LiveHub>,
    pub incidents: Arc<dyn IncidentSink>,
}

mod baselines;
pub(crate) mod feedback;
pub mod telemetry;

/// Columns of one series as the diagnoser takes them.
#[derive(Debug, Clone)]
pub struct SeriesIn {
    pub name: String,
    pub steps: Option<Vec<i64>>,
    /// Unix seconds.
    pub times: Vec<f64>,
    pub values: Vec<f64>,
}

/// What the ingest routes hand over.
#[derive(Debug)]
pub enum DiagInput {
    RunPoints {
        run: String,
        series: Vec<SeriesIn>,
    },
    /// Series outside runs; each with its labels (without `project`).
    SourcePoints {
        project: String,
        series: Vec<(Vec<(String, String)>, SeriesIn)>,
    },
    Logs {
        run: String,
        first_seq: u64,
        lines: Vec<(f64, LogStream, LogLevel, String)>,
    },
    Status {
        run: String,
        status: RunStatus,
        exit_code: Option<i32>,
    },
    Heartbeat {
        run: String,
    },
    /// A user's verdict was stored: the project's weights are read again.
    FeedbackChanged {
        project: String,
    },
}

impl DiagInput {
    fn run(&self) -> Option<&str> {
        match self {
            DiagInput::RunPoints { run, .. }
            | DiagInput::Logs { run, .. }
            | DiagInput::Status { run, .. }
            | DiagInput::Heartbeat { run } => Some(run),
            DiagInput::SourcePoints { .. } | DiagInput::FeedbackChanged { .. } => None,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DiagCounters {
    pub submitted: AtomicU64,
    /// Batches that did not fit in the queue (caught up later from the stores).
    pub dropped: AtomicU64,
    pub processed: AtomicU64,
    /// How long the latest processed batch waited in the queue, in µs.
    pub lag_us: AtomicU64,
    pub points: AtomicU64,
    pub findings: AtomicU64,
    pub open_incidents: AtomicU64,
    /// Open incidents by project (`None`: an incident of no project), so
    /// `/metrics` counts only those its caller may see.
    pub open_by_project: Mutex<BTreeMap<Option<String>, u64>>,
    pub caught_up_points: AtomicU64,
}

/// Queue capacity in batches.
const QUEUE: usize = 4096;
/// How often the time-driven checks run.
const TICK: Duration = Duration::from_millis(500);
/// How often health scores are stored.
const HEALTH_EVERY: Duration = Duration::from_secs(3);
/// Points read back per series per catch-up round.
const CATCH_UP_POINTS: usize = 200_000;

/// What the routes' side and the worker share.
#[derive(Default)]
struct Shared {
    /// Runs that lost a batch: the worker reads them back from the stores.
    behind: Mutex<HashSet<String>>,
    counters: DiagCounters,
}

pub struct Diagnosis {
    tx: Mutex<Option<SyncSender<(Instant, DiagInput)>>>,
    rx: Mutex<Option<Receiver<(Instant, DiagInput)>>>,
    shared: Arc<Shared>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    cfg: DiagnoseConfig,
}

impl Diagnosis {
    /// `None` turns diagnosis off (`loupe serve --no-diagnose`); `queue` is
    /// the queue's capacity in batches (0: the default).
    pub fn new(cfg: Option<DiagnoseConfig>, queue: usize) -> Self {
        let capacity = if queue == 0 { QUEUE } else { queue };
        let (tx, rx) = match cfg {
            Some(_) => {
                let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        Diagnosis {
            tx: Mutex::new(tx),
            rx: Mutex::new(rx),
            shared: Arc::default(),
            worker: Mutex::new(None),
            cfg: cfg.unwrap_or_default(),
        }
    }

    /// Counters for `/metrics`.
    pub fn counters(&self) -> &DiagCounters {
        &self.shared.counters
    }

    pub fn enabled(&self) -> bool {
        self.tx.lock().is_some()
    }

    /// Hands a batch over without ever blocking.
    pub fn submit(&self, input: DiagInput) {
        let guard = self.tx.lock();
        let Some(tx) = guard.as_ref() else {
            return;
        };
        self.shared
            .counters
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        match tx.try_send((Instant::now(), input)) {
            Ok(()) => {}
            Err(TrySendError::Full((_, input))) | Err(TrySendError::Disconnected((_, input))) => {
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(run) = input.run() {
                    self.shared.behind.lock().insert(run.to_string());
                }
            }
        }
    }

    /// Starts the worker (once). `pause` holds it back before its first
    /// batch: a diagnoser that has fallen behind, for tests of the catch-up.
    pub fn start(&self, deps: DiagnosisDeps, pause: Duration) {
        let Some(rx) = self.rx.lock().take() else {
            return;
        };
        let cfg = self.cfg.clone();
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name("loupe-diagnose".into())
            .spawn(move || {
                std::thread::sleep(pause);
                Worker::new(deps, shared, cfg).run(rx)
            });
        match handle {
            Ok(h) => *self.worker.lock() = Some(h),
            Err(e) => tracing::error!("could not start the diagnosis thread: {e}"),
        }
    }

    /// Stops the worker after it has drained the queue and stored what changed.
    pub fn shutdown(&self) {
        self.tx.lock().take();
        if let Some(h) = self.worker.lock().take() {
            let _ = h.join();
        }
    }
}

struct Worker {
    deps: DiagnosisDeps,
    shared: Arc<Shared>,
    d: Diagnoser,
    /// Runs the diagnoser was told about (looked up in the metadata store once).
    known: HashSet<String>,
    /// Runs that do not exist (deleted): their batches are skipped.
    unknown: HashSet<String>,
    /// Last log seq seen per run, for catching up.
    log_seq: HashMap<String, u64>,
    /// Resolved incidents per run that the diagnoser no longer holds (for health).
    resolved: HashMap<String, Vec<Incident>>,
    /// Runs whose health may have changed.
    touched: HashSet<String>,
    /// Runs caught up from the store at least once: their queued points
    /// older than what was read back are skipped.
    caught: HashSet<String>,
    last_tick: Instant,
    last_health: Instant,
    /// Baselines of the runs from their projects' history.
    baselines: baselines::BaselineLoader,
    baseline_cfg: loupe_diagnose::baseline::BaselineConfig,
    /// Projects whose feedback weights the diagnoser holds.
    feedback_loaded: HashSet<String>,
}

/// Resolved incidents remembered per run for its health.
const RESOLVED_KEPT: usize = 8;

impl Worker {
    fn new(deps: DiagnosisDeps, shared: Arc<Shared>, cfg: DiagnoseConfig) -> Self {
        let prefix = format!("{:x}", now_ns() / 1_000_000);
        Worker {
            deps,
            shared,
            baselines: baselines::BaselineLoader::default(),
            baseline_cfg: cfg.baseline.clone(),
            feedback_loaded: HashSet::new(),
            d: Diagnoser::new(cfg, &prefix),
            known: HashSet::new(),
            unknown: HashSet::new(),
            log_seq: HashMap::new(),
            resolved: HashMap::new(),
            touched: HashSet::new(),
            caught: HashSet::new(),
            last_tick: Instant::now(),
            last_health: Instant::now(),
        }
    }

    fn run(mut self, rx: Receiver<(Instant, DiagInput)>) {
        loop {
            match rx.recv_timeout(TICK) {
                Ok((queued, input)) => {
                    self.note_lag(queued);
                    self.handle(input);
                    // Drain what is there without waiting.
                    while let Ok((queued, input)) = rx.try_recv() {
                        self.note_lag(queued);
                        self.handle(input);
                        if self.last_tick.elapsed() >= TICK {
                            self.tick();
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.tick();
                    self.store_health(true);
                    return;
                }
            }
            if self.last_tick.elapsed() >= TICK {
                self.catch_up();
                self.tick();
            }
        }
    }

    fn note_lag(&self, queued: Instant) {
        let c = &self.shared.counters;
        c.processed.fetch_add(1, Ordering::Relaxed);
        c.lag_us
            .store(queued.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    /// Tells the diagnoser about a run the first time it is seen.
    fn ensure_run(&mut self, run: &str) -> bool {
        if self.known.contains(run) {
            return true;
        }
        if self.unknown.contains(run) {
            return false;
        }
        match self.deps.stores.meta.get_run(run) {
            Ok(r) => {
                let fp16 = RunInfo::fp16_from_config(&r.config);
                self.d.register_run(RunInfo {
                    id: r.id.clone(),
                    project: Some(r.project.clone()),
                    group: r.group.clone(),
                    rank: r.rank,
                    host: r.host.clone(),
                    fp16,
                });
                self.known.insert(run.to_string());
                if !self.feedback_loaded.contains(&r.project) {
                    self.load_feedback(&r.project);
                }
                self.baselines.watch(r);
                true
            }
            Err(_) => {
                if self.unknown.len() > 10_000 {
                    self.unknown.clear();
                }
                self.unknown.insert(run.to_string());
                false
            }
        }
    }

    fn handle(&mut self, input: DiagInput) {
        let now = now_s();
        match input {
            DiagInput::RunPoints { run, series } => {
                // A run that lost a batch is read back from the store in
                // time order; its queued batches would only interleave.
                if self.shared.behind.lock().contains(&run) || !self.ensure_run(&run) {
                    return;
                }
                if let Some(b) = self
                    .baselines
                    .due(&self.deps.stores, &run, &self.baseline_cfg)
                {
                    self.d.set_baseline(&run, b);
                }
                let caught = self.caught.contains(&run);
                let mut n = 0;
                for mut s in series {
                    if caught && let Some(last) = self.d.last_time(&run, &s.name) {
                        // Already read back from the store.
                        let keep: Vec<usize> =
                            (0..s.times.len()).filter(|&i| s.times[i] > last).collect();
                        if keep.len() < s.times.len() {
                            s.times = keep.iter().map(|&i| s.times[i]).collect();
                            s.values = keep.iter().map(|&i| s.values[i]).collect();
                            s.steps = s.steps.map(|st| keep.iter().map(|&i| st[i]).collect());
                        }
                    }
                    n += s.values.len();
                    self.d.observe_run_points(
                        &run,
                        &s.name,
                        s.steps.as_deref(),
                        &s.times,
                        &s.values,
                        now,
                    );
                }
                self.count_points(n);
                self.touched.insert(run);
            }
            DiagInput::SourcePoints { project, series } => {
                let mut n = 0;
                for (labels, s) in series {
                    n += s.values.len();
                    let get = |k: &str| labels.iter().find(|(l, _)| l == k).map(|(_, v)| v.clone());
                    let scope = Scope {
                        project: Some(project.clone()),
                        // Scraped series name their host by `instance`
                        // (`host:port`), as Prometheus sets it.
                        host: get("host").or_else(|| get("instance").map(|i| instance_host(&i))),
                        service: get("service").or_else(|| get("job")),
                        ..Default::default()
                    };
                    let mut source = format!("project={project}");
                    for (k, v) in &labels {
                        source.push(',');
                        source.push_str(k);
                        source.push('=');
                        source.push_str(v);
                    }
                    self.d
                        .observe_source_points(&source, scope, &s.name, &s.times, &s.values, now);
                }
                self.count_points(n);
            }
            DiagInput::Logs {
                run,
                first_seq,
                lines,
            } => {
                if self.shared.behind.lock().contains(&run) || !self.ensure_run(&run) {
                    return;
                }
                let seen = self.log_seq.get(&run).copied().unwrap_or(0);
                let mut seq = first_seq;
                for (time, stream, level, text) in lines {
                    // Lines already read back from the store are skipped.
                    if seq > seen {
                        self.d
                            .observe_log(&run, seq, time, stream, level, &text, now);
                    }
                    seq += 1;
                }
                let last = self.log_seq.entry(run.clone()).or_insert(0);
                *last = (*last).max(seq.saturating_sub(1));
                self.touched.insert(run);
            }
            DiagInput::Status {
                run,
                status,
                exit_code,
            } => {
                if status.is_terminal() {
                    self.baselines.run_ended(&run);
                }
                if status.is_terminal() && self.known.contains(&run) {
                    self.d.run_ended(&run, status.as_str(), exit_code, now);
                    self.touched.insert(run);
                } else if status == RunStatus::Running {
                    // A resume: what is known of the run may have changed.
                    self.known.remove(&run);
                }
            }
            DiagInput::Heartbeat { run } => self.d.heartbeat(&run, now),
            DiagInput::FeedbackChanged { project } => self.load_feedback(&project),
        }
    }

    /// Reads a project's feedback weights and hands them to the diagnoser.
    fn load_feedback(&mut self, project: &str) {
        match feedback::load_weights(&self.deps.stores.meta, project) {
            Ok(w) => {
                self.d.set_feedback(project, w);
                self.feedback_loaded.insert(project.to_string());
            }
            Err(e) => tracing::warn!(project, "feedback weights not read: {e}"),
        }
    }

    fn count_points(&self, n: usize) {
        self.shared
            .counters
            .points
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reads back from the stores what dropped batches carried.
    fn catch_up(&mut self) {
        let runs: Vec<String> = self.shared.behind.lock().drain().collect();
        for run in runs {
            if !self.ensure_run(&run) {
                continue;
            }
            self.caught.insert(run.clone());
            let now = now_s();
            let mut caught = 0u64;
            for info in self
                .deps
                .stores
                .tsdb
                .series(&SeriesMatcher::any().label_eq(label::RUN, &run))
            {
                let name = info.key.name().to_string();
                let from = match self.d.last_time(&run, &name) {
                    // The next nanosecond after the last point seen.
                    Some(t) => (t * 1e9) as i64 + 1,
                    None => i64::MIN,
                };
                let Ok(pts) = self.deps.stores.tsdb.read_range(
                    &info.key,
                    XAxis::Time,
                    from,
                    i64::MAX,
                    Some(CATCH_UP_POINTS),
                ) else {
                    continue;
                };
                if pts.values.is_empty() {
                    continue;
                }
                let steps: Vec<i64> = pts.steps.clone();
                let has_steps = steps.iter().any(|s| *s != loupe_model::NO_STEP);
                let times: Vec<f64> = pts.times.iter().map(|t| *t as f64 / 1e9).collect();
                caught += pts.values.len() as u64;
                self.d.observe_run_points(
                    &run,
                    &name,
                    has_steps.then_some(steps.as_slice()),
                    &times,
                    &pts.values,
                    now,
                );
            }
            let after = self.log_seq.get(&run).copied().unwrap_or(0);
            if let Ok(page) = self.deps.stores.meta.query_logs(
                &run,
                LogQuery {
                    cursor: Some(after),
                    limit: Some(loupe_meta::MAX_LOG_LIMIT),
                    order: LogOrder::Asc,
                    ..Default::default()
                },
            ) {
                for (seq, r) in page.records {
                    self.d
                        .observe_log(&run, seq, r.time, r.stream, r.level, &r.text, now);
                    self.log_seq.insert(run.clone(), seq);
                }
                if page.next_cursor.is_some() {
                    // More than a page behind: another round.
                    self.shared.behind.lock().insert(run.clone());
                }
            }
            self.shared
                .counters
                .caught_up_points
                .fetch_add(caught, Ordering::Relaxed);
            self.count_points(caught as usize);
            self.touched.insert(run);
        }
    }

    fn tick(&mut self) {
        self.last_tick = Instant::now();
        let changed = self.d.tick(now_s());
        let stats = self.d.stats();
        let c = &self.shared.counters;
        c.findings.store(stats.findings, Ordering::Relaxed);
        let open = self.d.open_incidents();
        c.open_incidents.store(open.len() as u64, Ordering::Relaxed);
        let mut by_project = BTreeMap::new();
        for i in &open {
            *by_project.entry(i.project.clone()).or_default() += 1;
        }
        *c.open_by_project.lock() = by_project;
        if !changed.is_empty() {
            self.store_incidents(&changed);
        }
        self.store_health(false);
    }

    fn store_incidents(&mut self, changed: &[Incident]) {
        self.deps.incidents.on_incidents(changed);
        let mut records = Vec::with_capacity(changed.len());
        let mut live = Vec::with_capacity(changed.len());
        for inc in changed {
            let body = match serde_json::to_string(inc) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(incident = %inc.id, "cannot encode incident: {e}");
                    continue;
                }
            };
            // The API's incident is the stored JSON read back (routes/incidents
            // tests that every field survives it), so it is parsed from the
            // body just encoded rather than encoded again.
            match serde_json::from_str::<loupe_api::Incident>(&body) {
                Ok(api) => live.push((inc, Box::new(api))),
                Err(e) => tracing::warn!(incident = %inc.id, "incident not sent live: {e}"),
            }
            let mut runs = inc.runs.clone();
            if let Some(r) = &inc.run
                && !runs.contains(r)
            {
                runs.push(r.clone());
            }
            for r in &runs {
                self.touched.insert(r.clone());
                if inc.state == IncidentState::Resolved {
                    let list = self.resolved.entry(r.clone()).or_default();
                    list.retain(|i| i.id != inc.id);
                    list.push(inc.clone());
                    if list.len() > RESOLVED_KEPT {
                        list.remove(0);
                    }
                }
            }
            records.push(IncidentRecord {
                id: inc.id.clone(),
                project: inc.project.clone().unwrap_or_else(|| "default".into()),
                group: inc.group.clone(),
                host: inc.host.clone(),
                state: inc.state.as_str().to_string(),
                severity: inc.severity.as_str().to_string(),
                kind: inc.kind.clone(),
                opened: inc.opened,
                updated: inc.updated,
                runs,
                body,
            });
        }
        if let Err(e) = self.deps.stores.meta.store_incidents(&records) {
            tracing::warn!("could not store incidents: {e}");
            return;
        }
        for (inc, data) in live {
            let runs: Vec<&str> = if inc.runs.is_empty() {
                vec![inc.run.as_deref().unwrap_or("")]
            } else {
                inc.runs.iter().map(String::as_str).take(64).collect()
            };
            for r in runs {
                let payload = loupe_api::LivePayload::Incident(data.clone());
                self.deps.live.publish(r, payload);
            }
            if inc.state == IncidentState::Open && inc.opened == inc.updated {
                tracing::info!(incident = %inc.id, kind = %inc.kind, "incident opened: {}", inc.title);
            }
        }
    }

    fn store_health(&mut self, force: bool) {
        if !force && self.last_health.elapsed() < HEALTH_EVERY {
            return;
        }
        self.last_health = Instant::now();
        let mut items = Vec::new();
        for run in self.touched.drain() {
            let past: Vec<&Incident> = self
                .resolved
                .get(&run)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            if let Some(h) = self.d.health(&run, &past) {
                let detail = serde_json::to_string(&h.breakdown).unwrap_or_else(|_| "[]".into());
                items.push((run, h.score, detail));
            }
        }
        if !items.is_empty()
            && let Err(e) = self.deps.stores.meta.store_health(&items)
        {
            tracing::warn!("could not store health scores: {e}");
        }
    }
}

/// The host part of a Prometheus `instance` (`node1:9100` → `node1`,
/// `[::1]:9100` → `::1`); an instance without a port is its own host.
fn instance_host(instance: &str) -> String {
    let host = match instance.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => instance,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}
