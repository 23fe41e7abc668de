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

pub use quality::replay;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
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
        return generate_service(spec);
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
        rank_events(spec, &faults, rank, &id, &mut rng, &mut sc.events);
    }
    sc.sort();
    sc
}

struct Buffers {
    names: Vec<String>,
    steps: Vec<Vec<i64>>,
    times: Vec<Vec<f64>>,
    values: Vec<Vec<f64>>,
}

impl Buffers {
    fn new(names: &[String]) -> Self {
        let n = names.len();
        Buffers {
            names: names.to_vec(),
            steps: vec![Vec::new(); n],
            times: vec![Vec::new(); n],
            values: vec![Vec::new(); n],
        }
    }

    fn push(&mut self, i: usize, step: i64, t: f64, v: f64) {
        self.steps[i].push(step);
        self.times[i].push(t);
        self.values[i].push(v);
    }

    fn flush(&mut self, run: &str, out: &mut Vec<Event>) {
        for i in 0..self.names.len() {
            if self.values[i].is_empty() {
                continue;
            }
            out.push(Event::Points {
                run: run.to_string(),
                series: self.names[i].clone(),
                steps: std::mem::take(&mut self.steps[i]),
                times: std::mem::take(&mut self.times[i]),
                values: std::mem::take(&mut self.values[i]),
            });
        }
    }
}

const LOSS: usize = 0;
const GRAD: usize = 1;
const LR: usize = 2;
const TPS: usize = 3;
const STEP_TIME: usize = 4;
const UTIL: usize = 5;
const MEM: usize = 6;
const MEM_TOTAL: usize = 7;
const TEMP: usize = 8;
const CLOCK: usize = 9;
const CPU: usize = 10;
const EVAL: usize = 11;
const SCALE: usize = 12;
const XID: usize = 13;

