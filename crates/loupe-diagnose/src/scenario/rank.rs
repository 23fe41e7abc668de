//! One rank of a generated training job, step by step: its healthy readings
//! (warm-up bumps, learning-rate schedule, eval dips, allocator sawtooth),
//! the faults that bend them, and what it reports — points in batches, log
//! lines, how it ends.
//!
//! The random draws happen in a fixed order (healthy readings, then the
//! faults in [`RankGen::inject`]'s order, then the eval point and the clock),
//! so a seed always gives the same job.

use std::ops::ControlFlow;

use rand::Rng;
use rand::rngs::StdRng;

use super::{Event, FaultKind, Injected, JobSpec};
use loupe_model::{LogLevel, LogStream};

/// GPU memory of every generated GPU.
const MEM_TOTAL_BYTES: f64 = 80e9;
/// The peak of the learning-rate schedule.
const PEAK_LR: f64 = 3e-4;
/// The NCCL watchdog's timeout in a hang.
const HANG_TIMEOUT_S: i64 = 120;

/// Generates one rank's events into `out`.
pub(super) fn rank_events(
    spec: &JobSpec,
    faults: &[Injected],
    rank: u32,
    run: &str,
    rng: &mut StdRng,
    out: &mut Vec<Event>,
) {
    RankGen::new(spec, faults, rank, run, rng, out).run();
}

/// One series' points not yet sent.
struct Series {
    name: String,
    steps: Vec<i64>,
    times: Vec<f64>,
    values: Vec<f64>,
}

impl Series {
    fn new(name: impl Into<String>) -> Self {
        Series {
            name: name.into(),
            steps: Vec::new(),
            times: Vec::new(),
            values: Vec::new(),
        }
    }

    fn push(&mut self, step: i64, t: f64, v: f64) {
        self.steps.push(step);
        self.times.push(t);
        self.values.push(v);
    }

    fn flush(&mut self, run: &str, out: &mut Vec<Event>) {
        if self.values.is_empty() {
            return;
        }
        out.push(Event::Points {
            run: run.to_string(),
            series: self.name.clone(),
            steps: std::mem::take(&mut self.steps),
            times: std::mem::take(&mut self.times),
            values: std::mem::take(&mut self.values),
        });
    }
}

/// The series a rank reports.
struct RankSeries {
    loss: Series,
    grad_norm: Series,
    lr: Series,
    tokens_per_s: Series,
    step_time: Series,
    gpu_util: Series,
    gpu_mem: Series,
    gpu_mem_total: Series,
    gpu_temp: Series,
    gpu_clock: Series,
    host_cpu: Series,
    eval_loss: Series,
    loss_scale: Series,
    xid: Series,
}

impl RankSeries {
    fn new(gpu: u32) -> Self {
        RankSeries {
            loss: Series::new("train/loss"),
            grad_norm: Series::new("train/grad_norm"),
            lr: Series::new("train/lr"),
            tokens_per_s: Series::new("perf/tokens_per_s"),
            step_time: Series::new("perf/step_time"),
            gpu_util: Series::new(format!("gpu/{gpu}/utilization")),
            gpu_mem: Series::new(format!("gpu/{gpu}/memory_used_bytes")),
            gpu_mem_total: Series::new(format!("gpu/{gpu}/memory_total_bytes")),
            gpu_temp: Series::new(format!("gpu/{gpu}/temperature")),
            gpu_clock: Series::new(format!("gpu/{gpu}/sm_clock_mhz")),
            host_cpu: Series::new("sys/host.cpu_percent"),
            eval_loss: Series::new("eval/loss"),
            loss_scale: Series::new("train/loss_scale"),
            xid: Series::new(format!("gpu/{gpu}/xid")),
        }
    }

