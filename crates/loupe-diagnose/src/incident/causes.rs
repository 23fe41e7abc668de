//! Cause candidates: each rule looks at an incident's findings, says
//! whether its cause fits, how well (a score that weighs which signals are
//! present, how strong they are, and which came first), which findings are
//! its evidence, and what to try.

mod families;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::Severity;
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

/// The rules, in the order used to break score ties.
pub(crate) fn rank_causes(findings: &[Finding], ctx: &RunContext) -> Vec<Cause> {
    let f = Facts { all: findings };
    let mut causes: Vec<Cause> = [
        fp_overflow(&f, ctx),
        divergence(&f),
        learning_rate(&f),
        gpu_leak(&f),
        host_leak(&f),
        cuda_oom(&f),
        host_oom(&f),
        hardware(&f),
        thermal_straggler(&f),
        overheating(&f),
        straggler(&f),
        collective_hang(&f),
        network(&f),
        input_bound(&f),
        soft_hang(&f),
        disk_full(&f),
        serving_errors(&f),
        serving_latency(&f),
        fatal_signal(&f),
        recurring_error(&f),
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
        if out.len() >= 12 {
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

fn loss_trouble<'a>(f: &Facts<'a>) -> Option<&'a Finding> {
    f.first(FindingKind::Spike, SeriesRole::Loss)
        .or_else(|| f.first(FindingKind::Divergence, SeriesRole::Loss))
}

fn grad_before<'a>(f: &Facts<'a>, t: f64) -> Option<&'a Finding> {
    f.all
        .iter()
        .filter(|g| {
            g.role == SeriesRole::GradNorm
                && matches!(
                    g.kind,
                    FindingKind::Spike | FindingKind::NonFinite | FindingKind::LevelShift
                )
                && g.time <= t
        })
        .min_by(|a, b| a.time.total_cmp(&b.time))
}

fn learning_rate(f: &Facts) -> Option<Cause> {
    let loss = loss_trouble(f)?;
    if f.first(FindingKind::NonFinite, SeriesRole::Loss).is_some() {
        // A NaN loss is the divergence rule's.
        return None;
    }
    let grad = grad_before(f, loss.time);
    let at_peak = loss
        .attributes
        .get("lr_fraction_of_peak")
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|x| x >= 0.9);
    let mut score = 0.5;
    if grad.is_some() {
        score += 0.3;
    }
    if at_peak {
        score += 0.1;
    }
    let mut expl = format!("the loss jumped at {}", where_(loss));
    if let Some(g) = grad {
        expl.push_str(&format!(
            ", right after the gradient norm spiked at {}",
            where_(g)
        ));
    }
    if at_peak {
        expl.push_str(", with the learning rate at its peak (end of warm-up)");
    }
    expl.push_str(": updates too large for the loss surface there.");
    let step = loss
        .step
        .map(|s| format!(" before step {s}"))
        .unwrap_or_default();
    Some(Cause {
        kind: CauseKind::LearningRateTooHigh,
        title: "Learning rate too high, or gradients not clipped".into(),
        score,
        explanation: expl,
        fixes: vec![
            "Lower the peak learning rate (try half)".into(),
            "Clip gradients: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)".into(),
            "Lengthen the warm-up".into(),
            format!(
                "Roll back ~100 steps to the last checkpoint{step} and skip the batches that caused the spike"
            ),
        ],
        evidence: evidence(std::iter::once(loss).chain(grad)),
    })
}

