//! Single-line signatures: a cheap keyword pre-filter, then one specific
//! check per kind, in a fixed order (the first that matches wins, so a line
//! gives at most one match here).
//!
//! Every check runs on the ASCII-lowercased line; ASCII lowercasing keeps
//! byte offsets, so captured values are cut from the original line at the
//! same offsets and keep their case (`OpType=ALLREDUCE`, `PCI:0000:3B:00`).

use super::xid::{xid_meaning, xid_severity};
use super::{LogMatch, LogSignatureKind as Kind, clip};
use crate::Severity;
use crate::finding::FindingAttributes;
use regex::{Captures, Regex};
use std::sync::LazyLock;

/// Patterns are constants; `Regex::new` fails only on a malformed pattern,
/// which every test run would show at once.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant pattern")
}

/// Literal keywords, one of which every signature line contains. The regex
/// engine turns a plain alternation of literals into a SIMD multi-substring
/// search, so an ordinary line costs one pass over its bytes.
static PREFILTER: LazyLock<Regex> = LazyLock::new(|| {
    re(&[
        concat!(
            "out of memory|outofmemory|alloc_failed|nccl|watchdog|xid|ecc|dbe|double|",
            r"overflow|nan|\binf\b|finite|",
            "error|exception|fatal|fail|oom|kill|sig|segmentation|exitcode|exit code|",
            "no space|errno|quota|skipping step|loss scale|abort|core dumped|",
            "resource_exhausted|resource exhausted|not enough memory|barrier|",
            "mismatch between collectives|terminate called|trap"
        ),
        super::families::KEYWORDS,
    ]
    .join("|"))
});

/// True when the lowercased line may hold a signature or an error keyword.
pub(crate) fn may_match(lower: &str) -> bool {
    PREFILTER.is_match(lower)
}

static XID: LazyLock<Regex> =
    LazyLock::new(|| re(r"nvrm: xid \((?:pci:)?([^)]*)\):\s*(\d{1,9})(?:,\s*(.*))?"));
static XID_PID: LazyLock<Regex> = LazyLock::new(|| re(r"pid='?(\d+)"));
static XID_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"name=([^,\s]+)"));

static ECC: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"uncorrectable ecc|uncorrected ecc|double[- ]bit (?:ecc )?error|",
        r"(?:nvrm|ecc).*\bdbe\b|\bdbe\b.*\becc\b"
    ))
});
static PCI: LazyLock<Regex> = LazyLock::new(|| re(r"pci:([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f.]{2,5})"));

static CUDA_OOM: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"cuda out of memory|outofmemoryerror|cublas_status_alloc_failed|",
        r"hip out of memory|hiperroroutofmemory|cuda error: out of memory|",
        r"cudaerrormemoryallocation|cuda_error_out_of_memory|cuda failure 'out of memory'|",
        r"\bresource[ _]exhausted\b|# (?:gpu|cuda) blocks: 0\b|reserved for kv cache is -\d|",
        r"oom when allocating tensor|resourceexhaustederror|out of memory while trying to allocate|",
        r"no available memory for the cache blocks|not enough memory\. please try to increase|",
        r"insufficient (?:gpu )?memory for (?:the )?kv cache|cuda_error_out_of_memory|",
        r"cumemallocasync failed to allocate|exceeds the base limit"
    ))
});
static OOM_TRIED: LazyLock<Regex> =
    LazyLock::new(|| re(r"tried to allocate ([\d.]+ ?[kmgtp]?i?b)"));
static OOM_TOTAL: LazyLock<Regex> = LazyLock::new(|| {
    re(r"total capacity of ([\d.]+ ?[kmgtp]?i?b)|([\d.]+ ?[kmgtp]?i?b) total capacity")
});
static OOM_FREE: LazyLock<Regex> = LazyLock::new(|| re(r"([\d.]+ ?[kmgtp]?i?b) (?:is )?free"));

