//! The failure families beyond the classic signatures: CUDA program errors,
//! a GPU that is gone, data-loader workers, storage and checkpoints, the
//! installation, launchers and schedulers, serving engines, and a non-zero
//! exit code's conventions. Each is one pattern on the lowercased line,
//! checked in order after the classic signatures (so `CUDA error:
//! uncorrectable ECC` stays an ECC error and `CUDA error: out of memory` an
//! OOM).

use super::{LogMatch, LogSignatureKind as Kind, clip};
use crate::Severity;
use crate::finding::FindingAttributes;
use regex::RegexSet;
use std::sync::LazyLock;

/// One family: its kind, the pattern on the lowercased line, the title and
/// how bad it is.
struct Family {
    kind: Kind,
    pattern: String,
    title: &'static str,
    severity: Severity,
}

fn family(kind: Kind, title: &'static str, severity: Severity, patterns: &[&str]) -> Family {
    Family {
        kind,
        pattern: patterns.join("|"),
        title,
        severity,
    }
}

/// Every family's pattern in one set: a line is read once, whatever the
/// number of families.
static SET: LazyLock<RegexSet> = LazyLock::new(|| {
    // Constant patterns: a malformed one fails every test at once.
    RegexSet::new(FAMILIES.iter().map(|f| f.pattern.as_str())).expect("constant patterns")
});

use Severity::Critical;

