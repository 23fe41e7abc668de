//! Common line prefixes: timestamps, log levels, syslog and kernel headers,
//! and the rank tags that launchers put in front of each process's output
//! (`[rank3]: `, `[default0]:`, srun's `3: `).

use loupe_model::LogLevel;
use regex::Regex;
use std::sync::LazyLock;

/// A line with its prefixes taken off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stripped<'a> {
    /// The line after the prefixes.
    pub rest: &'a str,
    /// The rank tag as written (`rank3`, `default0`, `3`): it keys the
    /// per-process traceback state.
    pub tag: Option<&'a str>,
    /// The rank number from the tag.
    pub rank: Option<&'a str>,
    /// A level word found in the prefix (`ERROR`, `[WARNING]`, `INFO:`).
    pub level: Option<LogLevel>,
}

/// `May  1 12:00:03 node01 kernel: ` (rare, so a regex is fine). The
/// pattern is a constant: it compiles, or every test fails at once.
static SYSLOG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \S+ (?:kernel: ?|\S+: ?)?")
        .expect("constant pattern")
});

/// A byte cursor for the hand-written prefix parsers: every step checks
/// bounds, so no input can make it index out of range.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn new(s: &'a str) -> Self {
        Cur {
            b: s.as_bytes(),
            i: 0,
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn eat_if(&mut self, f: impl Fn(u8) -> bool) -> bool {
        match self.peek() {
            Some(c) if f(c) => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }
    /// Between `min` and `max` bytes satisfying `f`; false (and the cursor
    /// where it stopped) if fewer than `min`.
    fn many(&mut self, min: usize, max: usize, f: impl Fn(u8) -> bool) -> bool {
        let start = self.i;
        while self.i - start < max && self.eat_if(&f) {}
        self.i - start >= min
    }
    fn digits(&mut self, n: usize) -> bool {
        self.many(n, n, |c| c.is_ascii_digit())
    }
    /// Separators after a timestamp or a level: spaces, tabs, `|`, `- `.
    fn separators(&mut self) {
        loop {
            if self.eat_if(|c| c == b' ' || c == b'\t' || c == b'|') {
                continue;
            }
            if self.peek() == Some(b'-')
                && self
                    .b
                    .get(self.i + 1)
                    .is_some_and(|c| *c == b' ' || *c == b'\t')
            {
                self.i += 1;
                continue;
            }
            break;
        }
    }
}

/// `2024-05-01 12:00:03,123`, `[2024-05-01T12:00:03.123Z]`, then
/// separators: the bytes taken.
fn timestamp(s: &str) -> Option<usize> {
    let mut c = Cur::new(s);
    let bracket = c.eat(b'[');
    let ok = c.digits(4)
        && c.eat(b'-')
        && c.digits(2)
        && c.eat(b'-')
        && c.digits(2)
        && c.eat_if(|x| x == b'T' || x == b' ' || x == b'_')
        && c.digits(2)
        && c.eat(b':')
        && c.digits(2)
        && c.eat(b':')
        && c.digits(2);
    if !ok {
        return None;
    }
    if c.eat_if(|x| x == b'.' || x == b',') {
        c.many(1, 12, |x| x.is_ascii_digit());
    }
    if !c.eat(b'Z') && c.eat_if(|x| x == b'+' || x == b'-') {
        // A zone offset `+02:00` or `+0200`; a lone sign is left as taken.
        c.digits(2);
        c.eat(b':');
        c.digits(2);
    }
    if bracket {
        c.eat(b']');
    }
    c.separators();
    Some(c.i)
}

/// The kernel's `[ 1234.567890] `: the bytes taken.
fn kernel_time(s: &str) -> Option<usize> {
    let mut c = Cur::new(s);
    let ok = c.eat(b'[')
        && {
            c.many(0, 16, |x| x == b' ');
            c.many(1, 12, |x| x.is_ascii_digit())
        }
        && c.eat(b'.')
        && c.many(1, 12, |x| x.is_ascii_digit())
        && c.eat(b']');
    if !ok {
        return None;
    }
    c.many(0, usize::MAX, |x| x == b' ' || x == b'\t');
    Some(c.i)
}

/// `[rank3]: `, `[Rank 3] `, `[default0]:` (torchrun's role and local rank),
/// srun's `3: `: (bytes taken, tag, rank). Only one space is taken after
/// the tag, so the indentation of a traceback's frame lines survives.
fn rank_tag(s: &str) -> Option<(usize, &str, &str)> {
    let b = s.as_bytes();
    let mut c = Cur::new(s);
    if c.eat(b'[') {
        let name_start = c.i;
        let rank_word =
            b.len() >= 5 && b.get(1..5).is_some_and(|w| w.eq_ignore_ascii_case(b"rank"));
        if rank_word {
            c.i += 4;
            c.many(0, 4, |x| x == b' ');
        } else if !c.many(1, 32, |x| x.is_ascii_alphabetic() || x == b'_') {
            return None;
        }
        let digits_start = c.i;
        if !c.many(1, 6, |x| x.is_ascii_digit()) {
            return None;
        }
        let (tag_end, rank_end) = (c.i, c.i);
        if !c.eat(b']') {
            return None;
        }
        let colon = c.eat(b':');
        // A role tag other than `rank` needs the colon (`[default0]:`),
        // so a bracketed word such as `[step100]` in a message stays.
        if !rank_word && !colon {
            return None;
        }
        c.eat(b' ');
        let tag = s.get(name_start..tag_end)?;
        let rank = s.get(digits_start..rank_end)?;
        return Some((c.i, tag, rank));
    }
    if c.many(1, 5, |x| x.is_ascii_digit()) && c.eat(b':') && c.eat(b' ') {
        let rank = s.get(..c.i - 2)?;
        return Some((c.i, rank, rank));
    }
    None
}

const LEVELS: [(&str, LogLevel); 8] = [
    ("ERROR", LogLevel::Error),
    ("WARNING", LogLevel::Warning),
    ("WARN", LogLevel::Warning),
    ("INFO", LogLevel::Info),
    ("DEBUG", LogLevel::Debug),
    ("CRITICAL", LogLevel::Critical),
    ("FATAL", LogLevel::Critical),
    ("TRACE", LogLevel::Debug),
];

/// `ERROR `, `[WARNING] `, `INFO:` (Python logging's default format):
/// (bytes taken, level).
fn level(s: &str) -> Option<(usize, LogLevel)> {
    let mut c = Cur::new(s);
    let bracket = c.eat(b'[');
    let rest = s.as_bytes().get(c.i..)?;
    let (word, lvl) = LEVELS
        .iter()
        .find(|(w, _)| rest.starts_with(w.as_bytes()))?;
    c.i += word.len();
    if bracket {
        c.eat(b']');
    }
    let ended = c.peek().is_none();
    if !(ended || c.eat(b':') || c.many(1, usize::MAX, |x| x == b' ' || x == b'\t')) {
        return None;
    }
    c.separators();
    Some((c.i, *lvl))
}

/// Takes off up to a few prefixes, in any order.
pub(crate) fn strip(line: &str) -> Stripped<'_> {
    let mut out = Stripped {
        rest: line,
        tag: None,
        rank: None,
        level: None,
    };
    // A handful of rounds covers `[ts] [LEVEL] [rank0]: `; the bound keeps a
    // pathological line from looping long.
    for _ in 0..6 {
        let rest = out.rest;
        // Fast path: every prefix starts with `[`, a digit or a capital.
        let taken = match rest.as_bytes().first() {
            Some(b'[') => timestamp(rest)
                .or_else(|| kernel_time(rest))
                .or_else(|| tag_into(&mut out, rest))
                .or_else(|| level_into(&mut out, rest)),
            Some(b) if b.is_ascii_digit() => timestamp(rest).or_else(|| tag_into(&mut out, rest)),
            Some(b) if b.is_ascii_uppercase() => {
                level_into(&mut out, rest).or_else(|| SYSLOG.find(rest).map(|m| m.end()))
            }
            _ => None,
        };
        match taken.and_then(|n| rest.get(n..)) {
            Some(r) if r.len() < rest.len() => out.rest = r,
            _ => break,
        }
    }
    out
}