static NCCL_TIMEOUT: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"watchdog caught collective operation timeout|nccl communicator was aborted|",
        r"communicator was aborted on rank|some nccl operations have failed or timed out|",
        r"processgroupnccl's watchdog got stuck|collective operation timeout|timeout at nccl work|",
        r"barrier timed out|detected mismatch between collectives|",
        r"\(either an error or timeout\) detected by watchdog|gloo.*timed out|",
        r"wait_for_all_tasks_to_register|",
        // The JAX/TensorFlow distributed runtime: every RPC of its
        // coordination service is a barrier, a heartbeat or a key-value
        // wait, so gRPC's DEADLINE_EXCEEDED (status 4) there is a rank that
        // did not arrive in time.
        r"coordination service.*deadline[ _]exceeded|deadline[ _]exceeded.*coordination|",
        r"xlaruntimeerror: deadline_exceeded|barrier.*deadline[ _]exceeded|",
        r"coordination service.*(?:heartbeat|missed|timed out)"
    ))
});
static SEQ_NUM: LazyLock<Regex> = LazyLock::new(|| re(r"seqnum=(\d+)|timeout at nccl work: (\d+)"));
static OP_TYPE: LazyLock<Regex> = LazyLock::new(|| re(r"optype=(\w+)"));
static TIMEOUT_MS: LazyLock<Regex> = LazyLock::new(|| re(r"timeout\(ms\)=(\d+)"));
static RAN_FOR: LazyLock<Regex> = LazyLock::new(|| re(r"ran for (\d+) milliseconds"));

static NCCL_NET: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"nccl warn\s+(?:net|transport|socket|ib|proxy)\b|",
        // NCCL's socket, IB and proxy code (`misc/socket.cc`,
        // `transport/net_ib.cc`…) warns only about the network (`ibvwrap.cc`
        // also warns of a missing libibverbs, a routine fallback to sockets):
        // `socketFinalizeAccept`, `socketPollConnect`, `ibv_poll_cq`.
        r"nccl warn\s+(?:socket|ncclsocket|ncclib|ib_|ibv|net_|proxy)\w*|",
        r"(?:misc/socket|net_socket|net_ib)\.cc:\d+ nccl warn|",
        r"nccl warn .*(?:connection (?:closed|refused|reset)|remote peer|ibv_)|",
        r"ncclremoteerror|ncclsystemerror|unhandled system error|",
        r"remote process exited or there was a network error|connection reset by peer|connection closed by (?:remote )?peer|",
        r"gloo.*(?:read error|connectfullmesh failed|connection refused)"
    ))
});
/// NCCL's own header: `host:pid:tid [cuda device] NCCL WARN`.
static NCCL_HEADER: LazyLock<Regex> =
    LazyLock::new(|| re(r"^([a-z0-9_.-]+):(\d+):\d+ \[(\d+)\] nccl"));
static NCCL_TRANSPORT: LazyLock<Regex> = LazyLock::new(|| re(r"nccl warn\s+net/(\w+)"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\b"));
static PEER: LazyLock<Regex> = LazyLock::new(|| re(r"peer ([\w.-]+)<"));

static OOM_KILLER: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"out of memory: kill(?:ed)? process|oom-kill:|memory cgroup out of memory|",
        r"killed process \d+ \(.*total-vm|failed \(exitcode: -9\)|",
        r"signal 9 \(sigkill\) received by pid|oom-kill event|exited on signal 9 \(killed\)|",
        r"^=*\s*exit code: 9$|reason:\s+oomkilled|",
        r"return code = -9|returncode=-9|died with <signals\.sigkill|^killed$|\bkilled\s+python"
    ))
});
static KILLED_PROCESS: LazyLock<Regex> = LazyLock::new(|| re(r"killed process (\d+) \(([^)]*)\)"));
static OOM_KILL_TASK: LazyLock<Regex> = LazyLock::new(|| re(r"task=([^,\s]+),pid=(\d+)"));
static ANON_RSS: LazyLock<Regex> = LazyLock::new(|| re(r"anon-rss:(\d+kb)"));
static BY_PID: LazyLock<Regex> = LazyLock::new(|| re(r"(?:received by pid|\(pid:?) (\d+)"));

