//! Metrics from the lines a training script prints: what `loupe run` reads
//! from a child's stdout and stderr when the script uses no SDK.
//!
//! [`LineMetricExtractor::extract`] takes one line and returns the metrics
//! in it, or `None`. It recognises, in this order:
//!
//! 1. **User patterns** (`--metric-pattern REGEX`): every named group that
//!    matched a number is a metric named after the group; a group named
//!    `step` is the step. A line that a user pattern matches is read by the
//!    user patterns only: the user said what that line means.
//! 2. **JSON objects and Python dict reprs** anywhere on the line, flattened
//!    one level with `/`: `{"loss": 0.5}`, the Hugging Face Trainer's
//!    `{'loss': 0.5123, 'grad_norm': 1.84, 'learning_rate': 4.9e-05, 'epoch': 0.03}`.
//! 3. **tqdm bars** (see `tqdm.rs`): `tqdm/n`, `tqdm/total`, `tqdm/rate`
//!    (iterations per second; `s/it` is inverted) and the postfix pairs.
//! 4. **Pairs**: `key=value`, `key: value`, and on lines anchored by a step
//!    word, `key value` (`iter 100: loss 4.2345, time 35.12ms, mfu 12.3%`).
//!
//! The step is the value of `step`, `global_step`, `iter` or `iteration`
//! (as a pair, `step 10`, or `iter 1200/5000`), else a tqdm bar's `n`.
//! `epoch` is a metric like any other (`Epoch 3/10` gives `epoch` = 3).
//! Values are numbers as Python, JSON or `printf` write them, including
//! `nan`, `inf`, `-inf`, `NaN`, `Infinity`; the units `%`, `ms`, `us`, `ns`,
//! `s` and `x` directly after a number are dropped (the value stays as
//! printed: `12.5%` is 12.5, `35.1ms` is 35.1).
//!
//! # Prose stays prose
//! Most lines a job prints are not metrics, and a false metric is worse
//! than a missed one (it litters the run with series nobody asked for). So:
//! - keys look like identifiers: ASCII letters, digits, `_`, `/`, `.`, `-`,
//!   starting with a letter or `_`; values are whole tokens (`2.3.1`,
//!   `1,000`, `12GB`, `0x1f` are not numbers);
//! - `a==b`, URLs, timestamps, `host:port`, `file.py:42` never form pairs
//!   (a `key: value` pair needs the space after the colon);
//! - spaced pairs (`key: value`, `key = value`, `key value`) must start a
//!   clause (line start, after `,` `;` `|` ` - ` brackets, or after another
//!   pair's value) and their value must end one, so `Note: 3 warnings` and
//!   `Num examples = 1,000` give nothing; a key of up to three words is
//!   joined with `_` (`train loss 2.1` → `train_loss`);
//! - a line with a single pair and no step keeps it only if the key names a
//!   metric (`loss`, `acc`, `lr`, `grad`, `reward`, …) or, for `key=value`,
//!   the value is not an integer and the key is not a setting (`rank`,
//!   `port`, `seed`, `version`, …). Several pairs on a line need one of a
//!   step, a metric name, a fraction or a `key=value` among them;
//! - Python tracebacks (from `Traceback (most recent call last):` to the
//!   exception line) give nothing: their source lines are code.
//!
//! # What the caller does
//! One call is one line without its terminator. A chunk read from a pipe
//! must be split on `\n` **and** `\r` first: tqdm redraws its bar with
//! `\r`, so one "line" of output often carries many updates, each of which
//! is its own line here. ANSI colour sequences and backspaces are ignored.
//! Only the first [`MAX_SCAN_BYTES`] of a line are scanned.
//!
//! The extractor keeps a little state between calls (whether a traceback is
//! being printed) and reuses its buffers, so keep one per stream.

mod dict;
mod number;
mod pairs;
mod tqdm;

use number::{as_step, parse_number};
use regex::Regex;

/// Bytes of a line that are scanned; the rest is ignored. Metrics sit near
/// the start of a line, and this bounds the cost of a pathological one.
pub const MAX_SCAN_BYTES: usize = 16 << 10;