fn rank_events(
    spec: &JobSpec,
    faults: &[Injected],
    rank: u32,
    run: &str,
    rng: &mut StdRng,
    out: &mut Vec<Event>,
) {
    let g = spec.ranks_per_node.max(1);
    let gpu = rank % g;
    let names: Vec<String> = [
        "train/loss".to_string(),
        "train/grad_norm".into(),
        "train/lr".into(),
        "perf/tokens_per_s".into(),
        "perf/step_time".into(),
        format!("gpu/{gpu}/utilization"),
        format!("gpu/{gpu}/memory_used_bytes"),
        format!("gpu/{gpu}/memory_total_bytes"),
        format!("gpu/{gpu}/temperature"),
        format!("gpu/{gpu}/sm_clock_mhz"),
        "sys/host.cpu_percent".into(),
        "eval/loss".into(),
        "train/loss_scale".into(),
        format!("gpu/{gpu}/xid"),
    ]
    .into();
    let mut b = Buffers::new(&names);
    let find = |k: FaultKind| faults.iter().find(|x| x.kind == k).copied();
    // The fault's step when it hits this rank (rank faults)…
    let hit = |k: FaultKind| {
        find(k)
            .filter(|x| x.rank == rank || spec.ranks == 1)
            .map(|x| x.step)
    };
    // …or the whole job.
    let job_fault = |k: FaultKind| find(k).map(|x| x.step);
    let fault_rank = |k: FaultKind| find(k).map_or(0, |x| x.rank);
    let length = |k: FaultKind| find(k).map_or(0, |x| x.length);
    let temp_base = 64.0 + (rank % 7) as f64 * 1.5;
    let peak_lr = 3e-4;
    let mut log =
        |t: f64, stream: LogStream, level: LogLevel, text: String, out: &mut Vec<Event>| {
            out.push(Event::Log {
                run: run.to_string(),
                time: t,
                stream,
                level,
                text,
            });
        };
    let mut t = spec.start_time;
    let mut step: i64 = 0;
    let mut restarted = false;
    let mut loss_scale = 65536.0f64;
    let mut leak_bytes = 0.0f64;
    let mut end_status = "finished";
    let mut last_t = t;
    log(
        t,
        LogStream::Stdout,
        LogLevel::Info,
        format!("[rank{rank}] starting training: {} steps", spec.steps),
        out,
    );
    while step < spec.steps {
        if let Some((at, status)) = &spec.stop
            && step >= *at
        {
            end_status = status.as_str();
            break;
        }
        // Healthy restart from a checkpoint: a pause, then 150 steps again.
        if let Some(r) = spec.restart_at
            && step == r
            && !restarted
        {
            restarted = true;
            b.flush(run, out);
            t += 45.0;
            log(
                t,
                LogStream::Stdout,
                LogLevel::Info,
                format!("resuming from checkpoint at step {}", r - 150),
                out,
            );
            step = r - 150;
        }
        let s = step as f64;
        let w = spec.warmup_steps.max(1) as f64;
        let lr = if s < w {
            peak_lr * (s + 1.0) / w
        } else {
            let p = ((s - w) / (spec.steps as f64 - w).max(1.0)).min(1.0);
            peak_lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
        };
        let mut loss = 2.2 + 6.0 * (-s / 350.0).exp() + 0.25 * (-((s - 80.0) / 30.0).powi(2)).exp();
        loss *= 1.0 + 0.015 * nz(rng);
        let mut grad = (1.0 + 1.5 * (-s / 250.0).exp()) * (0.12 * nz(rng)).exp();
        let mut tps = 48_000.0 * (1.0 + 0.02 * nz(rng));
        let mut step_time = 32.0 * 2048.0 / 48_000.0 * (1.0 + 0.02 * nz(rng));
        let mut util = (95.0 + 1.5 * nz(rng)).min(100.0);
        let mut mem = 60e9 * (1.0 - (-s / 15.0).exp())
            + if step % 5 == 0 { 6e8 } else { 0.0 }
            + 1e8 * nz(rng).abs();
        let mem_total = 80e9;
        let mut temp = temp_base + 0.8 * nz(rng);
        let mut clock = 1980.0 + 8.0 * nz(rng);
        let mut cpu = 35.0 + 4.0 * nz(rng);
        let mut xid = None;
        // Faults.
        if let Some(f) = hit(FaultKind::LossSpike) {
            if step == f - 1 {
                grad *= 9.0;
            }
            if step >= f {
                loss *= 1.0 + 1.2 * (-((step - f) as f64) / 8.0).exp();
            }
        }
        if let Some(f) = hit(FaultKind::NanDivergence)
            && step >= f - 40
        {
            grad *= 1.12f64.powi((step - (f - 40)) as i32);
            if step >= f - 15 {
                loss *= 1.0 + 0.08 * (step - (f - 15)) as f64;
            }
            if step >= f {
                loss = f64::NAN;
                grad = f64::NAN;
            }
            if step == f + 60 {
                end_status = "failed";
                log(
                    t,
                    LogStream::Stderr,
                    LogLevel::Error,
                    "ValueError: loss is nan, stopping training".into(),
                    out,
                );
                break;
            }
        }
        if let Some(f) = hit(FaultKind::Fp16Overflow)
            && step >= f - 30
        {
            if step % 3 == 0 && loss_scale > 1.0 {
                let next = (loss_scale / 2.0).max(1.0);
                log(
                    t,
                    LogStream::Stdout,
                    LogLevel::Info,
                    format!(
                        "[deepspeed] OVERFLOW! Rank {rank} Skipping step. Attempted loss scale: {loss_scale:.0}, reducing to {next:.0}"
                    ),
                    out,
                );
                loss_scale = next;
            }
            if step >= f {
                loss = f64::NAN;
            }
            if step == f + 40 {
                end_status = "failed";
                break;
            }
        }
        if let Some(f) = job_fault(FaultKind::InputBound)
            && (f..f + length(FaultKind::InputBound)).contains(&step)
        {
            tps *= 0.55;
            step_time /= 0.55;
            util = 50.0 + 6.0 * nz(rng);
            cpu = 97.0 + 1.5 * nz(rng);
        }
        if let Some(f) = hit(FaultKind::GpuMemoryLeak)
            && step >= f
        {
            leak_bytes += 20e9 / length(FaultKind::GpuMemoryLeak).max(1) as f64;
            mem += leak_bytes;
            if mem >= mem_total * 0.985 {
                oom_traceback(t, rank, &mut log, out);
                end_status = "failed";
                break;
            }
        }
        if let Some(f) = hit(FaultKind::CudaOom)
            && step == f
        {
            oom_traceback(t, rank, &mut log, out);
            end_status = "failed";
            break;
        }
        if let Some(f) = job_fault(FaultKind::ThermalStraggler)
            && (f..f.saturating_add(length(FaultKind::ThermalStraggler))).contains(&step)
        {
            tps *= 0.8;
            if rank == fault_rank(FaultKind::ThermalStraggler) {
                temp = 89.0 + 0.6 * nz(rng);
                clock = 1410.0 + 15.0 * nz(rng);
                step_time *= 1.35;
            }
        }
        if let Some(f) = job_fault(FaultKind::HardwareFault)
            && step >= f
        {
            if rank == fault_rank(FaultKind::HardwareFault) {
                if step == f {
                    log(
                        t,
                        LogStream::Stderr,
                        LogLevel::Error,
                        format!(
                            "NVRM: Xid (PCI:0000:{:02x}:00): 79, pid=41{rank:03}, GPU has fallen off the bus.",
                            0x1b + gpu * 0x10
                        ),
                        out,
                    );
                    xid = Some(79.0);
                }
                if step == f + 2 {
                    log(
                        t,
                        LogStream::Stderr,
                        LogLevel::Error,
                        "Traceback (most recent call last):".into(),
                        out,
                    );
                    log(
                        t,
                        LogStream::Stderr,
                        LogLevel::Error,
                        "  File \"train.py\", line 211, in <module>".into(),
                        out,
                    );
                    log(
                        t,
                        LogStream::Stderr,
                        LogLevel::Error,
                        "    loss.backward()".into(),
                        out,
                    );
                    log(
                        t,
                        LogStream::Stderr,
                        LogLevel::Error,
                        "RuntimeError: CUDA error: unspecified launch failure".into(),
                        out,
                    );
                    end_status = "failed";
                    break;
                }
            } else if step >= f + 2 {
                // The others wait in the next collective, then time out.
                let culprit = fault_rank(FaultKind::HardwareFault);
                t = hang(culprit, rank, run, step, t, &mut b, &mut log, out, rng);
                end_status = "failed";
                break;
            }
        }
        if let Some(f) = job_fault(FaultKind::CollectiveHang)
            && step
                >= f + if rank == fault_rank(FaultKind::CollectiveHang) {
                    0
                } else {
                    1
                }
        {
            let culprit = fault_rank(FaultKind::CollectiveHang);
            t = hang(culprit, rank, run, step, t, &mut b, &mut log, out, rng);
            end_status = "failed";
            break;
        }
        if let Some(f) = hit(FaultKind::SoftHang)
            && step == f
        {
            // Telemetry keeps flowing, the step does not.
            for k in 0..150 {
                let tt = t + k as f64;
                b.push(UTIL, step, tt, 0.0);
                b.push(CPU, step, tt, 100.0);
                b.push(TEMP, step, tt, temp_base - 10.0);
                if k % 10 == 9 {
                    b.flush(run, out);
                }
            }
            b.flush(run, out);
            t += 150.0;
            end_status = "killed";
            break;
        }
        if let Some(f) = hit(FaultKind::DiskFull)
            && step == f
        {
            log(
                t,
                LogStream::Stdout,
                LogLevel::Info,
                format!("Saving model checkpoint to /ckpt/checkpoint-{step}"),
                out,
            );
            log(
                t,
                LogStream::Stderr,
                LogLevel::Error,
                "Traceback (most recent call last):".into(),
                out,
            );
            log(t, LogStream::Stderr, LogLevel::Error, "  File \"/usr/lib/python3/dist-packages/torch/serialization.py\", line 652, in save".into(), out);
            log(
                t,
                LogStream::Stderr,
                LogLevel::Error,
                "OSError: [Errno 28] No space left on device".into(),
                out,
            );
            end_status = "failed";
            break;
        }
        b.push(LOSS, step, t, loss);
        b.push(GRAD, step, t, grad);
        b.push(LR, step, t, lr);
        b.push(TPS, step, t, tps);
        b.push(STEP_TIME, step, t, step_time);
        b.push(UTIL, step, t, util);
        b.push(MEM, step, t, mem);
        b.push(TEMP, step, t, temp);
        b.push(CLOCK, step, t, clock);
        b.push(CPU, step, t, cpu);
        if step % 50 == 0 {
            b.push(MEM_TOTAL, step, t, mem_total);
        }
        if hit(FaultKind::Fp16Overflow).is_some() || step % 100 == 0 {
            b.push(SCALE, step, t, loss_scale);
        }
        if let Some(code) = xid {
            b.push(XID, step, t, code);
        }
        if step % 200 == 199 {
            // Eval: a pause and a dip in utilisation, an eval loss point.
            let ev = loss * (1.04 + 0.01 * nz(rng));
            b.push(EVAL, step, t, if ev.is_finite() { ev } else { f64::NAN });
            if step % 1000 == 999 {
                log(
                    t,
                    LogStream::Stdout,
                    LogLevel::Info,
                    format!(
                        "{{'eval_loss': {ev:.4}, 'eval_runtime': 12.3, 'epoch': {:.2}}}",
                        s / 1000.0
                    ),
                    out,
                );
            }
        }
        if step % 100 == 0 {
            log(
                t,
                LogStream::Stdout,
                LogLevel::Info,
                format!("step {step} | loss {loss:.4} | lr {lr:.3e} | tokens/s {tps:.0}"),
                out,
            );
        }
        if step % spec.batch_steps.max(1) == spec.batch_steps.max(1) - 1 {
            b.flush(run, out);
        }
        last_t = t;
        t += spec.step_seconds * (1.0 + 0.01 * nz(rng)).max(0.5);
        step += 1;
    }
    b.flush(run, out);
    out.push(Event::RunEnded {
        run: run.to_string(),
        status: end_status.to_string(),
        // The generator's failures are about their signals, not about an
        // exit status; a clean end exits 0.
        exit_code: (end_status == "finished").then_some(0),
        time: last_t.max(t) + 1.0,
    });
}