static FATAL_SIGNAL: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(segmentation fault|bus error|aborted|illegal instruction|floating point exception) \(core dumped\)|",
        r"fatal python error: (segmentation fault|aborted|bus error|illegal instruction|floating point exception)|",
        r"failed \(exitcode: -(\d+)\)|signal (\d+) \((sig\w+)\) received|\*\*\* (sig[a-z]+) .*received by pid|",
        r"^(segmentation fault)$"
    ))
});

/// Signal numbers as launchers and shells report them (torchrun's root
/// cause block is read from its `Signal N (SIGxxx) received` line): mpirun (`exited on signal 11`), a
/// shell's 128+N exit status.
static SIGNAL_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"exited on signal (\d+)|killed by signal (\d+)|",
        r"terminated with signal (\d+)|received signal (\d+)|",
        r"(?:exit code|exit status|exited with exit code|exited with code)[:\s]+(1(?:29|[3-5]\d|6[0-4]))\b"
    ))
});

/// Crash words outside the classic `… (core dumped)` forms.
static CRASH_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(terminate called (?:after throwing|without an active exception))|(abort trap)|",
        r"\b(sigsegv|sigbus|sigill|sigfpe|sigabrt)\b|(segmentation fault)|(illegal instruction)|",
        r"(floating point exception)|(^bus error)"
    ))
});

static DISK_FULL: LazyLock<Regex> =
    LazyLock::new(|| re(r"no space left on device|\[errno (28|122)\]|disk quota exceeded"));
static QUOTED_PATH: LazyLock<Regex> = LazyLock::new(|| re(r": '([^']+)'"));

/// Below this loss scale an overflow is no longer a start-up search: fp16
/// training that settles does so at scales in the thousands.
pub(crate) const LOSS_SCALE_LOW: f64 = 128.0;

static LOSS_SCALE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"overflow!.*skipping step|overflow\.?\s+skipping step|attempted loss scale|",
        r"found nan in local grad norm|reducing loss scale to|gradient overflow detected|",
        r"current loss scale already at minimum|loss scale overflow"
    ))
});
static NEW_SCALE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?:reducing to|reducing loss scale to|setting loss scale to:?)\s*([\d.]+(?:e[+-]?\d+)?)")
});
static ATTEMPTED_SCALE: LazyLock<Regex> =
    LazyLock::new(|| re(r"attempted loss scale:?\s*([\d.]+(?:e[+-]?\d+)?)"));

static NAN: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"\b(loss|grad[_ ]?norm)\w*['\x22]?\s*(?:is\s+|=\s*|:\s*|\|\s*)?(?:tensor\()?[-+]?(nan|inf)\b|",
        r"\b(nan) or inf found|\binf or (nan) found|detected (nan)/inf|(nan)/inf (?:detected|found)|",
        r"\b(nan) detected|detected (nan)\b|\bfound (nan)\b|returned (nan) values|",
        r"non-finite loss|loss is not finite|\b(nan) loss\b|\b(nan)s? in (?:the )?(?:loss|grad)|",
        r"invalid value \((nan)\) encountered|\bis (nan)\b|error detected in \w*backward\w*"
    ))
});

static TEXT_RANK: LazyLock<Regex> =
    LazyLock::new(|| re(r"\[rank\s*(\d+)\]|\brank[\s:=]+(\d+)\b|local_rank:?\s*(\d+)"));
static TEXT_GPU: LazyLock<Regex> =
    LazyLock::new(|| re(r"\bgpu\s*#?(\d+)\b|\bcuda:(\d+)\b|\bdevice[\s:=]+(\d+)\b"));