/// Longest key kept.
const MAX_KEY_BYTES: usize = 128;

/// The metrics found on one line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineMetrics {
    /// The step the line reports, if it names one.
    pub step: Option<i64>,
    /// `(name, value)` in the order found, each name once.
    pub values: Vec<(String, f64)>,
}

/// A `--metric-pattern` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// Not a valid regular expression.
    #[error("--metric-pattern {pattern:?}: {source}")]
    Invalid {
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
    /// No named group, so nothing to name a metric after.
    #[error(
        "--metric-pattern {pattern:?} has no named group: name each metric, e.g. (?P<loss>[0-9.e+-]+)"
    )]
    NoNamedGroup { pattern: String },
    /// A group name that is not a valid metric name.
    #[error("--metric-pattern {pattern:?}: group name {name:?} is not a valid metric name")]
    BadGroupName { pattern: String, name: String },
}

/// Finds metrics in log lines; see the module documentation.
#[derive(Debug, Clone)]
pub struct LineMetricExtractor {
    patterns: Vec<Regex>,
    buf: Vec<u8>,
    tokens: Vec<Token>,
    in_traceback: bool,
}

/// One whitespace- or separator-delimited token of the scanned line.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    /// A hard separator (`,`, `;`, `|`, an opening bracket, ` - `) comes
    /// right before it.
    sep_before: bool,
    /// A hard separator (or a closing bracket) comes right after it.
    sep_after: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `key=value` in one token: the strongest signal.
    Tight,
    /// `key = value`, `key: value`.
    Spaced,
    /// `key value`, accepted on anchored lines only.
    Bare,
    /// `step 10`, `Epoch 3/10`.
    Anchor,
}

#[derive(Debug)]
struct Candidate {
    key: String,
    value: f64,
    kind: Kind,
    integral: bool,
}

impl LineMetricExtractor {
    /// An extractor with the user's `--metric-pattern`s (Rust `regex`
    /// syntax, named groups `(?P<name>...)`; the group `step` is the step).
    pub fn new(user_patterns: &[String]) -> Result<Self, PatternError> {
        let mut patterns = Vec::with_capacity(user_patterns.len());
        for p in user_patterns {
            let re = Regex::new(p).map_err(|e| PatternError::Invalid {
                pattern: p.clone(),
                source: Box::new(e),
            })?;
            let mut named = 0;
            for name in re.capture_names().flatten() {
                if !valid_key(name.as_bytes()) {
                    return Err(PatternError::BadGroupName {
                        pattern: p.clone(),
                        name: name.to_owned(),
                    });
                }
                named += 1;
            }
            if named == 0 {
                return Err(PatternError::NoNamedGroup { pattern: p.clone() });
            }
            patterns.push(re);
        }
        Ok(Self {
            patterns,
            buf: Vec::new(),
            tokens: Vec::new(),
            in_traceback: false,
        })
    }

    /// The metrics on `line` (one line, without `\n` or `\r`), or `None`.
    pub fn extract(&mut self, line: &str) -> Option<LineMetrics> {
        let line = line.trim_end_matches(['\n', '\r']);
        let mut out = LineMetrics::default();
        let in_traceback = self.skip_traceback(line);
        self.user(line, &mut out);
        if out.values.is_empty() && out.step.is_none() && !in_traceback {
            self.builtin(line, &mut out);
        }
        (!out.values.is_empty()).then_some(out)
    }

    /// Tracks Python tracebacks; true while `line` belongs to one.
    fn skip_traceback(&mut self, line: &str) -> bool {
        if self.in_traceback {
            // Frames and source lines are indented; the first line that is
            // not (the exception itself) ends the traceback.
            if !line.starts_with([' ', '\t']) && !line.is_empty() {
                self.in_traceback = false;
            }
            return true;
        }
        if line
            .trim_start()
            .starts_with("Traceback (most recent call last)")
        {
            self.in_traceback = true;
            return true;
        }
        false
    }

