//! Generated training jobs and services with faults injected at known
//! steps — the fault-injection suite behind the quality figures
//! (`loupe-bench diagnose`) and the demo's workloads.
//!
//! A [`JobSpec`] describes one job: a single run or a group of ranks, how
//! long, which fault (if any) and where. [`generate`] turns it into
//! time-ordered [`Event`]s (points, log lines, run starts and ends) and the
//! ground truth ([`Fault`]). Healthy jobs are noisy on purpose: warm-up
//! bumps, learning-rate warm-up and decay, eval dips, a restart from a
//! checkpoint, allocator sawtooth, per-rank temperature differences.

pub mod fleet;
pub mod quality;
mod rank;
mod service;

pub use quality::replay;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::diagnoser::RunInfo;
use crate::finding::Scope;
use crate::incident::CauseKind;
use loupe_model::{LogLevel, LogStream};

/// The faults the suite injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A loss spike right after a grad-norm spike at the end of warm-up.
    LossSpike,
    /// The gradient norm climbs, then the loss becomes NaN.
    NanDivergence,
    /// fp16 loss-scale overflows down to the minimum scale, then NaN.
    Fp16Overflow,
    /// Throughput and GPU utilisation fall while the CPU saturates.
    InputBound,
    /// GPU memory grows step after step until CUDA runs out of memory.
    GpuMemoryLeak,
    /// CUDA out of memory without a leak (a long batch).
    CudaOom,
    /// One rank runs hot, throttles and slows the job.
    ThermalStraggler,
    /// Xid 79 on one rank, which crashes; the others time out.
    HardwareFault,
    /// Every rank stalls in a collective; NCCL's watchdog times out.
    CollectiveHang,
    /// A single run's step stops advancing while it keeps reporting.
    SoftHang,
    /// A checkpoint save fails with "No space left on device".
    DiskFull,
    /// A service's errors burst and its latency rises.
    ServingErrors,
}

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
        FaultKind::LossSpike,
        FaultKind::NanDivergence,
        FaultKind::Fp16Overflow,
        FaultKind::InputBound,
        FaultKind::GpuMemoryLeak,
        FaultKind::CudaOom,
        FaultKind::ThermalStraggler,
        FaultKind::HardwareFault,
        FaultKind::CollectiveHang,
        FaultKind::SoftHang,
        FaultKind::DiskFull,
        FaultKind::ServingErrors,
    ];

    /// The cause an incident should rank first.
    pub fn expected_cause(self) -> CauseKind {
        match self {
            FaultKind::LossSpike => CauseKind::LearningRateTooHigh,
            FaultKind::NanDivergence => CauseKind::Divergence,
            FaultKind::Fp16Overflow => CauseKind::FpOverflow,
            FaultKind::InputBound => CauseKind::InputPipelineBound,
            FaultKind::GpuMemoryLeak => CauseKind::GpuMemoryLeak,
            FaultKind::CudaOom => CauseKind::CudaOutOfMemory,
            FaultKind::ThermalStraggler => CauseKind::ThermalStraggler,
            FaultKind::HardwareFault => CauseKind::HardwareFault,
            FaultKind::CollectiveHang => CauseKind::CollectiveHang,
            FaultKind::SoftHang => CauseKind::SoftHang,
            FaultKind::DiskFull => CauseKind::DiskFull,
            FaultKind::ServingErrors => CauseKind::ServingErrors,
        }
    }

    /// Faults that only exist among several ranks.
    pub fn needs_group(self) -> bool {
        matches!(
            self,
            FaultKind::ThermalStraggler | FaultKind::HardwareFault | FaultKind::CollectiveHang
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::LossSpike => "loss_spike",
            FaultKind::NanDivergence => "nan_divergence",
            FaultKind::Fp16Overflow => "fp16_overflow",
            FaultKind::InputBound => "input_bound",
            FaultKind::GpuMemoryLeak => "gpu_memory_leak",
            FaultKind::CudaOom => "cuda_oom",
            FaultKind::ThermalStraggler => "thermal_straggler",
            FaultKind::HardwareFault => "hardware_fault",
            FaultKind::CollectiveHang => "collective_hang",
            FaultKind::SoftHang => "soft_hang",
            FaultKind::DiskFull => "disk_full",
            FaultKind::ServingErrors => "serving_errors",
        }
    }
}

/// One job to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// Run ids are `{name}` (single) or `{name}.r{rank}`; the group is `name`.
    pub name: String,
    pub project: String,
    /// 1 for a single run; more for a distributed job.
    pub ranks: u32,
    pub ranks_per_node: u32,
    pub steps: i64,
    pub fault: Option<FaultKind>,
    pub fault_step: i64,
    /// The rank the fault hits (for rank faults).
    pub fault_rank: u32,
    pub seed: u64,
    pub start_time: f64,
    /// Seconds per training step.
    pub step_seconds: f64,
    pub warmup_steps: i64,
    /// A healthy restart from a checkpoint at this step (rewinds 150 steps).
    pub restart_at: Option<i64>,
    /// Points are flushed in batches of this many steps (like an SDK).
    pub batch_steps: i64,
    /// Generate an LLM service instead of a training job.
    pub service: bool,
    /// More faults in the same job (beside `fault`), each at its own step.
    pub faults: Vec<Injected>,
    /// Every rank stops at this step with this status (a job torn down).
    pub stop: Option<(i64, String)>,
}

/// One fault of a job: where, on which rank, for how long (in steps; for a
/// leak, the steps it takes to fill the GPU).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Injected {
    pub kind: FaultKind,
    pub step: i64,
    pub rank: u32,
    pub length: i64,
}

