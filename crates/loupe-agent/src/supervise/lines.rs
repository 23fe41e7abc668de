//! Turning a child's output into lines: split on `\n` and `\r` (tqdm
//! redraws with `\r`; `\r\n` is one terminator), bounded in length, and
//! given a log level.

/// Longest log text the server takes (`loupe-ingest`'s default
/// `max_log_text_bytes`); a longer line is cut to fit with [`marker`].
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// Splits a byte stream into lines. Memory is bounded: a line that grows
/// past [`MAX_LINE_BYTES`] keeps its start and counts what was dropped.
#[derive(Debug, Default)]
pub struct LineSplitter {
    cur: Vec<u8>,
    dropped: usize,
    after_cr: bool,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; calls `emit` with each complete line.
    ///
    /// A redraw (text after a `\r`, as tqdm writes its bar: `\r` and the
    /// bar in one `write`, which a pipe delivers whole) is emitted at the
    /// end of the chunk rather than at the next `\r`: otherwise the bar's
    /// latest state would wait for its next update, which may be minutes
    /// away.
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(&str)) {
        let mut rest = chunk;
        while let Some(p) = rest.iter().position(|&c| c == b'\n' || c == b'\r') {
            self.append(&rest[..p]);
            let cr = rest[p] == b'\r';
            // "\r\n" ends one line; a "\r" before an empty tqdm redraw, or
            // at the start of output, ends none.
            let skip = self.cur.is_empty() && self.dropped == 0 && (cr || self.after_cr);
            if !skip {
                self.emit_current(&mut emit);
            }
            self.after_cr = cr;
            rest = &rest[p + 1..];
        }
        if !rest.is_empty() {
            let redraw = self.after_cr && self.cur.is_empty() && self.dropped == 0;
            self.after_cr = false;
            self.append(rest);
            if redraw {
                self.emit_current(&mut emit);
                // Its terminator, when it comes, ends nothing more.
                self.after_cr = true;
            }
        }
    }

    /// The unterminated last line, at the end of the stream.
    pub fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if !self.cur.is_empty() || self.dropped > 0 {
            self.emit_current(&mut emit);
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.cur.len());
        let take = room.min(bytes.len());
        self.cur.extend_from_slice(&bytes[..take]);
        self.dropped += bytes.len() - take;
    }

    fn emit_current(&mut self, emit: &mut impl FnMut(&str)) {
        let text = String::from_utf8_lossy(&self.cur);
        if self.dropped == 0 {
            emit(&text);
        } else {
            let m = marker(self.dropped + (text.len().saturating_sub(MAX_LINE_BYTES)));
            let keep = crate::supervise::traceback::truncate(&text, MAX_LINE_BYTES - m.len());
            let mut s = String::with_capacity(keep.len() + m.len());
            s.push_str(keep);
            s.push_str(&m);
            emit(&s);
        }
        self.cur.clear();
        self.dropped = 0;
    }
}

/// What a cut line ends with.
pub fn marker(dropped: usize) -> String {
    format!(" …[loupe: line truncated, {dropped} more bytes]")
}

/// The log level of a line: `error` for tracebacks and lines that look
/// like errors (`ERROR`, `CRITICAL`, `FATAL`, `Error:`, `Exception:`),
/// `warning` for warnings (`WARNING`, `UserWarning:`), else `info`.
/// Levels by words are only read from stderr: a script printing the word
/// "error" to stdout is usually reporting a metric or progress.
pub fn level(stderr: bool, line: &str, in_traceback: bool) -> &'static str {
    if !stderr {
        return "info";
    }
    if in_traceback {
        return "error";
    }
    let head = crate::supervise::traceback::truncate(line, 512);
    let has_word = |w: &str| {
        head.match_indices(w).any(|(i, _)| {
            let before = head[..i].chars().next_back();
            let after = head[i + w.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric())
                && !after.is_some_and(|c| c.is_ascii_alphanumeric())
        })
    };
    if ["ERROR", "CRITICAL", "FATAL", "Traceback"]
        .iter()
        .any(|w| has_word(w))
        || head.contains("Error: ")
        || head.contains("Exception: ")
        || head.starts_with("error:")
    {
        return "error";
    }
    if has_word("WARNING") || has_word("WARN") || head.contains("Warning: ") {
        return "warning";
    }
    "info"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |l| out.push(l.to_owned()));
        }
        s.finish(|l| out.push(l.to_owned()));
        out
    }

    #[test]
    fn splits() {
        assert_eq!(
            split(&[b"a\nb", b"c\r\nd\r", b"\re\n\nf"]),
            ["a", "bc", "d", "e", "", "f"]
        );
        assert_eq!(split(&[b"\r 10%\r 20%\r100%\n"]), [" 10%", " 20%", "100%"]);
        // Redraws are emitted as they arrive, not at the next redraw.
        assert_eq!(
            split(&[b"\r 10%", b"\r 20%", b"\n", b"next\n"]),
            [" 10%", " 20%", "next"]
        );
        let long = vec![b'x'; MAX_LINE_BYTES + 100];
        let out = split(&[&long, b"\nok\n"]);
        assert_eq!(out.len(), 2);
        assert!(
            out[0].len() <= MAX_LINE_BYTES && out[0].ends_with("more bytes]"),
            "{}",
            out[0].len()
        );
        assert_eq!(out[1], "ok");
    }

    #[test]
    fn levels() {
        assert_eq!(level(true, "ValueError: bad", false), "error");
        assert_eq!(level(true, "2024 - ERROR - x", false), "error");
        assert_eq!(
            level(true, "foo.py:3: UserWarning: careful", false),
            "warning"
        );
        assert_eq!(level(true, "step 3 loss=1", false), "info");
        assert_eq!(level(true, "TERRORS", false), "info");
        assert_eq!(level(false, "ERROR", false), "info");
        assert_eq!(level(true, "    x = 1", true), "error");
    }
}