/// The original-case text of capture group `i`.
fn group<'a>(c: &Captures<'_>, i: usize, orig: &'a str) -> Option<&'a str> {
    c.get(i).and_then(|m| orig.get(m.range()))
}

/// The first group that took part in the match.
fn any_group<'a>(c: &Captures<'_>, orig: &'a str) -> Option<&'a str> {
    (1..c.len()).find_map(|i| group(c, i, orig))
}

/// Group 1 of `re` on the lowercased line, cut from the original.
fn find1<'a>(re: &Regex, lower: &str, orig: &'a str) -> Option<&'a str> {
    re.captures(lower).and_then(|c| any_group(&c, orig))
}

use super::families::signal_name;

/// The signals that report a crash (not a request to stop, and not SIGKILL,
/// which is reported as the OOM killer's).
fn is_crash_signal(name: &str) -> bool {
    matches!(name, "SIGSEGV" | "SIGABRT" | "SIGBUS" | "SIGILL" | "SIGFPE")
}

fn crash_words_to_signal(words: &str) -> &'static str {
    match words {
        "segmentation fault" => "SIGSEGV",
        "bus error" => "SIGBUS",
        "aborted" => "SIGABRT",
        "illegal instruction" => "SIGILL",
        _ => "SIGFPE",
    }
}

struct Builder {
    attrs: FindingAttributes,
}

impl Builder {
    fn new() -> Self {
        Builder {
            attrs: FindingAttributes::default(),
        }
    }
    /// Sets a capture of the line (trimmed, clipped; nothing when empty).
    fn set(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) {
            self.attrs.insert_text(k, clip(v, 512));
        }
        self
    }
    fn get(&self, k: &str) -> Option<String> {
        self.attrs.get(k)
    }
    fn done(&mut self, kind: Kind, severity: Severity, title: String) -> LogMatch {
        LogMatch {
            kind,
            severity,
            title: clip(&title, 240).to_owned(),
            attributes: std::mem::take(&mut self.attrs),
        }
    }
}

/// The signature of one line (prefixes already taken off), if any.
/// `lower` is `orig` ASCII-lowercased (same length, same offsets).
pub(crate) fn match_line(orig: &str, lower: &str) -> Option<LogMatch> {
    debug_assert_eq!(orig.len(), lower.len());
    let mut m = match_kind(orig, lower)?;
    // `rank` and `gpu` when the line says and the rule did not set them.
    if !m.attributes.contains_key("rank")
        && let Some(r) = find1(&TEXT_RANK, lower, orig)
    {
        m.attributes.insert_text("rank", r);
    }
    if !m.attributes.contains_key("gpu")
        && let Some(g) = find1(&TEXT_GPU, lower, orig)
    {
        m.attributes.insert_text("gpu", g);
    }
    Some(m)
}

fn match_kind(orig: &str, lower: &str) -> Option<LogMatch> {
    // NCCL's INFO lines are informational by definition (and frequent).
    if lower.contains(" nccl info ") {
        return None;
    }
    // The order is part of the rules: the first check that matches wins.
    // GPUs and their memory.
    xid_line(orig, lower)
        .or_else(|| cuda_oom(orig, lower))
        .or_else(|| ecc_error(orig, lower))
        // The group's collectives and network.
        .or_else(|| nccl_timeout(orig, lower))
        .or_else(|| nccl_network(orig, lower))
        // The process: killed, crashed, out of disk.
        .or_else(|| oom_killer(orig, lower))
        .or_else(|| fatal_signal(orig, lower))
        .or_else(|| disk_full(orig, lower))
        // Numerics.
        .or_else(|| loss_scale_overflow(orig, lower))
        .or_else(|| nan_in_logs(orig, lower))
        // The failure families, signal numbers and crash words.
        .or_else(|| failure_tail(orig, lower))
}

fn xid_line(orig: &str, lower: &str) -> Option<LogMatch> {
    if !lower.contains("xid") {
        return None;
    }
    let c = XID.captures(lower)?;
    Some(xid(&c, orig, lower, &mut Builder::new()))
}