    /// Sends every series with points, always in this order (an SDK's
    /// flush of one batch).
    fn flush(&mut self, run: &str, out: &mut Vec<Event>) {
        for s in [
            &mut self.loss,
            &mut self.grad_norm,
            &mut self.lr,
            &mut self.tokens_per_s,
            &mut self.step_time,
            &mut self.gpu_util,
            &mut self.gpu_mem,
            &mut self.gpu_mem_total,
            &mut self.gpu_temp,
            &mut self.gpu_clock,
            &mut self.host_cpu,
            &mut self.eval_loss,
            &mut self.loss_scale,
            &mut self.xid,
        ] {
            s.flush(run, out);
        }
    }
}

/// What one step measures, before and after the faults bend it.
struct Reading {
    loss: f64,
    grad_norm: f64,
    lr: f64,
    tokens_per_s: f64,
    step_time: f64,
    gpu_util: f64,
    gpu_mem: f64,
    gpu_temp: f64,
    gpu_clock: f64,
    host_cpu: f64,
    xid: Option<f64>,
}

/// The job's faults as one rank sees them.
#[derive(Clone, Copy)]
struct RankFaults<'a> {
    faults: &'a [Injected],
    rank: u32,
    single_run: bool,
}

impl RankFaults<'_> {
    fn find(&self, k: FaultKind) -> Option<Injected> {
        self.faults.iter().find(|x| x.kind == k).copied()
    }

    /// The fault's step when it hits this rank (rank faults)…
    fn hit(&self, k: FaultKind) -> Option<i64> {
        self.find(k)
            .filter(|x| x.rank == self.rank || self.single_run)
            .map(|x| x.step)
    }

    /// …or the whole job.
    fn job(&self, k: FaultKind) -> Option<i64> {
        self.find(k).map(|x| x.step)
    }

    /// The rank a fault hits (0 when the job has no such fault).
    fn culprit(&self, k: FaultKind) -> u32 {
        self.find(k).map_or(0, |x| x.rank)
    }

    fn length(&self, k: FaultKind) -> i64 {
        self.find(k).map_or(0, |x| x.length)
    }
}

/// A fault that ends the run, with the status it ends in.
type Ends = ControlFlow<&'static str>;

/// The state of one rank's generation.
struct RankGen<'a> {
    spec: &'a JobSpec,
    faults: RankFaults<'a>,
    rank: u32,
    gpu: u32,
    run: &'a str,
    rng: &'a mut StdRng,
    out: &'a mut Vec<Event>,
    series: RankSeries,
    temp_base: f64,
    /// The current step's time.
    t: f64,
    step: i64,
    loss_scale: f64,
    leak_bytes: f64,
}

impl<'a> RankGen<'a> {
    fn new(
        spec: &'a JobSpec,
        faults: &'a [Injected],
        rank: u32,
        run: &'a str,
        rng: &'a mut StdRng,
        out: &'a mut Vec<Event>,
    ) -> Self {
        let gpu = rank % spec.ranks_per_node.max(1);
        RankGen {
            spec,
            faults: RankFaults {
                faults,
                rank,
                single_run: spec.ranks == 1,
            },
            rank,
            gpu,
            run,
            rng,
            out,
            series: RankSeries::new(gpu),
            temp_base: 64.0 + (rank % 7) as f64 * 1.5,
            t: spec.start_time,
            step: 0,
            loss_scale: 65536.0,
            leak_bytes: 0.0,
        }
    }

