//! Log signatures on corpora of real-looking lines: every error fixture gives
//! exactly the matches it names (kinds in order, attributes as a subset), no
//! ordinary line matches, and the scanner never panics and stays bounded on
//! arbitrary input.

use loupe_diagnose::Severity;
use loupe_diagnose::logsig::{
    LogMatch, LogScanner, LogSignatureKind, MAX_TEMPLATES, MAX_TRACEBACK_BYTES, xid_meaning,
};
use loupe_model::{LogLevel, LogStream};
use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

const ERRORS: &str = include_str!("data/logs/errors.txt");
const ORDINARY: &str = include_str!("data/logs/ordinary.txt");

#[derive(Debug)]
struct Expected {
    kind: String,
    attrs: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Case {
    /// Line number of the first header, for messages.
    at: usize,
    expected: Vec<Expected>,
    lines: Vec<String>,
}

/// Reads the `== kind | key=value` cases of `errors.txt`.
fn cases() -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    let mut cur = Case::default();
    for (i, line) in ERRORS.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(h) = line.strip_prefix("== ") {
            if !cur.lines.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if cur.expected.is_empty() {
                cur.at = i + 1;
            }
            let mut parts = h.split(" | ");
            let kind = parts.next().expect("a kind").trim().to_owned();
            let attrs = parts
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("key=value");
                    (k.trim().to_owned(), v.trim().to_owned())
                })
                .collect();
            cur.expected.push(Expected { kind, attrs });
            continue;
        }
        if cur.expected.is_empty() {
            continue;
        }
        cur.lines.push(line.to_owned());
    }
    if !cur.lines.is_empty() {
        out.push(cur);
    }
    for c in &mut out {
        while c.lines.last().is_some_and(|l| l.trim().is_empty()) {
            c.lines.pop();
        }
    }
    out
}

fn run(lines: &[String]) -> Vec<LogMatch> {
    let mut s = LogScanner::new();
    let mut got = Vec::new();
    for l in lines {
        got.extend(s.scan(LogStream::Stderr, LogLevel::Info, l));
    }
    got.extend(s.finish());
    got
}

fn kind_name(k: LogSignatureKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn error_corpus_gives_the_expected_matches() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut seen = std::collections::BTreeSet::new();
    for c in &cases {
        let got = run(&c.lines);
        let kinds: Vec<String> = got.iter().map(|m| kind_name(m.kind)).collect();
        let want: Vec<&str> = c.expected.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, want, "case at line {}: {got:#?}", c.at);
        for (m, e) in got.iter().zip(&c.expected) {
            seen.insert(e.kind.clone());
            for (k, v) in &e.attrs {
                let actual = if k == "title" {
                    Some(m.title.clone())
                } else {
                    m.attributes.get(k)
                };
                assert_eq!(
                    actual.as_deref(),
                    Some(v.as_str()),
                    "case at line {}: attribute {k} of {m:#?}",
                    c.at
                );
            }
            assert!(!m.title.is_empty() && !m.title.contains('\n'), "{m:?}");
        }
    }
    // Every kind has at least one fixture.
    assert_eq!(seen.len(), 12, "{seen:?}");
}

#[test]
fn ordinary_corpus_matches_nothing() {
    let mut stdout_only = false;
    let mut both = LogScanner::new();
    let mut out = LogScanner::new();
    let mut n = 0;
    for line in ORDINARY.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line == "[stdout only]" {
            stdout_only = true;
            continue;
        }
        n += 1;
        for level in [LogLevel::Info, LogLevel::Warning] {
            let m = out.scan(LogStream::Stdout, level, line);
            assert!(m.is_empty(), "stdout {line:?}: {m:#?}");
            if !stdout_only {
                let m = both.scan(LogStream::Stderr, level, line);
                assert!(m.is_empty(), "stderr {line:?}: {m:#?}");
            }
        }
    }
    assert!(n >= 60, "{n} lines");
    assert!(both.finish().is_empty() && out.finish().is_empty());
    assert!(both.templates().is_empty() && out.templates().is_empty());
}

