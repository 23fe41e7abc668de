//! Causes in the hardware and the group: a GPU that faults (Xid, ECC), runs
//! hot or slow, a rank the others wait for, a collective that hangs, the
//! network between nodes.

use std::collections::BTreeSet;

use super::{Cause, CauseKind, Facts, XID_GPU_LOST, XID_PCIE_FATAL_TIMEOUT, evidence, strings};
use crate::finding::{Finding, FindingKind, SeriesRole};
use crate::logsig::{LogSignatureKind, XidOrigin};

/// A hardware, link or driver Xid or ECC errors; the job slowing down or a
/// Python exception after it makes it surer.
const SCORE_HARDWARE_FAULT: f64 = 0.9;
const PLUS_HARDWARE_FAULT_CONSEQUENCE: f64 = 0.1;
/// Only Xid codes that are unknown, informational or unused on current GPUs.
const SCORE_HARDWARE_FAULT_HINT: f64 = 0.6;

/// A slow rank whose GPU runs hot, throttles or clocks down.
const SCORE_THERMAL_STRAGGLER: f64 = 0.6;
const PLUS_THERMAL_STRAGGLER_HOT: f64 = 0.2;
const PLUS_THERMAL_STRAGGLER_THROTTLED: f64 = 0.15;

/// A GPU over its temperature limit or hotter than its peers.
const SCORE_OVERHEATING: f64 = 0.45;

/// A rank slower than its peers, with no reason seen.
const SCORE_STRAGGLER: f64 = 0.5;

/// Ranks that stop together, NCCL's watchdog timeouts; a failed GPU behind
/// them is the root (the hardware rule's), so it lowers this one.
const SCORE_COLLECTIVE_HANG: f64 = 0.5;
const PLUS_COLLECTIVE_HANG_TIMEOUTS: f64 = 0.3;
const PLUS_COLLECTIVE_HANG_STALLED_RANKS: f64 = 0.15;
const MINUS_COLLECTIVE_HANG_HARDWARE: f64 = 0.2;
/// Stalled ranks that make a hang of the group without a timeout line.
const HANG_MIN_STALLED_RUNS: usize = 2;

/// NCCL's network errors.
const SCORE_NETWORK: f64 = 0.7;

pub(super) fn hardware_fault(f: &Facts) -> Option<Cause> {
    // Hardware, link, driver and firmware codes, and codes newer than the
    // catalogue; application codes are the CUDA-error rule's and a lost GPU
    // (79, 167) the lost-GPU rule's.
    let xid: Vec<&Finding> = f
        .logs(LogSignatureKind::Xid)
        .into_iter()
        .filter(|x| {
            x.attributes.origin != Some(XidOrigin::Application)
                && !matches!(
                    x.attributes.code,
                    Some(XID_GPU_LOST | XID_PCIE_FATAL_TIMEOUT)
                )
        })
        .collect();
    let known = xid.iter().any(|x| {
        matches!(
            x.attributes.origin,
            Some(XidOrigin::Hardware | XidOrigin::Link | XidOrigin::Driver)
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
    let mut score: f64 = SCORE_HARDWARE_FAULT;
    if slow || !f.logs(LogSignatureKind::PythonException).is_empty() {
        score += PLUS_HARDWARE_FAULT_CONSEQUENCE;
    }
    if ecc.is_empty() && ecc_series.is_empty() && xid_series.is_empty() && !known {
        // Only codes that are unknown, informational (45, 154) or unused on
        // current GPUs: a hint, not proof.
        score = SCORE_HARDWARE_FAULT_HINT;
    }
    let code = first
        .attributes
        .code
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
    match (&first.attributes.action, first.attributes.code) {
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

pub(super) fn thermal_straggler(f: &Facts) -> Option<Cause> {
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
    let mut score: f64 = SCORE_THERMAL_STRAGGLER;
    if hot.iter().any(|x| x.role == SeriesRole::GpuTemperature) {
        score += PLUS_THERMAL_STRAGGLER_HOT;
    }
    if hot
        .iter()
        .any(|x| x.role == SeriesRole::GpuThrottle || x.role == SeriesRole::GpuClock)
    {
        score += PLUS_THERMAL_STRAGGLER_THROTTLED;
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

pub(super) fn overheating(f: &Facts) -> Option<Cause> {
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
        score: SCORE_OVERHEATING,
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

pub(super) fn straggler(f: &Facts) -> Option<Cause> {
    let slow = slow_rank(f)?;
    let who = member_name(slow);
    Some(Cause {
        kind: CauseKind::Straggler,
        title: format!("Straggler: {who} is slower than the others"),
        score: SCORE_STRAGGLER,
        explanation: format!("{who}: {}; the whole job runs at its pace.", slow.detail),
        fixes: strings(&[
            "Compare that rank's host: CPU load, other processes, NIC errors, GPU clocks",
            "Check the data shard of that rank for longer samples",
            "Restart without the node if it persists",
        ]),
        evidence: evidence([slow]),
    })
}

pub(super) fn collective_hang(f: &Facts) -> Option<Cause> {
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
    if timeouts.is_empty() && stalled_runs.len() < HANG_MIN_STALLED_RUNS {
        return None;
    }
    let mut score: f64 = SCORE_COLLECTIVE_HANG;
    if !timeouts.is_empty() {
        score += PLUS_COLLECTIVE_HANG_TIMEOUTS;
    }
    if stalled_runs.len() >= HANG_MIN_STALLED_RUNS {
        score += PLUS_COLLECTIVE_HANG_STALLED_RANKS;
    }
    let hardware = !f.logs(LogSignatureKind::Xid).is_empty()
        || !f.logs(LogSignatureKind::EccError).is_empty()
        || !f
            .metric(FindingKind::Threshold, SeriesRole::GpuXid)
            .is_empty();
    if hardware {
        // The hang is the consequence of a GPU that failed; the hardware
        // rule names the root.
        score -= MINUS_COLLECTIVE_HANG_HARDWARE;
    }
    // The rank that progressed last: the one whose step stopped lowest (it
    // never reached the collective the others wait in).
    let laggard = stalls
        .iter()
        .filter_map(|s| Some((s.attributes.last_step?, *s)))
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

pub(super) fn network(f: &Facts) -> Option<Cause> {
    let net = f.logs(LogSignatureKind::NcclNetwork);
    let first = *net.first()?;
    Some(Cause {
        kind: CauseKind::NetworkFault,
        title: "Network error between nodes (NCCL)".into(),
        score: SCORE_NETWORK,
        explanation: format!("NCCL reported network errors: {}", first.detail),
        fixes: strings(&[
            "Check the InfiniBand/RoCE links of the nodes involved (ibstat, ibv_devinfo, switch counters)",
            "Check NCCL_SOCKET_IFNAME / NCCL_IB_HCA point at the right interfaces",
            "Drain the node whose link flaps",
        ]),
        evidence: evidence(net.into_iter().take(3)),
    })
}
