//! The front door: points, log lines and clock ticks in; incidents out.
//!
//! One `Diagnoser` holds the detector state of every watched series, the
//! per-run step tracking (stalls), the groups (cohorts), the log scanners
//! and the correlator. It is single-threaded by design: the server runs it
//! on its own thread, fed through a bounded queue, so ingestion never waits
//! for it.

use std::collections::{BTreeMap, VecDeque};

use hashbrown::HashMap;
use loupe_model::units::{self, Unit};
use loupe_model::{LogLevel, LogStream};

use crate::Severity;
use crate::baseline::{BaselineWatch, RunBaseline};
use crate::config::DiagnoseConfig;
use crate::detect::{Raw, SeriesDetector};
use crate::finding::{Direction, Finding, FindingKind, LogRef, Scope, SeriesRole};
use crate::health::{self, Health, HealthSignals};
use crate::incident::{Correlator, FeedbackWeights, Incident, IncidentState, RunContext, feedback};
use crate::logsig::{LogScanner, LogSignatureKind};

/// What the diagnoser needs to know about a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunInfo {
    pub id: String,
    pub project: Option<String>,
    pub group: Option<String>,
    pub rank: Option<u32>,
    pub host: Option<String>,
    /// Mixed precision with a loss scaler (fp16), from the run's config.
    pub fp16: bool,
}

impl RunInfo {
    /// Reads `fp16` from a config: `fp16: true`, `mixed_precision: "fp16"`,
    /// `precision: "16-mixed"`, `dtype: "float16"`, at the top level or one
    /// level down.
    pub fn fp16_from_config(config: &serde_json::Value) -> bool {
        fn check(v: &serde_json::Value) -> bool {
            let Some(obj) = v.as_object() else {
                return false;
            };
            obj.iter().any(|(k, v)| {
                let k = k.to_ascii_lowercase();
                match v {
                    serde_json::Value::Bool(b) => *b && k == "fp16",
                    serde_json::Value::String(s) => {
                        let s = s.to_ascii_lowercase();
                        matches!(
                            k.as_str(),
                            "mixed_precision" | "precision" | "dtype" | "amp_dtype"
                        ) && (s == "fp16"
                            || s == "16"
                            || s == "16-mixed"
                            || s == "float16"
                            || s == "half")
                    }
                    serde_json::Value::Object(_) => false,
                    _ => false,
                }
            })
        }
        check(config) || config.as_object().is_some_and(|o| o.values().any(check))
    }
}

/// Counters for the server's /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DiagnoseStats {
    pub points: u64,
    pub log_lines: u64,
    pub findings: u64,
    pub series_watched: u64,
    /// Series not watched because `max_series` was reached.
    pub series_refused: u64,
}

#[derive(Debug)]
struct SeriesState {
    det: SeriesDetector,
    last_time: f64,
    last_arrival: f64,
    /// EWMA of the data-time gap between points.
    interval: Option<f64>,
    n: u32,
    silent: bool,
    recent: VecDeque<f64>,
    /// The name members of a group are compared under (`gpu/*/temperature`),
    /// for the series kinds that are compared at all.
    cohort: Option<Box<str>>,
}

const RECENT_KEPT: usize = 16;

/// The series watched for one run or source, and their limits.
#[derive(Debug, Default)]
struct Watched {
    /// Ordered, so the checks that walk it (silences, cohorts) emit in the
    /// same order for the same input.
    series: BTreeMap<Box<str>, SeriesState>,
    /// Latest totals of memory series, by the name of the "used" series they bound.
    limits: HashMap<String, f64>,
}

impl Watched {
    /// Notes a limit the batch carries, creates the series' state unless
    /// `max_series` is reached (counted as refused), and returns it with the
    /// series' limit.
    fn prepare(
        &mut self,
        series: &str,
        role: SeriesRole,
        values: &[f64],
        cfg: &DiagnoseConfig,
        stats: &mut DiagnoseStats,
    ) -> Option<(&mut SeriesState, Option<f64>)> {
        if (role == SeriesRole::GpuMemoryTotal || role == SeriesRole::HostMemoryTotal)
            && let Some(v) = values.iter().rev().find(|v| v.is_finite())
        {
            self.limits.insert(series.replace("total", "used"), *v);
        }
        if !self.series.contains_key(series) {
            if stats.series_watched as usize >= cfg.max_series {
                stats.series_refused += 1;
                return None;
            }
            stats.series_watched += 1;
            self.series
                .insert(series.into(), new_series(series, role, cfg));
        }
        let limit = self.limits.get(series).copied();
        Some((self.series.get_mut(series)?, limit))
    }
}