    /// The step loop: healthy readings, faults, points and log lines, until
    /// the last step, a stop, or a fault that ends the run.
    fn run(mut self) {
        let spec = self.spec;
        let mut restarted = false;
        let mut end_status: &str = "finished";
        let mut last_t = self.t;
        self.log(
            LogStream::Stdout,
            LogLevel::Info,
            format!(
                "[rank{}] starting training: {} steps",
                self.rank, spec.steps
            ),
        );
        while self.step < spec.steps {
            if let Some((at, status)) = &spec.stop
                && self.step >= *at
            {
                end_status = status.as_str();
                break;
            }
            // Healthy restart from a checkpoint: a pause, then 150 steps again.
            if let Some(r) = spec.restart_at
                && self.step == r
                && !restarted
            {
                restarted = true;
                self.resume_from_checkpoint(r);
            }
            let mut x = self.healthy_reading();
            if let ControlFlow::Break(status) = self.inject(&mut x) {
                end_status = status;
                break;
            }
            self.record(&x);
            let batch = spec.batch_steps.max(1);
            if self.step % batch == batch - 1 {
                self.flush();
            }
            last_t = self.t;
            self.t += spec.step_seconds * (1.0 + 0.01 * nz(self.rng)).max(0.5);
            self.step += 1;
        }
        self.flush();
        self.out.push(Event::RunEnded {
            run: self.run.to_string(),
            status: end_status.to_string(),
            // The generator's failures are about their signals, not about an
            // exit status; a clean end exits 0.
            exit_code: (end_status == "finished").then_some(0),
            time: last_t.max(self.t) + 1.0,
        });
    }

    fn resume_from_checkpoint(&mut self, at: i64) {
        self.flush();
        self.t += 45.0;
        self.log(
            LogStream::Stdout,
            LogLevel::Info,
            format!("resuming from checkpoint at step {}", at - 150),
        );
        self.step = at - 150;
    }

    /// A healthy step: the schedule, the loss curve, and noise.
    fn healthy_reading(&mut self) -> Reading {
        let spec = self.spec;
        let rng = &mut *self.rng;
        let s = self.step as f64;
        let w = spec.warmup_steps.max(1) as f64;
        let lr = if s < w {
            PEAK_LR * (s + 1.0) / w
        } else {
            let p = ((s - w) / (spec.steps as f64 - w).max(1.0)).min(1.0);
            PEAK_LR * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
        };
        let mut loss = 2.2 + 6.0 * (-s / 350.0).exp() + 0.25 * (-((s - 80.0) / 30.0).powi(2)).exp();
        loss *= 1.0 + 0.015 * nz(rng);
        let grad_norm = (1.0 + 1.5 * (-s / 250.0).exp()) * (0.12 * nz(rng)).exp();
        let tokens_per_s = 48_000.0 * (1.0 + 0.02 * nz(rng));
        let step_time = 32.0 * 2048.0 / 48_000.0 * (1.0 + 0.02 * nz(rng));
        let gpu_util = (95.0 + 1.5 * nz(rng)).min(100.0);
        let gpu_mem = 60e9 * (1.0 - (-s / 15.0).exp())
            + if self.step % 5 == 0 { 6e8 } else { 0.0 }
            + 1e8 * nz(rng).abs();
        let gpu_temp = self.temp_base + 0.8 * nz(rng);
        let gpu_clock = 1980.0 + 8.0 * nz(rng);
        let host_cpu = 35.0 + 4.0 * nz(rng);
        Reading {
            loss,
            grad_norm,
            lr,
            tokens_per_s,
            step_time,
            gpu_util,
            gpu_mem,
            gpu_temp,
            gpu_clock,
            host_cpu,
            xid: None,
        }
    }

    /// Applies every fault of the job to this step, in a fixed order; the
    /// first that ends the run stops the others.
    fn inject(&mut self, x: &mut Reading) -> Ends {
        // Training dynamics.
        self.loss_spike(x);
        self.nan_divergence(x)?;
        self.fp16_overflow(x)?;
        // Resources.
        self.input_bound(x);
        self.gpu_memory_leak(x)?;
        self.cuda_oom()?;
        // Hardware and the group.
        self.thermal_straggler(x);
        self.hardware_fault(x)?;
        self.collective_hang()?;
        // The process.
        self.soft_hang()?;
        self.disk_full()
    }

    fn loss_spike(&mut self, x: &mut Reading) {
        let Some(f) = self.faults.hit(FaultKind::LossSpike) else {
            return;
        };
        if self.step == f - 1 {
            x.grad_norm *= 9.0;
        }
        if self.step >= f {
            x.loss *= 1.0 + 1.2 * (-((self.step - f) as f64) / 8.0).exp();
        }
    }