fn divergence(f: &Facts) -> Option<Cause> {
    let nan = f.first(FindingKind::NonFinite, SeriesRole::Loss);
    let div = f.first(FindingKind::Divergence, SeriesRole::Loss);
    // NaN reported only in the logs is the non-finite-loss rule's; this
    // one reads the loss series.
    let nan_logs = f.logs(LogSignatureKind::NanInLogs);
    let first = nan.or(div)?;
    if nan.is_none()
        && nan_logs.is_empty()
        && f.first(FindingKind::Spike, SeriesRole::Loss).is_some()
    {
        // A spike then a climb is the learning-rate rule's story.
        return None;
    }
    let grad = grad_before(f, first.time);
    let mut score: f64 = if nan.is_some() || !nan_logs.is_empty() {
        0.6
    } else {
        0.45
    };
    if grad.is_some() {
        score += 0.25;
    }
    if div.is_some() && nan.is_some() {
        score += 0.1;
    }
    let what = if nan.is_some() {
        "the loss became NaN/Inf"
    } else {
        "the loss climbed away from its best"
    };
    let mut expl = format!("{what} at {}", where_(first));
    if let Some(g) = grad {
        expl.push_str(&format!(", after the gradient norm rose at {}", where_(g)));
    }
    expl.push('.');
    Some(Cause {
        kind: CauseKind::Divergence,
        title: "Training diverged".into(),
        score,
        explanation: expl,
        fixes: strings(&[
            "Restart from the last good checkpoint with a lower learning rate",
            "Clip gradients at 1.0",
            "Find the operation that produced the first NaN: torch.autograd.set_detect_anomaly(True) on a few steps",
            "Check the batch at that step for bad inputs (empty sequences, extreme values)",
        ]),
        evidence: evidence(
            [first]
                .into_iter()
                .chain(grad)
                .chain(nan_logs.into_iter().take(3)),
        ),
    })
}

fn fp_overflow(f: &Facts, ctx: &RunContext) -> Option<Cause> {
    let nan = f
        .first(FindingKind::NonFinite, SeriesRole::Loss)
        .or_else(|| f.first(FindingKind::Divergence, SeriesRole::Loss))
        .or_else(|| f.logs(LogSignatureKind::NanInLogs).first().copied());
    // Overflows of a start-up search (minor findings) are no collapse;
    // NaN in Megatron's local grad norm is the non-finite-loss rule's.
    let overflow: Vec<&Finding> = f
        .logs(LogSignatureKind::LossScaleOverflow)
        .into_iter()
        .filter(|o| o.severity > Severity::Info && !o.attributes.contains_key("value"))
        .collect();
    let min_scale = overflow.iter().any(|o| {
        o.severity == Severity::Critical
            || o.attributes
                .get("loss_scale")
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|s| s <= 1.0)
    });
    let scale_series = f.all.iter().find(|x| x.role == SeriesRole::LossScale);
    if overflow.is_empty() && scale_series.is_none() && !(ctx.fp16 && nan.is_some()) {
        return None;
    }
    // A collapse shown by the scaler's own lines needs no NaN beside it.
    let nan = match nan {
        Some(n) => n,
        None if !overflow.is_empty() => overflow[0],
        None => return None,
    };
    let mut score: f64 = 0.6;
    if !overflow.is_empty() {
        score += 0.2;
    }
    if min_scale {
        score += 0.15;
    }
    if ctx.fp16 {
        score += 0.1;
    }
    Some(Cause {
        kind: CauseKind::FpOverflow,
        title: "fp16 overflow: the loss scale collapsed".into(),
        score,
        explanation: format!(
            "the loss went non-finite at {} while the fp16 loss scaler kept skipping steps{}: fp16's range is too small for these activations or gradients.",
            where_(nan),
            if min_scale {
                " and reached its minimum scale"
            } else {
                ""
            }
        ),
        fixes: strings(&[
            "Train in bf16 instead of fp16 (same speed on Ampere and newer, fp32's exponent range)",
            "Lower the learning rate and clip gradients at 1.0",
            "Raise the loss scaler's minimum scale or its hysteresis",
        ]),
        evidence: evidence(
            [nan]
                .into_iter()
                .chain(overflow.into_iter().take(3))
                .chain(scale_series),
        ),
    })
}

fn gpu_leak(f: &Facts) -> Option<Cause> {
    let trend = f.first(FindingKind::TrendToLimit, SeriesRole::GpuMemory)?;
    let oom = f.logs(LogSignatureKind::CudaOom);
    let oom_after = oom.iter().find(|o| o.time >= trend.time).copied();
    let mut score: f64 = 0.65;
    if oom_after.is_some() {
        score += 0.3;
    }
    let mut expl = format!(
        "GPU memory grew step after step ({}): {}.",
        where_(trend),
        trend.detail
    );
    if oom_after.is_some() {
        expl.push_str(" It then ran out of memory (CUDA out of memory).");
    }
    Some(Cause {
        kind: CauseKind::GpuMemoryLeak,
        title: "GPU memory leak".into(),
        score,
        explanation: expl,
        fixes: strings(&[
            "Do not keep tensors across steps: accumulate loss.item(), not loss; detach what you store",
            "Look for lists or dicts that keep outputs, hidden states or graphs alive",
            "Find the allocation site: torch.cuda.memory._record_memory_history() and a memory snapshot",
        ]),
        evidence: evidence([trend].into_iter().chain(oom_after)),
    })
}

