//! NVIDIA Xid codes: what each means, where it usually comes from, and what
//! NVIDIA recommends doing about it.
//!
//! The driver writes `NVRM: Xid (PCI:0000:3b:00): 79, ...` to the kernel log
//! when a GPU reports an error. The table covers every code of NVIDIA's Xid
//! catalogue for Ampere and newer GPUs ("Analyzing Xid Errors with the Xid
//! Catalog", docs.nvidia.com/deploy/xid-errors), 1–172: its description,
//! whether the usual origin is the application, the driver or firmware, the
//! hardware or an NVLink link, and the catalogue's immediate action
//! (restart the application, reset the GPU, reboot the node…). Codes the
//! catalogue lists as unused on current GPUs are known as such. The texts
//! are Loupe's own summaries of the catalogue.

use crate::Severity;

/// Where an Xid usually comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XidOrigin {
    /// The program on the GPU (a bad address, an exception in a kernel).
    Application,
    /// The driver, its firmware or the system software.
    Driver,
    /// The GPU, its memory or its PCIe connection.
    Hardware,
    /// An NVLink link or the device at its other end.
    Link,
    /// A consequence or a summary of another Xid (45, 154), or a test event.
    Informational,
    /// Listed as unused on Ampere and newer GPUs (seen on older ones).
    Unused,
}

impl XidOrigin {
    /// Its name in a finding's attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            XidOrigin::Application => "application",
            XidOrigin::Driver => "driver",
            XidOrigin::Hardware => "hardware",
            XidOrigin::Link => "link",
            XidOrigin::Informational => "informational",
            XidOrigin::Unused => "unused",
        }
    }

    /// The origin of a name [`as_str`](Self::as_str) gives.
    pub fn from_name(s: &str) -> Option<XidOrigin> {
        use XidOrigin::*;
        [Application, Driver, Hardware, Link, Informational, Unused]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// NVIDIA's immediate action for a code ("resolution bucket").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XidAction {
    RestartApp,
    ResetGpu,
    /// Reboot the node (restart bare metal).
    RebootNode,
    /// Drain the node's jobs, then reset the GPU.
    DrainAndReset,
    /// Check the board's seating and power connections.
    CheckMechanicals,
    /// Update the driver and firmware.
    UpdateSoftware,
    RestartVm,
    /// No recovery action needed (follow the other Xids, if any).
    Ignore,
    /// No documented action: report it to the vendor.
    ContactSupport,
}

impl XidAction {
    /// What to do, in words.
    pub fn text(self) -> &'static str {
        match self {
            XidAction::RestartApp => {
                "restart the application; no GPU reset is needed (NVIDIA: RESTART_APP)"
            }
            XidAction::ResetGpu => {
                "reset the GPU (nvidia-smi -r -i <gpu>, with nothing running on it) before running on it again (NVIDIA: RESET_GPU)"
            }
            XidAction::RebootNode => {
                "reboot the node; the GPU is unreachable until then (NVIDIA: RESTART_BM)"
            }
            XidAction::DrainAndReset => {
                "drain the node's jobs, then reset the GPU; run field diagnostics (dcgmi diag -r 3) and RMA it if the error returns"
            }
            XidAction::CheckMechanicals => {
                "check the board's seating and its auxiliary power cables (NVIDIA: CHECK_MECHANICALS)"
            }
            XidAction::UpdateSoftware => "update the GPU driver and firmware (NVIDIA: UPDATE_SWFW)",
            XidAction::RestartVm => {
                "restart the virtual machine that owns the GPU (NVIDIA: RESTART_VM)"
            }
            XidAction::Ignore => {
                "no recovery action on its own; act on the other Xids logged with it (NVIDIA: IGNORE)"
            }
            XidAction::ContactSupport => {
                "no documented recovery: collect nvidia-bug-report.sh output and contact the vendor"
            }
        }
    }
}

