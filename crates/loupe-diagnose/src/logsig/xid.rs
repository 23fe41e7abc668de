//! NVIDIA Xid codes: what each means and what to do about it.
//!
//! The driver writes `NVRM: Xid (PCI:0000:3b:00): 79, ...` to the kernel log
//! when a GPU reports an error. Some codes point at the hardware (the node
//! should be drained and the GPU checked or replaced), others at the
//! application or the driver. The texts below are Loupe's own summaries.

use crate::Severity;

/// What an Xid code means, and whether it points at hardware (drain the
/// node) or software.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XidInfo {
    pub code: u32,
    /// A short description for people.
    pub meaning: &'static str,
    /// True when the usual cause is the GPU, its memory or its links rather
    /// than the program or the driver.
    pub hardware: bool,
    /// What to do.
    pub action: &'static str,
}

/// One row: the public info and how bad the event is for a running job.
struct Row {
    info: XidInfo,
    severity: Severity,
}

const fn row(
    code: u32,
    meaning: &'static str,
    hardware: bool,
    severity: Severity,
    action: &'static str,
) -> Row {
    Row {
        info: XidInfo {
            code,
            meaning,
            hardware,
            action,
        },
        severity,
    }
}

use Severity::{Critical, Warning};

/// Sorted by code (looked up by binary search).
const TABLE: &[Row] = &[
    row(
        8,
        "GPU stopped responding (a kernel or the driver timed out)",
        false,
        Warning,
        "Check the application for hung or very long kernels and the driver version; if it repeats on one GPU only, run diagnostics on that GPU.",
    ),
    row(
        13,
        "graphics engine exception (usually an out-of-bounds access in a kernel)",
        false,
        Warning,
        "Debug the application (compute-sanitizer, CUDA_LAUNCH_BLOCKING=1); if it occurs across many jobs on one GPU, run the GPU's field diagnostics.",
    ),
    row(
        31,
        "GPU memory page fault (a kernel touched an invalid address)",
        false,
        Warning,
        "Usually a bug in the application or a library: run it under compute-sanitizer; suspect the hardware only if one GPU shows it for unrelated jobs.",
    ),
    row(
        32,
        "invalid or corrupted command stream sent to the GPU",
        false,
        Warning,
        "Check the driver and the PCIe link (dmesg for AER errors); reseat or replace the GPU if it repeats.",
    ),
    row(
        38,
        "driver firmware error",
        false,
        Warning,
        "Update the GPU driver and firmware; reset the GPU if it stays unhealthy.",
    ),
    row(
        43,
        "GPU stopped processing (the application's channel was reset after a fault)",
        false,
        Warning,
        "The application faulted; fix the program. The GPU itself stays usable.",
    ),
    row(
        45,
        "preemptive clean-up of GPU work after an earlier error",
        false,
        Warning,
        "A consequence, not a cause: look for the Xid that came just before it (often 48, 63, 74, 79 or 94).",
    ),
    row(
        48,
        "double-bit (uncorrectable) ECC error in GPU memory",
        true,
        Critical,
        "Drain the node, reset the GPU so the bad memory is retired or remapped, and replace the GPU if errors recur.",
    ),
    row(
        61,
        "internal micro-controller breakpoint or warning",
        true,
        Critical,
        "Drain the node and reset the GPU; update the driver; replace the GPU if it recurs.",
    ),
    row(
        62,
        "internal micro-controller halted",
        true,
        Critical,
        "Drain the node and reset the GPU (or reboot); replace the GPU if it recurs.",
    ),
    row(
        63,
        "ECC page retirement or row remapping recorded",
        true,
        Warning,
        "Memory was marked bad and will be retired or remapped: reset the GPU at the next convenient moment so it takes effect, and watch for Xid 64.",
    ),
    row(
        64,
        "ECC page retirement or row remapping failed",
        true,
        Critical,
        "The GPU could not retire bad memory: drain the node and replace the GPU.",
    ),
    row(
        68,
        "video decoder (NVDEC) exception",
        false,
        Warning,
        "Usually the decoding application or driver; update the driver, and check the GPU if it repeats for unrelated jobs.",
    ),
    row(
        69,
        "graphics engine class error",
        false,
        Warning,
        "Usually the application or driver; reset the GPU if it stays in a bad state.",
    ),
    row(
        74,
        "NVLink error",
        true,
        Critical,
        "Drain the node; check the NVLink counters (nvidia-smi nvlink -e) and the NVSwitch/fabric manager; reset the GPUs, and replace the GPU or board if it recurs.",
    ),
    row(
        79,
        "GPU has fallen off the bus",
        true,
        Critical,
        "The GPU is no longer reachable over PCIe: drain the node, reboot it, and check power, cooling and seating; replace the GPU if it recurs.",
    ),
    row(
        92,
        "high rate of single-bit (corrected) ECC errors",
        true,
        Warning,
        "Corrected for now, but the memory is degrading: schedule a GPU reset and diagnostics, and replace the GPU if the rate stays high.",
    ),
    row(
        94,
        "contained uncorrectable ECC error (only the affected process was stopped)",
        true,
        Critical,
        "Restart the affected job; reset the GPU when it is idle so the memory is remapped; drain and replace if it recurs.",
    ),
    row(
        95,
        "uncontained uncorrectable ECC error (every process on the GPU is affected)",
        true,
        Critical,
        "Drain the node and reset the GPU before running anything on it; replace the GPU if it recurs.",
    ),
    row(
        109,
        "context switch timeout",
        false,
        Warning,
        "Usually an application or driver problem; update the driver; check the GPU if it repeats for unrelated jobs.",
    ),
    row(
        119,
        "GSP (GPU system processor) RPC timeout",
        true,
        Critical,
        "Drain the node and reset the GPU or reboot; update the driver (or disable GSP firmware if advised for the driver version); replace the GPU if it recurs.",
    ),
    row(
        120,
        "GSP (GPU system processor) error",
        true,
        Critical,
        "Drain the node and reset the GPU or reboot; update the driver; replace the GPU if it recurs.",
    ),
];

fn find(code: u32) -> Option<&'static Row> {
    TABLE
        .binary_search_by_key(&code, |r| r.info.code)
        .ok()
        .and_then(|i| TABLE.get(i))
}

/// What an Xid code means, and whether it points at hardware (drain the
/// node) or software. `None` for codes Loupe does not know.
pub fn xid_meaning(code: u32) -> Option<XidInfo> {
    find(code).map(|r| r.info)
}

/// How bad an Xid is for a running job: critical when it points at the
/// hardware and stops work, a warning otherwise (and for unknown codes).
pub(crate) fn xid_severity(code: u32) -> Severity {
    find(code).map_or(Warning, |r| r.severity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        // Binary search needs strictly increasing codes.
        assert!(TABLE.windows(2).all(|w| w[0].info.code < w[1].info.code));
    }

    #[test]
    fn required_codes_are_known() {
        for code in [
            13, 31, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 119, 120,
        ] {
            let info = xid_meaning(code).expect("known code");
            assert_eq!(info.code, code);
            assert!(!info.meaning.is_empty() && !info.action.is_empty());
        }
        assert!(xid_meaning(79).is_some_and(|i| i.hardware));
        assert!(xid_meaning(13).is_some_and(|i| !i.hardware));
        assert_eq!(xid_meaning(1_000_000), None);
        assert_eq!(xid_severity(79), Critical);
        assert_eq!(xid_severity(1_000_000), Warning);
    }
}