fn host_leak(f: &Facts) -> Option<Cause> {
    let trend = f
        .first(FindingKind::TrendToLimit, SeriesRole::ProcessMemory)
        .or_else(|| f.first(FindingKind::TrendToLimit, SeriesRole::HostMemory))?;
    let killed = f.logs(LogSignatureKind::OomKiller);
    let mut score: f64 = 0.55;
    if !killed.is_empty() {
        score += 0.35;
    }
    Some(Cause {
        kind: CauseKind::HostMemoryLeak,
        title: "Host memory leak".into(),
        score,
        explanation: format!(
            "host memory grew steadily ({}), {}.",
            where_(trend),
            trend.detail
        ),
        fixes: strings(&[
            "DataLoader workers copy Python objects they touch: keep datasets in numpy arrays or Arrow, not lists of dicts",
            "Check caches that grow with every batch",
            "Profile with memray or tracemalloc on one worker",
        ]),
        evidence: evidence([trend].into_iter().chain(killed.into_iter().take(2))),
    })
}

fn cuda_oom(f: &Facts) -> Option<Cause> {
    let oom = f.logs(LogSignatureKind::CudaOom);
    let first = *oom.first()?;
    Some(Cause {
        kind: CauseKind::CudaOutOfMemory,
        title: "Out of GPU memory".into(),
        score: 0.85,
        explanation: format!("CUDA ran out of memory: {}", first.detail),
        fixes: strings(&[
            "Lower the micro-batch size and raise gradient accumulation to keep the global batch",
            "Turn on activation checkpointing",
            "Set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True against fragmentation",
            "Shorten the longest sequences or bucket by length",
        ]),
        evidence: evidence(oom.into_iter().take(3)),
    })
}

fn host_oom(f: &Facts) -> Option<Cause> {
    let mut killed = f.logs(LogSignatureKind::OomKiller);
    // A bare SIGKILL exit status (137, -9) is weaker evidence of the same.
    let by_exit = killed.is_empty();
    killed.extend(exit_signal(f, &["SIGKILL"]));
    let first = *killed.first()?;
    Some(Cause {
        kind: CauseKind::HostOutOfMemory,
        title: "Host out of memory: the kernel killed the process".into(),
        score: if by_exit { 0.55 } else { 0.75 },
        explanation: format!(
            "the kernel's OOM killer ended the process: {}",
            first.detail
        ),
        fixes: strings(&[
            "Fewer DataLoader workers, or smaller prefetch_factor",
            "Load datasets memory-mapped instead of into RAM",
            "Ask the scheduler for more memory for the job",
        ]),
        evidence: evidence(killed.into_iter().take(3)),
    })
}

fn hardware(f: &Facts) -> Option<Cause> {
    // Hardware, link, driver and firmware codes, and codes newer than the
    // catalogue; application codes are the CUDA-error rule's and a lost GPU
    // (79, 167) the lost-GPU rule's.
    let xid: Vec<&Finding> = f
        .logs(LogSignatureKind::Xid)
        .into_iter()
        .filter(|x| {
            let origin = x.attributes.get("origin").map_or("", String::as_str);
            let code = x.attributes.get("code").map_or("", String::as_str);
            !matches!(origin, "application") && code != "79" && code != "167"
        })
        .collect();
    let known = xid.iter().any(|x| {
        matches!(
            x.attributes.get("origin").map(String::as_str),
            Some("hardware" | "link" | "driver")
        )
    });
    let ecc = f.logs(LogSignatureKind::EccError);
    let ecc_series = f.metric(FindingKind::Threshold, SeriesRole::GpuEccErrors);
    let xid_series = f.metric(FindingKind::Threshold, SeriesRole::GpuXid);
    let any: Vec<&Finding> = xid
        .iter()
        .chain(&ecc)
        .chain(&ecc_series)
        .chain(&xid_series)
        .copied()
        .collect();
    let first = *any.first()?;
    let slow =
        !f.cohort(SeriesRole::StepTime).is_empty() || !f.cohort(SeriesRole::Throughput).is_empty();
    let mut score: f64 = 0.9;
    if slow || !f.logs(LogSignatureKind::PythonException).is_empty() {
        score += 0.1;
    }
    if ecc.is_empty() && ecc_series.is_empty() && xid_series.is_empty() && !known {
        // Only codes that are unknown, informational (45, 154) or unused on
        // current GPUs: a hint, not proof.
        score = 0.6;
    }
    let code = first
        .attributes
        .get("code")
        .map(|c| format!("Xid {c}"))
        .unwrap_or_else(|| "ECC errors".into());
    let place = first
        .scope
        .host
        .as_ref()
        .map(|h| format!(" on host {h}"))
        .unwrap_or_default();
    Some(Cause {
        kind: CauseKind::HardwareFault,
        title: "GPU hardware fault".into(),
        score,
        explanation: hardware_explanation(first, &code, &place),
        fixes: strings(&[
            "Drain the node from the scheduler so no job lands on it",
            "Check it: nvidia-smi -q -d ECC,PAGE_RETIREMENT,ROW_REMAPPER and dcgmi diag -r 3",
            "Reset the GPU or reboot; replace it (RMA) if the errors return",
            "Restart the job from its last checkpoint on healthy nodes",
        ]),
        evidence: evidence(any),
    })
}