fn cuda_oom(orig: &str, lower: &str) -> Option<LogMatch> {
    if !CUDA_OOM.is_match(lower) {
        return None;
    }
    let mut b = Builder::new();
    b.set("tried_to_allocate", find1(&OOM_TRIED, lower, orig))
        .set("total_capacity", find1(&OOM_TOTAL, lower, orig))
        .set("free", find1(&OOM_FREE, lower, orig));
    let what = if lower.contains("hip") {
        "HIP out of memory"
    } else {
        "CUDA out of memory"
    };
    let mut title = what.to_owned();
    if let Some(t) = b.get("tried_to_allocate") {
        title.push_str(&format!(" (tried to allocate {t})"));
    }
    Some(b.done(Kind::CudaOom, Severity::Critical, title))
}

/// After the OOM check: `CUDA error: uncorrectable ECC error` is ECC, and
/// an OOM message never mentions ECC.
fn ecc_error(orig: &str, lower: &str) -> Option<LogMatch> {
    if !((lower.contains("ecc") || lower.contains("dbe") || lower.contains("double"))
        && ECC.is_match(lower))
    {
        return None;
    }
    let mut b = Builder::new();
    b.set("pci", find1(&PCI, lower, orig));
    let title = match b.get("pci") {
        Some(p) => format!("Uncorrectable ECC error in GPU memory (PCI {p})"),
        None => "Uncorrectable ECC error in GPU memory".to_owned(),
    };
    Some(b.done(Kind::EccError, Severity::Critical, title))
}

fn nccl_timeout(orig: &str, lower: &str) -> Option<LogMatch> {
    if !NCCL_TIMEOUT.is_match(lower) {
        return None;
    }
    let mut b = Builder::new();
    b.set("seq_num", find1(&SEQ_NUM, lower, orig))
        .set("op_type", find1(&OP_TYPE, lower, orig))
        .set("timeout_ms", find1(&TIMEOUT_MS, lower, orig))
        .set("ran_for_ms", find1(&RAN_FOR, lower, orig));
    let mut title = "NCCL collective operation timed out".to_owned();
    if let Some(op) = b.get("op_type") {
        title = format!("NCCL {op} timed out");
    }
    if let Some(seq) = b.get("seq_num") {
        title.push_str(&format!(" (SeqNum {seq}"));
        if let Some(ms) = b.get("ran_for_ms") {
            title.push_str(&format!(", ran {ms} ms"));
        }
        title.push(')');
    }
    if lower.contains("was aborted") && b.get("op_type").is_none() {
        title = "NCCL communicator was aborted".to_owned();
    }
    Some(b.done(Kind::NcclTimeout, Severity::Critical, title))
}

fn nccl_network(orig: &str, lower: &str) -> Option<LogMatch> {
    if !NCCL_NET.is_match(lower) {
        return None;
    }
    let mut b = Builder::new();
    if let Some(c) = NCCL_HEADER.captures(lower) {
        b.set("host", group(&c, 1, orig))
            .set("pid", group(&c, 2, orig))
            .set("gpu", group(&c, 3, orig));
    }
    b.set("transport", find1(&NCCL_TRANSPORT, lower, orig)).set(
        "peer",
        find1(&PEER, lower, orig).or(find1(&IPV4, lower, orig)),
    );
    let warn = lower.contains("nccl warn");
    let mut title = if warn {
        "NCCL network warning".to_owned()
    } else {
        "NCCL network or remote-process error".to_owned()
    };
    if let Some(t) = b.get("transport") {
        title.push_str(&format!(" on NET/{t}"));
    }
    if let Some(p) = b.get("peer") {
        title.push_str(&format!(" (peer {p})"));
    }
    let sev = if warn {
        Severity::Warning
    } else {
        Severity::Critical
    };
    Some(b.done(Kind::NcclNetwork, sev, title))
}