    fn user(&self, line: &str, out: &mut LineMetrics) {
        if self.patterns.is_empty() {
            return;
        }
        let mut end = line.len().min(MAX_SCAN_BYTES);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let line = &line[..end];
        for re in &self.patterns {
            for caps in re.captures_iter(line) {
                for name in re.capture_names().flatten() {
                    let Some(m) = caps.name(name) else { continue };
                    let Some(v) = parse_number(m.as_str().trim().as_bytes(), true) else {
                        continue;
                    };
                    if name == "step" {
                        if let Some(s) = as_step(v) {
                            out.step = Some(s);
                        }
                        continue;
                    }
                    // Several patterns may name the same metric: the last wins.
                    match out.values.iter_mut().find(|(k, _)| k == name) {
                        Some(slot) => slot.1 = v,
                        None => out.values.push((name.to_owned(), v)),
                    }
                }
            }
        }
    }

    fn builtin(&mut self, line: &str, out: &mut LineMetrics) {
        let bytes = line.as_bytes();
        let bytes = &bytes[..bytes.len().min(MAX_SCAN_BYTES)];
        // Cheap exit for the most common non-metric lines: no digit at all
        // means no number (NaN alone is not worth a scan of prose).
        if !bytes.iter().any(u8::is_ascii_digit)
            && !contains_ci(bytes, b"nan")
            && !contains_ci(bytes, b"inf")
        {
            return;
        }
        clean_into(bytes, &mut self.buf);
        blank_urls(&mut self.buf);

        let mut step: Option<i64> = None;
        let mut found: Vec<Candidate> = Vec::new();
        // A dict or a tqdm bar makes the line structured output: its other
        // pairs count even alone, but only a step word allows bare
        // `key value` pairs (a bar's description is prose).
        let mut structured = false;

        // Dicts and JSON objects first: their contents must not be read as
        // pairs again. A handful of attempts per line keeps prose with many
        // braces cheap.
        let mut from = 0;
        let mut attempts = 0;
        while attempts < 8 {
            let Some(open) = self.buf[from..]
                .iter()
                .position(|&c| c == b'{')
                .map(|p| from + p)
            else {
                break;
            };
            attempts += 1;
            match dict::parse_dict(&self.buf, open) {
                Some(d) => {
                    for (k, v) in d.values {
                        if is_step_key(&k) && as_step(v).is_some() {
                            step = as_step(v);
                        } else {
                            found.push(Candidate {
                                key: k,
                                value: v,
                                kind: Kind::Tight,
                                integral: false,
                            });
                        }
                    }
                    structured = true;
                    self.buf[open..d.end].fill(b' ');
                    from = d.end;
                }
                None => from = open + 1,
            }
        }

        let mut tqdm_n = None;
        if let Some(t) = tqdm::take_tqdm(&mut self.buf) {
            structured = true;
            tqdm_n = t.n;
            let mut push = |k: &str, v: f64| {
                found.push(Candidate {
                    key: k.to_owned(),
                    value: v,
                    kind: Kind::Tight,
                    integral: false,
                })
            };
            if let (Some(n), Some(total)) = (t.n, t.total) {
                push("tqdm/n", n as f64);
                push("tqdm/total", total as f64);
            } else if let Some(n) = t.n {
                push("tqdm/n", n as f64);
            }
            if let Some(r) = t.rate {
                push("tqdm/rate", r);
            }
        }

        tokenize(&self.buf, &mut self.tokens);
        let (pairs, pair_step, anchored) = pairs::pairs(&self.buf, &self.tokens);
        if pair_step.is_some() {
            step = step.or(pair_step);
        }
        if accept(&pairs, anchored, structured) {
            found.extend(
                pairs
                    .into_iter()
                    .filter(|c| c.kind != Kind::Bare || anchored),
            );
        }

        out.step = step.or(tqdm_n);
        for c in found {
            if !out.values.iter().any(|(k, _)| *k == c.key) {
                out.values.push((c.key, c.value));
            }
        }
    }
}

/// Whether the line's pairs are metrics; see "Prose stays prose".
fn accept(pairs: &[Candidate], anchored: bool, structured: bool) -> bool {
    let weighed: Vec<&Candidate> = pairs
        .iter()
        .filter(|c| c.kind != Kind::Bare || anchored)
        .collect();
    if anchored || structured {
        return true;
    }
    match weighed.as_slice() {
        [] => false,
        [one] => {
            names_metric(&one.key)
                || (one.kind == Kind::Tight && !one.integral && !names_setting(&one.key))
        }
        many => many
            .iter()
            .any(|c| names_metric(&c.key) || !c.integral || c.kind == Kind::Tight),
    }
}