/// What happened and NVIDIA's action for it; a code newer than the
/// catalogue says so.
fn hardware_explanation(first: &Finding, code: &str, place: &str) -> String {
    let mut s = format!("{code}{place}: {}", first.detail);
    match (first.attributes.get("action"), first.attributes.get("code")) {
        (Some(action), _) => s.push_str(&format!(". {action}")),
        (None, Some(c)) => s.push_str(&format!(
            ". Xid {c} is not in NVIDIA's catalogue as Loupe knows it (codes 1–{}): look it up in NVIDIA's current Xid catalogue; treat it as a hardware event until it is known",
            crate::logsig::XID_CATALOGUE_LAST
        )),
        (None, None) => {}
    }
    s
}

/// The rank a cohort finding is about, and its finding.
fn slow_rank<'a>(f: &Facts<'a>) -> Option<&'a Finding> {
    f.cohort(SeriesRole::StepTime)
        .into_iter()
        .chain(f.cohort(SeriesRole::Throughput))
        .min_by(|a, b| a.time.total_cmp(&b.time))
}

fn same_member(a: &Finding, b: &Finding) -> bool {
    match (&a.scope.run, &b.scope.run) {
        (Some(x), Some(y)) => x == y,
        _ => a.scope.host.is_some() && a.scope.host == b.scope.host,
    }
}

fn thermal_straggler(f: &Facts) -> Option<Cause> {
    let slow = slow_rank(f).or_else(|| f.cohort(SeriesRole::GpuClock).into_iter().next())?;
    let hot: Vec<&Finding> = f
        .all
        .iter()
        .filter(|x| {
            same_member(x, slow)
                && ((x.role == SeriesRole::GpuTemperature
                    && matches!(x.kind, FindingKind::CohortOutlier | FindingKind::Threshold))
                    || x.role == SeriesRole::GpuThrottle
                    || (x.role == SeriesRole::GpuClock && x.kind == FindingKind::CohortOutlier))
        })
        .collect();
    if hot.is_empty() {
        return None;
    }
    let mut score: f64 = 0.6;
    if hot.iter().any(|x| x.role == SeriesRole::GpuTemperature) {
        score += 0.2;
    }
    if hot
        .iter()
        .any(|x| x.role == SeriesRole::GpuThrottle || x.role == SeriesRole::GpuClock)
    {
        score += 0.15;
    }
    let who = member_name(slow);
    Some(Cause {
        kind: CauseKind::ThermalStraggler,
        title: format!("Thermal straggler: {who} is slowed down by heat"),
        score,
        explanation: format!(
            "{who} is slower than the rest of the job ({}) while its GPU runs hot or throttles its clocks; every other rank waits for it at each collective.",
            slow.detail
        ),
        fixes: strings(&[
            "Drain the node and check its cooling (fans, airflow, inlet temperature)",
            "Restart the job without that node (or with a spare) from the last checkpoint",
            "Check nvidia-smi -q -d PERFORMANCE for the throttle reasons",
        ]),
        evidence: evidence([slow].into_iter().chain(hot)),
    })
}