fn oom_killer(orig: &str, lower: &str) -> Option<LogMatch> {
    if !OOM_KILLER.is_match(lower) {
        return None;
    }
    let mut b = Builder::new();
    b.set("signal", Some("SIGKILL"));
    if let Some(c) = KILLED_PROCESS.captures(lower) {
        b.set("pid", group(&c, 1, orig))
            .set("process", group(&c, 2, orig));
    } else if let Some(c) = OOM_KILL_TASK.captures(lower) {
        b.set("process", group(&c, 1, orig))
            .set("pid", group(&c, 2, orig));
    } else {
        b.set("pid", find1(&BY_PID, lower, orig));
    }
    b.set("anon_rss", find1(&ANON_RSS, lower, orig));
    let torchrun = lower.contains("exitcode") || lower.contains("received by pid");
    if torchrun {
        b.set("exitcode", Some("-9"));
    }
    let title = match (b.get("pid"), b.get("process")) {
        (Some(pid), Some(name)) => {
            format!("Out-of-memory killer killed process {pid} ({name})")
        }
        (Some(pid), None) if torchrun => {
            format!("Process {pid} killed by SIGKILL (exitcode -9), likely the host's OOM killer")
        }
        _ if torchrun => {
            "Process killed by SIGKILL (exitcode -9), likely the host's OOM killer".to_owned()
        }
        _ => "Host out of memory: the kernel's OOM killer stopped a process".to_owned(),
    };
    Some(b.done(Kind::OomKiller, Severity::Critical, title))
}

/// A crash signal in its classic forms; a shutdown signal (SIGTERM,
/// SIGINT) or an unknown exit code is none, and the later checks go on.
fn fatal_signal(orig: &str, lower: &str) -> Option<LogMatch> {
    let c = FATAL_SIGNAL.captures(lower)?;
    let mut exitcode = None;
    let signal: Option<String> = if let Some(w) = c.get(1).or(c.get(2)).or(c.get(7)) {
        Some(crash_words_to_signal(w.as_str()).to_owned())
    } else if let Some(code) = c.get(3) {
        exitcode = group(&c, 3, orig).map(|s| format!("-{s}"));
        code.as_str()
            .parse()
            .ok()
            .and_then(signal_name)
            .map(str::to_owned)
    } else if let Some(n) = c.get(4) {
        // `Signal 11 (SIGSEGV) received`: trust the number over the name.
        n.as_str()
            .parse()
            .ok()
            .and_then(signal_name)
            .map(str::to_owned)
            .or_else(|| group(&c, 5, orig).map(str::to_ascii_uppercase))
    } else {
        group(&c, 6, orig).map(str::to_ascii_uppercase)
    };
    // SIGTERM, SIGINT and unknown exit codes are shutdowns, not crashes.
    if let Some(sig) = signal.filter(|s| is_crash_signal(s)) {
        let mut b = Builder::new();
        b.set("signal", Some(&sig))
            .set("exitcode", exitcode.as_deref())
            .set("pid", find1(&BY_PID, lower, orig));
        let title = match b.get("exitcode") {
            Some(code) => format!("Process crashed with {sig} (exitcode {code})"),
            None => format!("Process crashed with {sig}"),
        };
        return Some(b.done(Kind::FatalSignal, Severity::Critical, title));
    }
    None
}

fn disk_full(orig: &str, lower: &str) -> Option<LogMatch> {
    let c = DISK_FULL.captures(lower)?;
    let mut b = Builder::new();
    let quota = lower.contains("quota") || c.get(1).is_some_and(|m| m.as_str() == "122");
    b.set("errno", Some(if quota { "122" } else { "28" }))
        .set("path", find1(&QUOTED_PATH, lower, orig));
    let what = if quota {
        "Disk quota exceeded"
    } else {
        "No space left on device"
    };
    let title = match b.get("path") {
        Some(p) => format!("{what} writing {p}"),
        None => what.to_owned(),
    };
    Some(b.done(Kind::DiskFull, Severity::Critical, title))
}