/// Copies `src` into `dst` without ANSI escape sequences, with tabs and
/// backspaces as spaces.
fn clean_into(src: &[u8], dst: &mut Vec<u8>) {
    dst.clear();
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c == 0x1b {
            // CSI: ESC [ parameters… final byte in 0x40..=0x7e.
            if src.get(i + 1) == Some(&b'[') {
                let mut j = i + 2;
                while j < src.len() && !(0x40..=0x7e).contains(&src[j]) {
                    j += 1;
                }
                i = j + 1;
            } else {
                i += 2;
            }
            continue;
        }
        dst.push(if c == b'\t' || c == 0x08 || c == b'\r' {
            b' '
        } else {
            c
        });
        i += 1;
    }
}

/// Blanks `scheme://...` up to the next whitespace: query strings and ports
/// are not metrics.
fn blank_urls(buf: &mut [u8]) {
    let mut from = 0;
    while let Some(p) = buf[from..]
        .windows(3)
        .position(|w| w == b"://")
        .map(|p| from + p)
    {
        let mut start = p;
        while start > 0
            && (buf[start - 1].is_ascii_alphanumeric()
                || matches!(buf[start - 1], b'+' | b'-' | b'.'))
        {
            start -= 1;
        }
        let mut end = p + 3;
        while end < buf.len() && !buf[end].is_ascii_whitespace() {
            end += 1;
        }
        buf[start..end].fill(b' ');
        from = end;
    }
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Splits the cleaned line into tokens; see [`Token`].
fn tokenize(s: &[u8], out: &mut Vec<Token>) {
    out.clear();
    let mut pending_sep = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let is_sep = match c {
            b'|' | b';' => true,
            // 1,000 and 12:00:03,123 keep their comma.
            b',' => {
                !(i > 0
                    && s[i - 1].is_ascii_digit()
                    && s.get(i + 1).is_some_and(u8::is_ascii_digit))
            }
            _ => false,
        };
        if is_sep {
            mark_sep(out, &mut pending_sep);
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < s.len() && !s[i].is_ascii_whitespace() && !matches!(s[i], b'|' | b';') {
            if s[i] == b','
                && !(s[i - 1].is_ascii_digit() && s.get(i + 1).is_some_and(u8::is_ascii_digit))
            {
                break;
            }
            i += 1;
        }
        let (mut a, mut b) = (start, i);
        let mut sep_before = pending_sep;
        let mut sep_after = false;
        while a < b && matches!(s[a], b'(' | b'[' | b'{') {
            a += 1;
            sep_before = true;
        }
        while b > a && matches!(s[b - 1], b')' | b']' | b'}') {
            b -= 1;
            sep_after = true;
        }
        // "0.5." at a sentence's end, "100:" before the rest of the line.
        if b > a + 1 && matches!(s[b - 1], b'.' | b':') && s[b - 2].is_ascii_digit() {
            b -= 1;
            sep_after |= s[b] == b':';
        }
        let tok = &s[a..b];
        if tok.is_empty() {
            if sep_after {
                mark_sep(out, &mut pending_sep);
            }
            continue;
        }
        // Runs of punctuation (` - `, `•`, a Keras `[=====>...]` bar, rich's
        // `━━━`) separate clauses; a lone `=` is part of `key = value`.
        if tok != b"=" && !tok.iter().any(u8::is_ascii_alphanumeric) {
            mark_sep(out, &mut pending_sep);
            continue;
        }
        out.push(Token {
            start: a,
            end: b,
            sep_before,
            sep_after,
        });
        pending_sep = sep_after;
    }
}

fn mark_sep(out: &mut [Token], pending: &mut bool) {
    if let Some(last) = out.last_mut() {
        last.sep_after = true;
    }
    *pending = true;
}

/// Whether token `m` starts a pair (so the value before it ends a clause).
fn begins_pair(s: &[u8], toks: &[Token], m: usize) -> bool {
    let text = |i: usize| &s[toks[i].start..toks[i].end];
    let t = text(m);
    if eq_position(t).is_some() || (t.len() > 1 && t.ends_with(b":")) {
        return true;
    }
    if !valid_key(t) {
        return false;
    }
    // Up to three key words, then `=`, a number, or a colon key.
    let mut j = m + 1;
    while j < toks.len() && j <= m + 3 {
        let u = text(j);
        if u == b"=" || u.ends_with(b":") || parse_number(u, true).is_some() {
            return true;
        }
        if !valid_key(u) {
            return false;
        }
        j += 1;
    }
    false
}

/// `step 10`'s value: an integer or `n/total` (the `n`), or a plain number
/// for `epoch`.
fn anchor_value(t: &[u8]) -> Option<f64> {
    let head = match t.iter().position(|&c| c == b'/') {
        Some(p) if t[p + 1..].iter().all(u8::is_ascii_digit) && p + 1 < t.len() => &t[..p],
        Some(_) => return None,
        None => t,
    };
    parse_number(head, false).filter(|v| v.is_finite())
}

/// Position of the `=` of a `key=value`, not of `==`, `!=`, `<=`, `>=`,
/// `=>`.
fn eq_position(t: &[u8]) -> Option<usize> {
    let p = t.iter().position(|&c| c == b'=')?;
    let before = p.checked_sub(1).map(|q| t[q]);
    let after = t.get(p + 1).copied();
    if matches!(before, Some(b'=' | b'!' | b'<' | b'>')) || matches!(after, Some(b'=' | b'>')) {
        return None;
    }
    Some(p)
}

fn strip_unit(v: &[u8]) -> &[u8] {
    &v[..number::numeric_prefix_len(v)]
}

/// Keys look like identifiers: ASCII letters, digits, `_`, `/`, `.`, `-`,
/// starting with a letter or `_`, not ending with a separator.
pub(crate) fn valid_key(k: &[u8]) -> bool {
    match (k.first(), k.last()) {
        (Some(f), Some(l)) => {
            (f.is_ascii_alphabetic() || *f == b'_')
                && !matches!(l, b'.' | b'/' | b'-')
                && k.len() <= MAX_KEY_BYTES
                && k.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'/' | b'.' | b'-'))
        }
        _ => false,
    }
}

