//! Cause candidates: each rule looks at an incident's findings, says
//! whether its cause fits, how well (a score that weighs which signals are
//! present, how strong they are, and which came first), which findings are
//! its evidence, and what to try.
//!
//! The rules live by family, each with its named score constants:
//! `training` (the loop's numerics and progress), `resources` (memory and
//! disk), `hardware` (GPUs, nodes, the group and its network), `serving`
//! (services), and `families` (causes read from log signatures alone).
//! `rank_causes` lists them in the order that breaks score ties.

mod families;
mod hardware;
mod resources;
mod serving;
mod training;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::finding::{Direction, Finding, FindingKind, SeriesRole};
use crate::logsig::LogSignatureKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    FpOverflow,
    LearningRateTooHigh,
    Divergence,
    GpuMemoryLeak,
    HostMemoryLeak,
    CudaOutOfMemory,
    HostOutOfMemory,
    HardwareFault,
    ThermalStraggler,
    GpuOverheating,
    Straggler,
    CollectiveHang,
    NetworkFault,
    InputPipelineBound,
    SoftHang,
    DiskFull,
    ServingErrors,
    ServingLatency,
    FatalSignal,
    CudaError,
    GpuLost,
    NonFiniteLoss,
    DataloaderFailure,
    StorageError,
    CheckpointCorrupt,
    UserCodeError,
    EnvironmentError,
    LauncherFailure,
    TimeLimit,
    Crash,
    RecurringError,
    BaselineRegression,
    Unexplained,
}

impl CauseKind {
    /// Every kind, in declaration order.
    pub const ALL: [CauseKind; 32] = [
        CauseKind::FpOverflow,
        CauseKind::LearningRateTooHigh,
        CauseKind::Divergence,
        CauseKind::GpuMemoryLeak,
        CauseKind::HostMemoryLeak,
        CauseKind::CudaOutOfMemory,
        CauseKind::HostOutOfMemory,
        CauseKind::HardwareFault,
        CauseKind::ThermalStraggler,
        CauseKind::GpuOverheating,
        CauseKind::Straggler,
        CauseKind::CollectiveHang,
        CauseKind::NetworkFault,
        CauseKind::InputPipelineBound,
        CauseKind::SoftHang,
        CauseKind::DiskFull,
        CauseKind::ServingErrors,
        CauseKind::ServingLatency,
        CauseKind::FatalSignal,
        CauseKind::CudaError,
        CauseKind::GpuLost,
        CauseKind::NonFiniteLoss,
        CauseKind::DataloaderFailure,
        CauseKind::StorageError,
        CauseKind::CheckpointCorrupt,
        CauseKind::UserCodeError,
        CauseKind::EnvironmentError,
        CauseKind::LauncherFailure,
        CauseKind::TimeLimit,
        CauseKind::Crash,
        CauseKind::RecurringError,
        CauseKind::Unexplained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CauseKind::FpOverflow => "fp16_overflow",
            CauseKind::LearningRateTooHigh => "learning_rate_too_high",
            CauseKind::Divergence => "divergence",
            CauseKind::GpuMemoryLeak => "gpu_memory_leak",
            CauseKind::HostMemoryLeak => "host_memory_leak",
            CauseKind::CudaOutOfMemory => "cuda_out_of_memory",
            CauseKind::HostOutOfMemory => "host_out_of_memory",
            CauseKind::HardwareFault => "hardware_fault",
            CauseKind::ThermalStraggler => "thermal_straggler",
            CauseKind::GpuOverheating => "gpu_overheating",
            CauseKind::Straggler => "straggler",
            CauseKind::CollectiveHang => "collective_hang",
            CauseKind::NetworkFault => "network_fault",
            CauseKind::InputPipelineBound => "input_pipeline_bound",
            CauseKind::SoftHang => "soft_hang",
            CauseKind::DiskFull => "disk_full",
            CauseKind::ServingErrors => "serving_errors",
            CauseKind::ServingLatency => "serving_latency",
            CauseKind::FatalSignal => "fatal_signal",
            CauseKind::CudaError => "cuda_error",
            CauseKind::GpuLost => "gpu_lost",
            CauseKind::NonFiniteLoss => "non_finite_loss",
            CauseKind::DataloaderFailure => "dataloader_failure",
            CauseKind::StorageError => "storage_error",
            CauseKind::CheckpointCorrupt => "checkpoint_corrupt",
            CauseKind::UserCodeError => "user_code_error",
            CauseKind::EnvironmentError => "environment_error",
            CauseKind::LauncherFailure => "launcher_failure",
            CauseKind::TimeLimit => "time_limit",
            CauseKind::Crash => "crash",
            CauseKind::RecurringError => "recurring_error",
            CauseKind::BaselineRegression => "baseline_regression",
            CauseKind::Unexplained => "unexplained",
        }
    }
}

/// One piece of evidence behind a cause: a point of a series or a log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Evidence {
    Series {
        run: Option<String>,
        series: Option<String>,
        step: Option<i64>,
        time: f64,
        #[serde(with = "crate::nonfinite_opt")]
        value: Option<f64>,
        detail: String,
    },
    Log {
        run: Option<String>,
        seq: u64,
        time: f64,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    pub kind: CauseKind,
    pub title: String,
    /// 0–1; causes are listed by it, best first.
    pub score: f64,
    pub explanation: String,
    pub fixes: Vec<String>,
    pub evidence: Vec<Evidence>,
}

/// What a rule may want to know about the runs of an incident beyond its findings.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// The run trains in fp16 with a loss scaler (from its config).
    pub fp16: bool,
}