fn overheating(f: &Facts) -> Option<Cause> {
    let hot: Vec<&Finding> = f
        .all
        .iter()
        .filter(|x| {
            x.role == SeriesRole::GpuTemperature
                && matches!(x.kind, FindingKind::Threshold | FindingKind::CohortOutlier)
        })
        .collect();
    let first = *hot.first()?;
    Some(Cause {
        kind: CauseKind::GpuOverheating,
        title: format!("GPU overheating ({})", member_name(first)),
        score: 0.45,
        explanation: format!(
            "{}; hot GPUs throttle their clocks and slow the whole job down.",
            first.detail
        ),
        fixes: strings(&[
            "Check the node's cooling: fans, airflow, inlet temperature, a failed PSU fan",
            "Check nvidia-smi -q -d TEMPERATURE,PERFORMANCE for slowdown thresholds and throttle reasons",
            "Drain the node if it keeps running hot",
        ]),
        evidence: evidence(hot),
    })
}

fn member_name(f: &Finding) -> String {
    match (f.scope.rank, &f.scope.run, &f.scope.host) {
        (Some(r), _, _) => format!("rank {r}"),
        (None, Some(run), _) => format!("run {run}"),
        (None, None, Some(h)) => format!("host {h}"),
        _ => "one member".into(),
    }
}

fn straggler(f: &Facts) -> Option<Cause> {
    let slow = slow_rank(f)?;
    let who = member_name(slow);
    Some(Cause {
        kind: CauseKind::Straggler,
        title: format!("Straggler: {who} is slower than the others"),
        score: 0.5,
        explanation: format!("{who}: {}; the whole job runs at its pace.", slow.detail),
        fixes: strings(&[
            "Compare that rank's host: CPU load, other processes, NIC errors, GPU clocks",
            "Check the data shard of that rank for longer samples",
            "Restart without the node if it persists",
        ]),
        evidence: evidence([slow]),
    })
}

fn collective_hang(f: &Facts) -> Option<Cause> {
    let timeouts = f.logs(LogSignatureKind::NcclTimeout);
    let stalls: Vec<&Finding> = f
        .all
        .iter()
        .filter(|x| x.kind == FindingKind::Stall)
        .collect();
    let stalled_runs: BTreeSet<&str> = stalls
        .iter()
        .filter_map(|s| s.scope.run.as_deref())
        .collect();
    if timeouts.is_empty() && stalled_runs.len() < 2 {
        return None;
    }
    let mut score: f64 = 0.5;
    if !timeouts.is_empty() {
        score += 0.3;
    }
    if stalled_runs.len() >= 2 {
        score += 0.15;
    }
    let hardware = !f.logs(LogSignatureKind::Xid).is_empty()
        || !f.logs(LogSignatureKind::EccError).is_empty()
        || !f
            .metric(FindingKind::Threshold, SeriesRole::GpuXid)
            .is_empty();
    if hardware {
        // The hang is the consequence of a GPU that failed; the hardware
        // rule names the root.
        score -= 0.2;
    }
    // The rank that progressed last: the one whose step stopped lowest (it
    // never reached the collective the others wait in).
    let laggard = stalls
        .iter()
        .filter_map(|s| Some((s.attributes.get("last_step")?.parse::<i64>().ok()?, *s)))
        .min_by_key(|(step, _)| *step);
    let mut expl = format!(
        "{} rank(s) stopped advancing{}",
        stalled_runs.len().max(1),
        if timeouts.is_empty() {
            ""
        } else {
            " and NCCL's watchdog reported collective timeouts"
        }
    );
    if let Some((step, s)) = laggard {
        expl.push_str(&format!(
            "; {} stopped first, at step {step}: look at it first (py-spy dump its process)",
            member_name(s)
        ));
    }
    expl.push('.');
    Some(Cause {
        kind: CauseKind::CollectiveHang,
        title: "Collective hang (NCCL)".into(),
        score,
        explanation: expl,
        fixes: strings(&[
            "Dump the stacks of the stuck ranks: py-spy dump --pid PID",
            "Rerun with NCCL_DEBUG=INFO and TORCH_NCCL_ASYNC_ERROR_HANDLING=1 to see which collective and peer",
            "Check for ranks that take a different code path (a conditional all_reduce, uneven data)",
            "Check the network between the nodes (ibstat, ibv_devinfo)",
        ]),
        evidence: evidence(
            laggard
                .map(|(_, s)| s)
                .into_iter()
                .chain(timeouts.into_iter().take(3))
                .chain(stalls),
        ),
    })
}