/// In order: the first that matches wins.
static FAMILIES: LazyLock<Vec<Family>> = LazyLock::new(|| {
    vec![
        family(
            Kind::GpuLost,
            "GPU lost: no longer reachable by the driver",
            Critical,
            &[
                r"fallen off the bus",
                r"\bgpu is lost\b",
                r"unable to determine the device handle for gpu",
                r"rminitadapter failed",
                r"rpc event history|timeout waiting for rpc from gsp|gsp rpc timeout",
                r"nvml.*unknown error|unknown error.*nvml",
                r"failed to initialize nvml: unknown error",
                r"cudaerrordevicesunavailable|cuda-capable device\(s\) is/are busy or unavailable",
            ],
        ),
        family(
            Kind::DataloaderFailure,
            "A data-loader worker failed",
            Critical,
            &[
                r"dataloader worker \(pid\(?s?\)? ?[\d, ]*\)? (?:is killed|exited unexpectedly)",
                r"dataloader worker \(pid \d+\) is killed by signal",
                r"unexpected bus error encountered in worker",
                r"dataloader timed out after",
                r"worker timed out after \d+ seconds",
                r"dataloader worker \(pid\(s\)",
            ],
        ),
        family(
            Kind::CudaError,
            "CUDA error in a kernel or library call",
            Critical,
            &[
                r"illegal memory access",
                r"an illegal instruction was encountered",
                r"device-side assert",
                r"misaligned address",
                r"unspecified launch failure",
                r"cublas_status_(?:execution_failed|internal_error|not_supported|invalid_value|mapping_error|arch_mismatch)",
                r"cudnn_status_(?:execution_failed|internal_error|bad_param|not_supported|mapping_error)",
                r"cuda error: (?:invalid argument|invalid configuration argument|too many resources requested for launch|launch timed out|an illegal|operation not permitted when stream is capturing|invalid resource handle|the launch timed out)",
                r"hip error: (?:an illegal|operation not permitted|invalid)",
                r"assertion `[^`]*` failed\.?$",
                r"\bthcudacheck fail\b",
                r"cudaerrorillegaladdress|cuda_error_illegal_address|cudaerrorlaunchfailure",
                // NCCL's ncclUnhandledCudaError: a CUDA call inside NCCL failed.
                r"nccl.*unhandled cuda error|ncclunhandledcudaerror",
            ],
        ),
        family(
            Kind::CheckpointCorrupt,
            "A checkpoint or weights file cannot be loaded",
            Critical,
            &[
                r"failed finding central directory",
                r"pytorchstreamreader failed",
                r"headertoolarge|header too large",
                r"safetensorerror|error while deserializing header",
                r"unexpected eof|unpicklingerror|ran out of input",
                r"size mismatch for [\w.]+: copying a param",
                r"error\(s\) in loading state_dict",
                r"invalid load key",
                r"is not a valid zip file|badzipfile|not a zip file",
                r"checkpoint.*(?:corrupt|truncated)|(?:corrupt|truncated).*checkpoint",
            ],
        ),
        family(
            Kind::StorageError,
            "Storage error: a file could not be read or written",
            Critical,
            &[
                r"input/output error|\[errno 5\]",
                r"read-only file system|\[errno 30\]",
                r"stale file handle|\[errno 116\]",
                r"permission denied",
                r"transport endpoint is not connected",
                r"remote i/o error",
            ],
        ),
        family(
            Kind::EnvironmentError,
            "Installation problem: a library, driver or kernel image does not match",
            Critical,
            &[
                r"undefined symbol",
                r"no module named",
                r"cannot open shared object file",
                r"could not load dynamic library",
                r"no kernel image is available for execution on the device",
                r"cuda driver version is insufficient|driver version is insufficient",
                r"nvidia driver on your system is too old|found no nvidia driver",
                r"cuda runtime error \(35\)",
                r"not compiled with cuda enabled|torch not compiled with",
                r"is not compatible with the current pytorch installation|cuda capability sm_\d+ is not compatible",
                r"unable to find backend|unable to load backend|unable to find '[^']+\.(?:py|so)'",
                r"version `glibc_[\d.]+' not found|glibcxx_[\d.]+' not found",
                r"ncclinvalidusage|nccl version mismatch",
                r"no cuda gpus are available|cuda unavailable|no cuda-capable device is detected",
                r"importerror: .*(?:dll load failed|cannot import name)",
                // The CUDA runtime's errors about the installation, not the
                // program (cudaGetErrorString's texts).
                r"invalid device function|device kernel image is invalid",
                r"ptx was compiled with an unsupported toolchain|unsupported ptx version",
                r"unsupported display driver / cuda driver combination",
                r"forward compatibility was attempted on non supported hw",
                r"cuda driver is a stub library|cudaerrorinsufficientdriver",
            ],
        ),
        // Any other CUDA runtime or driver error, after the installation's
        // own (which also print `CUDA error:`): the runtime's error texts
        // are program errors on the device — `unspecified launch failure`,
        // `operation not permitted when stream is capturing`, `an illegal
        // instruction`, `invalid resource handle`.
        family(
            Kind::CudaError,
            "CUDA error in a kernel or library call",
            Critical,
            &[
                r"\bcuda error: [a-z]",
                r"\bcuda error \d+:|\bcuda runtime error \(\d+\)|cuda failure \d+",
                r"\bcudaerror[a-z]+\b|\bcuda_error_[a-z_]+\b",
                r"operation (?:not permitted when stream is capturing|failed due to a previous error during capture)",
                r"cudagraph.*(?:capture|replay) failed|stream capture (?:invalidated|unsupported)",
                r"cublas_status_not_initialized|cusparse_status_\w+_error|cufft_\w+_failed|curand_status_\w+_failure",
            ],
        ),
        family(
            Kind::TimeLimit,
            "The scheduler ended the job",
            Critical,
            &[
                r"cancelled at \S+ due to time limit",
                r"due to time limit",
                r"cancelled at \S+ due to preemption|due to preemption",
                r"job \d+ (?:on \S+ )?cancelled at",
                r"\btimeout\b.*\bjob (?:exceeded|reached) (?:its )?(?:walltime|time limit)",
                r"pbs: job killed: walltime",
                r"=>> pbs: job killed",
            ],
        ),
        family(
            Kind::LauncherFailure,
            "The launcher could not start or keep the job",
            Critical,
            &[
                r"address already in use|eaddrinuse",
                r"server socket has failed to (?:listen|bind)",
                r"rendezvous(?:connection|timeout|closed)error|rendezvous.*timed out",
                r"the connection to the c10d store has failed",
                // The store (TCPStore, rank 0's port) is the rendezvous:
                // a client that cannot reach it never joins the job.
                r"client socket has timed out after \d+m?s while trying to connect",
                r"socket timeout.*(?:tcpstore|c10d)|tcpstore.*(?:timed out|timeout)",
                r"failed to connect to (?:the )?(?:master|store|coordinator)",
                r"coordination service.*unavailable|unavailable: failed to connect to all addresses",
                r"node failure on",
                r"due to node_fail|node_fail",
                r"slurmd.*fatal|fatal:.*slurm|unable to determine this slurmd's nodename",
                r"srun: error: unable to (?:create|allocate)",
                r"mpirun (?:was unable|could not)|orte was unable",
                r"there are not enough slots available",
            ],
        ),
        family(
            Kind::ServingFailure,
            "The inference engine failed",
            Critical,
            &[
                r"engine(?:core)? (?:is )?dead|asyncenginedeaderror|enginedeaderror",
                r"engine ?core (?:failed to start|initialization failed|proc\(s\) failed)",
                r"(?:engine|model worker|tokenizer manager|detokenizer) (?:process )?(?:failed to start|died unexpectedly)",
                r"enginecore(?:_\w+)? (?:encountered|hit) (?:a fatal error|an exception)",
                r"scheduler hit an exception",
                r"background loop has errored",
                r"shard \d+ failed to start|shard manager failed|shard process was signaled",
                r"failed to load all models|failed to load model",
                r"error in the output handler|output handler failed|outputhandler",
                r"webserver failed|webserver error",
                r"shard complete standard error output",
                r"error [\d-]+ [\d:]+ (?:async_)?llm_engine\.py:\d+\]|\brun_engine_loop\b",
            ],
        ),
    ]
});

