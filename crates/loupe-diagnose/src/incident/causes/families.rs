//! Causes read from log signatures alone: the failure families of the
//! corpus vocabulary (CUDA program errors, a lost GPU, data loaders,
//! storage, checkpoints, the installation, launchers and schedulers,
//! serving engines, NaN/Inf, user code), a fatal signal, a recurring error
//! template, and a non-zero exit that nothing explains. Scores say how specific the evidence is: a line that names
//! the failure (a time limit, a lost GPU) outranks one that only shows its
//! consequence (a Python traceback, an exit code).

use super::{
    Cause, CauseKind, Facts, XID_GPU_LOST, XID_PCIE_FATAL_TIMEOUT, evidence, exit_signal, strings,
};
use crate::finding::{Finding, FindingKind, NonFiniteValue, SeriesRole};
use crate::logsig::{LogSignatureKind as Sig, XidOrigin};

/// Scores, highest first: a named failure beats its consequences.
const SCORE_TIME_LIMIT: f64 = 0.95;
const SCORE_GPU_LOST: f64 = 0.97;
const SCORE_DATALOADER: f64 = 0.86;
const SCORE_CHECKPOINT: f64 = 0.84;
const SCORE_CUDA_ERROR: f64 = 0.83;
const SCORE_ENVIRONMENT: f64 = 0.8;
const SCORE_STORAGE: f64 = 0.76;
const SCORE_NON_FINITE: f64 = 0.72;
/// The same when the loss series itself showed the NaN/Inf: the
/// divergence rule reads the series (the step, the gradients before it;
/// 0.6 and up), so the logs' account steps back below it.
const SCORE_NON_FINITE_BESIDE_SERIES: f64 = SCORE_NON_FINITE - 0.2;
const SCORE_LAUNCHER: f64 = 0.7;
const SCORE_SERVING: f64 = 0.66;
const SCORE_USER_CODE: f64 = 0.45;
const SCORE_CRASH: f64 = 0.4;
/// A fatal signal named in the output; only in the exit status, less sure.
const SCORE_FATAL_SIGNAL: f64 = 0.7;
const SCORE_FATAL_SIGNAL_BY_EXIT: f64 = 0.5;
/// A template of unknown error lines that repeats: a lead, not a cause.
const SCORE_RECURRING_ERROR: f64 = 0.3;

/// Exception types that report another process's failure or a stop, not
/// a bug in the user's code.
const NOT_USER_CODE: &[&str] = &[
    "ChildFailedError",
    "CalledProcessError",
    "SystemExit",
    "KeyboardInterrupt",
    "ProcessExitedException",
    "ProcessRaisedException",
];

/// Where launchers' own frames live: a traceback ending there reports a
/// child's failure.
const LAUNCHER_FRAMES: &[&str] = &[
    "distributed/elastic/",
    "distributed/run.py",
    "distributed/launcher/",
    "accelerate/commands/",
    "deepspeed/launcher/",
    "subprocess.py",
    // The launchers' console scripts (a traceback cut short may show
    // nothing below them).
    "bin/torchrun",
    "bin/accelerate",
    "bin/deepspeed",
    "distributed/launch.py",
];

/// One family's cause: what it is and what to try.
struct Family {
    sig: Sig,
    kind: CauseKind,
    score: f64,
    title: &'static str,
    why: &'static str,
    fixes: &'static [&'static str],
}