fn loss_scale_overflow(orig: &str, lower: &str) -> Option<LogMatch> {
    if !LOSS_SCALE.is_match(lower) {
        return None;
    }
    let mut b = Builder::new();
    b.set("loss_scale", find1(&NEW_SCALE, lower, orig))
        .set("attempted_loss_scale", find1(&ATTEMPTED_SCALE, lower, orig));
    let scale = b.attrs.loss_scale;
    let stuck = lower.contains("already at minimum")
        || lower.contains("found nan in local grad norm")
        || scale.is_some_and(|s| s <= 1.0);
    // A start-up search halves a huge initial scale (2^16–2^32) a few
    // times and settles far above LOSS_SCALE_LOW: minor. A scale that
    // keeps falling below it is trouble, and at the minimum fatal.
    let sev = if stuck {
        Severity::Critical
    } else if scale.is_some_and(|s| s < LOSS_SCALE_LOW) {
        Severity::Warning
    } else {
        Severity::Info
    };
    if lower.contains("found nan in local grad norm") {
        b.set("value", Some("nan")).set("what", Some("grad_norm"));
    }
    let title = if lower.contains("found nan in local grad norm") {
        "NaN in the local gradient norm (Megatron)".to_owned()
    } else if lower.contains("already at minimum") {
        "Loss scale already at its minimum: fp16 training cannot recover".to_owned()
    } else {
        match find1(&NEW_SCALE, lower, orig).map(str::trim) {
            Some(s) => format!("Gradient overflow, step skipped; loss scale reduced to {s}"),
            None => "Gradient overflow, step skipped".to_owned(),
        }
    };
    Some(b.done(Kind::LossScaleOverflow, sev, title))
}

fn nan_in_logs(orig: &str, lower: &str) -> Option<LogMatch> {
    let c = NAN.captures(lower)?;
    let mut b = Builder::new();
    let what = group(&c, 1, orig).map(|w| w.to_ascii_lowercase().replace(' ', "_"));
    // The capture groups after the first hold `nan` or `inf`; the
    // "non-finite loss" phrasings have none.
    let value = (2..c.len())
        .find_map(|i| c.get(i))
        .map_or("non-finite", |m| m.as_str());
    b.set("value", Some(value)).set("what", what.as_deref());
    let shown = match value {
        "inf" => "Inf",
        "nan" => "NaN",
        _ => "non-finite",
    };
    let title = match b.get("what") {
        Some(w) => format!("{} is {shown}", capitalise(&w.replace('_', " "))),
        None if value == "non-finite" => "Non-finite loss reported in the logs".to_owned(),
        None => format!("{shown} reported in the logs"),
    };
    Some(b.done(Kind::NanInLogs, Severity::Critical, title))
}

/// The families and the signal forms below are only worth a look on a
/// line that says something went wrong.
fn failure_tail(orig: &str, lower: &str) -> Option<LogMatch> {
    if !TAIL_PREFILTER.is_match(lower) {
        return None;
    }
    if let Some(m) = super::families::match_family(orig, lower) {
        return Some(m);
    }
    // One builder for both: a signal number that is neither SIGKILL nor a
    // crash leaves its attributes to the crash words.
    let mut b = Builder::new();
    signal_by_number(orig, lower, &mut b).or_else(|| crash_words(lower, &mut b))
}

/// Literal words one of which every family, signal-number and crash-word
/// line has: lines that passed the main pre-filter for another reason
/// (`loss scale: 65536` in an iteration line) skip the rest at once.
static TAIL_PREFILTER: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        "error|fail|exception|fatal|kill|abort|assert|denied|timed out|illegal|misaligned|",
        "fallen off|lost|eof|mismatch|symbol|no module|shared object|kernel image|insufficient|",
        "too old|time limit|preemption|cancelled|in use|rendezvous|node_fail|dead|blocks: 0|",
        "kv cache is -|history|signal|exit|terminate|trap|sig|segmentation|header|unpickl|",
        "ran out of input|corrupt|truncated|read-only|stale|endpoint|glibc|shard|run_engine_loop|",
        "invalidusage|invalid usage"
    ))
});

