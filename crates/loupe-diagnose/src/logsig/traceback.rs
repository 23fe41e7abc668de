//! Python tracebacks, read line by line.
//!
//! ```text
//! Traceback (most recent call last):
//!   File "train.py", line 42, in forward
//!     y = self.net(x)
//! RuntimeError: CUDA out of memory. ...
//!
//! During handling of the above exception, another exception occurred:
//!
//! Traceback (most recent call last):
//!   ...
//! ValueError: bad batch
//! ```
//!
//! A block's match is returned with its `Type: message` line. When a chain
//! follows ("During handling…", "The above exception was the direct
//! cause…"), each later block's match names the exceptions before it in
//! `chain`; the last match of a chain is the exception that ended the
//! program. State is kept per rank tag, so interleaved output of several
//! ranks is read as separate tracebacks.

use super::{LogMatch, LogSignatureKind, clip};
use crate::Severity;
use crate::finding::FindingAttributes;
use hashbrown::HashMap;
use regex::Regex;
use std::collections::VecDeque;
use std::sync::LazyLock;

/// Tracebacks kept at once (one per rank tag being read).
const MAX_PENDING: usize = 64;
/// Lines and bytes kept of one traceback's text: the head and the tail
/// each get half (the outermost and the innermost frames both matter).
pub(crate) const MAX_LINES: usize = 200;
pub(crate) const MAX_BYTES: usize = 16 * 1024;
/// One stored line at most (longer ones are cut).
const MAX_LINE_BYTES: usize = 1024;
/// Lines after the exception line taken as its message's continuation.
const MAX_CONTINUATION: u32 = 8;
/// Exception types remembered in a chain.
const MAX_CHAIN: usize = 8;

const HEADER: &str = "Traceback (most recent call last):";
const CHAIN_CONTEXT: &str = "During handling of the above exception, another exception occurred:";
const CHAIN_CAUSE: &str = "The above exception was the direct cause of the following exception:";

/// Compiled from constants; a malformed pattern fails every test at once.
static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s+File "([^"]*)", line (\d+)(?:, in (.*))?"#).expect("constant pattern")
});
static EXCEPTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^((?:[A-Za-z_][A-Za-z0-9_]*\.)*([A-Za-z_][A-Za-z0-9_]*))(?::(?: (.*)|$)|$)")
        .expect("constant pattern")
});

/// What a line was to the traceback reader.
pub(crate) enum Feed {
    /// Not part of a traceback: scan it as an ordinary line.
    Outside,
    /// A header, frame, code or separator line: nothing else to do with it.
    Consumed,
    /// The continuation of an exception's message: check it for signatures
    /// but do not group it as an unknown error.
    Continuation,
    /// The exception line: its match (signatures still apply to the line).
    Exception(Box<LogMatch>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading frames and code lines.
    Frames,
    /// The exception line came; a chain marker or message lines may follow.
    AfterException(u32),
    /// A chain marker came; the next block's header should follow.
    AwaitHeader,
}

/// A bounded text: the first lines, then the most recent ones.
#[derive(Debug, Default)]
struct Text {
    head: Vec<String>,
    head_bytes: usize,
    tail: VecDeque<String>,
    tail_bytes: usize,
    dropped: u64,
}

impl Text {
    fn push(&mut self, line: &str) {
        let line = clip(line, MAX_LINE_BYTES).to_owned();
        let (lines, bytes) = (MAX_LINES / 2, MAX_BYTES / 2);
        if self.tail.is_empty() && self.head.len() < lines && self.head_bytes + line.len() < bytes {
            self.head_bytes += line.len() + 1;
            self.head.push(line);
            return;
        }
        self.tail_bytes += line.len() + 1;
        self.tail.push_back(line);
        while self.tail.len() > lines || self.tail_bytes > bytes {
            match self.tail.pop_front() {
                Some(old) => {
                    self.tail_bytes = self.tail_bytes.saturating_sub(old.len() + 1);
                    self.dropped += 1;
                }
                None => break,
            }
        }
    }