const FAMILIES: &[Family] = &[
    Family {
        sig: Sig::TimeLimit,
        kind: CauseKind::TimeLimit,
        score: SCORE_TIME_LIMIT,
        title: "The scheduler ended the job (time limit or preemption)",
        why: "the scheduler stopped the job",
        fixes: &[
            "Resume from the last checkpoint (save one more often than the time limit: e.g. every 30 min with --time=24:00:00)",
            "Ask for a longer limit (sbatch --time) or a non-preemptible partition/QOS",
            "Handle the warning signal: sbatch --signal=B:USR1@300 and save a checkpoint in the handler",
        ],
    },
    Family {
        sig: Sig::GpuLost,
        kind: CauseKind::GpuLost,
        score: SCORE_GPU_LOST,
        title: "A GPU was lost: the driver can no longer reach it",
        why: "the GPU stopped answering the driver",
        fixes: &[
            "Drain the node from the scheduler (scontrol update nodename=NODE state=drain reason=gpu-lost)",
            "Reboot the node; check dmesg for Xid 79 and PCIe AER errors, and the BMC event log for power or thermal events",
            "Run nvidia-smi -q and dcgmi diag -r 3 after the reboot; RMA the GPU if it falls off again",
            "Restart the job from its last checkpoint on healthy nodes",
        ],
    },
    Family {
        sig: Sig::DataloaderFailure,
        kind: CauseKind::DataloaderFailure,
        score: SCORE_DATALOADER,
        title: "A data-loader worker died",
        why: "a DataLoader worker process failed",
        fixes: &[
            "Bus error: the workers ran out of shared memory; raise it (docker run --shm-size=16g, or a bigger /dev/shm)",
            "Killed: the host ran out of RAM; lower num_workers or prefetch_factor, and load data memory-mapped",
            "Segmentation fault: reproduce with num_workers=0 to get the real traceback; check native decoders (PIL, OpenCV, decord)",
            "Timed out: raise the DataLoader timeout or speed up the transform",
        ],
    },
    Family {
        sig: Sig::CheckpointCorrupt,
        kind: CauseKind::CheckpointCorrupt,
        score: SCORE_CHECKPOINT,
        title: "A checkpoint or weights file cannot be loaded",
        why: "loading a checkpoint or weights file failed",
        fixes: &[
            "Check the file's size and checksum against its source (sha256sum); a truncated download or a save cut off by a crash is the usual cause",
            "Re-download it (huggingface-cli download --force-download) or resume from the previous checkpoint",
            "Size mismatch: the checkpoint belongs to another model config (vocab size, layers); load it with the matching config",
            "Save checkpoints atomically (write to a temporary name, then rename) so a crash never leaves a half-written one",
        ],
    },
    Family {
        sig: Sig::CudaError,
        kind: CauseKind::CudaError,
        score: SCORE_CUDA_ERROR,
        title: "CUDA error in a kernel (illegal access, assert or launch failure)",
        why: "a GPU kernel or library call failed",
        fixes: &[
            "Rerun with CUDA_LAUNCH_BLOCKING=1 so the traceback points at the failing kernel",
            "Run a few steps under compute-sanitizer (memcheck) to find the out-of-bounds access",
            "Device-side assert: check indices against their sizes (labels < num_classes, token ids < vocab size)",
            "Check that the custom kernels (flash-attn, apex, bitsandbytes) were built for this GPU and torch/CUDA version",
        ],
    },
    Family {
        sig: Sig::EnvironmentError,
        kind: CauseKind::EnvironmentError,
        score: SCORE_ENVIRONMENT,
        title: "Installation problem: a library, driver or kernel image does not match",
        why: "the software installation does not fit together",
        fixes: &[
            "Undefined symbol / no kernel image: rebuild the extension against the installed torch and CUDA (pip install --no-build-isolation --force-reinstall)",
            "Compare versions: python -c 'import torch; print(torch.__version__, torch.version.cuda)' and nvidia-smi (driver's CUDA version must be ≥ the toolkit's)",
            "Missing libraries: install the CUDA runtime the package expects, or fix LD_LIBRARY_PATH",
            "No module named X: install it in the environment the job runs in (which python; pip show X)",
        ],
    },
    Family {
        sig: Sig::StorageError,
        kind: CauseKind::StorageError,
        score: SCORE_STORAGE,
        title: "Storage error: a file could not be read or written",
        why: "the file system refused or failed a read or write",
        fixes: &[
            "I/O error: check dmesg for disk or network-filesystem errors on that node; retry on another node",
            "Read-only or stale file system: remount, or write to another volume",
            "Permission denied: check the owner and mode of the target directory (ls -ld) and the job's user",
        ],
    },
    Family {
        sig: Sig::LauncherFailure,
        kind: CauseKind::LauncherFailure,
        score: SCORE_LAUNCHER,
        title: "The launcher could not start or keep the job",
        why: "the launcher or scheduler failed",
        fixes: &[
            "Port in use: pick a free --master_port (or --rdzv-endpoint host:0 for a random one) and kill leftover processes of a previous run",
            "Rendezvous failures: check that every node reaches MASTER_ADDR:MASTER_PORT (nc -zv) and set NCCL_SOCKET_IFNAME/GLOO_SOCKET_IFNAME to the right interface",
            "Node failures: drain the node (scontrol show node NODE for the reason) and resubmit",
        ],
    },
    Family {
        sig: Sig::ServingFailure,
        kind: CauseKind::ServingErrors,
        score: SCORE_SERVING,
        title: "The inference engine failed",
        why: "the serving engine died or could not load the model",
        fixes: &[
            "Find the engine's first error above this line (often CUDA OOM or a kernel error) and fix that",
            "Lower --gpu-memory-utilization / --max-model-len / --max-num-seqs, or use more tensor-parallel GPUs",
            "Check that the model, its config and the engine version match (a model the engine version does not support)",
        ],
    },
];

