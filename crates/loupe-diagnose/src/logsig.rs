//! Log signatures: the lines people see when a training or serving job goes
//! wrong (CUDA out of memory, NCCL timeouts, Xid errors, tracebacks, the OOM
//! killer…), recognised as they stream in, with their details extracted.
//! Error lines that match no signature are grouped into templates, so a new
//! recurring error shows once with a count.
//!
//! One [`LogScanner`] per log source (a run, a host). Per line:
//! 1. common prefixes are taken off (timestamps, levels, syslog/kernel
//!    headers, rank tags such as `[rank3]: ` or `[default0]:`);
//! 2. the traceback reader of that rank tag sees the line (frames and code
//!    lines stop there);
//! 3. a keyword pre-filter (one multi-substring search over the lowercased
//!    line) lets ordinary lines go at once;
//! 4. otherwise the signatures are checked in a fixed order, the first
//!    match wins;
//! 5. an error line that matched nothing goes to the template miner.
//!
//! Bounded memory: lines are looked at up to [`MAX_LINE_BYTES`] (a
//! multi-line text up to [`MAX_RECORD_BYTES`]), at most 64
//! tracebacks are read at once (200 lines / 16 KiB of text each), at most
//! [`MAX_TEMPLATES`] templates are kept (the least recently seen goes).

mod drain;
mod families;
mod prefix;
mod rules;
mod traceback;
mod xid;

pub use families::{signal_name, signal_of_exit_code};
pub use xid::{XID_CATALOGUE_LAST, XidAction, XidInfo, XidOrigin, xid_meaning};

use crate::Severity;
use crate::finding::FindingAttributes;
use loupe_model::{LogLevel, LogStream};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::LazyLock;

/// Templates kept per scanner.
pub const MAX_TEMPLATES: usize = 1000;
/// Bytes of a line that are looked at; the rest of a longer line is ignored.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Bytes of a multi-line text (a record holding a whole traceback) that are
/// looked at.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Lines and bytes kept of one traceback's text.
pub const MAX_TRACEBACK_LINES: usize = traceback::MAX_LINES;
pub const MAX_TRACEBACK_BYTES: usize = traceback::MAX_BYTES;

/// What kind of trouble a log line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSignatureKind {
    /// "CUDA out of memory", `torch.OutOfMemoryError`,
    /// `CUBLAS_STATUS_ALLOC_FAILED`, HIP out of memory. Attributes:
    /// `tried_to_allocate`, `total_capacity`, `free`, `gpu`.
    CudaOom,
    /// The NCCL watchdog's collective-operation timeout, an aborted
    /// communicator. Attributes: `op_type`, `seq_num`, `timeout_ms`,
    /// `ran_for_ms`, `rank`.
    NcclTimeout,
    /// `NCCL WARN NET/IB : …`, connection closed by a peer,
    /// `ncclRemoteError`, `ncclSystemError`. Attributes: `transport`,
    /// `peer`, `host`, `pid`, `gpu`.
    NcclNetwork,
    /// `NVRM: Xid (PCI:…): 79, …`. Attributes: `code`, `pci`, `meaning`,
    /// `hardware`, `action`, `pid`, `process`, `detail`. Xid 48, 94 and 95
    /// are the ECC ones (reported as `Xid`, not also as `EccError`).
    Xid,
    /// Uncorrectable ECC errors outside an Xid line ("CUDA error:
    /// uncorrectable ECC error encountered", DBE). Attributes: `pci`, `gpu`.
    EccError,
    /// Loss-scale overflow and skipped steps (DeepSpeed, Megatron, apex).
    /// Attributes: `loss_scale` (the new scale), `attempted_loss_scale`.
    LossScaleOverflow,
    /// A NaN or Inf loss or gradient reported in the logs. Attributes:
    /// `value` (`nan` or `inf`), `what` (`loss`, `grad_norm`) when said.
    NanInLogs,
    /// A Python traceback. Attributes: `exception_type`, `message`, `frame`
    /// (`file:line in func` of the innermost frame), `traceback` (bounded),
    /// `chain` (the earlier exceptions of a chained traceback), or
    /// `incomplete` for one cut off before its exception line.
    PythonException,
    /// The kernel's OOM killer, or torchrun's SIGKILL (exitcode -9).
    /// Attributes: `pid`, `process`, `signal`, `exitcode`, `anon_rss`.
    OomKiller,
    /// SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE. Attributes: `signal`,
    /// `exitcode`, `pid`.
    FatalSignal,
    /// "No space left on device", `[Errno 28]`, "Disk quota exceeded".
    /// Attributes: `errno`, `path`.
    DiskFull,
    /// A CUDA/HIP program error: illegal memory access or instruction,
    /// device-side assert, launch failure, misaligned address, cuBLAS/cuDNN
    /// execution failures. Attribute: `line`.
    CudaError,
    /// A GPU that fell off the bus or is no longer reachable (without an
    /// Xid line): NVML "Unknown Error", "GPU is lost", `RmInitAdapter
    /// failed`. Attribute: `line`.
    GpuLost,
    /// A data-loader worker killed, exited or timed out. Attribute: `line`.
    DataloaderFailure,
    /// I/O errors, read-only or stale file systems, permission denied.
    /// Attribute: `line`.
    StorageError,
    /// A checkpoint or weights file that cannot be loaded. Attribute: `line`.
    CheckpointCorrupt,
    /// Installation problems: missing modules or symbols, driver/toolkit
    /// mismatches, no kernel image for the device. Attribute: `line`.
    EnvironmentError,
    /// torchrun/elastic, Slurm or MPI could not start or keep the job.
    /// Attribute: `line`.
    LauncherFailure,
    /// The scheduler ended the job (time limit, preemption). Attribute:
    /// `line`.
    TimeLimit,
    /// An inference engine died or failed to load. Attribute: `line`.
    ServingFailure,
    /// The run's process exited non-zero (reported at the run's end).
    /// Attributes: `exit_code`, `signal` (128+N and negative codes),
    /// `last_errors` (the last error-looking lines, newline-separated).
    ExitStatus,
    /// An unknown error line, grouped by the template miner. Attributes:
    /// `template_id`, `template`, `count`, `example`.
    ErrorTemplate,
}