/// The words that give the step (matched on the key's last `/` segment).
fn is_step_key(k: &str) -> bool {
    let last = k.rsplit('/').next().unwrap_or(k);
    ["step", "global_step", "iter", "iteration"]
        .iter()
        .any(|w| last.eq_ignore_ascii_case(w))
}

/// Words that anchor a line when followed by a number: the step words and
/// `epoch`.
fn is_anchor_word(w: &[u8]) -> bool {
    ["step", "global_step", "iter", "iteration", "epoch"]
        .iter()
        .any(|a| w.eq_ignore_ascii_case(a.as_bytes()))
}

/// Small words that make a "key" prose: `finished in 12.5s`.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "in", "at", "to", "of", "for", "on", "by", "with", "from", "after", "took",
    "is", "was", "are", "and", "or", "be", "has", "have", "use", "using", "used",
];

/// Key words that name a training metric: substrings for long words,
/// whole `_`/`/`/`.`/`-` segments for short ones (`acc` but not
/// `accumulation`, `lr` but not `url`).
fn names_metric(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    const PARTS: &[&str] = &[
        "loss",
        "perplexity",
        "accuracy",
        "reward",
        "grad_norm",
        "gradnorm",
        "learning_rate",
        "throughput",
        "per_sec",
        "per_second",
        "precision",
        "recall",
        "entropy",
    ];
    PARTS.iter().any(|p| k.contains(p))
        || k.split(['_', '/', '.', '-']).any(|s| {
            matches!(
                s,
                "acc"
                    | "lr"
                    | "f1"
                    | "wer"
                    | "cer"
                    | "mse"
                    | "mae"
                    | "kl"
                    | "ppl"
                    | "auc"
                    | "bleu"
                    | "mfu"
                    | "score"
                    | "rouge"
                    | "top1"
                    | "top5"
            )
        })
}