/// The Xid of a GPU that fell off the bus: its immediate action is a reboot.
pub(super) const XID_GPU_LOST: u32 = 79;
/// A PCIe fatal timeout: the GPU is gone too (reboot).
pub(super) const XID_PCIE_FATAL_TIMEOUT: u32 = 167;

/// The score of the fallback when no rule fits.
const SCORE_UNEXPLAINED: f64 = 0.2;
/// Evidence items a cause lists at most.
const MAX_EVIDENCE: usize = 12;

/// The rules, in the order used to break score ties.
pub(crate) fn rank_causes(findings: &[Finding], ctx: &RunContext) -> Vec<Cause> {
    let f = Facts { all: findings };
    let mut causes: Vec<Cause> = [
        training::fp_overflow(&f, ctx),
        training::divergence(&f),
        training::learning_rate(&f),
        resources::gpu_leak(&f),
        resources::host_leak(&f),
        resources::cuda_oom(&f),
        resources::host_oom(&f),
        hardware::hardware_fault(&f),
        hardware::thermal_straggler(&f),
        hardware::overheating(&f),
        hardware::straggler(&f),
        hardware::collective_hang(&f),
        hardware::network(&f),
        training::input_bound(&f),
        training::soft_hang(&f),
        resources::disk_full(&f),
        serving::errors(&f),
        serving::latency(&f),
        families::fatal_signal(&f),
        families::recurring_error(&f),
        crate::baseline::regression_cause(findings),
    ]
    .into_iter()
    .flatten()
    .chain(families::rules(&f))
    .collect();
    if causes.is_empty() {
        causes.push(unexplained(&f));
    }
    for c in &mut causes {
        c.score = c.score.clamp(0.0, 1.0);
    }
    // Stable: equal scores keep the rule order above.
    causes.sort_by(|a, b| b.score.total_cmp(&a.score));
    causes
}

struct Facts<'a> {
    all: &'a [Finding],
}

impl<'a> Facts<'a> {
    fn metric(&self, kind: FindingKind, role: SeriesRole) -> Vec<&'a Finding> {
        self.all
            .iter()
            .filter(|f| f.kind == kind && f.role == role)
            .collect()
    }

    fn first(&self, kind: FindingKind, role: SeriesRole) -> Option<&'a Finding> {
        self.all
            .iter()
            .filter(|f| f.kind == kind && f.role == role)
            .min_by(|a, b| a.time.total_cmp(&b.time))
    }

    fn logs(&self, kind: LogSignatureKind) -> Vec<&'a Finding> {
        self.all
            .iter()
            .filter(|f| f.kind == FindingKind::Log(kind))
            .collect()
    }

    fn shifted(&self, role: SeriesRole, dir: Direction) -> Option<&'a Finding> {
        self.all
            .iter()
            .filter(|f| {
                f.kind == FindingKind::LevelShift && f.role == role && f.direction == Some(dir)
            })
            .min_by(|a, b| a.time.total_cmp(&b.time))
    }

    fn cohort(&self, role: SeriesRole) -> Vec<&'a Finding> {
        self.all
            .iter()
            .filter(|f| f.kind == FindingKind::CohortOutlier && f.role == role)
            .collect()
    }
}

fn ev(f: &Finding) -> Evidence {
    match &f.log {
        Some(l) => Evidence::Log {
            run: f.scope.run.clone(),
            seq: l.seq,
            time: f.time,
            text: l.text.clone(),
        },
        None => Evidence::Series {
            run: f.scope.run.clone(),
            series: f.series.clone(),
            step: f.step,
            time: f.time,
            value: f.value,
            detail: f.detail.clone(),
        },
    }
}

fn evidence<'a>(items: impl IntoIterator<Item = &'a Finding>) -> Vec<Evidence> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for f in items {
        // One item per (run, series or log kind, detector): the earliest.
        let key = (
            f.scope.run.clone(),
            f.series.clone(),
            f.kind.name(),
            f.log.as_ref().map(|l| l.seq),
        );
        let dedup_key = (
            key.0.clone(),
            key.1.clone(),
            key.2.clone(),
            key.1.is_none().then_some(key.3).flatten(),
        );
        if seen.insert(dedup_key) {
            out.push(ev(f));
        }
        if out.len() >= MAX_EVIDENCE {
            break;
        }
    }
    out
}

fn where_(f: &Finding) -> String {
    let mut s = String::new();
    if let Some(series) = &f.series {
        s.push_str(series);
    }
    if let Some(step) = f.step {
        s.push_str(&format!(" at step {step}"));
    }
    if let Some(rank) = f.scope.rank {
        s.push_str(&format!(" (rank {rank})"));
    }
    s
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The exit-status finding when its code names one of `signals`.
fn exit_signal<'a>(f: &Facts<'a>, signals: &[&str]) -> Option<&'a Finding> {
    f.logs(LogSignatureKind::ExitStatus).into_iter().find(|x| {
        x.attributes
            .signal
            .as_deref()
            .is_some_and(|s| signals.contains(&s))
    })
}

fn unexplained(f: &Facts) -> Cause {
    let first = f.all.iter().min_by(|a, b| a.time.total_cmp(&b.time));
    Cause {
        kind: CauseKind::Unexplained,
        title: format!(
            "Anomaly in {}",
            first
                .and_then(|x| x.series.clone())
                .unwrap_or_else(|| "the run".into())
        ),
        score: SCORE_UNEXPLAINED,
        explanation: first
            .map(|x| format!("{}: {}", where_(x), x.detail))
            .unwrap_or_default(),
        fixes: strings(&["Look at the series and the logs around that time"]),
        evidence: evidence(first),
    }
}
