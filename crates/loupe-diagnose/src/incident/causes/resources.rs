//! Causes in the resources a job runs out of: GPU and host memory (a leak
//! or a single allocation too many) and the disk.

use super::{Cause, CauseKind, Facts, evidence, exit_signal, strings, where_};
use crate::finding::{FindingKind, SeriesRole};
use crate::logsig::LogSignatureKind;

/// GPU memory that trends to its limit; an out-of-memory error after it
/// confirms the leak.
const SCORE_GPU_LEAK: f64 = 0.65;
const PLUS_GPU_LEAK_OOM_AFTER: f64 = 0.3;

/// Host memory that trends to its limit; the kernel's OOM killer confirms it.
const SCORE_HOST_LEAK: f64 = 0.55;
const PLUS_HOST_LEAK_OOM_KILLED: f64 = 0.35;

/// CUDA's own "out of memory" names the failure.
const SCORE_CUDA_OOM: f64 = 0.85;

/// The OOM killer's line names it; a bare SIGKILL exit status only hints.
const SCORE_HOST_OOM: f64 = 0.75;
const SCORE_HOST_OOM_BY_EXIT: f64 = 0.55;

/// "No space left on device" names it; a disk-usage trend only predicts it.
const SCORE_DISK_FULL: f64 = 0.9;
const SCORE_DISK_FULL_TREND: f64 = 0.6;

pub(super) fn gpu_leak(f: &Facts) -> Option<Cause> {
    let trend = f.first(FindingKind::TrendToLimit, SeriesRole::GpuMemory)?;
    let oom = f.logs(LogSignatureKind::CudaOom);
    let oom_after = oom.iter().find(|o| o.time >= trend.time).copied();
    let mut score: f64 = SCORE_GPU_LEAK;
    if oom_after.is_some() {
        score += PLUS_GPU_LEAK_OOM_AFTER;
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

pub(super) fn host_leak(f: &Facts) -> Option<Cause> {
    let trend = f
        .first(FindingKind::TrendToLimit, SeriesRole::ProcessMemory)
        .or_else(|| f.first(FindingKind::TrendToLimit, SeriesRole::HostMemory))?;
    let killed = f.logs(LogSignatureKind::OomKiller);
    let mut score: f64 = SCORE_HOST_LEAK;
    if !killed.is_empty() {
        score += PLUS_HOST_LEAK_OOM_KILLED;
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

pub(super) fn cuda_oom(f: &Facts) -> Option<Cause> {
    let oom = f.logs(LogSignatureKind::CudaOom);
    let first = *oom.first()?;
    Some(Cause {
        kind: CauseKind::CudaOutOfMemory,
        title: "Out of GPU memory".into(),
        score: SCORE_CUDA_OOM,
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

pub(super) fn host_oom(f: &Facts) -> Option<Cause> {
    let mut killed = f.logs(LogSignatureKind::OomKiller);
    // A bare SIGKILL exit status (137, -9) is weaker evidence of the same.
    let by_exit = killed.is_empty();
    killed.extend(exit_signal(f, &["SIGKILL"]));
    let first = *killed.first()?;
    Some(Cause {
        kind: CauseKind::HostOutOfMemory,
        title: "Host out of memory: the kernel killed the process".into(),
        score: if by_exit {
            SCORE_HOST_OOM_BY_EXIT
        } else {
            SCORE_HOST_OOM
        },
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

pub(super) fn disk_full(f: &Facts) -> Option<Cause> {
    let logs = f.logs(LogSignatureKind::DiskFull);
    let trend = f.first(FindingKind::TrendToLimit, SeriesRole::DiskUsage);
    let first = logs.first().copied().or(trend)?;
    Some(Cause {
        kind: CauseKind::DiskFull,
        title: "Disk full".into(),
        score: if logs.is_empty() {
            SCORE_DISK_FULL_TREND
        } else {
            SCORE_DISK_FULL
        },
        explanation: format!("the disk filled up: {}", first.detail),
        fixes: strings(&[
            "Free space: delete old checkpoints, keep the last N (save_total_limit)",
            "Write checkpoints to a larger volume",
            "Watch disk usage with loupe agent and an alert rule",
        ]),
        evidence: evidence(logs.into_iter().take(3).chain(trend)),
    })
}