/// What an Xid code means, where it usually comes from and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XidInfo {
    pub code: u32,
    /// A short description for people.
    pub meaning: &'static str,
    pub origin: XidOrigin,
    /// True when the usual cause is the GPU, its memory or its links rather
    /// than the program or the driver.
    pub hardware: bool,
    /// The immediate action.
    pub immediate: XidAction,
    /// What to do, in words (the immediate action, and what to investigate).
    pub action: &'static str,
}

/// The latest code of the catalogue this table follows; a larger code is
/// newer than Loupe's knowledge.
pub const XID_CATALOGUE_LAST: u32 = 172;

use XidAction::*;
use XidOrigin::*;

/// One row: code, description, origin, immediate action, the advice.
type Row = (u32, &'static str, XidOrigin, XidAction, &'static str);

const APP_BUG: &str = "Debug the program: rerun with CUDA_LAUNCH_BLOCKING=1 and under compute-sanitizer (memcheck) or cuda-gdb; suspect the GPU only if the same GPU shows it for unrelated programs (then run dcgmi diag -r 3).";
const PUSHBUFFER: &str = "Usually the application or driver sent bad work to the GPU: restart it; if it repeats, check the driver version and the PCIe link (dmesg for AER errors).";
const ENGINE: &str = "Restart the application; if it repeats on one GPU, collect nvidia-bug-report.sh and contact support.";
const ECC_DBE: &str = "Drain the node and reset the GPU so the bad memory is remapped (with Xid 63/64: drain and reset); run field diagnostics (dcgmi diag -r 3) and replace the GPU if errors recur.";
const NVLINK: &str = "Drain the node; read the link counters (nvidia-smi nvlink -e -i <gpu>) and the NVSwitch fabric manager logs; reset the GPUs (or reboot), and have the link, board or peer GPU serviced if it recurs — the failing device may be the one at the other end of the link.";
const NVLINK5: &str = "Decode the Xid's IntrInfo and error-status fields with NVIDIA's Xid 144–150 table: fatal subcodes need a GPU reset; non-fatal ones need none. Check the NVLink cabling and the peer device if it repeats.";
const GSP: &str = "Reset the GPU or power-cycle the node; update the driver (GSP firmware ships with it); follow NVIDIA's GPU debug guidelines if it recurs after a power cycle.";
const STOPPED: &str =
    "Reset the GPU before reuse; if it repeats, run dcgmi diag -r 3 and contact support.";
const DRIVER_ONLY: &str =
    "Driver-internal event; no action unless it repeats (then update the driver and report it).";
const UNUSED: &str =
    "Not used on Ampere and newer GPUs; on older GPUs see NVIDIA's archived Xid table.";
const VIDEO: &str = "A video/JPEG/optical-flow engine faulted: restart the application using it; contact support if it repeats.";
const RETIRE: &str = "Memory or resources were retired; reset the GPU at a convenient time so the change takes effect; watch for the failure code that follows.";

