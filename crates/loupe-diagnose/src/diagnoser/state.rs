//! What the diagnoser keeps per run, per source and per series, and where
//! its findings go. The time-driven checks of [`crate::watch`] read and
//! update this state; the diagnoser owns it.
//!
//! **Invariants:** bounded — a series' state is created only under
//! `max_series` (refusals are counted), `recent` holds at most
//! [`RECENT_KEPT`] values, the record of findings at most
//! [`MAX_RECORDED`].

use std::collections::{BTreeMap, VecDeque};

use hashbrown::HashMap;
use loupe_model::units::Unit;

use super::{DiagnoseStats, RunInfo};
use crate::config::DiagnoseConfig;
use crate::detect::SeriesDetector;
use crate::finding::{Finding, Scope, SeriesRole};
use crate::health::HealthSignals;
use crate::incident::Correlator;
use crate::logsig::LogScanner;
use crate::watch::cohort::cohort_key;

#[derive(Debug)]
pub(crate) struct SeriesState {
    pub(crate) det: SeriesDetector,
    pub(crate) last_time: f64,
    pub(crate) last_arrival: f64,
    /// EWMA of the data-time gap between points.
    pub(crate) interval: Option<f64>,
    pub(crate) n: u32,
    pub(crate) silent: bool,
    pub(crate) recent: VecDeque<f64>,
    /// The name members of a group are compared under (`gpu/*/temperature`),
    /// for the series kinds that are compared at all.
    pub(crate) cohort: Option<Box<str>>,
}

pub(crate) const RECENT_KEPT: usize = 16;

/// The series watched for one run or source, and their limits.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    /// Ordered, so the checks that walk it (silences, cohorts) emit in the
    /// same order for the same input.
    pub(crate) series: BTreeMap<Box<str>, SeriesState>,
    /// Latest totals of memory series, by the name of the "used" series they bound.
    pub(crate) limits: HashMap<String, f64>,
}

impl Watched {
    /// Notes a limit the batch carries, creates the series' state unless
    /// `max_series` is reached (counted as refused), and returns it with the
    /// series' limit.
    pub(crate) fn prepare(
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
pub(crate) struct RunState {
    pub(crate) info: RunInfo,
    pub(crate) watched: Watched,
    pub(crate) steps: StepTrack,
    pub(crate) last_arrival: f64,
    pub(crate) stalled: bool,
    pub(crate) stall_reported: f64,
    pub(crate) ended: Option<(String, f64)>,
    pub(crate) lr_last: Option<f64>,
    pub(crate) lr_peak: f64,
    pub(crate) signals: HealthSignals,
    pub(crate) scanner: Option<LogScanner>,
    /// A critical log signature was seen: a non-zero exit is explained.
    pub(crate) explained: bool,
    /// The newest data time seen (points and log lines): what the run's
    /// end is stamped with, so end-of-run findings correlate with the
    /// run's other evidence by data time even when the end arrives long
    /// after the data (a bulk upload, an import, a replay).
    pub(crate) last_data_time: f64,
}

/// How a run's step moves: what the stall check judges.
#[derive(Debug, Default)]
pub(crate) struct StepTrack {
    /// The latest step.
    pub(crate) last_step: Option<i64>,
    /// When (the diagnoser's clock) and at what data time it last moved.
    pub(crate) last_advance: f64,
    pub(crate) last_advance_time: f64,
    /// An EWMA of data seconds per step.
    pub(crate) step_interval: Option<f64>,
    /// Forward advances seen.
    pub(crate) steps_seen: u32,
}

impl StepTrack {
    /// Follows the step: an advance renews the run's progress and teaches
    /// its step interval; a step going back is a restart from a checkpoint,
    /// and tracking starts over. True when the step moved forward.
    pub(crate) fn observe(&mut self, s: i64, t: f64, now: f64) -> bool {
        match self.last_step {
            Some(prev) if s > prev => {
                let gap = t - self.last_advance_time;
                if self.steps_seen > 0 && gap > 0.0 && gap.is_finite() {
                    let per_step = gap / (s - prev) as f64;
                    self.step_interval = Some(match self.step_interval {
                        None => per_step,
                        Some(e) => e + 0.1 * (per_step - e),
                    });
                }
                self.steps_seen += 1;
                self.restart(s, t, now);
                true
            }
            Some(prev) if s == prev => false,
            _ => {
                // The first step, or a restart from a checkpoint.
                self.restart(s, t, now);
                false
            }
        }
    }

    fn restart(&mut self, s: i64, t: f64, now: f64) {
        self.last_step = Some(s);
        self.last_advance = now;
        self.last_advance_time = t;
    }
}

/// A source outside runs: the labels that are not the series' own.
#[derive(Debug, Default)]
pub(crate) struct SourceState {
    pub(crate) scope: Scope,
    pub(crate) watched: Watched,
    /// The cohort it is compared within: the replicas of its service, or
    /// the hosts of its project (a node pool).
    pub(crate) cohort: String,
}

/// Where findings go: the correlator, the counters, and (offline) a record.
/// Apart from the rest of the state so it can be borrowed beside a run's.
pub(crate) struct Sink {
    pub(crate) correlator: Correlator,
    pub(crate) stats: DiagnoseStats,
    /// Every finding, when recording (offline tools); bounded.
    pub(crate) recorded: Option<Vec<Finding>>,
}

impl Sink {
    pub(crate) fn emit(&mut self, f: Finding, now: f64) {
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
pub(crate) const MAX_RECORDED: usize = 1_000_000;

pub(crate) fn new_series(name: &str, role: SeriesRole, cfg: &DiagnoseConfig) -> SeriesState {
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
pub(crate) fn push_recent(ss: &mut SeriesState, values: &[f64]) {
    for &x in &values[values.len().saturating_sub(RECENT_KEPT)..] {
        if x.is_finite() {
            ss.recent.push_back(x);
            if ss.recent.len() > RECENT_KEPT {
                ss.recent.pop_front();
            }
        }
    }
}

pub(crate) fn track_interval(ss: &mut SeriesState, t: f64, now: f64) {
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

pub(crate) fn scope_of(info: &RunInfo) -> Scope {
    Scope {
        project: info.project.clone(),
        run: Some(info.id.clone()),
        group: info.group.clone(),
        rank: info.rank,
        host: info.host.clone(),
        service: None,
    }
}