/// Literal keywords one of which every family pattern's line contains,
/// beyond the words the pre-filter already has (`error`, `fail`, `nccl`,
/// `kill`…): lines without any skip the families. Plain literals only (a
/// metacharacter would cost the pre-filter its SIMD search).
pub(crate) const KEYWORDS: &str = concat!(
    "fallen off|gpu is lost|device handle|rminitadapter|nvml|devicesunavailable|",
    "busy or unavailable|gsp|dataloader|encountered in worker|worker timed out|illegal|",
    "device-side|misaligned|cublas_status|cudnn_status|assertion `|thcudacheck|",
    "central directory|streamreader|header|unexpected eof|unpickl|ran out of input|",
    "size mismatch|state_dict|load key|zip file|checkpoint|input/output|read-only|stale file|",
    "permission denied|endpoint is not|remote i/o|undefined symbol|no module named|",
    "shared object|dynamic library|kernel image|insufficient|too old|no nvidia|not compiled|",
    "not compatible|unable to find|unable to load|glibc|invalidusage|no cuda|dll load|",
    "cannot import|time limit|preemption|cancelled at|walltime|pbs: job|",
    "address already in use|eaddrinuse|server socket|rendezvous|c10d store|slurmd|mpirun|",
    "orte was|enough slots|dead|enginecore|scheduler hit|background loop|shard|",
    "output handler|outputhandler|webserver|llm_engine|run_engine_loop|blocks: 0|",
    "kv cache is -|invalid usage|connection closed|connection reset|timed out|denied|",
    "cuda error|cudaerror|cuda_error|cuda failure|cuda runtime|stream is capturing|during capture|",
    "capture|_status_|cufft_|device function|ptx|display driver|forward compatibility|stub library|",
    "client socket|tcpstore|failed to connect|coordination|deadline|engine core|engine process|",
    "model worker|tokenizer manager|detokenizer|died unexpectedly"
);

/// The family of a line, if any (prefixes already taken off; `lower` is
/// `orig` ASCII-lowercased).
pub(crate) fn match_family(orig: &str, lower: &str) -> Option<LogMatch> {
    // NCCL's INFO lines report fallbacks (no net plugin, no libibverbs),
    // never a failure.
    if lower.contains("nccl info") {
        return None;
    }
    let first = SET.matches(lower).iter().next()?;
    let f = FAMILIES.get(first)?;
    let mut attributes = FindingAttributes::default();
    attributes.insert_text("line", clip(orig.trim(), 512).to_owned());
    Some(LogMatch {
        kind: f.kind,
        severity: f.severity,
        title: format!("{}: {}", f.title, clip(orig.trim(), 160)),
        attributes,
    })
}