/// Sorted by code (looked up by binary search). Codes 1–172.
const TABLE: &[Row] = &[
    (
        1,
        "FIFO method error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        2,
        "FIFO software method error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        3,
        "FIFO unknown method (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        4,
        "FIFO channel busy (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        5,
        "FIFO runout overflow (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        6,
        "FIFO parse error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        7,
        "FIFO page-table error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        8,
        "GPU stopped processing (idle timeout)",
        Application,
        RestartApp,
        "Restart the application; look for hung or very long kernels; contact support if it repeats on one GPU.",
    ),
    (
        9,
        "graphics instance error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        10,
        "graphics single-step error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        11,
        "invalid or corrupted push buffer stream",
        Application,
        RestartApp,
        PUSHBUFFER,
    ),
    (
        12,
        "graphics software method error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        13,
        "graphics engine exception (an out-of-bounds access or illegal instruction in a kernel)",
        Application,
        RestartApp,
        APP_BUG,
    ),
    (
        14,
        "injected (fake) error",
        Informational,
        Ignore,
        "An error injected from user space for testing; nothing to do.",
    ),
    (
        15,
        "scanline timeout (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        16,
        "vblank callback timeout (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        17,
        "parameter error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        18,
        "bus master timeout (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        19,
        "display missed notifier (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        20,
        "MPEG software method error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        21,
        "ME software method error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        22,
        "VP software method error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        23,
        "RC logging enabled (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        24,
        "graphics semaphore timeout (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        25,
        "invalid or illegal push buffer stream",
        Application,
        RestartApp,
        PUSHBUFFER,
    ),
    (
        26,
        "FIFO FBI state timeout (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (27, "VP error (unused)", Unused, ContactSupport, UNUSED),
    (28, "VP2 error (unused)", Unused, ContactSupport, UNUSED),
    (29, "BSP error (unused)", Unused, ContactSupport, UNUSED),
    (
        30,
        "bad address access (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        31,
        "GPU memory page fault (a kernel touched an invalid address)",
        Application,
        RestartApp,
        APP_BUG,
    ),
    (
        32,
        "invalid or corrupted push buffer stream (PCIe DMA fault)",
        Hardware,
        RestartApp,
        "Usually PCIe signal quality rather than the program: restart the application, check dmesg for AER errors on the GPU's slot, reseat or replace the GPU if it repeats.",
    ),
    (33, "SEC error (unused)", Unused, ContactSupport, UNUSED),
    (34, "MSVLD error (unused)", Unused, ContactSupport, UNUSED),
    (35, "MSPDEC error (unused)", Unused, ContactSupport, UNUSED),
    (36, "MSPPP error (unused)", Unused, ContactSupport, UNUSED),
    (
        37,
        "driver firmware error (unimplemented firmware method)",
        Driver,
        Ignore,
        "Usually the application or CUDA calling the driver wrongly; update the driver if it repeats.",
    ),
    (
        38,
        "driver firmware error (watchdog timeout)",
        Driver,
        Ignore,
        "Update the GPU driver and firmware; contact support if it repeats.",
    ),
    (
        39,
        "copy engine 0 exception",
        Application,
        RestartApp,
        ENGINE,
    ),
    (
        40,
        "copy engine 1 exception",
        Application,
        RestartApp,
        ENGINE,
    ),
    (
        41,
        "copy engine 2 exception",
        Application,
        RestartApp,
        ENGINE,
    ),
    (42, "VIC error (unused)", Unused, ContactSupport, UNUSED),
    (
        43,
        "GPU stopped processing: the application hit a fault and its channel was torn down (the GPU stays healthy)",
        Application,
        Ignore,
        "The program faulted (look for the CUDA error it printed); the GPU itself stays usable.",
    ),
    (
        44,
        "graphics engine fault during a context switch",
        Driver,
        Ignore,
        "Contact support if it repeats; restart the application that failed.",
    ),
    (
        45,
        "preemptive clean-up of GPU work after an earlier error, a kill or a reset",
        Informational,
        Ignore,
        "A consequence, not a cause: act on the Xid logged just before it (often 48, 63, 74, 79, 94 or 95); alone it is a killed or interrupted program.",
    ),
    (
        46,
        "GPU stopped processing (GPU timeout)",
        Hardware,
        ResetGpu,
        STOPPED,
    ),
    (47, "NVENC0 error (unused)", Unused, ContactSupport, UNUSED),
    (
        48,
        "double-bit (uncorrectable) ECC error in GPU memory",
        Hardware,
        DrainAndReset,
        ECC_DBE,
    ),
    (
        49,
        "silent running: registry level (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        50,
        "silent running: level change after an error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        51,
        "silent running: stress test failure (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        52,
        "silent running: temperature rise (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        53,
        "silent running: clocks reduced for temperature (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        54,
        "auxiliary power is not connected to the GPU board",
        Hardware,
        CheckMechanicals,
        "Check the board's seating and auxiliary power cables; contact support if they are fine.",
    ),
    (
        55,
        "temperature read error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        56,
        "display channel exception (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        57,
        "framebuffer link training failure (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        58,
        "framebuffer memory error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (59, "PMU error (unused)", Unused, ContactSupport, UNUSED),
    (
        60,
        "video processor (SEC2) exception",
        Driver,
        RestartApp,
        "Restart the application; investigate the software if it repeats.",
    ),
    (
        61,
        "internal micro-controller breakpoint (unused on current GPUs)",
        Hardware,
        ResetGpu,
        "Reset the GPU; update the driver; replace the GPU if it recurs.",
    ),
    (
        62,
        "internal micro-controller halted",
        Hardware,
        ResetGpu,
        "Reset the GPU (or reboot); contact support and replace the GPU if it recurs.",
    ),
    (
        63,
        "GPU memory row remapping or page retirement recorded",
        Hardware,
        Ignore,
        "Bad memory was marked and will be remapped at the next GPU reset; nothing to do now. Watch for Xid 64 (remapping failed).",
    ),
    (
        64,
        "GPU memory row remapping or page retirement failed",
        Hardware,
        DrainAndReset,
        "The GPU could not retire bad memory: drain the node, reset the GPU, check nvidia-smi -q -d ROW_REMAPPER and replace the GPU if it has no spare rows left.",
    ),
    (65, "NVENC1 error (unused)", Unused, ContactSupport, UNUSED),
    (
        66,
        "illegal register access by the driver",
        Driver,
        Ignore,
        "Investigate the software; report it to NVIDIA if it repeats.",
    ),
    (
        67,
        "illegal access by the driver (verification violation)",
        Driver,
        Ignore,
        "Contact support if it repeats.",
    ),
    (
        68,
        "video decoder (NVDEC0) exception",
        Application,
        RestartApp,
        VIDEO,
    ),
    (
        69,
        "graphics engine class error",
        Application,
        RestartApp,
        "Usually the application or CUDA passing bad data: restart it and check the program.",
    ),
    (70, "copy engine 3 error", Application, RestartApp, ENGINE),
    (71, "copy engine 4 error", Application, RestartApp, ENGINE),
    (72, "copy engine 5 error", Application, RestartApp, ENGINE),
    (73, "NVENC2 error (unused)", Unused, ContactSupport, UNUSED),
    (74, "NVLink error", Link, DrainAndReset, NVLINK),
    (75, "copy engine 6 error", Application, RestartApp, ENGINE),
    (76, "copy engine 7 error", Application, RestartApp, ENGINE),
    (77, "copy engine 8 error", Application, RestartApp, ENGINE),
    (
        78,
        "vGPU start error (guest and host drivers incompatible, or vGPU type unsupported)",
        Driver,
        UpdateSoftware,
        "Update the guest and host drivers to matching versions; use a vGPU profile the GPU and guest OS support.",
    ),
    (
        79,
        "GPU has fallen off the bus",
        Hardware,
        RebootNode,
        "The GPU is no longer reachable over PCIe: drain the node and reboot it; check the system event log and PCIe AER messages, power, cooling and seating; RMA the GPU if it recurs.",
    ),
    (
        80,
        "corrupted data sent to the GPU (push buffer CRC mismatch)",
        Application,
        RestartApp,
        PUSHBUFFER,
    ),
    (
        81,
        "VGA subsystem error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (82, "NVJPG0 error", Application, RestartApp, VIDEO),
    (83, "NVDEC1 error", Application, RestartApp, VIDEO),
    (84, "NVDEC2 error", Application, RestartApp, VIDEO),
    (85, "copy engine 9 error", Application, RestartApp, ENGINE),
    (
        86,
        "optical flow accelerator (OFA) exception",
        Application,
        RestartApp,
        VIDEO,
    ),
    (
        87,
        "telemetry driver report (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (88, "NVDEC3 error", Application, RestartApp, VIDEO),
    (89, "NVDEC4 error", Application, RestartApp, VIDEO),
    (
        90,
        "L2 cache error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (91, "reserved (unused)", Unused, ContactSupport, UNUSED),
    (
        92,
        "high rate of single-bit (corrected) ECC errors",
        Hardware,
        Ignore,
        "Corrected for now, but the memory is degrading: schedule a GPU reset and dcgmi diag -r 3; replace the GPU if the rate stays high.",
    ),
    (
        93,
        "InfoROM wear limit reached (non-fatal)",
        Driver,
        Ignore,
        "The InfoROM erase limit set with nvflash was reached; clear it with nvflash --elsessionclear, or report it if that does not help.",
    ),
    (
        94,
        "contained uncorrectable memory error (only the affected application was stopped)",
        Hardware,
        RestartApp,
        "Restart the affected job; reset the GPU when convenient so the memory is remapped; drain and replace the GPU if it recurs.",
    ),
    (
        95,
        "uncontained uncorrectable memory error (every application on the GPU is affected)",
        Hardware,
        ResetGpu,
        "Reset the GPU before running anything on it (drain the node first); replace the GPU if it recurs.",
    ),
    (96, "NVDEC5 error", Application, RestartApp, VIDEO),
    (97, "NVDEC6 error", Application, RestartApp, VIDEO),
    (98, "NVDEC7 error", Application, RestartApp, VIDEO),
    (99, "NVJPG1 error", Application, RestartApp, VIDEO),
    (100, "NVJPG2 error", Application, RestartApp, VIDEO),
    (101, "NVJPG3 error", Application, RestartApp, VIDEO),
    (102, "NVJPG4 error", Application, RestartApp, VIDEO),
    (103, "NVJPG5 error", Application, RestartApp, VIDEO),
    (104, "NVJPG6 error", Application, RestartApp, VIDEO),
    (105, "NVJPG7 error", Application, RestartApp, VIDEO),
    (
        106,
        "SMBPBI test message",
        Informational,
        Ignore,
        "A test message of the out-of-band interface; nothing to do.",
    ),
    (
        107,
        "SMBPBI silent test message",
        Informational,
        Ignore,
        "A test message of the out-of-band interface; nothing to do.",
    ),
    (
        108,
        "NVLink remote translation error (unused)",
        Unused,
        Ignore,
        UNUSED,
    ),
    (
        109,
        "context switch timeout",
        Driver,
        ResetGpu,
        "Reset the GPU; update the driver; contact support if it repeats for unrelated jobs.",
    ),
    (
        110,
        "security fault",
        Hardware,
        ResetGpu,
        "Uncommon without a hardware failure: revert recent hardware changes and cold-reset the system; contact the hardware vendor if it persists.",
    ),
    (
        111,
        "bundle error event (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        112,
        "display supervisor error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        113,
        "DisplayPort link training failure (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        114,
        "display head underflow (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        115,
        "display core channel registers (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        116,
        "display window channel registers (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        117,
        "display cursor channel registers (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        118,
        "display head registers (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        119,
        "GSP (GPU system processor) RPC timeout",
        Hardware,
        ResetGpu,
        GSP,
    ),
    (
        120,
        "GSP (GPU system processor) error",
        Hardware,
        ResetGpu,
        GSP,
    ),
    (
        121,
        "corrected errors on the C2C link to the Grace CPU",
        Link,
        Ignore,
        "Corrected, no operational impact: reset the GPU in a service window so the link retrains; a newer VBIOS may reduce repeats.",
    ),
    (
        122,
        "SPI PMU RPC read failure (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        123,
        "SPI PMU RPC write failure (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        124,
        "SPI PMU RPC erase failure (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (
        125,
        "InfoROM file system error (unused)",
        Unused,
        ContactSupport,
        UNUSED,
    ),
    (126, "copy engine 10 error", Application, RestartApp, ENGINE),
    (127, "copy engine 11 error", Application, RestartApp, ENGINE),
    (128, "copy engine 12 error", Application, RestartApp, ENGINE),
    (129, "copy engine 13 error", Application, RestartApp, ENGINE),
    (130, "copy engine 14 error", Application, RestartApp, ENGINE),
    (131, "copy engine 15 error", Application, RestartApp, ENGINE),
    (132, "copy engine 16 error", Application, RestartApp, ENGINE),
    (133, "copy engine 17 error", Application, RestartApp, ENGINE),
    (134, "copy engine 18 error", Application, RestartApp, ENGINE),
    (135, "copy engine 19 error", Application, RestartApp, ENGINE),
    (
        136,
        "NVLink link training failed",
        Link,
        ResetGpu,
        "Reset the GPU; investigate the link's signal integrity (cables, seating) if it repeats.",
    ),
    (
        137,
        "NVLink privilege error (an illegal peer-to-peer access over NVLink)",
        Application,
        Ignore,
        APP_BUG,
    ),
    (138, "DLA error (unused)", Unused, ContactSupport, UNUSED),
    (
        139,
        "optical flow accelerator 1 error",
        Application,
        RestartApp,
        VIDEO,
    ),
    (
        140,
        "uncorrectable ECC error that escaped page retirement or row remapping",
        Hardware,
        ResetGpu,
        "Reset the GPU; contact the hardware vendor (RMA) if it persists.",
    ),
    (
        141,
        "CUDA fast-path error",
        Driver,
        Ignore,
        "Contact support if it repeats.",
    ),
    (142, "NVENC3 error", Application, ContactSupport, VIDEO),
    (
        143,
        "GPU initialization error",
        Hardware,
        ResetGpu,
        "Reset the GPU (or reboot); contact support if it fails again.",
    ),
    (144, "NVLink SAW error", Link, DrainAndReset, NVLINK5),
    (145, "NVLink RLW error", Link, DrainAndReset, NVLINK5),
    (146, "NVLink TLW error", Link, DrainAndReset, NVLINK5),
    (147, "NVLink TREX error", Link, Ignore, NVLINK5),
    (148, "NVLink NVLPW control error", Link, Ignore, NVLINK5),
    (
        149,
        "NVLink NETIR error (link down or link event)",
        Link,
        DrainAndReset,
        NVLINK5,
    ),
    (150, "NVLink MSE error", Link, ResetGpu, NVLINK5),
    (
        151,
        "key rotation error (confidential computing)",
        Driver,
        RestartVm,
        "Restart the VM that owns the GPU; contact support if it repeats.",
    ),
    (152, "DLA SMMU error", Driver, Ignore, DRIVER_ONLY),
    (153, "DLA timeout", Driver, Ignore, DRIVER_ONLY),
    (
        154,
        "GPU recovery action changed (summarises the action other Xids need)",
        Informational,
        Ignore,
        "Do what the message names: none, drain P2P, drain and reset, GPU reset required, or node reboot required.",
    ),
    (
        155,
        "NVLink link down flagged as intentional (software-defined)",
        Link,
        ResetGpu,
        "Reset the GPU; find out which software or person brought the link down if unexpected.",
    ),
    (156, "resource retirement event", Hardware, ResetGpu, RETIRE),
    (
        157,
        "resource retirement failure (no spare resources left)",
        Hardware,
        Ignore,
        "Workloads may still run but the error may return: plan to replace the GPU.",
    ),
    (158, "GPU fatal timeout", Hardware, ResetGpu, STOPPED),
    (
        159,
        "CHI non-data error on the C2C link",
        Link,
        Ignore,
        "Usually seen with another condition; if UVM or vGPU is used, reset the GPU.",
    ),
    (160, "channel retirement event", Driver, Ignore, RETIRE),
    (
        161,
        "channel retirement failure",
        Driver,
        Ignore,
        "Investigate the software; contact support if it repeats.",
    ),
    (
        162,
        "power-smoothing circuitry re-engaged",
        Informational,
        Ignore,
        "Informational; nothing to do.",
    ),
    (
        163,
        "power-smoothing circuitry disengaged",
        Hardware,
        Ignore,
        "No reset needed; resolve the thermal events if power smoothing is wanted (or reload the driver after a timeout).",
    ),
    (
        164,
        "power-smoothing circuitry near the end of its lifetime",
        Hardware,
        Ignore,
        "Power smoothing will soon be disabled: watch power swings and plan GPU replacement if it is needed.",
    ),
    (
        165,
        "power-smoothing circuitry lifetime exhausted",
        Hardware,
        Ignore,
        "Power smoothing is disabled: make sure the data centre absorbs the power swings, or replace the GPUs.",
    ),
    (
        166,
        "NVLink traffic before encryption was configured (confidential computing)",
        Link,
        Ignore,
        "Confidential-computing mode only: check the link's encryption set-up.",
    ),
    (
        167,
        "PCIe fatal timeout",
        Hardware,
        RebootNode,
        "The PCIe link to the GPU timed out: reboot the node; check AER messages, seating and the riser or switch; RMA the GPU if it recurs.",
    ),
    (
        168,
        "reduced GPU memory capacity (errors in the write-protected region)",
        Hardware,
        ResetGpu,
        "Enable ECC so rows can be remapped, or reboot so the protected region moves; replace the GPU if it recurs.",
    ),
    (
        169,
        "internal micro-controller (SEC2) halted",
        Hardware,
        ResetGpu,
        "Reset the GPU; contact support if it recurs.",
    ),
    (
        170,
        "NVLink interrupt in confidential-computing mode",
        Link,
        Ignore,
        "Confidential-computing mode only: contact support if it repeats.",
    ),
    (
        171,
        "uncorrectable DRAM error (details of an Xid 48)",
        Hardware,
        DrainAndReset,
        ECC_DBE,
    ),
    (
        172,
        "uncorrectable SRAM error (details of an Xid 48)",
        Hardware,
        DrainAndReset,
        "Reset the GPU; check the SRAM error threshold flag (nvidia-smi -q) and run field diagnostics — RMA if it is exceeded.",
    ),
];

fn find(code: u32) -> Option<&'static Row> {
    TABLE
        .binary_search_by_key(&code, |r| r.0)
        .ok()
        .and_then(|i| TABLE.get(i))
}

/// What an Xid code means, where it comes from and what to do. `None` for
/// codes newer than the catalogue Loupe follows.
pub fn xid_meaning(code: u32) -> Option<XidInfo> {
    find(code).map(|&(code, meaning, origin, immediate, action)| XidInfo {
        code,
        meaning,
        origin,
        hardware: matches!(origin, Hardware | Link),
        immediate,
        action,
    })
}

/// How bad an Xid is for a running job: critical when the GPU needs a
/// reset, a reboot or a drain (or is gone), a warning otherwise — an
/// application fault ends the job but says nothing is wrong with the
/// machine, and unknown codes are not assumed to be fatal.
pub(crate) fn xid_severity(code: u32) -> Severity {
    match find(code) {
        Some(&(_, _, origin, action, _)) => match action {
            ResetGpu | RebootNode | DrainAndReset | RestartVm
                if !matches!(origin, Informational | Unused) =>
            {
                Severity::Critical
            }
            // A contained memory error stops the job it hit.
            RestartApp if origin == Hardware => Severity::Critical,
            _ => Severity::Warning,
        },
        None => Severity::Warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_complete() {
        // Binary search needs strictly increasing codes; every catalogue
        // code 1..=172 has a row.
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        let codes: Vec<u32> = TABLE.iter().map(|r| r.0).collect();
        assert_eq!(codes, (1..=XID_CATALOGUE_LAST).collect::<Vec<_>>());
        for r in TABLE {
            assert!(!r.1.is_empty() && !r.4.is_empty(), "{}", r.0);
        }
    }

    #[test]
    fn origins_and_actions_follow_the_catalogue() {
        for code in [13, 31, 43] {
            assert_eq!(xid_meaning(code).map(|i| i.origin), Some(Application));
        }
        let lost = xid_meaning(79).expect("known");
        assert!(lost.hardware);
        assert_eq!(lost.immediate, RebootNode);
        assert_eq!(xid_meaning(48).map(|i| i.immediate), Some(DrainAndReset));
        assert_eq!(xid_meaning(95).map(|i| i.immediate), Some(ResetGpu));
        assert_eq!(xid_meaning(45).map(|i| i.origin), Some(Informational));
        assert_eq!(xid_meaning(74).map(|i| i.origin), Some(Link));
        assert_eq!(xid_meaning(XID_CATALOGUE_LAST + 1), None);
        assert_eq!(xid_severity(79), Severity::Critical);
        assert_eq!(xid_severity(94), Severity::Critical);
        assert_eq!(xid_severity(13), Severity::Warning);
        assert_eq!(xid_severity(63), Severity::Warning);
        assert_eq!(xid_severity(1_000_000), Severity::Warning);
    }
}