/// One standard normal draw.
fn nz(rng: &mut StdRng) -> f64 {
    rng.sample::<f64, _>(rand_distr::StandardNormal)
}

fn oom_traceback(
    t: f64,
    rank: u32,
    log: &mut impl FnMut(f64, LogStream, LogLevel, String, &mut Vec<Event>),
    out: &mut Vec<Event>,
) {
    for line in [
        "Traceback (most recent call last):",
        "  File \"train.py\", line 188, in <module>",
        "    outputs = model(**batch)",
        "  File \"/opt/conda/lib/python3.11/site-packages/torch/nn/modules/module.py\", line 1532, in _wrapped_call_impl",
        "    return self._call_impl(*args, **kwargs)",
    ] {
        log(t, LogStream::Stderr, LogLevel::Error, line.to_string(), out);
    }
    log(
        t,
        LogStream::Stderr,
        LogLevel::Error,
        format!(
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU {} has a total capacity of 79.10 GiB of which 1.12 GiB is free. Of the allocated memory 76.40 GiB is allocated by PyTorch, and 1.05 GiB is reserved by PyTorch but unallocated.",
            rank % 8
        ),
        out,
    );
}

#[allow(clippy::too_many_arguments)]
fn hang(
    culprit: u32,
    rank: u32,
    run: &str,
    step: i64,
    t: f64,
    b: &mut Buffers,
    log: &mut impl FnMut(f64, LogStream, LogLevel, String, &mut Vec<Event>),
    out: &mut Vec<Event>,
    rng: &mut StdRng,
) -> f64 {
    // GPUs spin in the collective: utilisation stays high, the step stays put.
    let timeout_s = 120;
    for k in 0..timeout_s + 20 {
        let tt = t + k as f64;
        b.push(UTIL, step, tt, 100.0);
        b.push(CPU, step, tt, 30.0 + rng.gen_range(0.0..5.0));
        b.push(TEMP, step, tt, 66.0 + rng.gen_range(0.0..2.0));
        if k % 10 == 9 {
            b.flush(run, out);
        }
        if k == timeout_s && rank != culprit {
            log(
                tt,
                LogStream::Stderr,
                LogLevel::Error,
                format!(
                    "[rank{rank}]:[E ProcessGroupNCCL.cpp:563] [Rank {rank}] Watchdog caught collective operation timeout: WorkNCCL(SeqNum={}, OpType=ALLREDUCE, NumelIn=1048576, NumelOut=1048576, Timeout(ms)={}) ran for {} milliseconds before timing out.",
                    step * 3 + 7,
                    timeout_s * 1000,
                    timeout_s * 1000 + 17
                ),
                out,
            );
        }
    }
    b.flush(run, out);
    t + (timeout_s + 20) as f64
}

