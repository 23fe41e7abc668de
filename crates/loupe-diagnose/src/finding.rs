//! What detectors and log signatures report: a [`Finding`], and what a
//! series measures ([`SeriesRole`]), which decides the detectors it gets.

mod attributes;

pub use attributes::{FindingAttributes, NonFiniteValue};

use serde::{Deserialize, Serialize};

use crate::Severity;
use crate::logsig::LogSignatureKind;

/// Where a finding happened: a run (with its job and host when known), or a
/// source outside runs (a host, a service) named by `host` / `service`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    pub project: Option<String>,
    pub run: Option<String>,
    pub group: Option<String>,
    pub rank: Option<u32>,
    pub host: Option<String>,
    pub service: Option<String>,
}

/// Which way a value moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// NaN or ±Inf.
    NonFinite,
    /// One point far from the rolling median.
    Spike,
    /// The level of a series moved and stayed (CUSUM).
    LevelShift,
    /// Steady growth towards a limit (a leak).
    TrendToLimit,
    /// The run's step stopped advancing while the run still reports.
    Stall,
    /// A series stopped arriving while its run or source goes on.
    Silence,
    /// A loss climbing away from its best.
    Divergence,
    /// A loss that stopped improving.
    Plateau,
    /// One member of a group (rank, host, replica) apart from the others.
    CohortOutlier,
    /// A value over a fixed physical limit (GPU temperature, error counts).
    Threshold,
    /// A run's curve beyond every healthy previous run of its config family.
    BaselineDeviation,
    /// A series unusual for itself: the general detector's anomaly
    /// likelihood (series outside runs with no better rule).
    Unusual,
    /// A log line with a known signature.
    Log(LogSignatureKind),
}

impl FindingKind {
    pub fn name(self) -> String {
        match self {
            FindingKind::Log(k) => format!("log:{}", serde_plain(&k)),
            other => serde_plain(&other),
        }
    }
}

fn serde_plain<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A log line behind a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRef {
    pub seq: u64,
    pub text: String,
}

/// One observation of trouble, with the evidence to show for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub scope: Scope,
    pub kind: FindingKind,
    /// The series that showed it (none for log findings).
    pub series: Option<String>,
    pub role: SeriesRole,
    /// Unix seconds of the point (or line) that showed it.
    pub time: f64,
    pub step: Option<i64>,
    pub value: Option<f64>,
    /// What the value was expected to be (the rolling median, the group's median…).
    pub expected: Option<f64>,
    pub direction: Option<Direction>,
    /// Strength, 0–1.
    pub score: f64,
    pub severity: Severity,
    pub detail: String,
    pub log: Option<LogRef>,
    /// Extra facts: an Xid code, the step a rank stalled at, a rank…
    /// (typed; serialized as an object of strings, see [`FindingAttributes`]).
    pub attributes: FindingAttributes,
}

impl Finding {
    pub(crate) fn new(scope: Scope, kind: FindingKind, role: SeriesRole, time: f64) -> Self {
        Finding {
            scope,
            kind,
            series: None,
            role,
            time,
            step: None,
            value: None,
            expected: None,
            direction: None,
            score: 0.5,
            severity: Severity::Warning,
            detail: String::new(),
            log: None,
            attributes: FindingAttributes::default(),
        }
    }
}

/// What a series measures, guessed from its name (`train/loss`,
/// `gpu/3/temperature`, `sys/host.cpu_percent`…). It decides which detectors
/// watch the series and which way is "bad".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesRole {
    Loss,
    GradNorm,
    LearningRate,
    LossScale,
    /// Tokens/s, samples/s, it/s, MFU: lower is worse.
    Throughput,
    /// Seconds (or ms) per step or iteration: higher is worse.
    StepTime,
    GpuUtilization,
    GpuMemory,
    GpuMemoryTotal,
    GpuTemperature,
    GpuClock,
    GpuThrottle,
    GpuEccErrors,
    GpuXid,
    CpuPercent,
    HostMemory,
    HostMemoryTotal,
    ProcessMemory,
    DiskUsage,
    /// Serving: request latency / time to first token (higher is worse).
    Latency,
    /// Serving: errors (counts or rates).
    Errors,
    /// Anything else: spikes and non-finite values only.
    Other,
}