#[test]
fn xid_titles_and_severity() {
    let mut s = LogScanner::new();
    let m = s.scan(
        LogStream::App,
        LogLevel::Info,
        "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.",
    );
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].title,
        "Xid 79: GPU has fallen off the bus (PCI 0000:3b:00)"
    );
    assert_eq!(m[0].severity, Severity::Critical);
    let m = s.scan(
        LogStream::App,
        LogLevel::Info,
        "NVRM: Xid (PCI:0000:3b:00): 13, pid=1, name=x, Graphics Exception",
    );
    assert_eq!(m[0].severity, Severity::Warning);
    // An unknown code still matches, without a meaning.
    let m = s.scan(
        LogStream::App,
        LogLevel::Info,
        "NVRM: Xid (PCI:0000:3b:00): 4242, x",
    );
    assert_eq!(m[0].attributes.get("code").unwrap(), "4242");
    assert!(!m[0].attributes.contains_key("meaning"));
    assert!(xid_meaning(48).is_some_and(|i| i.hardware));
}

/// Two ranks' tracebacks interleaved line by line are read apart.
#[test]
fn interleaved_ranks() {
    let a = [
        "[rank0]: Traceback (most recent call last):",
        "[rank0]:   File \"a.py\", line 1, in fa",
        "[rank0]: ValueError: from zero",
    ];
    let b = [
        "[rank1]: Traceback (most recent call last):",
        "[rank1]:   File \"b.py\", line 2, in fb",
        "[rank1]: KeyError: 'one'",
    ];
    let mut s = LogScanner::new();
    let mut got = Vec::new();
    for (x, y) in a.iter().zip(&b) {
        got.extend(s.scan(LogStream::Stderr, LogLevel::Error, x));
        got.extend(s.scan(LogStream::Stderr, LogLevel::Error, y));
    }
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].attributes.get("rank").unwrap(), "0");
    assert_eq!(got[0].attributes.get("frame").unwrap(), "a.py:1 in fa");
    assert_eq!(
        got[0].attributes.get("exception_type").unwrap(),
        "ValueError"
    );
    assert_eq!(got[1].attributes.get("rank").unwrap(), "1");
    assert_eq!(got[1].attributes.get("frame").unwrap(), "b.py:2 in fb");
    assert_eq!(got[1].attributes.get("exception_type").unwrap(), "KeyError");
}

/// A record whose text holds a whole traceback is read line by line.
#[test]
fn multi_line_record() {
    let text = "Traceback (most recent call last):\n  File \"t.py\", line 3, in f\n    g()\nZeroDivisionError: division by zero\n";
    let mut s = LogScanner::new();
    let m = s.scan(LogStream::App, LogLevel::Error, text);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert_eq!(
        m[0].attributes.get("exception_type").unwrap(),
        "ZeroDivisionError"
    );
    assert_eq!(m[0].attributes.get("frame").unwrap(), "t.py:3 in f");
    assert!(
        m[0].attributes
            .get("traceback")
            .unwrap()
            .starts_with("Traceback")
    );
}

/// Code lines inside a traceback are source, not events.
/// Distributed runtimes' own words: a JAX coordination-service deadline is
/// a rank that did not arrive, NCCL's socket code warns only about the
/// network, and a line that calls its error harmless is not one.
#[test]
fn runtime_timeouts_socket_warnings_and_harmless_errors() {
    let kinds = |lines: &[&str]| -> Vec<LogSignatureKind> {
        run(&lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>())
            .into_iter()
            .map(|m| m.kind)
            .collect()
    };
    let jax = kinds(&[
        "E0101 coordination_service_agent.cc:99] Failed to reach the barrier in the coordination service: DEADLINE_EXCEEDED: Barrier timed out",
    ]);
    assert_eq!(jax.first(), Some(&LogSignatureKind::NcclTimeout), "{jax:?}");
    let socket = kinds(&[
        "node7:1234:1250 [3] misc/socket.cc:50 NCCL WARN socketPollConnect: connect returned Connection timed out",
    ]);
    assert_eq!(
        socket.first(),
        Some(&LogSignatureKind::NcclNetwork),
        "{socket:?}"
    );
    let fallback = kinds(&[
        "node7:1234:1234 [0] misc/ibvwrap.cc:63 NCCL WARN Failed to open libibverbs.so[.1]",
    ]);
    assert!(fallback.is_empty(), "{fallback:?}");
    let harmless = kinds(&[
        "[12:00:01] The following error message 'xyz failed' can be ignored.",
        "[12:00:02] The following error message 'xyz failed' can be ignored.",
    ]);
    assert!(harmless.is_empty(), "{harmless:?}");
}