    fn render(&self) -> String {
        let mut s = String::with_capacity(self.head_bytes + self.tail_bytes + 48);
        for l in &self.head {
            s.push_str(l);
            s.push('\n');
        }
        if self.dropped > 0 {
            s.push_str(&format!("[... {} lines left out ...]\n", self.dropped));
        }
        for l in &self.tail {
            s.push_str(l);
            s.push('\n');
        }
        s.pop();
        s
    }
}

#[derive(Debug)]
struct Pending {
    phase: Phase,
    text: Text,
    /// `file:line in func` of the latest frame of the current block.
    frame: Option<String>,
    /// Exception types of the earlier blocks of a chain.
    chain: Vec<String>,
    rank: Option<String>,
    touched: u64,
}

impl Pending {
    fn new(rank: Option<&str>, touched: u64) -> Self {
        Pending {
            phase: Phase::Frames,
            text: Text::default(),
            frame: None,
            chain: Vec::new(),
            rank: rank.map(str::to_owned),
            touched,
        }
    }
}

/// The traceback readers of one log source, one per rank tag.
#[derive(Debug, Default)]
pub(crate) struct Tracebacks {
    pending: HashMap<String, Pending>,
    clock: u64,
}

/// The type and message of an exception line, if the line is one. Python
/// writes it at the start of the line; a type is a dotted name whose last
/// part is CamelCase (`RuntimeError`, `torch.OutOfMemoryError`,
/// `KeyboardInterrupt`), which keeps out logger prefixes such as `INFO:`.
fn exception_line(line: &str) -> Option<(&str, &str)> {
    let c = EXCEPTION.captures(line)?;
    let ty = c.get(1)?.as_str();
    let last = c.get(2)?.as_str();
    let camel = last.starts_with(|ch: char| ch.is_ascii_uppercase())
        && last.chars().any(|ch| ch.is_ascii_lowercase());
    camel.then(|| (ty, c.get(3).map_or("", |m| m.as_str())))
}

impl Tracebacks {
    /// True when no traceback is being read (the common case: a line that
    /// does not start one needs no further look).
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    pub(crate) fn feed(&mut self, tag: &str, line: &str, rank: Option<&str>) -> Feed {
        self.clock += 1;
        let clock = self.clock;
        if line.trim_start().starts_with(HEADER) {
            let continuing = self
                .pending
                .get(tag)
                .is_some_and(|p| p.phase == Phase::AwaitHeader);
            if !continuing {
                self.make_room(tag);
                self.pending
                    .insert(tag.to_owned(), Pending::new(rank, clock));
            }
            if let Some(p) = self.pending.get_mut(tag) {
                p.phase = Phase::Frames;
                p.frame = None;
                p.touched = clock;
                p.text.push(line);
            }
            return Feed::Consumed;
        }
        let Some(p) = self.pending.get_mut(tag) else {
            return Feed::Outside;
        };
        p.touched = clock;
        let blank = line.trim().is_empty();
        match p.phase {
            Phase::Frames => {
                if blank {
                    p.text.push(line);
                    return Feed::Consumed;
                }
                if line.starts_with(char::is_whitespace) {
                    if let Some(c) = FRAME.captures(line) {
                        let file = c.get(1).map_or("", |m| m.as_str());
                        let no = c.get(2).map_or("", |m| m.as_str());
                        p.frame = Some(match c.get(3) {
                            Some(f) => {
                                format!("{}:{no} in {}", clip(file, 512), clip(f.as_str(), 256))
                            }
                            None => format!("{}:{no}", clip(file, 512)),
                        });
                    }
                    p.text.push(line);
                    return Feed::Consumed;
                }
                let Some((ty, msg)) = exception_line(line) else {
                    // Something else interrupted the traceback: it is cut
                    // off, and the line is an ordinary one.
                    self.pending.remove(tag);
                    return Feed::Outside;
                };
                p.text.push(line);
                let m = exception_match(p, ty, msg);
                if p.chain.len() < MAX_CHAIN {
                    p.chain.push(clip(ty, 128).to_owned());
                }
                p.phase = Phase::AfterException(0);
                Feed::Exception(Box::new(m))
            }
            Phase::AfterException(n) => {
                let trimmed = line.trim();
                if trimmed == CHAIN_CONTEXT || trimmed == CHAIN_CAUSE {
                    p.text.push(line);
                    p.phase = Phase::AwaitHeader;
                    return Feed::Consumed;
                }
                if blank {
                    return Feed::Consumed;
                }
                if n >= MAX_CONTINUATION {
                    self.pending.remove(tag);
                    return Feed::Outside;
                }
                p.phase = Phase::AfterException(n + 1);
                Feed::Continuation
            }
            Phase::AwaitHeader => {
                if blank {
                    p.text.push(line);
                    return Feed::Consumed;
                }
                self.pending.remove(tag);
                Feed::Outside
            }
        }
    }