/// A process's exit status as shells, launchers and schedulers report it:
/// 128+N and negative codes are signal N.
pub fn signal_of_exit_code(code: i32) -> Option<u32> {
    match code {
        -64..=-1 => Some(code.unsigned_abs()),
        129..=192 => u32::try_from(code - 128).ok(),
        _ => None,
    }
}

/// The name of a signal number (Linux numbering).
pub fn signal_name(n: u32) -> Option<&'static str> {
    Some(match n {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(line: &str) -> Option<Kind> {
        match_family(line, &line.to_ascii_lowercase()).map(|m| m.kind)
    }

    #[test]
    fn families_are_told_apart() {
        assert_eq!(
            kind("RuntimeError: CUDA error: an illegal memory access was encountered"),
            Some(Kind::CudaError)
        );
        assert_eq!(
            kind("RuntimeError: DataLoader worker (pid 325) is killed by signal: Bus error."),
            Some(Kind::DataloaderFailure)
        );
        assert_eq!(
            kind("Unable to determine the device handle for GPU0000:07:00.0: Unknown Error"),
            Some(Kind::GpuLost)
        );
        assert_eq!(
            kind(
                "slurmstepd: error: *** JOB 1 ON n1 CANCELLED AT 2021-05-11T12:06:17 DUE TO TIME LIMIT ***"
            ),
            Some(Kind::TimeLimit)
        );
        assert_eq!(
            kind("ImportError: /x/flash_attn_2_cuda.so: undefined symbol: _ZN3c10"),
            Some(Kind::EnvironmentError)
        );
        assert_eq!(kind("step 10 loss 2.31"), None);
    }

    /// The CUDA runtime's error texts: program errors are `cuda_error`,
    /// the installation's are `environment_error`, whatever the wording
    /// around them.
    #[test]
    fn cuda_runtime_errors_by_their_text() {
        for line in [
            "RuntimeError: CUDA error: operation not permitted when stream is capturing",
            "RuntimeError: CUDA error: invalid resource handle",
            "CUDA error 700: cudaErrorIllegalAddress",
            "NCCL error in: ProcessGroupNCCL.cpp:1191, unhandled cuda error, NCCL version 2.10.3",
            "RuntimeError: CUDA error: operation failed due to a previous error during capture",
        ] {
            assert_eq!(kind(line), Some(Kind::CudaError), "{line}");
        }
        for line in [
            "RuntimeError: CUDA error: invalid device function",
            "RuntimeError: CUDA error: no kernel image is available for execution on the device",
            "CUDA error: the provided PTX was compiled with an unsupported toolchain.",
        ] {
            assert_eq!(kind(line), Some(Kind::EnvironmentError), "{line}");
        }
    }

    #[test]
    fn rendezvous_stores_and_engines_that_never_start() {
        assert_eq!(
            kind(
                "[c10d] The client socket has timed out after 600s while trying to connect to (10.0.0.1, 29500)."
            ),
            Some(Kind::LauncherFailure)
        );
        assert_eq!(
            kind("RuntimeError: Engine core initialization failed. See root cause above."),
            Some(Kind::ServingFailure)
        );
        assert_eq!(
            kind("ERROR [core.py:396] EngineCore failed to start."),
            Some(Kind::ServingFailure)
        );
    }

    #[test]
    fn exit_code_conventions() {
        assert_eq!(signal_of_exit_code(137), Some(9));
        assert_eq!(signal_of_exit_code(139), Some(11));
        assert_eq!(signal_of_exit_code(-6), Some(6));
        assert_eq!(signal_of_exit_code(1), None);
        assert_eq!(signal_of_exit_code(0), None);
        assert_eq!(signal_of_exit_code(i32::MIN), None);
        assert_eq!(signal_name(11), Some("SIGSEGV"));
    }
}