#[test]
fn code_lines_are_not_signatures() {
    let lines = [
        "Traceback (most recent call last):",
        "  File \"t.py\", line 3, in f",
        "    raise RuntimeError(\"loss is nan\")  # Segmentation fault (core dumped)",
        "RuntimeError: boom",
    ];
    let got = run(&lines.map(str::to_owned));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].kind, LogSignatureKind::PythonException);
}

#[test]
fn long_traceback_is_bounded() {
    let mut s = LogScanner::new();
    assert!(
        s.scan(
            LogStream::Stderr,
            LogLevel::Error,
            "Traceback (most recent call last):"
        )
        .is_empty()
    );
    for i in 0..5000 {
        let f = format!("  File \"r.py\", line {i}, in recurse");
        assert!(s.scan(LogStream::Stderr, LogLevel::Error, &f).is_empty());
        assert!(
            s.scan(
                LogStream::Stderr,
                LogLevel::Error,
                "    return recurse(n - 1)"
            )
            .is_empty()
        );
    }
    let m = s.scan(
        LogStream::Stderr,
        LogLevel::Error,
        "RecursionError: maximum recursion depth exceeded",
    );
    assert_eq!(m.len(), 1);
    let tb = &m[0].attributes.get("traceback").unwrap();
    assert!(tb.len() <= MAX_TRACEBACK_BYTES + 64, "{}", tb.len());
    assert!(tb.lines().count() <= 201);
    assert_eq!(
        m[0].attributes.get("frame").unwrap(),
        "r.py:4999 in recurse"
    );
    assert!(tb.ends_with("RecursionError: maximum recursion depth exceeded"));
}

#[test]
fn recurring_error_reports_at_powers_of_ten() {
    let mut s = LogScanner::new();
    let mut counts = Vec::new();
    for i in 0..1000 {
        for m in s.scan(
            LogStream::Stdout,
            LogLevel::Error,
            &format!("worker {i} lost heartbeat after {} s", i % 60),
        ) {
            assert_eq!(m.kind, LogSignatureKind::ErrorTemplate);
            counts.push(m.attributes.get("count").unwrap().clone());
        }
    }
    assert_eq!(counts, ["1", "10", "100", "1000"]);
    let t = s.templates();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].count, 1000);
    assert_eq!(t[0].template, "worker <*> lost heartbeat after <*> s");
    assert_eq!(t[0].example, "worker 0 lost heartbeat after 0 s");
}

/// Fragments of real lines, so random input reaches the deeper paths.
const FRAGMENTS: &[&str] = &[
    "Traceback (most recent call last):",
    "  File \"x.py\", line 3, in f",
    "[rank3]: ",
    "[default1]:",
    "RuntimeError: ",
    "CUDA out of memory. Tried to allocate ",
    "NVRM: Xid (PCI:0000:3b:00): ",
    "Watchdog caught collective operation timeout: WorkNCCL(SeqNum=",
    "NCCL WARN NET/IB : peer ",
    "During handling of the above exception, another exception occurred:",
    "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: ",
    "loss is nan",
    "Killed process ",
    "Signal 11 (SIGSEGV) received by PID ",
    "No space left on device: '",
    "ERROR ",
    "2024-05-01 12:00:03,123 ",
    "é漢🚀",
    "\n",
    "\r",
    "",
];