fn network(f: &Facts) -> Option<Cause> {
    let net = f.logs(LogSignatureKind::NcclNetwork);
    let first = *net.first()?;
    Some(Cause {
        kind: CauseKind::NetworkFault,
        title: "Network error between nodes (NCCL)".into(),
        score: 0.7,
        explanation: format!("NCCL reported network errors: {}", first.detail),
        fixes: strings(&[
            "Check the InfiniBand/RoCE links of the nodes involved (ibstat, ibv_devinfo, switch counters)",
            "Check NCCL_SOCKET_IFNAME / NCCL_IB_HCA point at the right interfaces",
            "Drain the node whose link flaps",
        ]),
        evidence: evidence(net.into_iter().take(3)),
    })
}

fn input_bound(f: &Facts) -> Option<Cause> {
    let slow = f
        .shifted(SeriesRole::Throughput, Direction::Down)
        .or_else(|| f.shifted(SeriesRole::StepTime, Direction::Up))?;
    let util = f.shifted(SeriesRole::GpuUtilization, Direction::Down);
    let cpu = f
        .shifted(SeriesRole::CpuPercent, Direction::Up)
        .or_else(|| {
            f.all
                .iter()
                .find(|x| x.role == SeriesRole::CpuPercent && x.kind == FindingKind::Threshold)
        });
    let mut score: f64 = 0.4;
    if util.is_some() {
        score += 0.25;
    }
    if cpu.is_some() {
        score += 0.2;
    }
    if util.is_some() && cpu.is_some() {
        score += 0.1;
    }
    let mut expl = format!("throughput fell ({}: {})", where_(slow), slow.detail);
    if let Some(u) = util {
        expl.push_str(&format!(", GPU utilisation fell with it ({})", u.detail));
    }
    if let Some(c) = cpu {
        expl.push_str(&format!(", and the CPU is saturated ({})", c.detail));
    }
    expl.push_str(": the GPUs are waiting for input.");
    Some(Cause {
        kind: CauseKind::InputPipelineBound,
        title: "Input pipeline bound: the GPUs wait for data".into(),
        score,
        explanation: expl,
        fixes: strings(&[
            "Raise DataLoader num_workers (and persistent_workers=True)",
            "pin_memory=True and a larger prefetch_factor",
            "Pre-tokenize / pre-decode the data, or cache it on local NVMe",
            "Check the storage's read throughput (a slow network filesystem)",
        ]),
        evidence: evidence([slow].into_iter().chain(util).chain(cpu)),
    })
}

fn soft_hang(f: &Facts) -> Option<Cause> {
    let stalls: Vec<&Finding> = f
        .all
        .iter()
        .filter(|x| x.kind == FindingKind::Stall)
        .collect();
    let first = *stalls.first()?;
    Some(Cause {
        kind: CauseKind::SoftHang,
        title: "Training loop stalled while the process lives".into(),
        score: 0.55,
        explanation: format!(
            "{}; the process still reports, so it hangs rather than died.",
            first.detail
        ),
        fixes: strings(&[
            "Dump its stacks: py-spy dump --pid PID",
            "A DataLoader worker deadlock: try num_workers=0 to confirm, check for fork-unsafe libraries",
            "A hung filesystem or network read: check the storage",
        ]),
        evidence: evidence(stalls),
    })
}

fn disk_full(f: &Facts) -> Option<Cause> {
    let logs = f.logs(LogSignatureKind::DiskFull);
    let trend = f.first(FindingKind::TrendToLimit, SeriesRole::DiskUsage);
    let first = logs.first().copied().or(trend)?;
    Some(Cause {
        kind: CauseKind::DiskFull,
        title: "Disk full".into(),
        score: if logs.is_empty() { 0.6 } else { 0.9 },
        explanation: format!("the disk filled up: {}", first.detail),
        fixes: strings(&[
            "Free space: delete old checkpoints, keep the last N (save_total_limit)",
            "Write checkpoints to a larger volume",
            "Watch disk usage with loupe agent and an alert rule",
        ]),
        evidence: evidence(logs.into_iter().take(3).chain(trend)),
    })
}