    fn nan_divergence(&mut self, x: &mut Reading) -> Ends {
        let step = self.step;
        let Some(f) = self.faults.hit(FaultKind::NanDivergence) else {
            return Ends::Continue(());
        };
        if step < f - 40 {
            return Ends::Continue(());
        }
        x.grad_norm *= 1.12f64.powi((step - (f - 40)) as i32);
        if step >= f - 15 {
            x.loss *= 1.0 + 0.08 * (step - (f - 15)) as f64;
        }
        if step >= f {
            x.loss = f64::NAN;
            x.grad_norm = f64::NAN;
        }
        if step == f + 60 {
            self.log(
                LogStream::Stderr,
                LogLevel::Error,
                "ValueError: loss is nan, stopping training".into(),
            );
            return Ends::Break("failed");
        }
        Ends::Continue(())
    }

    fn fp16_overflow(&mut self, x: &mut Reading) -> Ends {
        let step = self.step;
        let Some(f) = self.faults.hit(FaultKind::Fp16Overflow) else {
            return Ends::Continue(());
        };
        if step < f - 30 {
            return Ends::Continue(());
        }
        if step % 3 == 0 && self.loss_scale > 1.0 {
            let next = (self.loss_scale / 2.0).max(1.0);
            self.log(
                LogStream::Stdout,
                LogLevel::Info,
                format!(
                    "[deepspeed] OVERFLOW! Rank {} Skipping step. Attempted loss scale: {:.0}, reducing to {next:.0}",
                    self.rank, self.loss_scale
                ),
            );
            self.loss_scale = next;
        }
        if step >= f {
            x.loss = f64::NAN;
        }
        if step == f + 40 {
            return Ends::Break("failed");
        }
        Ends::Continue(())
    }

    fn input_bound(&mut self, x: &mut Reading) {
        let k = FaultKind::InputBound;
        if let Some(f) = self.faults.job(k)
            && (f..f + self.faults.length(k)).contains(&self.step)
        {
            x.tokens_per_s *= 0.55;
            x.step_time /= 0.55;
            x.gpu_util = 50.0 + 6.0 * nz(self.rng);
            x.host_cpu = 97.0 + 1.5 * nz(self.rng);
        }
    }

    fn gpu_memory_leak(&mut self, x: &mut Reading) -> Ends {
        let k = FaultKind::GpuMemoryLeak;
        if let Some(f) = self.faults.hit(k)
            && self.step >= f
        {
            self.leak_bytes += 20e9 / self.faults.length(k).max(1) as f64;
            x.gpu_mem += self.leak_bytes;
            if x.gpu_mem >= MEM_TOTAL_BYTES * 0.985 {
                self.oom_traceback();
                return Ends::Break("failed");
            }
        }
        Ends::Continue(())
    }

    fn cuda_oom(&mut self) -> Ends {
        if self.faults.hit(FaultKind::CudaOom) == Some(self.step) {
            self.oom_traceback();
            return Ends::Break("failed");
        }
        Ends::Continue(())
    }

    fn thermal_straggler(&mut self, x: &mut Reading) {
        let k = FaultKind::ThermalStraggler;
        if let Some(f) = self.faults.job(k)
            && (f..f.saturating_add(self.faults.length(k))).contains(&self.step)
        {
            x.tokens_per_s *= 0.8;
            if self.rank == self.faults.culprit(k) {
                x.gpu_temp = 89.0 + 0.6 * nz(self.rng);
                x.gpu_clock = 1410.0 + 15.0 * nz(self.rng);
                x.step_time *= 1.35;
            }
        }
    }