pub(super) fn rules(f: &Facts) -> Vec<Cause> {
    let mut out: Vec<Cause> = FAMILIES
        .iter()
        .filter_map(|fam| family_cause(f, fam))
        .collect();
    out.extend(xid_lost(f));
    out.extend(xid_application(f));
    out.extend(non_finite(f));
    out.extend(user_code(f));
    out.extend(crash(f));
    out
}

pub(super) fn fatal_signal(f: &Facts) -> Option<Cause> {
    let mut sig = f.logs(Sig::FatalSignal);
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
            first.attributes.signal.as_deref().unwrap_or("a signal")
        ),
        score: if by_exit {
            SCORE_FATAL_SIGNAL_BY_EXIT
        } else {
            SCORE_FATAL_SIGNAL
        },
        explanation: first.detail.clone(),
        fixes: strings(&[
            "SIGSEGV: run with faulthandler (python -X faulthandler) and check native extension versions (CUDA, NCCL, torch)",
            "SIGKILL: usually the OOM killer or the scheduler (time or memory limit): check dmesg and the scheduler's logs",
        ]),
        evidence: evidence(sig.into_iter().take(3)),
    })
}

pub(super) fn recurring_error(f: &Facts) -> Option<Cause> {
    let t = f.logs(Sig::ErrorTemplate);
    let first = *t.first()?;
    Some(Cause {
        kind: CauseKind::RecurringError,
        title: "A recurring error in the logs".into(),
        score: SCORE_RECURRING_ERROR,
        explanation: first.detail.clone(),
        fixes: strings(&["Read the grouped error lines in the logs tab"]),
        evidence: evidence(t.into_iter().take(3)),
    })
}

fn exit_of<'a>(f: &Facts<'a>) -> Option<&'a Finding> {
    f.logs(Sig::ExitStatus).into_iter().next()
}

fn family_cause(f: &Facts, fam: &Family) -> Option<Cause> {
    let found = f.logs(fam.sig);
    let first = *found.first()?;
    let mut expl = format!("{}: {}", fam.why, line_of(first));
    if let Some(e) = exit_of(f) {
        expl.push_str(&format!("; {}", e.detail));
    }
    expl.push('.');
    Some(Cause {
        kind: fam.kind,
        title: fam.title.into(),
        score: fam.score,
        explanation: expl,
        fixes: strings(fam.fixes),
        evidence: evidence(found.into_iter().take(3).chain(exit_of(f))),
    })
}

/// The line a family finding matched, or its title.
fn line_of(x: &Finding) -> String {
    x.attributes
        .line
        .clone()
        .unwrap_or_else(|| x.detail.clone())
}

/// Xid codes whose immediate action is a reboot: the GPU is gone (79 and
/// the PCIe fatal timeout 167).
fn xid_lost(f: &Facts) -> Option<Cause> {
    let lost: Vec<&Finding> = f
        .logs(Sig::Xid)
        .into_iter()
        .filter(|x| {
            matches!(
                x.attributes.code,
                Some(XID_GPU_LOST | XID_PCIE_FATAL_TIMEOUT)
            )
        })
        .collect();
    let first = *lost.first()?;
    let action = first
        .attributes
        .action
        .as_deref()
        .unwrap_or("drain and reboot the node");
    Some(Cause {
        kind: CauseKind::GpuLost,
        title: "A GPU fell off the bus".into(),
        score: SCORE_GPU_LOST,
        explanation: format!("{}. NVIDIA's action: {action}", first.detail),
        fixes: strings(&[
            "Drain the node from the scheduler so no job lands on it",
            "Reboot the node (a GPU reset does not bring back a GPU that left the bus)",
            "Check the system event log and PCIe AER messages (dmesg | grep -i aer), power and seating; RMA the GPU if it recurs",
            "Restart the job from its last checkpoint on healthy nodes",
        ]),
        evidence: evidence(lost.into_iter().take(3)),
    })
}

/// Xid codes NVIDIA attributes to the application (13, 31, 43, 137…).
fn xid_application(f: &Facts) -> Option<Cause> {
    let app: Vec<&Finding> = f
        .logs(Sig::Xid)
        .into_iter()
        .filter(|x| x.attributes.origin == Some(XidOrigin::Application))
        .collect();
    let first = *app.first()?;
    let action = first
        .attributes
        .action
        .as_deref()
        .unwrap_or("debug the application");
    Some(Cause {
        kind: CauseKind::CudaError,
        title: "The program faulted on the GPU (application Xid)".into(),
        score: SCORE_CUDA_ERROR,
        explanation: format!(
            "{}: NVIDIA attributes this code to the application. {action}",
            first.detail
        ),
        fixes: strings(&[
            "Rerun with CUDA_LAUNCH_BLOCKING=1 and under compute-sanitizer (memcheck) to find the faulting kernel",
            "Check custom CUDA extensions and their build against this GPU and driver",
            "If the same GPU shows it for unrelated programs, drain the node and run dcgmi diag -r 3",
        ]),
        evidence: evidence(app.into_iter().take(3)),
    })
}