fn serving_errors(f: &Facts) -> Option<Cause> {
    let errors = f
        .all
        .iter()
        .filter(|x| {
            x.role == SeriesRole::Errors
                && matches!(
                    x.kind,
                    FindingKind::Spike | FindingKind::LevelShift | FindingKind::CohortOutlier
                )
        })
        .min_by(|a, b| a.time.total_cmp(&b.time))?;
    let latency = f.all.iter().find(|x| {
        x.role == SeriesRole::Latency
            && matches!(
                x.kind,
                FindingKind::Spike | FindingKind::LevelShift | FindingKind::CohortOutlier
            )
    });
    let mut score: f64 = 0.65;
    if latency.is_some() {
        score += 0.15;
    }
    Some(Cause {
        kind: CauseKind::ServingErrors,
        title: "Error burst in the service".into(),
        score,
        explanation: format!(
            "errors rose ({}: {}){}.",
            where_(errors),
            errors.detail,
            latency
                .map(|l| format!(", with latency up ({})", l.detail))
                .unwrap_or_default()
        ),
        fixes: strings(&[
            "Check what changed just before: a deploy, a model or config change; roll back if so",
            "Check upstream dependencies and rate limits",
            "Look at the error logs of the replicas for the first failing request",
        ]),
        evidence: evidence([errors].into_iter().chain(latency)),
    })
}

fn serving_latency(f: &Facts) -> Option<Cause> {
    let latency = f
        .all
        .iter()
        .filter(|x| {
            x.role == SeriesRole::Latency
                && matches!(
                    x.kind,
                    FindingKind::Spike | FindingKind::LevelShift | FindingKind::CohortOutlier
                )
        })
        .min_by(|a, b| a.time.total_cmp(&b.time))?;
    Some(Cause {
        kind: CauseKind::ServingLatency,
        title: "Latency regression".into(),
        score: 0.55,
        explanation: format!("latency rose ({}: {}).", where_(latency), latency.detail),
        fixes: strings(&[
            "Check queueing: requests waiting for a batch slot or KV-cache space",
            "Scale out replicas or lower the maximum batch size",
            "Compare prompt lengths before and after",
        ]),
        evidence: evidence([latency]),
    })
}

/// The exit-status finding when its code names one of `signals`.
fn exit_signal<'a>(f: &Facts<'a>, signals: &[&str]) -> Option<&'a Finding> {
    f.logs(LogSignatureKind::ExitStatus).into_iter().find(|x| {
        x.attributes
            .get("signal")
            .is_some_and(|s| signals.contains(&s.as_str()))
    })
}

fn fatal_signal(f: &Facts) -> Option<Cause> {
    let mut sig = f.logs(LogSignatureKind::FatalSignal);
    let by_exit = sig.is_empty();
    sig.extend(exit_signal(
        f,
        &["SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE"],
    ));
    let first = *sig.first()?;
    Some(Cause {
        kind: CauseKind::FatalSignal,
        title: format!(
            "Process killed by {}",
            first
                .attributes
                .get("signal")
                .map(String::as_str)
                .unwrap_or("a signal")
        ),
        score: if by_exit { 0.5 } else { 0.7 },
        explanation: first.detail.clone(),
        fixes: strings(&[
            "SIGSEGV: run with faulthandler (python -X faulthandler) and check native extension versions (CUDA, NCCL, torch)",
            "SIGKILL: usually the OOM killer or the scheduler (time or memory limit): check dmesg and the scheduler's logs",
        ]),
        evidence: evidence(sig.into_iter().take(3)),
    })
}

fn recurring_error(f: &Facts) -> Option<Cause> {
    let t = f.logs(LogSignatureKind::ErrorTemplate);
    let first = *t.first()?;
    Some(Cause {
        kind: CauseKind::RecurringError,
        title: "A recurring error in the logs".into(),
        score: 0.3,
        explanation: first.detail.clone(),
        fixes: strings(&["Read the grouped error lines in the logs tab"]),
        evidence: evidence(t.into_iter().take(3)),
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
        score: 0.2,
        explanation: first
            .map(|x| format!("{}: {}", where_(x), x.detail))
            .unwrap_or_default(),
        fixes: strings(&["Look at the series and the logs around that time"]),
        evidence: evidence(first),
    }
}