    /// Xid 79 on the culprit, which crashes two steps later; the others
    /// wait in the next collective and time out.
    fn hardware_fault(&mut self, x: &mut Reading) -> Ends {
        let k = FaultKind::HardwareFault;
        let step = self.step;
        let Some(f) = self.faults.job(k) else {
            return Ends::Continue(());
        };
        if step < f {
            return Ends::Continue(());
        }
        let culprit = self.faults.culprit(k);
        if self.rank != culprit {
            if step >= f + 2 {
                self.hang(culprit);
                return Ends::Break("failed");
            }
            return Ends::Continue(());
        }
        if step == f {
            self.log(
                LogStream::Stderr,
                LogLevel::Error,
                format!(
                    "NVRM: Xid (PCI:0000:{:02x}:00): 79, pid=41{:03}, GPU has fallen off the bus.",
                    0x1b + self.gpu * 0x10,
                    self.rank
                ),
            );
            x.xid = Some(79.0);
        }
        if step == f + 2 {
            for line in [
                "Traceback (most recent call last):",
                "  File \"train.py\", line 211, in <module>",
                "    loss.backward()",
                "RuntimeError: CUDA error: unspecified launch failure",
            ] {
                self.log(LogStream::Stderr, LogLevel::Error, line.into());
            }
            return Ends::Break("failed");
        }
        Ends::Continue(())
    }

    fn collective_hang(&mut self) -> Ends {
        let k = FaultKind::CollectiveHang;
        let culprit = self.faults.culprit(k);
        // The culprit stops first; the others one collective later.
        if let Some(f) = self.faults.job(k)
            && self.step >= f + if self.rank == culprit { 0 } else { 1 }
        {
            self.hang(culprit);
            return Ends::Break("failed");
        }
        Ends::Continue(())
    }

    /// Telemetry keeps flowing, the step does not.
    fn soft_hang(&mut self) -> Ends {
        if self.faults.hit(FaultKind::SoftHang) != Some(self.step) {
            return Ends::Continue(());
        }
        let (step, t) = (self.step, self.t);
        for k in 0..150 {
            let tt = t + k as f64;
            self.series.gpu_util.push(step, tt, 0.0);
            self.series.host_cpu.push(step, tt, 100.0);
            self.series.gpu_temp.push(step, tt, self.temp_base - 10.0);
            if k % 10 == 9 {
                self.flush();
            }
        }
        self.flush();
        self.t += 150.0;
        Ends::Break("killed")
    }

    /// A checkpoint save fails with "No space left on device".
    fn disk_full(&mut self) -> Ends {
        let step = self.step;
        if self.faults.hit(FaultKind::DiskFull) != Some(step) {
            return Ends::Continue(());
        }
        self.log(
            LogStream::Stdout,
            LogLevel::Info,
            format!("Saving model checkpoint to /ckpt/checkpoint-{step}"),
        );
        for line in [
            "Traceback (most recent call last):",
            "  File \"/usr/lib/python3/dist-packages/torch/serialization.py\", line 652, in save",
            "OSError: [Errno 28] No space left on device",
        ] {
            self.log(LogStream::Stderr, LogLevel::Error, line.into());
        }
        Ends::Break("failed")
    }

    /// The step's points, the eval point and the progress lines.
    fn record(&mut self, x: &Reading) {
        let (step, t) = (self.step, self.t);
        let s = &mut self.series;
        s.loss.push(step, t, x.loss);
        s.grad_norm.push(step, t, x.grad_norm);
        s.lr.push(step, t, x.lr);
        s.tokens_per_s.push(step, t, x.tokens_per_s);
        s.step_time.push(step, t, x.step_time);
        s.gpu_util.push(step, t, x.gpu_util);
        s.gpu_mem.push(step, t, x.gpu_mem);
        s.gpu_temp.push(step, t, x.gpu_temp);
        s.gpu_clock.push(step, t, x.gpu_clock);
        s.host_cpu.push(step, t, x.host_cpu);
        if step % 50 == 0 {
            s.gpu_mem_total.push(step, t, MEM_TOTAL_BYTES);
        }
        if self.faults.hit(FaultKind::Fp16Overflow).is_some() || step % 100 == 0 {
            s.loss_scale.push(step, t, self.loss_scale);
        }
        if let Some(code) = x.xid {
            s.xid.push(step, t, code);
        }
        if step % 200 == 199 {
            // Eval: a pause and a dip in utilisation, an eval loss point.
            let ev = x.loss * (1.04 + 0.01 * nz(self.rng));
            s.eval_loss
                .push(step, t, if ev.is_finite() { ev } else { f64::NAN });
            if step % 1000 == 999 {
                self.log(
                    LogStream::Stdout,
                    LogLevel::Info,
                    format!(
                        "{{'eval_loss': {ev:.4}, 'eval_runtime': 12.3, 'epoch': {:.2}}}",
                        step as f64 / 1000.0
                    ),
                );
            }
        }
        if step % 100 == 0 {
            self.log(
                LogStream::Stdout,
                LogLevel::Info,
                format!(
                    "step {step} | loss {:.4} | lr {:.3e} | tokens/s {:.0}",
                    x.loss, x.lr, x.tokens_per_s
                ),
            );
        }
    }

