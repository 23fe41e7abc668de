//! Turning a child's output into lines: split on `\n` and `\r` (tqdm
//! redraws with `\r`; `\r\n` is one terminator; redraws are told apart so
//! that only a bar's last state is logged), bounded in length, and given a
//! log level.

/// Longest log text the server takes (`loupe-ingest`'s default
/// `max_log_text_bytes`); a longer line is cut to fit with [`marker`].
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// What the splitter found in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A line ended by `\n`.
    Line(&'a str),
    /// A state of a line being redrawn with `\r` (a progress bar): a newer
    /// state may replace it.
    Redraw(&'a str),
    /// The final state of a redrawn line (it ended with `\n`): it replaces
    /// the states before it.
    LastRedraw(&'a str),
    /// The last [`Piece::Redraw`] was the line's final state (its `\n` came).
    RedrawEnd,
}

/// Splits a byte stream into lines. Memory is bounded: a line that grows
/// past [`MAX_LINE_BYTES`] keeps its start and counts what was dropped.
#[derive(Debug, Default)]
pub struct LineSplitter {
    cur: Vec<u8>,
    dropped: usize,
    after_cr: bool,
    /// The current line began right after a `\r` (it redraws a line).
    cur_after_cr: bool,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; calls `emit` with each piece.
    ///
    /// A redraw (text after a `\r`, as tqdm writes its bar: `\r` and the
    /// bar in one `write`, which a pipe delivers whole) is emitted at the
    /// end of the chunk rather than at the next `\r`: otherwise the bar's
    /// latest state (and the metrics in it) would wait for its next update,
    /// which may be minutes away.
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(Piece<'_>)) {
        let mut rest = chunk;
        while let Some(p) = rest.iter().position(|&c| c == b'\n' || c == b'\r') {
            self.start_line();
            self.append(&rest[..p]);
            let cr = rest[p] == b'\r';
            if self.is_empty() && (cr || self.after_cr) {
                // "\r\n" ends the redraw before it; a "\r" before an empty
                // tqdm redraw, or at the start of output, ends nothing.
                if !cr && self.after_cr {
                    emit(Piece::RedrawEnd);
                }
            } else {
                self.emit_current(cr, &mut emit);
            }
            self.after_cr = cr;
            rest = &rest[p + 1..];
        }
        if !rest.is_empty() {
            self.start_line();
            let redraw = self.after_cr && self.is_empty();
            self.after_cr = false;
            self.append(rest);
            if redraw {
                self.emit_current(true, &mut emit);
                // Its terminator, when it comes, ends nothing more.
                self.after_cr = true;
            }
        }
    }

    /// The unterminated last line, at the end of the stream.
    pub fn finish(&mut self, mut emit: impl FnMut(Piece<'_>)) {
        if !self.is_empty() {
            self.emit_current(false, &mut emit);
        }
    }

    fn is_empty(&self) -> bool {
        self.cur.is_empty() && self.dropped == 0
    }

    fn start_line(&mut self) {
        if self.is_empty() {
            self.cur_after_cr = self.after_cr;
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.cur.len());
        let take = room.min(bytes.len());
        self.cur.extend_from_slice(&bytes[..take]);
        self.dropped += bytes.len() - take;
    }

    /// Emits the current line; `redraw`: it ended with `\r` (or is a redraw
    /// seen so far), so a newer state may replace it.
    fn emit_current(&mut self, redraw: bool, emit: &mut impl FnMut(Piece<'_>)) {
        let text = String::from_utf8_lossy(&self.cur);
        let text = if self.dropped == 0 {
            text
        } else {
            let m = marker(self.dropped + (text.len().saturating_sub(MAX_LINE_BYTES)));
            let keep = crate::supervise::traceback::truncate(&text, MAX_LINE_BYTES - m.len());
            let mut s = String::with_capacity(keep.len() + m.len());
            s.push_str(keep);
            s.push_str(&m);
            s.into()
        };
        emit(if redraw {
            Piece::Redraw(&text)
        } else if self.cur_after_cr {
            Piece::LastRedraw(&text)
        } else {
            Piece::Line(&text)
        });
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

    /// The pieces, written as text: `L:` line, `R:` redraw, `F:` last
    /// redraw, `E` redraw end.
    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        let mut put = |p: Piece<'_>| {
            out.push(match p {
                Piece::Line(l) => format!("L:{l}"),
                Piece::Redraw(l) => format!("R:{l}"),
                Piece::LastRedraw(l) => format!("F:{l}"),
                Piece::RedrawEnd => "E".to_owned(),
            })
        };
        for c in chunks {
            s.push(c, &mut put);
        }
        s.finish(&mut put);
        out
    }

    #[test]
    fn splits() {
        assert_eq!(
            split(&[b"a\nb", b"c\r\nd\r", b"\re\n\nf"]),
            ["L:a", "R:bc", "E", "R:d", "F:e", "L:", "L:f"]
        );
        assert_eq!(
            split(&[b"\r 10%\r 20%\r100%\n"]),
            ["R: 10%", "R: 20%", "F:100%"]
        );
        // Redraws are emitted as they arrive, not at the next redraw.
        assert_eq!(
            split(&[b"\r 10%", b"\r 20%", b"\n", b"next\n"]),
            ["R: 10%", "R: 20%", "E", "L:next"]
        );
        let long = vec![b'x'; MAX_LINE_BYTES + 100];
        let out = split(&[&long, b"\nok\n"]);
        assert_eq!(out.len(), 2);
        assert!(
            out[0].len() <= MAX_LINE_BYTES + 2 && out[0].ends_with("more bytes]"),
            "{}",
            out[0].len()
        );
        assert_eq!(out[1], "L:ok");
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