impl LogSignatureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LogSignatureKind::CudaOom => "cuda_oom",
            LogSignatureKind::NcclTimeout => "nccl_timeout",
            LogSignatureKind::NcclNetwork => "nccl_network",
            LogSignatureKind::Xid => "xid",
            LogSignatureKind::EccError => "ecc_error",
            LogSignatureKind::LossScaleOverflow => "loss_scale_overflow",
            LogSignatureKind::NanInLogs => "nan_in_logs",
            LogSignatureKind::PythonException => "python_exception",
            LogSignatureKind::OomKiller => "oom_killer",
            LogSignatureKind::FatalSignal => "fatal_signal",
            LogSignatureKind::DiskFull => "disk_full",
            LogSignatureKind::CudaError => "cuda_error",
            LogSignatureKind::GpuLost => "gpu_lost",
            LogSignatureKind::DataloaderFailure => "dataloader_failure",
            LogSignatureKind::StorageError => "storage_error",
            LogSignatureKind::CheckpointCorrupt => "checkpoint_corrupt",
            LogSignatureKind::EnvironmentError => "environment_error",
            LogSignatureKind::LauncherFailure => "launcher_failure",
            LogSignatureKind::TimeLimit => "time_limit",
            LogSignatureKind::ServingFailure => "serving_failure",
            LogSignatureKind::ExitStatus => "exit_status",
            LogSignatureKind::ErrorTemplate => "error_template",
        }
    }
}

/// One recognised signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogMatch {
    pub kind: LogSignatureKind,
    pub severity: Severity,
    /// A one-line title for people: "Xid 79: GPU has fallen off the bus
    /// (PCI 0000:3b:00)".
    pub title: String,
    /// Extracted details (see the kinds; also `rank` and `gpu` when the
    /// line says).
    pub attributes: FindingAttributes,
}

/// A template of unknown error lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorTemplate {
    pub id: u64,
    /// Tokens with the variable ones as `<*>`.
    pub template: String,
    pub count: u64,
    /// The first line seen of it (bounded).
    pub example: String,
}

/// One scanner per log source (a run, a host): it keeps the state that
/// multi-line signatures need (a traceback being read) and the templates.
/// Bounded memory.
#[derive(Debug)]
pub struct LogScanner {
    tracebacks: traceback::Tracebacks,
    drain: drain::Drain,
    /// The current line ASCII-lowercased (reused to avoid an allocation per
    /// line).
    lower: String,
    /// The last error-looking lines (bounded): the evidence of a crash
    /// whose output matches no signature.
    last_errors: VecDeque<String>,
}

/// Error-looking lines kept for a crash's evidence, and bytes kept of each.
pub const LAST_ERRORS_KEPT: usize = 5;
const LAST_ERROR_BYTES: usize = 400;

impl Default for LogScanner {
    fn default() -> Self {
        Self::new()
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// An error word in the original text: `error`, `ERROR`, `Failed`,
/// `fatal`, `exception` as words, or the end of a CamelCase name
/// (`RuntimeError`, `ValueException`); not `dlerror` or `errors`.
static ERROR_WORD: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern: it compiles, or every test fails at once.
    Regex::new(r"\b(?i:error|exception|fatal|failed)\b|[a-z](?:Error|Exception)\b")
        .expect("constant pattern")
});