    /// A hang in a collective: GPUs spin (utilisation stays high, the step
    /// stays put), and every rank but the culprit logs NCCL's watchdog
    /// timeout. Moves the clock past it.
    fn hang(&mut self, culprit: u32) {
        let (rank, step, t) = (self.rank, self.step, self.t);
        for k in 0..HANG_TIMEOUT_S + 20 {
            let tt = t + k as f64;
            self.series.gpu_util.push(step, tt, 100.0);
            let cpu = 30.0 + self.rng.gen_range(0.0..5.0);
            self.series.host_cpu.push(step, tt, cpu);
            let temp = 66.0 + self.rng.gen_range(0.0..2.0);
            self.series.gpu_temp.push(step, tt, temp);
            if k % 10 == 9 {
                self.flush();
            }
            if k == HANG_TIMEOUT_S && rank != culprit {
                self.log_at(
                    tt,
                    LogStream::Stderr,
                    LogLevel::Error,
                    format!(
                        "[rank{rank}]:[E ProcessGroupNCCL.cpp:563] [Rank {rank}] Watchdog caught collective operation timeout: WorkNCCL(SeqNum={}, OpType=ALLREDUCE, NumelIn=1048576, NumelOut=1048576, Timeout(ms)={}) ran for {} milliseconds before timing out.",
                        step * 3 + 7,
                        HANG_TIMEOUT_S * 1000,
                        HANG_TIMEOUT_S * 1000 + 17
                    ),
                );
            }
        }
        self.flush();
        self.t = t + (HANG_TIMEOUT_S + 20) as f64;
    }

    /// CUDA's out-of-memory traceback, as PyTorch prints it.
    fn oom_traceback(&mut self) {
        for line in [
            "Traceback (most recent call last):",
            "  File \"train.py\", line 188, in <module>",
            "    outputs = model(**batch)",
            "  File \"/opt/conda/lib/python3.11/site-packages/torch/nn/modules/module.py\", line 1532, in _wrapped_call_impl",
            "    return self._call_impl(*args, **kwargs)",
        ] {
            self.log(LogStream::Stderr, LogLevel::Error, line.to_string());
        }
        self.log(
            LogStream::Stderr,
            LogLevel::Error,
            format!(
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU {} has a total capacity of 79.10 GiB of which 1.12 GiB is free. Of the allocated memory 76.40 GiB is allocated by PyTorch, and 1.05 GiB is reserved by PyTorch but unallocated.",
                self.rank % 8
            ),
        );
    }

    fn flush(&mut self) {
        self.series.flush(self.run, self.out);
    }

    /// A log line at the current step's time.
    fn log(&mut self, stream: LogStream, level: LogLevel, text: String) {
        self.log_at(self.t, stream, level, text);
    }

    fn log_at(&mut self, time: f64, stream: LogStream, level: LogLevel, text: String) {
        self.out.push(Event::Log {
            run: self.run.to_string(),
            time,
            stream,
            level,
            text,
        });
    }
}

/// One standard normal draw.
pub(super) fn nz(rng: &mut StdRng) -> f64 {
    rng.sample::<f64, _>(rand_distr::StandardNormal)
}