#[derive(Debug, Default)]
struct RunState {
    info: RunInfo,
    watched: Watched,
    last_step: Option<i64>,
    last_advance: f64,
    last_advance_time: f64,
    step_interval: Option<f64>,
    steps_seen: u32,
    last_arrival: f64,
    stalled: bool,
    stall_reported: f64,
    ended: Option<(String, f64)>,
    lr_last: Option<f64>,
    lr_peak: f64,
    signals: HealthSignals,
    scanner: Option<LogScanner>,
    /// A critical log signature was seen: a non-zero exit is explained.
    explained: bool,
    /// The newest data time seen (points and log lines): what the run's
    /// end is stamped with, so end-of-run findings correlate with the
    /// run's other evidence by data time even when the end arrives long
    /// after the data (a bulk upload, an import, a replay).
    last_data_time: f64,
}

/// A source outside runs: the labels that are not the series' own.
#[derive(Debug, Default)]
struct SourceState {
    scope: Scope,
    watched: Watched,
    /// The cohort it is compared within: the replicas of its service, or
    /// the hosts of its project (a node pool).
    cohort: String,
}

pub struct Diagnoser {
    cfg: DiagnoseConfig,
    /// Ordered by id, like `sources`: the time-driven checks walk them, and
    /// the order of what they emit reaches incidents and their evidence.
    runs: BTreeMap<String, RunState>,
    sources: BTreeMap<String, SourceState>,
    /// Persistent outlier counts per hash of (group, cohort series, member).
    cohort_counts: HashMap<u64, u32>,
    cohort_hasher: hashbrown::DefaultHashBuilder,
    sink: Sink,
    out: Vec<Raw>,
    /// Runs compared with their project's previous runs.
    baselines: BaselineWatch,
    baseline_out: Vec<Finding>,
    /// Per project: users' verdicts, applied to the incidents handed out.
    feedback: HashMap<String, FeedbackWeights>,
}

/// Where findings go: the correlator, the counters, and (offline) a record.
/// Apart from the rest of the state so it can be borrowed beside a run's.
struct Sink {
    correlator: Correlator,
    stats: DiagnoseStats,
    /// Every finding, when recording (offline tools); bounded.
    recorded: Option<Vec<Finding>>,
}

impl Sink {
    fn emit(&mut self, f: Finding, now: f64) {
        self.stats.findings += 1;
        if let Some(r) = self.recorded.as_mut()
            && r.len() < MAX_RECORDED
        {
            r.push(f.clone());
        }
        self.correlator.add(f, now);
    }
}

/// Findings kept when recording.
const MAX_RECORDED: usize = 1_000_000;

/// How long an ended run's state is kept (for late data and health).
const ENDED_KEEP_S: f64 = 600.0;

impl Diagnoser {
    pub fn new(cfg: DiagnoseConfig, id_prefix: &str) -> Self {
        let correlator = Correlator::new(cfg.incident.clone(), id_prefix);
        Diagnoser {
            cfg,
            runs: BTreeMap::new(),
            sources: BTreeMap::new(),
            cohort_counts: HashMap::new(),
            cohort_hasher: hashbrown::DefaultHashBuilder::default(),
            sink: Sink {
                correlator,
                stats: DiagnoseStats::default(),
                recorded: None,
            },
            out: Vec::new(),
            baselines: BaselineWatch::default(),
            baseline_out: Vec::new(),
            feedback: HashMap::new(),
        }
    }

    /// Compares a run, step for step, with the envelopes of its baseline
    /// runs (replacing what it was compared with before).
    pub fn set_baseline(&mut self, run: &str, baseline: RunBaseline) {
        self.baselines.set(run, baseline);
    }

    /// Sets a project's feedback weights: the incidents handed out from
    /// now on are ranked with them.
    pub fn set_feedback(&mut self, project: &str, weights: FeedbackWeights) {
        self.feedback.insert(project.to_string(), weights);
    }

    fn with_feedback(&self, mut incidents: Vec<Incident>) -> Vec<Incident> {
        for inc in &mut incidents {
            if let Some(w) = inc.project.as_deref().and_then(|p| self.feedback.get(p)) {
                feedback::rerank(inc, w);
            }
        }
        incidents
    }

    /// Keeps every finding for [`take_findings`](Self::take_findings) (at
    /// most a million): what offline tools label rows with.
    pub fn record_findings(&mut self) {
        self.sink.recorded.get_or_insert_with(Vec::new);
    }

