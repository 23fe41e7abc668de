//! The front door: points, log lines and clock ticks in; incidents out.
//!
//! One `Diagnoser` holds the detector state of every watched series, the
//! per-run step tracking, the log scanners and the correlator, and
//! orchestrates: points go to their series' detectors, lines to their
//! run's scanner, and each tick runs the time-driven checks of
//! [`crate::watch`] (stalls, silences, cohorts) over that state. What it
//! keeps is in `state`, how points and lines become findings in `findings`.
//! It is single-threaded by design: the server runs it on its own thread,
//! fed through a bounded queue, so ingestion never waits for it.

mod findings;
pub(crate) mod state;

use std::collections::BTreeMap;

use hashbrown::HashMap;
use loupe_model::{LogLevel, LogStream};

use crate::Severity;
use crate::baseline::{BaselineWatch, RunBaseline};
use crate::config::DiagnoseConfig;
use crate::detect::Raw;
use crate::finding::{Finding, Scope, SeriesRole};
use crate::health::{self, Health};
use crate::incident::{Correlator, FeedbackWeights, Incident, IncidentState, RunContext, feedback};
use crate::logsig::{LogScanner, LogSignatureKind};
use crate::watch::cohort::CohortWatch;
use crate::watch::{silence, stall};
use findings::{end_data_time, exit_finding, log_finding, note_signal, to_finding};
use state::{RunState, Sink, SourceState, push_recent, scope_of, track_interval};

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

pub struct Diagnoser {
    cfg: DiagnoseConfig,
    /// Ordered by id, like `sources`: the time-driven checks walk them, and
    /// the order of what they emit reaches incidents and their evidence.
    runs: BTreeMap<String, RunState>,
    sources: BTreeMap<String, SourceState>,
    /// Members of groups found apart, and for how long.
    cohorts: CohortWatch,
    sink: Sink,
    out: Vec<Raw>,
    /// Runs compared with their project's previous runs.
    baselines: BaselineWatch,
    baseline_out: Vec<Finding>,
    /// Per project: users' verdicts, applied to the incidents handed out.
    feedback: HashMap<String, FeedbackWeights>,
}

/// How long an ended run's state is kept (for late data and health).
const ENDED_KEEP_S: f64 = 600.0;

impl Diagnoser {
    pub fn new(cfg: DiagnoseConfig, id_prefix: &str) -> Self {
        let correlator = Correlator::new(cfg.incident.clone(), id_prefix);
        Diagnoser {
            cfg,
            runs: BTreeMap::new(),
            sources: BTreeMap::new(),
            cohorts: CohortWatch::default(),
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
            if let Some(s) = step
                && st.steps.observe(s, t, now)
                && st.stalled
            {
                st.stalled = false;
                st.signals.stalled = false;
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
                f.attributes.lr_fraction_of_peak = Some(lr / st.lr_peak);
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
        stall::check(&mut self.runs, &self.cfg.stall, &mut self.sink, now);
        silence::check(&mut self.runs, &self.cfg.silence, &mut self.sink, now);
        self.cohorts.check(
            &mut self.runs,
            &self.sources,
            &self.cfg.cohort,
            &mut self.sink,
            now,
        );
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
}
