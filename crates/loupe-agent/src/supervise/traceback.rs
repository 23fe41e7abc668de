//! The last Python traceback in a stream of stderr lines, with chained
//! exceptions (`During handling of the above exception, another exception
//! occurred:` / `The above exception was the direct cause of the following
//! exception:`): the final exception's type and message, and the text of the
//! whole chain.
//!
//! ```text
//! Traceback (most recent call last):
//!   File "train.py", line 3, in <module>
//!     main()
//! ValueError: bad thing
//! ```

/// Most lines of one traceback chain kept (the end is kept: the newest
/// frames and the exception are what explain the failure).
const MAX_LINES: usize = 400;
/// Most bytes of one traceback chain kept.
const MAX_BYTES: usize = 64 << 10;

const HEADER: &str = "Traceback (most recent call last):";
const CHAINS: &[&str] = &[
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Not in a traceback.
    Idle,
    /// After the header: frames (indented) until the exception line.
    Frames,
    /// Just after the exception line: a chain marker may follow.
    AfterException,
    /// After a chain marker: the next traceback continues the chain.
    Chained,
}

/// The exception that ended the last traceback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonException {
    /// `ValueError`, `torch.OutOfMemoryError`.
    pub exception_type: String,
    /// What follows `: ` on the exception line (`None` for a bare
    /// `KeyboardInterrupt`).
    pub message: Option<String>,
    /// The chain's text, lines joined with `\n`.
    pub traceback: String,
}

/// Feeds on stderr lines; remembers the last complete traceback.
#[derive(Debug)]
pub struct TracebackTracker {
    state: State,
    lines: std::collections::VecDeque<String>,
    bytes: usize,
    last: Option<PythonException>,
}

impl Default for TracebackTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl TracebackTracker {
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            lines: Default::default(),
            bytes: 0,
            last: None,
        }
    }

    /// Whether the tracker is inside a traceback now (the line just fed
    /// belonged to one).
    pub fn in_traceback(&self) -> bool {
        self.state != State::Idle
    }

    /// The last complete traceback seen.
    pub fn last(&self) -> Option<&PythonException> {
        self.last.as_ref()
    }

    /// One stderr line (no terminator). Returns whether it belongs to a
    /// traceback (the header, a frame, the exception, a chain marker).
    pub fn feed(&mut self, line: &str) -> bool {
        let trimmed = line.trim_end();
        let is_header = trimmed.trim_start() == HEADER;
        match self.state {
            State::Idle | State::AfterException if is_header => {
                self.clear();
                self.push(trimmed);
                self.state = State::Frames;
                true
            }
            State::Chained if is_header => {
                self.push(trimmed);
                self.state = State::Frames;
                true
            }
            State::Frames => {
                if trimmed.is_empty() || trimmed.starts_with([' ', '\t']) {
                    self.push(trimmed);
                    return true;
                }
                match parse_exception_line(trimmed) {
                    Some((ty, msg)) => {
                        self.push(trimmed);
                        self.last = Some(PythonException {
                            exception_type: ty.to_owned(),
                            message: msg.map(str::to_owned),
                            traceback: self.text(),
                        });
                        self.state = State::AfterException;
                        true
                    }
                    None => {
                        // Something else interrupted the traceback (another
                        // process writing to the same stream): give up on it.
                        self.state = State::Idle;
                        false
                    }
                }
            }
            State::AfterException | State::Chained => {
                if trimmed.is_empty() {
                    self.push(trimmed);
                    return true;
                }
                if CHAINS.contains(&trimmed) {
                    self.push(trimmed);
                    self.state = State::Chained;
                    return true;
                }
                self.state = State::Idle;
                false
            }
            State::Idle => false,
        }
    }

    fn clear(&mut self) {
        self.lines.clear();
        self.bytes = 0;
    }

    fn push(&mut self, line: &str) {
        let line = truncate(line, MAX_BYTES / 4);
        self.bytes += line.len() + 1;
        self.lines.push_back(line.to_owned());
        while self.lines.len() > MAX_LINES || self.bytes > MAX_BYTES {
            match self.lines.pop_front() {
                Some(l) => self.bytes -= l.len() + 1,
                None => break,
            }
        }
    }

    fn text(&self) -> String {
        let mut s = String::with_capacity(self.bytes);
        for (i, l) in self.lines.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(l);
        }
        // Blank lines kept while waiting for a chain marker are not part of
        // what was printed before the exception.
        s.truncate(s.trim_end().len());
        s
    }
}

/// `ValueError: bad thing` → (`ValueError`, `Some("bad thing")`);
/// `KeyboardInterrupt` → (`KeyboardInterrupt`, `None`). The type must be a
/// dotted Python name.
fn parse_exception_line(line: &str) -> Option<(&str, Option<&str>)> {
    let (ty, msg) = match line.find(": ") {
        Some(p) => (&line[..p], Some(line[p + 2..].trim())),
        None => (line.strip_suffix(':').unwrap_or(line), None),
    };
    let dotted = !ty.is_empty()
        && ty.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    dotted.then_some((ty, msg))
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Option<PythonException> {
        let mut t = TracebackTracker::new();
        for l in text.lines() {
            t.feed(l);
        }
        t.last().cloned()
    }

    #[test]
    fn simple_and_chained() {
        let e = run("loading\nTraceback (most recent call last):\n  File \"t.py\", line 3, in <module>\n    main()\nValueError: bad thing\n").unwrap();
        assert_eq!(e.exception_type, "ValueError");
        assert_eq!(e.message.as_deref(), Some("bad thing"));
        assert!(
            e.traceback.starts_with("Traceback") && e.traceback.ends_with("ValueError: bad thing")
        );

        let chained = "Traceback (most recent call last):\n  File \"a.py\", line 1, in f\n    x = d['k']\nKeyError: 'k'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"a.py\", line 3, in <module>\n    f()\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n";
        let e = run(chained).unwrap();
        assert_eq!(e.exception_type, "torch.OutOfMemoryError");
        assert_eq!(
            e.message.as_deref(),
            Some("CUDA out of memory. Tried to allocate 2.00 GiB.")
        );
        assert!(e.traceback.contains("KeyError: 'k'") && e.traceback.contains("During handling"));

        let e = run("Traceback (most recent call last):\n  File \"a.py\", line 3, in <module>\n    time.sleep(9)\nKeyboardInterrupt\n").unwrap();
        assert_eq!(
            (e.exception_type.as_str(), e.message),
            ("KeyboardInterrupt", None)
        );
        // A later, unrelated traceback replaces the earlier one.
        let two = format!(
            "{chained}step 5\nTraceback (most recent call last):\n  File \"b.py\", line 1\nRuntimeError: CUDA error: an illegal memory access was encountered\n"
        );
        assert_eq!(run(&two).unwrap().exception_type, "RuntimeError");
        assert_eq!(run("no traceback here\nValueError: x\n"), None);
    }
}