fn generate_service(spec: &JobSpec) -> Scenario {
    let mut sc = Scenario::default();
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let service = spec.name.clone();
    let scope = Scope {
        project: Some(spec.project.clone()),
        service: Some(service.clone()),
        host: Some(format!("{service}-host")),
        ..Default::default()
    };
    let source = format!("service={service}");
    let fault_time = spec.start_time + spec.fault_step as f64;
    if spec.fault == Some(FaultKind::ServingErrors) {
        sc.faults.push(Fault {
            kind: FaultKind::ServingErrors,
            job: service.clone(),
            run: None,
            group: None,
            service: Some(service.clone()),
            start_time: fault_time,
            start_step: None,
        });
    }
    let names = [
        "llm.requests_per_s",
        "llm.errors_per_s",
        "llm.latency_p95_seconds",
        "llm.ttft_seconds",
    ];
    let mut cols: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); names.len()];
    let noise = Normal::new(0.0, 1.0).expect("valid normal");
    for i in 0..spec.steps {
        let t = spec.start_time + i as f64;
        let burst = spec.fault == Some(FaultKind::ServingErrors)
            && (spec.fault_step..spec.fault_step + 60).contains(&i);
        let diurnal = 1.0 + 0.1 * (i as f64 / 600.0).sin();
        let rps = 120.0 * diurnal * (1.0 + 0.05 * noise.sample(&mut rng));
        let errors = if burst {
            45.0 + 5.0 * noise.sample(&mut rng)
        } else {
            (2.0 + 1.2 * noise.sample(&mut rng)).max(0.0)
        };
        let lat = if burst { 2.4 } else { 0.9 } * (1.0 + 0.06 * noise.sample(&mut rng));
        let ttft = if burst { 0.6 } else { 0.25 } * (1.0 + 0.08 * noise.sample(&mut rng));
        for (k, v) in [rps, errors, lat, ttft].into_iter().enumerate() {
            cols[k].0.push(t);
            cols[k].1.push(v);
        }
        if i % 10 == 9 || i == spec.steps - 1 {
            for (k, name) in names.iter().enumerate() {
                let (times, values) = std::mem::take(&mut cols[k]);
                sc.events.push(Event::SourcePoints {
                    source: source.clone(),
                    scope: scope.clone(),
                    series: name.to_string(),
                    times,
                    values,
                });
            }
        }
    }
    sc.sort();
    sc
}