impl Injected {
    pub fn new(kind: FaultKind, step: i64, rank: u32) -> Self {
        let length = match kind {
            FaultKind::InputBound => 300,
            FaultKind::GpuMemoryLeak => 360,
            FaultKind::ThermalStraggler => i64::MAX / 4,
            _ => 0,
        };
        Injected {
            kind,
            step,
            rank,
            length,
        }
    }
}

impl JobSpec {
    /// Every fault of the job: `fault` (if any) and `faults`.
    pub fn all_faults(&self) -> Vec<Injected> {
        let mut v: Vec<Injected> = self
            .fault
            .map(|k| Injected::new(k, self.fault_step, self.fault_rank))
            .into_iter()
            .collect();
        v.extend(self.faults.iter().copied());
        v
    }

    pub fn new(name: &str, ranks: u32, steps: i64, seed: u64) -> Self {
        JobSpec {
            name: name.to_string(),
            project: "suite".into(),
            ranks,
            ranks_per_node: 8,
            steps,
            fault: None,
            fault_step: steps / 2,
            fault_rank: 0,
            seed,
            start_time: 1_767_225_600.0,
            step_seconds: 1.0,
            warmup_steps: 200,
            restart_at: None,
            batch_steps: 10,
            service: false,
            faults: Vec::new(),
            stop: None,
        }
    }
}

/// Something the generated job does, at a time.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    RunStarted {
        info: RunInfo,
        config: serde_json::Value,
    },
    Points {
        run: String,
        series: String,
        steps: Vec<i64>,
        times: Vec<f64>,
        values: Vec<f64>,
    },
    SourcePoints {
        source: String,
        scope: Scope,
        series: String,
        times: Vec<f64>,
        values: Vec<f64>,
    },
    Log {
        run: String,
        time: f64,
        stream: LogStream,
        level: LogLevel,
        text: String,
    },
    RunEnded {
        run: String,
        status: String,
        /// The process's exit status, when known.
        exit_code: Option<i32>,
        time: f64,
    },
}

impl Event {
    pub fn time(&self) -> f64 {
        match self {
            Event::RunStarted { .. } => f64::NEG_INFINITY,
            Event::Points { times, .. } | Event::SourcePoints { times, .. } => {
                times.last().copied().unwrap_or(f64::NEG_INFINITY)
            }
            Event::Log { time, .. } | Event::RunEnded { time, .. } => *time,
        }
    }
}

/// The ground truth of one injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub job: String,
    /// The run the fault hits (the rank for rank faults; every rank for
    /// job-wide faults is represented by the group).
    pub run: Option<String>,
    pub group: Option<String>,
    pub service: Option<String>,
    pub start_time: f64,
    pub start_step: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// In time order.
    pub events: Vec<Event>,
    pub faults: Vec<Fault>,
    /// Runs of jobs with no fault.
    pub healthy_runs: Vec<String>,
}

impl Scenario {
    pub fn merge(mut self, other: Scenario) -> Scenario {
        self.events.extend(other.events);
        self.faults.extend(other.faults);
        self.healthy_runs.extend(other.healthy_runs);
        self.sort();
        self
    }

    pub fn sort(&mut self) {
        self.events.sort_by(|a, b| a.time().total_cmp(&b.time()));
    }

    pub fn points(&self) -> usize {
        self.events
            .iter()
            .map(|e| match e {
                Event::Points { values, .. } | Event::SourcePoints { values, .. } => values.len(),
                _ => 0,
            })
            .sum()
    }
}

/// Generates one job.
pub fn generate(spec: &JobSpec) -> Scenario {
    if spec.service {
        return service::generate_service(spec);
    }
    let mut sc = Scenario::default();
    let group = (spec.ranks > 1).then(|| spec.name.clone());
    let run_id = |r: u32| {
        if spec.ranks > 1 {
            format!("{}.r{r}", spec.name)
        } else {
            spec.name.clone()
        }
    };
    let faults = spec.all_faults();
    for x in &faults {
        let job_wide = matches!(x.kind, FaultKind::InputBound | FaultKind::CollectiveHang);
        sc.faults.push(Fault {
            kind: x.kind,
            job: spec.name.clone(),
            run: (!job_wide || spec.ranks == 1).then(|| run_id(x.rank)),
            group: group.clone(),
            service: None,
            start_time: spec.start_time + x.step as f64 * spec.step_seconds,
            start_step: Some(x.step),
        });
    }
    for rank in 0..spec.ranks {
        let id = run_id(rank);
        if faults.is_empty() {
            sc.healthy_runs.push(id.clone());
        }
        let mut rng = StdRng::seed_from_u64(spec.seed ^ (rank as u64).wrapping_mul(0x9E37_79B9));
        let fp16 = faults.iter().any(|x| x.kind == FaultKind::Fp16Overflow);
        let config = serde_json::json!({
            "lr": 3e-4, "warmup_steps": spec.warmup_steps, "batch_size": 32,
            "mixed_precision": if fp16 { "fp16" } else { "bf16" },
        });
        let host = format!("{}-node{}", spec.name, rank / spec.ranks_per_node.max(1));
        sc.events.push(Event::RunStarted {
            info: RunInfo {
                id: id.clone(),
                project: Some(spec.project.clone()),
                group: group.clone(),
                rank: (spec.ranks > 1).then_some(rank),
                host: Some(host),
                fp16,
            },
            config,
        });
        rank::rank_events(spec, &faults, rank, &id, &mut rng, &mut sc.events);
    }
    sc.sort();
    sc
}