/// A line that says it is not an error although it mentions one: Python
/// warnings ("UserWarning: … failed"), glog's `W1201 …` or
/// `[W socket.cpp:663] … failed to connect`, NCCL's INFO lines.
fn says_not_error(rest: &str, lower: &str) -> bool {
    let b = rest.as_bytes();
    let glog = match b {
        [b'[', b'W' | b'I', b' ', ..] => true,
        [b'W' | b'I', d, ..] if d.is_ascii_digit() => true,
        _ => false,
    };
    // NCCL WARN lines that are not network signatures are NCCL's own
    // warnings (a missing libibverbs, a fallback to sockets); the kernel's
    // "tainting kernel" notes are not errors either.
    glog || lower.contains("warning:")
        || lower.contains("warnings.warn")
        || lower.contains(" nccl info ")
        || lower.contains(" nccl warn ")
        || lower.contains("tainting kernel")
        || says_harmless(lower)
}

/// The program's own words that the error it mentions is expected: "the
/// following error message '…' can be ignored", "this error is harmless".
fn says_harmless(lower: &str) -> bool {
    [
        "can be ignored",
        "can be safely ignored",
        "you can ignore",
        "is harmless",
        "are harmless",
        "can safely ignore",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

fn note_error_line(kept: &mut VecDeque<String>, line: &str) {
    if kept.len() == LAST_ERRORS_KEPT {
        kept.pop_front();
    }
    kept.push_back(clip(line.trim(), LAST_ERROR_BYTES).to_owned());
}

impl LogScanner {
    pub fn new() -> Self {
        LogScanner {
            tracebacks: traceback::Tracebacks::default(),
            drain: drain::Drain::new(MAX_TEMPLATES),
            lower: String::new(),
            last_errors: VecDeque::with_capacity(LAST_ERRORS_KEPT),
        }
    }

    /// Feeds one line (without its newline) and returns what it completes
    /// or shows. A traceback's match comes with its last line (the
    /// `Type: message` line); a line inside a traceback that shows a
    /// signature (torch's `RuntimeError: CUDA out of memory…`) gives both
    /// matches, the signature first. A text holding several lines is read
    /// line by line.
    pub fn scan(&mut self, stream: LogStream, level: LogLevel, text: &str) -> Vec<LogMatch> {
        let mut out = Vec::new();
        if text.contains('\n') {
            for line in clip(text, MAX_RECORD_BYTES).split('\n') {
                self.scan_line(stream, level, clip(line, MAX_LINE_BYTES), &mut out);
            }
        } else {
            self.scan_line(stream, level, clip(text, MAX_LINE_BYTES), &mut out);
        }
        out
    }

    /// Call when no more lines will come (end of a run): completes a
    /// traceback cut off before its exception line (`incomplete` = `true`).
    pub fn finish(&mut self) -> Vec<LogMatch> {
        self.tracebacks.finish()
    }

    /// The last error-looking lines seen (a signature's line, an exception
    /// line, a line with an error word on stderr or at error level), oldest
    /// first.
    pub fn last_errors(&self) -> impl Iterator<Item = &str> {
        self.last_errors.iter().map(String::as_str)
    }

    /// Unknown error templates seen so far, most frequent first.
    pub fn templates(&self) -> Vec<ErrorTemplate> {
        self.drain.templates()
    }

    fn scan_line(
        &mut self,
        stream: LogStream,
        level: LogLevel,
        line: &str,
        out: &mut Vec<LogMatch>,
    ) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let s = prefix::strip(line);
        let level = level.max(s.level.unwrap_or(LogLevel::Debug));
        let rest = s.rest;

        // Tracebacks: most lines skip this (nothing pending, no header).
        let mut in_traceback = false;
        let mut exception = None;
        if !self.tracebacks.is_idle() || rest.trim_start().starts_with("Traceback") {
            match self.tracebacks.feed(s.tag.unwrap_or(""), rest, s.rank) {
                traceback::Feed::Outside => {}
                traceback::Feed::Consumed => return,
                traceback::Feed::Continuation => in_traceback = true,
                traceback::Feed::Exception(m) => {
                    in_traceback = true;
                    exception = Some(*m);
                }
            }
        }

        self.lower.clear();
        self.lower.push_str(rest);
        self.lower.make_ascii_lowercase();
        let lower = self.lower.as_str();

        let mut matched = false;
        if rules::may_match(lower) {
            if let Some(mut m) = rules::match_line(rest, lower) {
                if let Some(r) = s.rank {
                    m.attributes.insert_text("rank", r);
                }
                out.push(m);
                matched = true;
            }
        } else if level < LogLevel::Error && exception.is_none() {
            // No keyword and not an error line: nothing more to do.
            return;
        }
        if let Some(m) = exception {
            out.push(m);
            note_error_line(&mut self.last_errors, rest);
            return;
        }
        if matched {
            note_error_line(&mut self.last_errors, rest);
        }
        if matched || in_traceback {
            return;
        }
        let error_line =
            level >= LogLevel::Error || (stream == LogStream::Stderr && ERROR_WORD.is_match(rest));
        if error_line && !says_not_error(rest, lower) {
            note_error_line(&mut self.last_errors, rest);
        }
        // A level that the line's own prefix states below error wins over
        // the record's (a source may send all of stderr as errors).
        let stated_lower = s.level.is_some_and(|l| l < LogLevel::Error);
        if !error_line || stated_lower || says_not_error(rest, lower) {
            return;
        }
        // Lines without a letter (separators, bare numbers) are not errors.
        if !rest.bytes().any(|b| b.is_ascii_alphabetic()) {
            return;
        }
        if let Some(m) = traceback::bare_exception(rest, s.rank) {
            out.push(m);
            return;
        }
        if let Some(a) = self.drain.add(rest)
            && a.report
        {
            let mut attributes = FindingAttributes::default();
            attributes.insert_text("template_id", a.id.to_string());
            attributes.insert_text("template", a.template.clone());
            attributes.insert_text("count", a.count.to_string());
            attributes.insert_text("example", a.example);
            if let Some(r) = s.rank {
                attributes.insert_text("rank", r.to_owned());
            }
            let title = if a.new {
                format!("New error: {}", a.template)
            } else {
                format!("Recurring error (x{}): {}", a.count, a.template)
            };
            let title = clip(&title, 240).to_owned();
            out.push(LogMatch {
                kind: LogSignatureKind::ErrorTemplate,
                severity: Severity::Warning,
                title,
                attributes,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(m: &[LogMatch]) -> Vec<LogSignatureKind> {
        m.iter().map(|m| m.kind).collect()
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("abc", 10), "abc");
    }

    #[test]
    fn traceback_with_oom_gives_both() {
        let mut s = LogScanner::new();
        let lines = [
            "[rank3]: Traceback (most recent call last):",
            "[rank3]:   File \"train.py\", line 42, in <module>",
            "[rank3]:     loss = model(x)",
            "[rank3]:   File \"/opt/model.py\", line 7, in forward",
            "[rank3]:     return self.mlp(x)",
        ];
        for l in lines {
            assert!(
                s.scan(LogStream::Stderr, LogLevel::Error, l).is_empty(),
                "{l}"
            );
        }
        let m = s.scan(
            LogStream::Stderr,
            LogLevel::Error,
            "[rank3]: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 3; 79.15 GiB total capacity)",
        );
        assert_eq!(
            kinds(&m),
            vec![LogSignatureKind::CudaOom, LogSignatureKind::PythonException]
        );
        assert_eq!(
            m[0].attributes.get("tried_to_allocate").unwrap(),
            "2.00 GiB"
        );
        assert_eq!(m[0].attributes.get("rank").unwrap(), "3");
        assert_eq!(
            m[1].attributes.get("exception_type").unwrap(),
            "RuntimeError"
        );
        assert_eq!(
            m[1].attributes.get("frame").unwrap(),
            "/opt/model.py:7 in forward"
        );
        assert_eq!(m[1].attributes.get("rank").unwrap(), "3");
        assert!(s.finish().is_empty());
        assert!(s.templates().is_empty());
    }

    #[test]
    fn unknown_errors_become_templates() {
        let mut s = LogScanner::new();
        let m = s.scan(
            LogStream::Stderr,
            LogLevel::Info,
            "ERROR: shard 17 checksum mismatch in /data/x",
        );
        assert_eq!(kinds(&m), vec![LogSignatureKind::ErrorTemplate]);
        let again = s.scan(
            LogStream::Stderr,
            LogLevel::Info,
            "ERROR: shard 18 checksum mismatch in /data/y",
        );
        assert!(again.is_empty());
        assert_eq!(s.templates()[0].count, 2);
        assert_eq!(
            s.templates()[0].template,
            "shard <*> checksum mismatch in <*>"
        );
        // Ordinary stdout lines are not errors.
        assert!(
            s.scan(LogStream::Stdout, LogLevel::Info, "step 10 loss 2.31")
                .is_empty()
        );
    }
}
