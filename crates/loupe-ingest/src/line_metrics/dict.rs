//! JSON objects and Python dict reprs on a line: `{"loss": 0.5}`,
//! `{'loss': 0.5123, 'learning_rate': 4.9e-05, 'epoch': 0.03}` (the Hugging
//! Face Trainer's console log), `{'train': {'loss': 0.5}}` (one level is
//! flattened to `train/loss`).
//!
//! One hand-written scanner takes both syntaxes: quotes `'` or `"`, JSON's
//! and Python's spellings of NaN, infinities, booleans and null, and the
//! numeric wrappers Python prints for array scalars (`np.float64(0.5)`,
//! `tensor(0.51, device='cuda:0')` → the first number inside). Strings,
//! lists and booleans are skipped. Nesting deeper than [`MAX_DEPTH`] makes
//! the whole object not a metric dict, so the scanner's work is linear and
//! its stack bounded.

use super::number::{numeric_prefix_len, parse_number};
use super::valid_key;

/// Deepest nesting skipped over; beyond it the object is refused.
const MAX_DEPTH: usize = 16;

/// A parsed dict's numeric entries, in order, keys already flattened.
pub(crate) struct DictMetrics {
    pub(crate) end: usize,
    pub(crate) values: Vec<(String, f64)>,
}

/// Parses the object starting at `s[start] == b'{'`. `None` if it is not a
/// well-formed object (prose with a brace, a format string, a set).
pub(crate) fn parse_dict(s: &[u8], start: usize) -> Option<DictMetrics> {
    let mut p = Parser {
        s,
        i: start,
        values: Vec::new(),
    };
    p.object("", 0)?;
    Some(DictMetrics {
        end: p.i,
        values: p.values,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    values: Vec<(String, f64)>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// `{ key: value, ... }`; `prefix` is the parent key for one level of
    /// flattening (empty at the top).
    fn object(&mut self, prefix: &str, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.eat(b':')?;
            self.ws();
            // Keys that are not identifiers (spaces, paths) are skipped,
            // not fatal: the other entries are still metrics.
            let key_ok = valid_key(key);
            let full = if !key_ok {
                None
            } else if prefix.is_empty() {
                Some(std::str::from_utf8(key).ok()?.to_owned())
            } else {
                Some(format!("{prefix}/{}", std::str::from_utf8(key).ok()?))
            };
            match self.peek()? {
                b'{' => {
                    // Flatten one level only: deeper objects are skipped.
                    match (&full, depth) {
                        (Some(k), 0) => self.object(k, depth + 1)?,
                        _ => self.skip_value(depth + 1)?,
                    }
                }
                _ => {
                    if let Some(v) = self.scalar(depth)?
                        && let Some(k) = full
                    {
                        self.values.push((k, v));
                    }
                }
            }
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                    // Python and JSON5 allow a trailing comma.
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Some(());
                    }
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A quoted key or string: its raw bytes between the quotes. Escapes
    /// are skipped over, not decoded (a key with an escape is not an
    /// identifier anyway).
    fn string(&mut self) -> Option<&'a [u8]> {
        let s = self.s;
        let q = self.peek()?;
        if q != b'"' && q != b'\'' {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        while j < self.s.len() {
            match self.s[j] {
                b'\\' => j += 2,
                c if c == q => {
                    self.i = j + 1;
                    return Some(&s[start..j]);
                }
                _ => j += 1,
            }
        }
        None
    }

    /// A value that is not an object: `Some(Some(v))` for a number,
    /// `Some(None)` for something well-formed but not numeric.
    fn scalar(&mut self, depth: usize) -> Option<Option<f64>> {
        let c = self.peek()?;
        if c == b'"' || c == b'\'' {
            let text = self.string()?;
            // JSON writers that cannot write NaN bare quote it; the API
            // itself does ("NaN", "Infinity").
            return Some(match text {
                b"NaN" | b"nan" => Some(f64::NAN),
                b"Infinity" | b"inf" => Some(f64::INFINITY),
                b"-Infinity" | b"-inf" => Some(f64::NEG_INFINITY),
                _ => None,
            });
        }
        if c == b'[' || c == b'(' {
            self.skip_value(depth + 1)?;
            return Some(None);
        }
        let n = numeric_prefix_len(&self.s[self.i..]);
        if n > 0 {
            let v = parse_number(&self.s[self.i..self.i + n], false)?;
            self.i += n;
            return Some(Some(v));
        }
        // A bare word: true/false/None/null, or a wrapper like
        // `np.float64(0.5)` / `tensor(0.5, device='cuda:0')`.
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        {
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        if self.peek() != Some(b'(') {
            return Some(None);
        }
        let open = self.i;
        self.i += 1;
        self.ws();
        let n = numeric_prefix_len(&self.s[self.i..]);
        let inner = if n > 0 {
            parse_number(&self.s[self.i..self.i + n], false)
        } else {
            None
        };
        self.i = open;
        self.skip_value(depth + 1)?;
        Some(inner)
    }

    /// Skips a balanced `{...}`, `[...]` or `(...)` (strings inside may hold
    /// any bracket).
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        let mut stack = [0u8; MAX_DEPTH];
        let mut top = 0;
        loop {
            let c = self.peek()?;
            match c {
                b'"' | b'\'' => {
                    self.string()?;
                    if top == 0 {
                        return Some(());
                    }
                    continue;
                }
                b'{' | b'[' | b'(' => {
                    if depth + top >= MAX_DEPTH {
                        return None;
                    }
                    stack[top] = match c {
                        b'{' => b'}',
                        b'[' => b']',
                        _ => b')',
                    };
                    top += 1;
                }
                b'}' | b']' | b')' => {
                    if top == 0 || stack[top - 1] != c {
                        return None;
                    }
                    top -= 1;
                    if top == 0 {
                        self.i += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(s: &str) -> Option<Vec<(String, f64)>> {
        parse_dict(s.as_bytes(), 0).map(|d| d.values)
    }

    #[test]
    fn python_and_json() {
        let v =
            vals("{'loss': 0.5123, 'grad_norm': 1.84, 'learning_rate': 4.9e-05, 'epoch': 0.03}")
                .unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[2], ("learning_rate".into(), 4.9e-05));
        let v = vals(r#"{"train": {"loss": 0.5, "deep": {"x": 1}}, "name": "a", "ok": true, "l": [1, 2], "n": NaN}"#).unwrap();
        assert_eq!(v[0], ("train/loss".into(), 0.5));
        assert_eq!(v.len(), 2);
        assert!(v[1].1.is_nan());
        let v =
            vals("{'eval_loss': np.float64(0.4), 'x': tensor(0.5, device='cuda:0'), 'y': None}")
                .unwrap();
        assert_eq!(v, vec![("eval_loss".into(), 0.4), ("x".into(), 0.5)]);
        assert!(vals("{not a dict}").is_none());
        assert!(vals("{'a': 1").is_none());
        assert!(vals(&"[".repeat(1000)).is_none());
        let deep = format!("{{'a': {}1{}}}", "[".repeat(100), "]".repeat(100));
        assert!(vals(&deep).is_none());
    }
}
