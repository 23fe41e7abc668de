//! Causes in the training loop itself: its numerics (a learning rate too
//! high, divergence, an fp16 loss scale that collapses) and its progress
//! (waiting for input, a loop that stalls while the process lives).

use super::{Cause, CauseKind, Facts, RunContext, evidence, strings, where_};
use crate::Severity;
use crate::finding::{Direction, Finding, FindingKind, SeriesRole};
use crate::logsig::LogSignatureKind;

/// The loss scaler's own lines show the collapse; a NaN beside them, the
/// scaler at its minimum and an fp16 config each make it surer.
const SCORE_FP_OVERFLOW: f64 = 0.6;
const PLUS_FP_OVERFLOW_SCALER_LINES: f64 = 0.2;
const PLUS_FP_OVERFLOW_MIN_SCALE: f64 = 0.15;
const PLUS_FP_OVERFLOW_FP16_CONFIG: f64 = 0.1;

/// A loss scale at or below 1 cannot back off any further: every overflow
/// from there skips a step for good (the bound the scaler signature's
/// severity uses too).
const LOSS_SCALE_AT_MINIMUM: f64 = 1.0;

/// A NaN loss (in the series or the logs) is divergence by itself; a loss
/// that only climbs away from its best is less sure.
const SCORE_DIVERGENCE_NAN: f64 = 0.6;
const SCORE_DIVERGENCE_CLIMB: f64 = 0.45;
const PLUS_DIVERGENCE_GRAD_BEFORE: f64 = 0.25;
const PLUS_DIVERGENCE_CLIMB_AND_NAN: f64 = 0.1;

/// A loss jump; a gradient-norm spike just before it and a learning rate at
/// its peak are the learning rate's signature.
const SCORE_LEARNING_RATE: f64 = 0.5;
const PLUS_LEARNING_RATE_GRAD_BEFORE: f64 = 0.3;
const PLUS_LEARNING_RATE_AT_PEAK: f64 = 0.1;
/// The learning rate counts as "at its peak" from this fraction of it.
const AT_PEAK_FRACTION: f64 = 0.9;

/// Throughput down; GPU utilisation down and CPU saturated with it (and
/// both together) say the GPUs wait for input.
const SCORE_INPUT_BOUND: f64 = 0.4;
const PLUS_INPUT_BOUND_GPU_IDLE: f64 = 0.25;
const PLUS_INPUT_BOUND_CPU_BUSY: f64 = 0.2;
const PLUS_INPUT_BOUND_BOTH: f64 = 0.1;

/// A stalled step while the process keeps reporting.
const SCORE_SOFT_HANG: f64 = 0.55;

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

pub(super) fn learning_rate(f: &Facts) -> Option<Cause> {
    let loss = loss_trouble(f)?;
    if f.first(FindingKind::NonFinite, SeriesRole::Loss).is_some() {
        // A NaN loss is the divergence rule's.
        return None;
    }
    let grad = grad_before(f, loss.time);
    let at_peak = loss
        .attributes
        .lr_fraction_of_peak
        .is_some_and(|x| x >= AT_PEAK_FRACTION);
    let mut score = SCORE_LEARNING_RATE;
    if grad.is_some() {
        score += PLUS_LEARNING_RATE_GRAD_BEFORE;
    }
    if at_peak {
        score += PLUS_LEARNING_RATE_AT_PEAK;
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

pub(super) fn divergence(f: &Facts) -> Option<Cause> {
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
        SCORE_DIVERGENCE_NAN
    } else {
        SCORE_DIVERGENCE_CLIMB
    };
    if grad.is_some() {
        score += PLUS_DIVERGENCE_GRAD_BEFORE;
    }
    if div.is_some() && nan.is_some() {
        score += PLUS_DIVERGENCE_CLIMB_AND_NAN;
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

pub(super) fn fp_overflow(f: &Facts, ctx: &RunContext) -> Option<Cause> {
    let nan = f
        .first(FindingKind::NonFinite, SeriesRole::Loss)
        .or_else(|| f.first(FindingKind::Divergence, SeriesRole::Loss))
        .or_else(|| f.logs(LogSignatureKind::NanInLogs).first().copied());
    // Overflows of a start-up search (minor findings) are no collapse;
    // NaN in Megatron's local grad norm is the non-finite-loss rule's.
    let overflow: Vec<&Finding> = f
        .logs(LogSignatureKind::LossScaleOverflow)
        .into_iter()
        .filter(|o| o.severity > Severity::Info && o.attributes.value.is_none())
        .collect();
    let min_scale = overflow.iter().any(|o| {
        o.severity == Severity::Critical
            || o.attributes
                .loss_scale
                .is_some_and(|s| s <= LOSS_SCALE_AT_MINIMUM)
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
    let mut score: f64 = SCORE_FP_OVERFLOW;
    if !overflow.is_empty() {
        score += PLUS_FP_OVERFLOW_SCALER_LINES;
    }
    if min_scale {
        score += PLUS_FP_OVERFLOW_MIN_SCALE;
    }
    if ctx.fp16 {
        score += PLUS_FP_OVERFLOW_FP16_CONFIG;
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

pub(super) fn input_bound(f: &Facts) -> Option<Cause> {
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
    let mut score: f64 = SCORE_INPUT_BOUND;
    if util.is_some() {
        score += PLUS_INPUT_BOUND_GPU_IDLE;
    }
    if cpu.is_some() {
        score += PLUS_INPUT_BOUND_CPU_BUSY;
    }
    if util.is_some() && cpu.is_some() {
        score += PLUS_INPUT_BOUND_BOTH;
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

pub(super) fn soft_hang(f: &Facts) -> Option<Cause> {
    let stalls: Vec<&Finding> = f
        .all
        .iter()
        .filter(|x| x.kind == FindingKind::Stall)
        .collect();
    let first = *stalls.first()?;
    Some(Cause {
        kind: CauseKind::SoftHang,
        title: "Training loop stalled while the process lives".into(),
        score: SCORE_SOFT_HANG,
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