    pub fn take_findings(&mut self) -> Vec<Finding> {
        self.sink
            .recorded
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn stats(&self) -> DiagnoseStats {
        self.sink.stats
    }

    /// The time (Unix seconds) of the latest point seen of a run's series.
    pub fn last_time(&self, run: &str, series: &str) -> Option<f64> {
        let t = self.runs.get(run)?.watched.series.get(series)?.last_time;
        t.is_finite().then_some(t)
    }

    /// Registers a run (or updates what is known of it).
    pub fn register_run(&mut self, info: RunInfo) {
        self.sink
            .correlator
            .set_context(&info.id, RunContext { fp16: info.fp16 });
        let st = self.runs.entry(info.id.clone()).or_default();
        st.info = info;
    }

    /// The run ended with this status (`finished`, `failed`, `crashed`,
    /// `killed`) and, when known, the process's exit status.
    pub fn run_ended(&mut self, run: &str, status: &str, exit_code: Option<i32>, now: f64) {
        if let Some(st) = self.runs.get_mut(run) {
            st.ended = Some((status.to_string(), now));
            if status
                .parse::<loupe_model::RunStatus>()
                .is_ok_and(loupe_model::RunStatus::is_failure)
            {
                st.signals.ended_badly = Some(status.to_string());
            }
            let scope = scope_of(&st.info);
            let at = end_data_time(st.last_data_time, now);
            if let Some(scanner) = st.scanner.as_mut() {
                for m in scanner.finish() {
                    if m.severity == Severity::Critical {
                        st.explained = true;
                    }
                    let f = log_finding(scope.clone(), m, at, 0, "");
                    self.sink.emit(f, now);
                }
            }
            if let Some(code) = exit_code.filter(|&c| c != 0) {
                let last: Vec<&str> = st
                    .scanner
                    .as_ref()
                    .map(|s| s.last_errors().collect())
                    .unwrap_or_default();
                let f = exit_finding(scope, code, &last, st.explained, at);
                self.sink.emit(f, now);
            }
        }
    }

    /// Renews a run's liveness without data (a heartbeat).
    pub fn heartbeat(&mut self, run: &str, now: f64) {
        if let Some(st) = self.runs.get_mut(run) {
            st.last_arrival = st.last_arrival.max(now);
        }
    }

    /// Feeds points of a run's series. `steps` is `None` when the points
    /// have none; times are Unix seconds; `now` is the diagnoser's clock
    /// (arrival time live, the data's time in a replay).
    pub fn observe_run_points(
        &mut self,
        run: &str,
        series: &str,
        steps: Option<&[i64]>,
        times: &[f64],
        values: &[f64],
        now: f64,
    ) {
        let cfg = &self.cfg;
        let st = self
            .runs
            .entry(run.to_string())
            .or_insert_with(|| RunState {
                info: RunInfo {
                    id: run.to_string(),
                    ..Default::default()
                },
                ..Default::default()
            });
        st.last_arrival = st.last_arrival.max(now);
        if let Some(t) = times
            .iter()
            .copied()
            .filter(|t| t.is_finite())
            .reduce(f64::max)
        {
            st.last_data_time = st.last_data_time.max(t);
        }
        let role = SeriesRole::of(series);
        let Some((ss, limit)) = st
            .watched
            .prepare(series, role, values, cfg, &mut self.sink.stats)
        else {
            return;
        };
        let n = values.len().min(times.len());
        self.sink.stats.points += n as u64;
        let mut pending: Vec<(usize, Raw)> = Vec::new();
        for i in 0..n {
            let step = steps.and_then(|s| s.get(i).copied());
            let (t, x) = (times[i], values[i]);
            track_interval(ss, t, now);
            if role == SeriesRole::LearningRate && x.is_finite() {
                st.lr_last = Some(x);
                st.lr_peak = st.lr_peak.max(x);
            }
            if let Some(s) = step {
                match st.last_step {
                    Some(prev) if s > prev => {
                        let gap = t - st.last_advance_time;
                        if st.steps_seen > 0 && gap > 0.0 && gap.is_finite() {
                            let per_step = gap / (s - prev) as f64;
                            st.step_interval = Some(match st.step_interval {
                                None => per_step,
                                Some(e) => e + 0.1 * (per_step - e),
                            });
                        }
                        st.last_step = Some(s);
                        st.last_advance = now;
                        st.last_advance_time = t;
                        st.steps_seen += 1;
                        if st.stalled {
                            st.stalled = false;
                            st.signals.stalled = false;
                        }
                    }
                    Some(prev) if s < prev => {
                        // A restart from a checkpoint: step tracking starts over.
                        st.last_step = Some(s);
                        st.last_advance = now;
                        st.last_advance_time = t;
                    }
                    None => {
                        st.last_step = Some(s);
                        st.last_advance = now;
                        st.last_advance_time = t;
                    }
                    _ => {}
                }
            }
            ss.det.observe(step, t, x, limit, cfg, &mut self.out);
            for raw in self.out.drain(..) {
                pending.push((i, raw));
            }
        }
        push_recent(ss, &values[..n]);
        let scope = scope_of(&st.info);
        if let Some(steps) = steps.filter(|s| s.len() >= n) {
            self.baselines.observe(
                &cfg.baseline,
                &scope,
                series,
                &steps[..n],
                &times[..n],
                &values[..n],
                &mut self.baseline_out,
            );
            for f in self.baseline_out.drain(..) {
                self.sink.emit(f, now);
            }
        }
        if pending.is_empty() {
            return;
        }
        for (i, raw) in pending {
            let step = steps.and_then(|s| s.get(i).copied());
            let mut f = to_finding(scope.clone(), series, role, step, times[i], raw);
            if role == SeriesRole::Loss
                && let Some(lr) = st.lr_last
                && st.lr_peak > 0.0
            {
                f.attributes.insert(
                    "lr_fraction_of_peak".into(),
                    format!("{:.3}", lr / st.lr_peak),
                );
            }
            note_signal(&mut st.signals, &f);
            self.sink.emit(f, now);
        }
    }

    /// Feeds points of a series outside runs (host, GPU, serving metrics).
    /// `source` identifies where they come from (its labels other than the
    /// series' own: `host=h1,gpu=0`); `scope` says which host or service.
    #[allow(clippy::too_many_arguments)]
    pub fn observe_source_points(
        &mut self,
        source: &str,
        scope: Scope,
        series: &str,
        times: &[f64],
        values: &[f64],
        now: f64,
    ) {
        let cfg = &self.cfg;
        let src = self
            .sources
            .entry(source.to_string())
            .or_insert_with(|| SourceState {
                cohort: match &scope.service {
                    Some(svc) => {
                        format!("service/{}/{svc}", scope.project.as_deref().unwrap_or(""))
                    }
                    None => format!("hosts/{}", scope.project.as_deref().unwrap_or("")),
                },
                scope: scope.clone(),
                ..Default::default()
            });
        let role = SeriesRole::of(series);
        let Some((ss, limit)) =
            src.watched
                .prepare(series, role, values, cfg, &mut self.sink.stats)
        else {
            return;
        };
        // No run, so no run rules: the general detector watches the series
        // for whatever its role's rules do not cover.
        ss.det.watch_unusual(cfg);
        let n = values.len().min(times.len());
        self.sink.stats.points += n as u64;
        let mut pending = Vec::new();
        for i in 0..n {
            track_interval(ss, times[i], now);
            ss.det
                .observe(None, times[i], values[i], limit, cfg, &mut self.out);
            for raw in self.out.drain(..) {
                pending.push((i, raw));
            }
        }
        push_recent(ss, &values[..n]);
        for (i, raw) in pending {
            let f = to_finding(src.scope.clone(), series, role, None, times[i], raw);
            self.sink.emit(f, now);
        }
    }

    /// Feeds one log line of a run.
    #[allow(clippy::too_many_arguments)]
    pub fn observe_log(
        &mut self,
        run: &str,
        seq: u64,
        time: f64,
        stream: LogStream,
        level: LogLevel,
        text: &str,
        now: f64,
    ) {
        let st = self
            .runs
            .entry(run.to_string())
            .or_insert_with(|| RunState {
                info: RunInfo {
                    id: run.to_string(),
                    ..Default::default()
                },
                ..Default::default()
            });
        st.last_arrival = st.last_arrival.max(now);
        if time.is_finite() {
            st.last_data_time = st.last_data_time.max(time);
        }
        self.sink.stats.log_lines += 1;
        let scanner = st.scanner.get_or_insert_with(LogScanner::new);
        let matches = scanner.scan(stream, level, text);
        if matches.is_empty() {
            return;
        }
        let scope = scope_of(&st.info);
        for m in matches {
            if m.severity == Severity::Critical && m.kind != LogSignatureKind::ErrorTemplate {
                st.explained = true;
            }
            let f = log_finding(scope.clone(), m, time, seq, text);
            note_signal(&mut st.signals, &f);
            self.sink.emit(f, now);
        }
    }

    /// Time-driven checks (stalls, silences, cohorts), incident
    /// resolution; returns the incidents that changed.
    pub fn tick(&mut self, now: f64) -> Vec<Incident> {
        self.check_stalls(now);
        self.check_silences(now);
        self.check_cohorts(now);
        let ended: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| {
                r.ended
                    .as_ref()
                    .is_some_and(|(_, t)| now - t > ENDED_KEEP_S)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for id in ended {
            if let Some(st) = self.runs.remove(&id) {
                self.sink.stats.series_watched = self
                    .sink
                    .stats
                    .series_watched
                    .saturating_sub(st.watched.series.len() as u64);
            }
            self.sink.correlator.forget_run(&id);
            self.baselines.forget(&id);
        }
        let changed = self.sink.correlator.tick(now);
        self.with_feedback(changed)
    }

    /// Resolves every open incident (the end of a replay).
    pub fn finish(&mut self, now: f64) -> Vec<Incident> {
        let ids: Vec<String> = self.runs.keys().cloned().collect();
        for id in ids {
            if let Some(st) = self.runs.get_mut(&id)
                && let Some(scanner) = st.scanner.as_mut()
            {
                let scope = scope_of(&st.info);
                for m in scanner.finish() {
                    let f = log_finding(scope.clone(), m, now, 0, "");
                    self.sink.correlator.add(f, now);
                }
            }
        }
        let mut out = self.sink.correlator.tick(now);
        out.extend(self.sink.correlator.close_all(now));
        self.with_feedback(out)
    }

    pub fn open_incidents(&self) -> Vec<&Incident> {
        self.sink.correlator.open_incidents().collect()
    }

    /// The run's health now, from its open incidents and signals; `past`
    /// are its incidents that are no longer held here (resolved).
    pub fn health(&self, run: &str, past: &[&Incident]) -> Option<Health> {
        let st = self.runs.get(run)?;
        let mut incidents: Vec<&Incident> = self
            .sink
            .correlator
            .open_incidents()
            .filter(|i| i.runs.iter().any(|r| r == run) || i.run.as_deref() == Some(run))
            .collect();
        incidents.extend(
            past.iter()
                .copied()
                .filter(|i| i.state == IncidentState::Resolved),
        );
        Some(health::score(&incidents, &st.signals))
    }

    fn check_stalls(&mut self, now: f64) {
        if !self.cfg.stall.enabled {
            return;
        }
        let cfg = &self.cfg.stall;
        for st in self.runs.values_mut() {
            if st.ended.is_some() || st.steps_seen < cfg.min_steps {
                continue;
            }
            let Some(interval) = st.step_interval else {
                continue;
            };
            let threshold = (cfg.factor * interval).max(cfg.min_seconds);
            let since = now - st.last_advance;
            // "The process lives on": something arrived after the last
            // step, or recently enough (a heartbeat).
            let alive = st.last_arrival > st.last_advance || now - st.last_arrival < threshold;
            if since < threshold || !alive {
                continue;
            }
            if st.stalled && now - st.stall_reported < threshold {
                continue;
            }
            st.stalled = true;
            st.signals.stalled = true;
            st.stall_reported = now;
            let mut f = Finding::new(
                scope_of(&st.info),
                FindingKind::Stall,
                SeriesRole::Other,
                st.last_advance_time + since,
            );
            f.step = st.last_step;
            f.severity = Severity::Warning;
            f.score = (since / (2.0 * threshold)).clamp(0.5, 1.0);
            f.detail = format!(
                "the step has not advanced past {} for {} (usually {} per step)",
                st.last_step.unwrap_or_default(),
                units::seconds(since.round()),
                units::seconds(interval)
            );
            f.attributes.insert(
                "last_step".into(),
                st.last_step.unwrap_or_default().to_string(),
            );
            f.attributes
                .insert("stalled_s".into(), format!("{since:.0}"));
            self.sink.emit(f, now);
        }
    }

    fn check_silences(&mut self, now: f64) {
        if !self.cfg.silence.enabled {
            return;
        }
        let cfg = &self.cfg.silence;
        for st in self.runs.values_mut() {
            if st.ended.is_some() {
                continue;
            }
            let scope = scope_of(&st.info);
            for (name, ss) in st.watched.series.iter_mut() {
                let Some(interval) = ss.interval else {
                    continue;
                };
                if ss.n < cfg.min_points || ss.silent {
                    continue;
                }
                let threshold = (cfg.factor * interval).max(cfg.min_seconds);
                let quiet = now - ss.last_arrival;
                // Only while the run itself still reports.
                if quiet < threshold || now - st.last_arrival > threshold / 2.0 {
                    continue;
                }
                ss.silent = true;
                let role = ss.det.role;
                let mut f = Finding::new(scope.clone(), FindingKind::Silence, role, ss.last_time);
                f.series = Some(name.to_string());
                f.severity = if matches!(role, SeriesRole::Loss | SeriesRole::Throughput) {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                f.detail = format!(
                    "no points for {} (usually every {})",
                    units::seconds(quiet.round()),
                    units::seconds(interval)
                );
                self.sink.emit(f, now);
            }
        }
    }

    fn check_cohorts(&mut self, now: f64) {
        if !self.cfg.cohort.enabled {
            return;
        }
        let cfg = self.cfg.cohort.clone();
        // (group, cohort series, member, series name, recent value, role),
        // borrowed. Members are the ranks of a job, and the sources outside
        // runs: the replicas of a service, the hosts of a project.
        let mut members: Vec<(&str, &str, &str, &str, f64, SeriesRole)> = Vec::new();
        let runs = self.runs.iter().filter_map(|(id, st)| {
            let group = st.info.group.as_deref()?;
            st.ended
                .is_none()
                .then_some((group, id.as_str(), &st.watched))
        });
        let sources = self
            .sources
            .iter()
            .map(|(id, src)| (src.cohort.as_str(), id.as_str(), &src.watched));
        for (group, id, watched) in runs.chain(sources) {
            for (name, ss) in &watched.series {
                let Some(key) = ss.cohort.as_deref() else {
                    continue;
                };
                if now - ss.last_arrival > 60.0 {
                    continue;
                }
                let take = cfg.recent_points.min(ss.recent.len());
                if take == 0 {
                    continue;
                }
                let v = ss.recent.iter().rev().take(take).sum::<f64>() / take as f64;
                members.push((group, key, id, name, v, ss.det.role));
            }
        }
        // The whole tuple's names, not only the cohort: the members' order
        // is the order of the findings.
        members.sort_unstable_by(|a, b| (a.0, a.1, a.2, a.3).cmp(&(b.0, b.1, b.2, b.3)));
        let hasher = self.cohort_hasher.clone();
        let mut findings = Vec::new();
        let mut seen = hashbrown::HashSet::new();
        let mut vals = Vec::new();
        for cohort in members.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
            if cohort.len() < cfg.min_members {
                continue;
            }
            vals.clear();
            vals.extend(cohort.iter().map(|m| m.4));
            vals.sort_unstable_by(|a, b| a.total_cmp(b));
            let med = median_sorted(&vals);
            for v in vals.iter_mut() {
                *v = (*v - med).abs();
            }
            vals.sort_unstable_by(|a, b| a.total_cmp(b));
            let mad = median_sorted(&vals);
            for &(group, key, run, name, v, role) in cohort {
                let Some(bad) = role.bad_direction() else {
                    continue;
                };
                let rel = if med.abs() > 0.0 {
                    (v - med) / med.abs()
                } else {
                    0.0
                };
                let worse = match bad {
                    Direction::Up => rel >= cfg.relative,
                    Direction::Down => -rel >= cfg.relative,
                };
                let z_ok = mad == 0.0 || (v - med).abs() / (1.4826 * mad) >= 3.0;
                if !(worse && z_ok) {
                    continue;
                }
                let ck = std::hash::BuildHasher::hash_one(&hasher, (group, key, run));
                seen.insert(ck);
                let c = self.cohort_counts.entry(ck).or_insert(0);
                *c += 1;
                if *c != cfg.persist && (*c < cfg.persist || !(*c - cfg.persist).is_multiple_of(30))
                {
                    continue;
                }
                let (scope, watched, step, rank) = match (self.runs.get(run), self.sources.get(run))
                {
                    (Some(st), _) => (scope_of(&st.info), &st.watched, st.last_step, st.info.rank),
                    (None, Some(src)) => (src.scope.clone(), &src.watched, None, None),
                    (None, None) => continue,
                };
                let mut f = Finding::new(scope, FindingKind::CohortOutlier, role, now);
                f.series = Some(name.to_string());
                f.step = step;
                f.value = Some(v);
                f.expected = Some(med);
                f.direction = Some(bad);
                f.score = (rel.abs() / (2.0 * cfg.relative)).clamp(0.4, 1.0);
                // Within a job the slow rank is the news and its GPU the
                // evidence; a host or replica apart from its pool is news.
                f.severity = match role {
                    _ if rank.is_none() && self.sources.contains_key(run) => Severity::Warning,
                    SeriesRole::StepTime
                    | SeriesRole::Throughput
                    | SeriesRole::Latency
                    | SeriesRole::Errors => Severity::Warning,
                    _ => Severity::Info,
                };
                f.time = watched.series.get(name).map_or(now, |s| s.last_time);
                f.detail = format!(
                    "{name} is {} against the group's median {} ({})",
                    units::series_value(v, name),
                    units::series_value(med, name),
                    units::percent_change(rel)
                );
                if let Some(r) = rank {
                    f.attributes.insert("rank".into(), r.to_string());
                }
                findings.push(f);
            }
        }
        // Counts of members that are no longer apart start over.
        self.cohort_counts.retain(|k, _| seen.contains(k));
        // Minor findings first, so that they are in the lookback when the
        // outlier that opens the incident arrives in the same tick.
        findings.sort_by_key(|f| f.severity);
        for f in findings {
            note_signal_cohort(&mut self.runs, &f);
            self.sink.emit(f, now);
        }
    }
}

fn note_signal_cohort(runs: &mut BTreeMap<String, RunState>, f: &Finding) {
    if let Some(run) = &f.scope.run
        && let Some(st) = runs.get_mut(run)
    {
        st.signals.minor_findings += 1;
    }
}

/// `gpu/3/temperature` and `gpu/0/temperature` compare as one cohort series.
fn cohort_key(name: &str) -> String {
    name.split('/')
        .map(|part| {
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn new_series(name: &str, role: SeriesRole, cfg: &DiagnoseConfig) -> SeriesState {
    let compared = matches!(
        role,
        SeriesRole::StepTime
            | SeriesRole::Throughput
            | SeriesRole::GpuTemperature
            | SeriesRole::GpuClock
            | SeriesRole::GpuUtilization
            | SeriesRole::Latency
            | SeriesRole::Errors
    );
    SeriesState {
        cohort: compared.then(|| cohort_key(name).into()),
        det: SeriesDetector::new(role, Unit::of(name), cfg),
        last_time: f64::NAN,
        last_arrival: 0.0,
        interval: None,
        n: 0,
        silent: false,
        recent: VecDeque::with_capacity(RECENT_KEPT),
    }
}

/// Keeps the last `RECENT_KEPT` finite values (what cohorts compare).
fn push_recent(ss: &mut SeriesState, values: &[f64]) {
    for &x in &values[values.len().saturating_sub(RECENT_KEPT)..] {
        if x.is_finite() {
            ss.recent.push_back(x);
            if ss.recent.len() > RECENT_KEPT {
                ss.recent.pop_front();
            }
        }
    }
}

fn track_interval(ss: &mut SeriesState, t: f64, now: f64) {
    if ss.last_time.is_finite() {
        let gap = t - ss.last_time;
        if gap > 0.0 && gap.is_finite() {
            ss.interval = Some(match ss.interval {
                None => gap,
                Some(e) => e + 0.05 * (gap - e),
            });
        }
    }
    ss.last_time = t;
    ss.last_arrival = now;
    ss.n = ss.n.saturating_add(1);
    ss.silent = false;
}

fn scope_of(info: &RunInfo) -> Scope {
    Scope {
        project: info.project.clone(),
        run: Some(info.id.clone()),
        group: info.group.clone(),
        rank: info.rank,
        host: info.host.clone(),
        service: None,
    }
}

fn to_finding(
    scope: Scope,
    series: &str,
    role: SeriesRole,
    step: Option<i64>,
    time: f64,
    raw: Raw,
) -> Finding {
    let mut f = Finding::new(scope, raw.kind, role, time);
    f.series = Some(series.to_string());
    f.step = step;
    f.value = raw.value;
    f.expected = raw.expected;
    f.direction = raw.direction;
    f.score = raw.score;
    f.severity = raw.severity;
    f.detail = raw.detail;
    f.attributes = raw.attributes.into_iter().collect();
    f
}

fn log_finding(
    scope: Scope,
    m: crate::logsig::LogMatch,
    time: f64,
    seq: u64,
    text: &str,
) -> Finding {
    let mut f = Finding::new(scope, FindingKind::Log(m.kind), SeriesRole::Other, time);
    f.severity = m.severity;
    f.score = match m.severity {
        Severity::Critical => 1.0,
        Severity::Warning => 0.7,
        Severity::Info => 0.3,
    };
    f.detail = m.title;
    if let Some(r) = m.attributes.get("rank").and_then(|r| r.parse().ok()) {
        f.scope.rank = f.scope.rank.or(Some(r));
    }
    f.attributes = m.attributes;
    if !text.is_empty() {
        f.log = Some(LogRef {
            seq,
            text: truncate(text, 2000),
        });
    }
    f
}

/// The finding of a non-zero exit: critical when nothing in the run's
/// output explained a failure (it opens "crashed, cause unknown"), minor
/// evidence otherwise. 128+N and negative codes name signal N.
/// When a run's end happened in data time: its newest data, or `now` for
/// a run that sent nothing (or only times that cannot be read).
fn end_data_time(last_data_time: f64, now: f64) -> f64 {
    if last_data_time > 0.0 {
        last_data_time
    } else {
        now
    }
}

fn exit_finding(scope: Scope, code: i32, last: &[&str], explained: bool, now: f64) -> Finding {
    let kind = LogSignatureKind::ExitStatus;
    let mut f = Finding::new(scope, FindingKind::Log(kind), SeriesRole::Other, now);
    f.severity = if explained {
        Severity::Info
    } else {
        Severity::Critical
    };
    f.score = if explained { 0.3 } else { 1.0 };
    f.attributes.insert("exit_code".into(), code.to_string());
    let signal = crate::logsig::signal_of_exit_code(code).and_then(crate::logsig::signal_name);
    f.detail = match signal {
        Some(sig) => {
            f.attributes.insert("signal".into(), sig.into());
            format!("the process exited with code {code} ({sig})")
        }
        None => format!("the process exited with code {code}"),
    };
    if !last.is_empty() {
        let text = last.join("\n");
        f.attributes.insert("last_errors".into(), text.clone());
        f.log = Some(LogRef {
            seq: 0,
            text: truncate(&text, 2000),
        });
    }
    f
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn note_signal(s: &mut HealthSignals, f: &Finding) {
    match (f.kind, f.role) {
        (FindingKind::NonFinite, SeriesRole::Loss) => s.nonfinite_loss = true,
        (FindingKind::Log(LogSignatureKind::NanInLogs), _) => s.nonfinite_loss = true,
        (FindingKind::LevelShift, SeriesRole::Throughput | SeriesRole::StepTime) => {
            s.throughput_degraded = true
        }
        (FindingKind::Plateau, _) => s.plateau = true,
        _ => {}
    }
    if f.severity == Severity::Info {
        s.minor_findings = s.minor_findings.saturating_add(1);
    }
}

#[cfg(test)]
mod cohort_tests {
    use super::*;

    fn source_scope(host: &str, service: Option<&str>) -> Scope {
        Scope {
            project: Some("p".into()),
            host: Some(host.into()),
            service: service.map(String::from),
            ..Default::default()
        }
    }

    /// Feeds `members` sources one point a second for a minute, with
    /// `value(member, i)`; returns the incidents.
    fn feed(
        d: &mut Diagnoser,
        members: &[(&str, Option<&str>)],
        series: &str,
        value: impl Fn(usize, usize) -> f64,
    ) -> Vec<Incident> {
        let mut out = Vec::new();
        for i in 0..60 {
            let t = 1.7e9 + i as f64;
            for (m, (host, svc)) in members.iter().enumerate() {
                let source = format!("host={host}");
                d.observe_source_points(
                    &source,
                    source_scope(host, *svc),
                    series,
                    &[t],
                    &[value(m, i)],
                    t,
                );
            }
            out.extend(d.tick(t));
        }
        out
    }

    #[test]
    fn a_host_apart_from_its_pool_is_flagged_and_the_others_are_not() {
        let mut d = Diagnoser::new(DiagnoseConfig::default(), "t");
        let hosts: Vec<(&str, Option<&str>)> = vec![
            ("n1", None),
            ("n2", None),
            ("n3", None),
            ("n4", None),
            ("n5", None),
        ];
        // n3's GPU clock is throttled to 1400 MHz, the others run at ~1980.
        let incidents = feed(&mut d, &hosts, "gpu.clock.sm_mhz", |m, i| {
            if m == 2 {
                1400.0
            } else {
                1980.0 + ((m * 7 + i) % 5) as f64
            }
        });
        assert!(!incidents.is_empty());
        for inc in &incidents {
            assert_eq!(inc.host.as_deref(), Some("n3"), "{inc:?}");
        }
    }

    #[test]
    fn a_slow_replica_of_a_service_is_flagged() {
        let mut d = Diagnoser::new(DiagnoseConfig::default(), "t");
        let replicas: Vec<(&str, Option<&str>)> = vec![
            ("r1", Some("chat")),
            ("r2", Some("chat")),
            ("r3", Some("chat")),
            ("r4", Some("chat")),
        ];
        let incidents = feed(&mut d, &replicas, "llm.latency_p95_seconds", |m, i| {
            if m == 3 {
                2.0
            } else {
                0.9 + 0.01 * ((m + i) % 3) as f64
            }
        });
        let top: Vec<(&str, Option<&str>)> = incidents
            .iter()
            .map(|i| (i.kind.as_str(), i.host.as_deref()))
            .collect();
        assert!(top.contains(&("serving_latency", Some("r4"))), "{top:?}");
        assert!(
            incidents.iter().all(|i| i.host.as_deref() == Some("r4")),
            "{top:?}"
        );
    }
}