/// NaN/Inf in the loss or gradients, from the logs (the series' own
/// findings are the divergence rule's).
fn non_finite(f: &Facts) -> Option<Cause> {
    let nan: Vec<&Finding> = f
        .logs(Sig::NanInLogs)
        .into_iter()
        .chain(
            f.logs(Sig::LossScaleOverflow)
                .into_iter()
                .filter(|x| x.attributes.value == Some(NonFiniteValue::NaN)),
        )
        .collect();
    let first = *nan.first()?;
    let metric = f.first(FindingKind::NonFinite, SeriesRole::Loss).is_some();
    Some(Cause {
        kind: CauseKind::NonFiniteLoss,
        title: "The loss or the gradients became NaN/Inf".into(),
        score: if metric {
            SCORE_NON_FINITE_BESIDE_SERIES
        } else {
            SCORE_NON_FINITE
        },
        explanation: format!("the run reported a non-finite value: {}.", first.detail),
        fixes: strings(&[
            "Resume from the last checkpoint before the first NaN with a lower learning rate (try half) and gradient clipping at 1.0",
            "Find the operation that made it: torch.autograd.set_detect_anomaly(True) for a few steps around it",
            "Check the batch at that step for bad inputs (empty sequences, log(0), division by zero, extreme labels)",
            "In bf16, keep the loss, softmax and norms in fp32 (autocast does; custom ops may not)",
        ]),
        evidence: evidence(nan.into_iter().take(3)),
    })
}

/// A Python exception from the user's code that no other signature
/// explains.
fn user_code(f: &Facts) -> Option<Cause> {
    let exc: Vec<&Finding> = f
        .logs(Sig::PythonException)
        .into_iter()
        .filter(|x| {
            // A launcher's own traceback (torchrun, accelerate, deepspeed
            // re-raising a child's failure) is not the user's code.
            let frame = x.attributes.frame.as_deref().unwrap_or("");
            if LAUNCHER_FRAMES.iter().any(|l| frame.contains(l)) {
                return false;
            }
            let ty = x.attributes.exception_type.as_deref().unwrap_or("");
            let last = ty.rsplit('.').next().unwrap_or(ty);
            !NOT_USER_CODE.contains(&last)
        })
        .collect();
    let last = *exc.last()?;
    let ty = last
        .attributes
        .exception_type
        .clone()
        .unwrap_or_else(|| "an exception".into());
    let frame = last
        .attributes
        .frame
        .as_ref()
        .map(|fr| format!(" Innermost frame: {fr}."))
        .unwrap_or_default();
    Some(Cause {
        kind: CauseKind::UserCodeError,
        title: format!("The program raised {ty}"),
        score: SCORE_USER_CODE,
        explanation: format!("{}.{frame}", last.detail),
        fixes: strings(&[
            "Read the innermost frame of the traceback and the values it used (shapes, keys, types)",
            "Reproduce on one process without the launcher (python train.py with the same arguments and a tiny dataset)",
            "Check the library versions the code was written for (pip freeze against its requirements)",
        ]),
        evidence: evidence(exc.into_iter().rev().take(2).chain(exit_of(f))),
    })
}

/// A non-zero exit that nothing in the output explains.
fn crash(f: &Facts) -> Option<Cause> {
    let exit = exit_of(f)?;
    let code = exit
        .attributes
        .exit_code
        .map_or_else(|| "non-zero".to_owned(), |c| c.to_string());
    let last = exit
        .attributes
        .last_errors
        .as_deref()
        .and_then(|l| l.lines().last())
        .map(|l| format!(" The last error-looking line: \"{l}\"."))
        .unwrap_or_else(|| " No line of the output looks like an error.".into());
    Some(Cause {
        kind: CauseKind::Crash,
        title: format!("Crashed with exit code {code}, cause unknown"),
        score: SCORE_CRASH,
        explanation: format!(
            "{}, and no known failure shows in its output.{last}",
            capitalised(&exit.detail)
        ),
        fixes: strings(&[
            "Look further up the log of the first rank that failed (torchrun's \"Root Cause\" names it) for its own traceback",
            "Rerun with PYTHONFAULTHANDLER=1 and TORCHELASTIC_ERROR_FILE set so a native crash or a child's error is recorded",
            "Check the node's kernel log (dmesg -T) around the exit time for OOM kills, Xid or I/O errors",
        ]),
        evidence: evidence([exit]),
    })
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