fn fragment_line() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
            any::<String>(),
            "[0-9a-fA-F:. x()=,'\"/-]{0,20}",
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scan_never_panics(
        lines in prop::collection::vec((fragment_line(), 0u8..3, 0u8..5), 1..40)
    ) {
        let mut s = LogScanner::new();
        for (text, stream, level) in &lines {
            let stream = [LogStream::Stdout, LogStream::Stderr, LogStream::App][*stream as usize];
            let level = [
                LogLevel::Debug,
                LogLevel::Info,
                LogLevel::Warning,
                LogLevel::Error,
                LogLevel::Critical,
            ][*level as usize];
            for m in s.scan(stream, level, text) {
                prop_assert!(!m.title.contains('\n'));
                prop_assert!(m.title.len() <= 240);
            }
        }
        let _ = s.finish();
        prop_assert!(s.templates().len() <= MAX_TEMPLATES);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2))]

    /// 100k random error lines: the templates stay within the bound, and
    /// each example stays short.
    #[test]
    fn templates_stay_bounded(seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let words = ["alpha", "beta", "gamma", "delta", "failed", "shard", "worker", "lost", "timeout", "retry"];
        let mut s = LogScanner::new();
        for _ in 0..100_000 {
            let n = rng.gen_range(1..12);
            let mut line = String::new();
            for _ in 0..n {
                match rng.gen_range(0..4) {
                    0 => line.push_str(words[rng.gen_range(0..words.len())]),
                    1 => line.push_str(&rng.gen_range(0..1_000_000u32).to_string()),
                    _ => {
                        let len = rng.gen_range(1..10);
                        line.extend((0..len).map(|_| rng.gen_range(b'a'..=b'z') as char));
                    }
                }
                line.push(' ');
            }
            let _ = s.scan(LogStream::Stderr, LogLevel::Error, &line);
        }
        let t = s.templates();
        prop_assert!(t.len() <= MAX_TEMPLATES, "{}", t.len());
        prop_assert!(t.iter().all(|t| t.example.len() <= 512));
        prop_assert!(t.windows(2).all(|w| w[0].count >= w[1].count));
    }
}

/// torchrun's failure report after a rank was killed: the agent's line and
/// the report's `Signal 9` line both show the SIGKILL, torchrun's own
/// traceback is an exception, and the report's banner lines (read as the
/// exception's message) are not taken as unknown errors.
#[test]
fn torchrun_failure_report() {
    let report = r#"[2024-05-01 12:00:03,123] torch.distributed.elastic.multiprocessing.api: [WARNING] Sending process 1235 closing signal SIGTERM
[2024-05-01 12:00:03,456] torch.distributed.elastic.multiprocessing.api: [ERROR] failed (exitcode: -9) local_rank: 0 (pid: 1234) of binary: /usr/bin/python
Traceback (most recent call last):
  File "/usr/local/bin/torchrun", line 8, in <module>
    sys.exit(main())
  File "/usr/local/lib/python3.11/site-packages/torch/distributed/run.py", line 870, in run
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError: 
============================================================
train.py FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2024-05-01_12:00:03
  host      : node01
  rank      : 0 (local_rank: 0)
  exitcode  : -9 (pid: 1234)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 1234
============================================================"#;
    let mut s = LogScanner::new();
    let mut got = Vec::new();
    for l in report.lines() {
        got.extend(s.scan(LogStream::Stderr, LogLevel::Info, l));
    }
    got.extend(s.finish());
    let kinds: Vec<_> = got.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            LogSignatureKind::OomKiller,
            LogSignatureKind::PythonException,
            LogSignatureKind::OomKiller
        ],
        "{got:#?}"
    );
    assert_eq!(got[0].attributes.get("rank").unwrap(), "0");
    assert_eq!(got[0].attributes.get("pid").unwrap(), "1234");
    assert_eq!(
        got[1].attributes.get("exception_type").unwrap(),
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError"
    );
    assert_eq!(got[2].attributes.get("pid").unwrap(), "1234");
    assert!(s.templates().is_empty(), "{:?}", s.templates());
}