impl SeriesRole {
    /// Classifies a series by its name. Matching is on the last path
    /// segment's words so `eval/loss`, `train_loss` and `loss` all count
    /// as losses, while `loss_scale` does not.
    pub fn of(name: &str) -> SeriesRole {
        let lower = name.to_ascii_lowercase();
        let leaf = lower.rsplit('/').next().unwrap_or(&lower);
        let gpu = lower.starts_with("gpu") || lower.contains("gpu.") || lower.contains("/gpu");
        let has = |s: &str| leaf.contains(s);
        if has("loss_scale") || has("loss-scale") || has("lossscale") || leaf == "scale" {
            return SeriesRole::LossScale;
        }
        if gpu {
            if has("xid") {
                return SeriesRole::GpuXid;
            }
            if has("ecc") {
                return SeriesRole::GpuEccErrors;
            }
            if has("throttle") {
                return SeriesRole::GpuThrottle;
            }
            if has("temp") {
                return SeriesRole::GpuTemperature;
            }
            if has("clock") || has("sm_clock") {
                return SeriesRole::GpuClock;
            }
            if has("memory_total") || has("memory.total") || has("mem_total") {
                return SeriesRole::GpuMemoryTotal;
            }
            if has("memory_used")
                || has("memory.used")
                || has("mem_used")
                || has("memory_allocated")
                || leaf == "memory"
            {
                return SeriesRole::GpuMemory;
            }
            if has("util") {
                return SeriesRole::GpuUtilization;
            }
        }
        if has("grad_norm") || has("gradnorm") || has("grad-norm") || has("grad.norm") {
            return SeriesRole::GradNorm;
        }
        if leaf == "lr"
            || has("learning_rate")
            || leaf.ends_with("_lr")
            || leaf.ends_with(".lr")
            || has("learning-rate")
        {
            return SeriesRole::LearningRate;
        }
        if has("loss") || leaf == "nll" || leaf == "perplexity" || leaf == "ppl" {
            return SeriesRole::Loss;
        }
        if has("tokens_per_s")
            || has("tokens/s")
            || has("tok_per_s")
            || has("throughput")
            || has("samples_per_s")
            || has("samples_per_second")
            || has("it_per_s")
            || has("it/s")
            || leaf == "mfu"
            || has("tflops")
        {
            return SeriesRole::Throughput;
        }
        if has("step_time")
            || has("iter_time")
            || has("time_per_step")
            || has("batch_time")
            || has("step_ms")
            || leaf == "dt"
        {
            return SeriesRole::StepTime;
        }
        if has("ttft") || has("latency") || has("time_to_first_token") || has("duration") {
            return SeriesRole::Latency;
        }
        if has("error") || has("failure") || has("5xx") {
            return SeriesRole::Errors;
        }
        if has("cpu") && (has("percent") || has("util") || has("usage")) {
            return SeriesRole::CpuPercent;
        }
        if (has("memory") || has("mem")) && has("total") {
            return SeriesRole::HostMemoryTotal;
        }
        if has("rss") || (lower.contains("proc") && has("mem")) {
            return SeriesRole::ProcessMemory;
        }
        if (has("memory") || has("mem")) && (has("used") || has("usage")) {
            return SeriesRole::HostMemory;
        }
        if (lower.contains("disk") || lower.contains(".fs.") || lower.contains("/fs"))
            && has("used")
        {
            return SeriesRole::DiskUsage;
        }
        SeriesRole::Other
    }

    /// The direction in which this kind of series gets worse, if it has one.
    pub fn bad_direction(self) -> Option<Direction> {
        use SeriesRole::*;
        match self {
            Loss | GradNorm | StepTime | GpuMemory | GpuTemperature | GpuEccErrors | CpuPercent
            | HostMemory | ProcessMemory | DiskUsage | Latency | Errors | GpuThrottle | GpuXid => {
                Some(Direction::Up)
            }
            Throughput | GpuUtilization | GpuClock => Some(Direction::Down),
            LearningRate | LossScale | GpuMemoryTotal | HostMemoryTotal | Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_names() {
        use SeriesRole::*;
        for (name, role) in [
            ("train/loss", Loss),
            ("eval/loss", Loss),
            ("loss", Loss),
            ("train/loss_scale", LossScale),
            ("train/grad_norm", GradNorm),
            ("train/lr", LearningRate),
            ("learning_rate", LearningRate),
            ("train/tokens_per_s", Throughput),
            ("perf/step_time", StepTime),
            ("gpu/0/utilization", GpuUtilization),
            ("gpu/3/temperature", GpuTemperature),
            ("gpu/3/sm_clock_mhz", GpuClock),
            ("gpu/1/memory_used_bytes", GpuMemory),
            ("gpu/1/memory_total_bytes", GpuMemoryTotal),
            ("gpu.memory.used_bytes", GpuMemory),
            ("gpu/0/ecc_uncorrected", GpuEccErrors),
            ("gpu/0/throttle_reasons", GpuThrottle),
            ("sys/host.cpu_percent", CpuPercent),
            ("sys/proc.rss_bytes", ProcessMemory),
            ("sys/host.memory_used_bytes", HostMemory),
            ("llm.ttft_seconds", Latency),
            ("llm.errors", Errors),
            ("accuracy", Other),
            ("epoch", Other),
        ] {
            assert_eq!(SeriesRole::of(name), role, "{name}");
        }
    }
}