/// A signal named by its number (`exitcode  : -11`, `exited on signal 9`,
/// `exit code 139`): SIGKILL is reported as the OOM killer's (the usual
/// sender), crash signals as a fatal signal.
fn signal_by_number(orig: &str, lower: &str, b: &mut Builder) -> Option<LogMatch> {
    let c = SIGNAL_NUMBER.captures(lower)?;
    let (i, n) = (1..c.len()).find_map(|i| Some((i, group(&c, i, orig)?.parse::<u32>().ok()?)))?;
    // The last group is a shell's exit status: 128 + N.
    let n = if i == c.len() - 1 {
        n.checked_sub(128)?
    } else {
        n
    };
    let sig = signal_name(n)?;
    b.set("signal", Some(sig))
        .set("pid", find1(&BY_PID, lower, orig));
    if sig == "SIGKILL" {
        let title = "Process killed by SIGKILL, likely the host's OOM killer".to_owned();
        return Some(b.done(Kind::OomKiller, Severity::Critical, title));
    }
    is_crash_signal(sig).then(|| {
        let title = format!("Process crashed with {sig}");
        b.done(Kind::FatalSignal, Severity::Critical, title)
    })
}

fn crash_words(lower: &str, b: &mut Builder) -> Option<LogMatch> {
    let c = CRASH_WORDS.captures(lower)?;
    let sig = match (1..c.len()).find(|&i| c.get(i).is_some())? {
        1 | 2 => "SIGABRT",
        3 => match c.get(3).map_or("", |m| m.as_str()) {
            "sigsegv" => "SIGSEGV",
            "sigbus" => "SIGBUS",
            "sigill" => "SIGILL",
            "sigfpe" => "SIGFPE",
            _ => "SIGABRT",
        },
        4 => "SIGSEGV",
        5 => "SIGILL",
        6 => "SIGFPE",
        _ => "SIGBUS",
    };
    b.set("signal", Some(sig));
    Some(b.done(
        Kind::FatalSignal,
        Severity::Critical,
        format!("Process crashed with {sig}"),
    ))
}

fn xid(c: &Captures<'_>, orig: &str, lower: &str, b: &mut Builder) -> LogMatch {
    let pci = group(c, 1, orig).map(str::trim);
    let code_text = group(c, 2, orig).unwrap_or("");
    let detail = group(c, 3, orig);
    b.set("code", Some(code_text)).set("pci", pci);
    let code: Option<u32> = code_text.parse().ok();
    let info = code.and_then(xid_meaning);
    if let Some(i) = info {
        b.set("meaning", Some(i.meaning))
            .set("hardware", Some(if i.hardware { "true" } else { "false" }))
            .set("immediate_action", Some(i.immediate.text()));
        b.attrs.action = Some(i.action.to_owned());
        b.attrs.origin = Some(i.origin);
    }
    if let Some(d) = detail {
        let dl = c.get(3).and_then(|m| lower.get(m.range())).unwrap_or("");
        b.set("pid", find1(&XID_PID, dl, d))
            .set(
                "process",
                find1(&XID_NAME, dl, d).map(|n| n.trim_end_matches('.')),
            )
            .set("detail", Some(d));
    }
    let meaning = info.map(|i| capitalise(i.meaning));
    let title = match (meaning, b.get("pci")) {
        (Some(m), Some(p)) => format!("Xid {code_text}: {m} (PCI {p})"),
        (Some(m), None) => format!("Xid {code_text}: {m}"),
        (None, Some(p)) => format!("Xid {code_text} (PCI {p})"),
        (None, None) => format!("Xid {code_text}"),
    };
    let sev = code.map_or(Severity::Warning, xid_severity);
    b.done(Kind::Xid, sev, title)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