fn tag_into<'a>(out: &mut Stripped<'a>, rest: &'a str) -> Option<usize> {
    let (n, tag, rank) = rank_tag(rest)?;
    // The first tag wins: an inner `[Rank 0]` belongs to the message.
    if out.tag.is_none() {
        out.tag = Some(tag);
        out.rank = Some(rank);
    }
    Some(n)
}

fn level_into(out: &mut Stripped<'_>, rest: &str) -> Option<usize> {
    let (n, l) = level(rest)?;
    out.level = out.level.max(Some(l));
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_common_prefixes() {
        let s = strip("2024-05-01 12:00:03,123 ERROR something failed");
        assert_eq!(s.rest, "something failed");
        assert_eq!(s.level, Some(LogLevel::Error));

        let s = strip("[rank3]:   File \"train.py\", line 3, in f");
        assert_eq!(s.rest, "  File \"train.py\", line 3, in f");
        assert_eq!((s.tag, s.rank), (Some("rank3"), Some("3")));

        let s = strip("[default0]:Traceback (most recent call last):");
        assert_eq!(s.rest, "Traceback (most recent call last):");
        assert_eq!((s.tag, s.rank), (Some("default0"), Some("0")));

        let s =
            strip("May  1 12:00:03 node01 kernel: [ 1234.567890] NVRM: Xid (PCI:0000:3b:00): 79");
        assert_eq!(s.rest, "NVRM: Xid (PCI:0000:3b:00): 79");

        let s = strip("[2024-05-01 12:00:03,123] [INFO] [logging.py:96:log_dist] [Rank 0] x");
        assert_eq!(s.rest, "[logging.py:96:log_dist] [Rank 0] x");
        assert_eq!(s.level, Some(LogLevel::Info));

        let s = strip("INFO:root:step 1");
        assert_eq!(s.rest, "root:step 1");

        let s = strip("12: RuntimeError: boom");
        assert_eq!(s.rest, "RuntimeError: boom");
        assert_eq!(s.rank, Some("12"));

        // Untouched.
        assert_eq!(strip("step 10 loss 2.3").rest, "step 10 loss 2.3");
        assert_eq!(strip("RuntimeError: x").rest, "RuntimeError: x");
        assert_eq!(strip("").rest, "");
    }
}