    /// Completes tracebacks cut off before their exception line; forgets
    /// the rest.
    pub(crate) fn finish(&mut self) -> Vec<LogMatch> {
        let mut cut: Vec<(String, Pending)> = self
            .pending
            .drain()
            .filter(|(_, p)| p.phase == Phase::Frames)
            .collect();
        // Oldest first, so the order does not depend on hashing.
        cut.sort_by_key(|(_, p)| p.touched);
        cut.into_iter()
            .map(|(_, p)| {
                let mut attributes = FindingAttributes::default();
                attributes.insert_text("incomplete", "true".to_owned());
                attributes.insert_text("traceback", p.text.render());
                let title = match &p.frame {
                    Some(f) => {
                        attributes.insert_text("frame", f.clone());
                        format!("Python traceback cut off before its exception (last frame {f})")
                    }
                    None => "Python traceback cut off before its exception".to_owned(),
                };
                if let Some(r) = &p.rank {
                    attributes.insert_text("rank", r.clone());
                }
                LogMatch {
                    kind: LogSignatureKind::PythonException,
                    severity: Severity::Critical,
                    title: clip(&title, 240).to_owned(),
                    attributes,
                }
            })
            .collect()
    }

    /// Keeps the number of readers bounded: drops the least recently fed
    /// one when a new tag would pass the limit.
    fn make_room(&mut self, tag: &str) {
        if self.pending.len() < MAX_PENDING || self.pending.contains_key(tag) {
            return;
        }
        let oldest = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.touched)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.pending.remove(&k);
        }
    }
}

/// An exception line printed without its traceback (a logger that kept
/// only the message, an excerpt): `ValueError: Asking to pad…`. Only types
/// named `…Error` or `…Exception` with a message, so `Epoch 1: …` or a
/// logger's `INFO:` never count.
pub(crate) fn bare_exception(line: &str, rank: Option<&str>) -> Option<LogMatch> {
    let (ty, msg) = exception_line(line.trim_start())?;
    let last = ty.rsplit('.').next().unwrap_or(ty);
    if msg.trim().is_empty() || !(last.ends_with("Error") || last.ends_with("Exception")) {
        return None;
    }
    let mut attributes = FindingAttributes::default();
    attributes.insert_text("exception_type", clip(ty, 128).to_owned());
    attributes.insert_text("message", clip(msg.trim(), 2048).to_owned());
    if let Some(r) = rank {
        attributes.insert_text("rank", r.to_owned());
    }
    Some(LogMatch {
        kind: LogSignatureKind::PythonException,
        severity: Severity::Critical,
        title: clip(&format!("{ty}: {}", clip(msg.trim(), 160)), 240).to_owned(),
        attributes,
    })
}

fn exception_match(p: &Pending, ty: &str, msg: &str) -> LogMatch {
    let mut attributes = FindingAttributes::default();
    let ty = clip(ty, 128);
    let msg = clip(msg.trim(), 2048);
    attributes.insert_text("exception_type", ty.to_owned());
    attributes.insert_text("message", msg.to_owned());
    attributes.insert_text("traceback", p.text.render());
    if let Some(f) = &p.frame {
        attributes.insert_text("frame", f.clone());
    }
    if let Some(r) = &p.rank {
        attributes.insert_text("rank", r.clone());
    }
    if !p.chain.is_empty() {
        attributes.insert_text("chain", p.chain.join(" -> "));
    }
    let mut title = if msg.is_empty() {
        ty.to_owned()
    } else {
        format!("{ty}: {}", clip(msg, 160))
    };
    if let Some(f) = &p.frame {
        title.push_str(&format!(" (at {})", clip(f, 120)));
    }
    // An interrupt or an exit is a person or the program stopping, not a crash.
    let last = ty.rsplit('.').next().unwrap_or(ty);
    let severity = if matches!(last, "KeyboardInterrupt" | "SystemExit") {
        Severity::Warning
    } else {
        Severity::Critical
    };
    LogMatch {
        kind: LogSignatureKind::PythonException,
        severity,
        title: clip(&title, 240).to_owned(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_lines() {
        assert_eq!(
            exception_line("ValueError: bad"),
            Some(("ValueError", "bad"))
        );
        assert_eq!(
            exception_line("torch.OutOfMemoryError: CUDA out of memory."),
            Some(("torch.OutOfMemoryError", "CUDA out of memory."))
        );
        assert_eq!(
            exception_line("KeyboardInterrupt"),
            Some(("KeyboardInterrupt", ""))
        );
        assert_eq!(exception_line("INFO:root:x"), None);
        assert_eq!(exception_line("Epoch 1: loss"), None);
        assert_eq!(exception_line("torch.distributed.api:Sending x"), None);
    }

    #[test]
    fn text_is_bounded() {
        let mut t = Text::default();
        for i in 0..10_000 {
            t.push(&format!(
                "  File \"f{i}.py\", line {i}, in g {}",
                "x".repeat(i % 300)
            ));
        }
        assert!(t.head.len() + t.tail.len() <= MAX_LINES);
        let r = t.render();
        assert!(r.len() <= MAX_BYTES + 64, "{}", r.len());
        assert!(r.contains("f9999.py"), "the innermost frame is kept");
        assert!(r.contains("f0.py"), "the outermost frame is kept");
    }
}