/// Key words of settings and identifiers, not metrics.
fn names_setting(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.split(['_', '/', '.', '-']).any(|s| {
        matches!(
            s,
            "rank"
                | "port"
                | "pid"
                | "seed"
                | "version"
                | "errno"
                | "code"
                | "id"
                | "size"
                | "line"
                | "lineno"
                | "count"
                | "nodes"
                | "workers"
                | "threads"
                | "timeout"
                | "interval"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(line: &str) -> Option<LineMetrics> {
        LineMetricExtractor::new(&[]).unwrap().extract(line)
    }

    fn vals(line: &str) -> Vec<(String, f64)> {
        ex(line).map(|m| m.values).unwrap_or_default()
    }

    #[test]
    fn pairs_and_steps() {
        let m = ex("step 10 | loss=0.512 lr=3e-4").unwrap();
        assert_eq!(m.step, Some(10));
        assert_eq!(m.values, vec![("loss".into(), 0.512), ("lr".into(), 3e-4)]);
        let m = ex("iter 100: loss 4.2345, time 35.12ms, mfu 12.3%").unwrap();
        assert_eq!(m.step, Some(100));
        assert_eq!(
            m.values,
            vec![
                ("loss".into(), 4.2345),
                ("time".into(), 35.12),
                ("mfu".into(), 12.3)
            ]
        );
        let m = ex("iter 1200/5000 loss 2.31").unwrap();
        assert_eq!(
            (m.step, m.values),
            (Some(1200), vec![("loss".into(), 2.31)])
        );
        let m = ex("Epoch 3: loss: 0.51 - accuracy: 0.82").unwrap();
        assert_eq!(
            m.values,
            vec![
                ("epoch".into(), 3.0),
                ("loss".into(), 0.51),
                ("accuracy".into(), 0.82)
            ]
        );
        let m = ex("step 2000: train loss 2.1000, val loss 2.3000").unwrap();
        assert_eq!(
            m.values,
            vec![("train_loss".into(), 2.1), ("val_loss".into(), 2.3)]
        );
        assert!(vals("loss=nan")[0].1.is_nan());
        let m = ex("INFO:__main__:step=10, loss=0.5").unwrap();
        assert_eq!((m.step, m.values), (Some(10), vec![("loss".into(), 0.5)]));
        assert_eq!(vals("[rank0]:loss=0.25"), vec![("loss".to_owned(), 0.25)]);
        assert_eq!(vals("x: 1, loss=-inf")[1].1, f64::NEG_INFINITY);
    }

    #[test]
    fn prose() {
        for line in [
            "Saving model to /tmp/x: done",
            "Note: 3 warnings",
            "2024-05-01 12:00:03,123 - INFO - starting",
            "see https://example.com:8080/a?step=3&loss=1",
            "torch==2.3.1",
            "CUDA 12.1",
            "listening on 127.0.0.1:29500",
            "  File \"train.py\", line 42, in <module>",
            "  Num examples = 1,000",
            "  Num Epochs = 3",
            "Added key: store_based_barrier_key:1 to store for rank: 0",
            "  master_port=29500",
        ] {
            assert_eq!(ex(line), None, "{line}");
        }
        // The epoch is real; "finished in" is prose.
        assert_eq!(
            vals("Epoch 3 finished in 12.5s"),
            vec![("epoch".to_owned(), 3.0)]
        );
    }

    #[test]
    fn user_patterns() {
        let mut e =
            LineMetricExtractor::new(&[r"it (?P<step>\d+) L=(?P<loss>\S+)".into()]).unwrap();
        let m = e.extract("it 7 L=0.25 tokens 3").unwrap();
        assert_eq!((m.step, m.values), (Some(7), vec![("loss".into(), 0.25)]));
        assert!(matches!(
            LineMetricExtractor::new(&["(".into()]),
            Err(PatternError::Invalid { .. })
        ));
        assert!(matches!(
            LineMetricExtractor::new(&["a(b)".into()]),
            Err(PatternError::NoNamedGroup { .. })
        ));
    }
}
