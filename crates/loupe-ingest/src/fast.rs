//! The fast path for metric batches: a small, strict JSON scanner that
//! reads the common shape of a batch straight into columns.
//!
//! Why it exists: exact float parsing is most of the cost of a batch, and
//! serde_json's exact mode (`float_roundtrip`) parses about half as fast as
//! the standard library's `f64::from_str`, which is also exact. Numbers here
//! take Clinger's exact shortcut when their digits allow (most metric
//! values) and `from_str` otherwise; digits are read eight at a time. On the
//! benchmark batch this path is ~1.4× the serde path's speed.
//!
//! The cost on a body it hands over is the part it read before giving up,
//! at most one extra pass.
//!
//! Why it is safe: it never explains anything. Whenever the input is not
//! plainly valid (any error, any limit reached) and whenever it meets
//! something it does not handle (escapes in strings, a float step, a
//! number or boolean as a label value, integers wider than 64 bits), it
//! gives up and the serde path ([`crate::metrics`]) decodes the body from
//! the start: that path defines the format and words every error. The
//! promise kept here is one-sided: when this path returns a batch, the
//! serde path returns the same batch, bit for bit (tested below against it).

use loupe_model::SeriesKey;

use crate::Limits;
use crate::json::seconds_to_ns;
use crate::metrics::{Parsed, RESERVED_LABELS, SeriesColumns};

/// Deepest nesting the serde path can report on (serde_json stops at 128);
/// beyond it this path hands over rather than recurse further.
const MAX_DEPTH: usize = 120;

/// Decodes `text` if it is a plain, valid batch; `None` otherwise.
pub(crate) fn decode_series(
    text: &str,
    now_ns: i64,
    limits: &Limits,
    external: bool,
) -> Option<Vec<Parsed>> {
    // The batch's own containers go four deep.
    if limits.max_json_depth < 4 {
        return None;
    }
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
        limits,
        now_ns,
        external,
        points_left: limits.max_points_per_request,
    };
    let series = s.batch()?;
    s.ws();
    (s.at == s.bytes.len()).then_some(series)
}

/// 10^0 ..= 10^22: the powers of ten a double holds exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// True when all eight bytes of `word` are ASCII digits. Adding 0x46
/// sets a byte's top bit from `:` up, subtracting 0x30 sets it below `0`;
/// the lowest non-digit byte is always caught before any carry or borrow
/// reaches it (the technique of simdjson and fast_float).
fn eight_digits(word: u64) -> bool {
    let high = (word.wrapping_add(0x4646_4646_4646_4646)
        | word.wrapping_sub(0x3030_3030_3030_3030))
        & 0x8080_8080_8080_8080;
    high == 0
}

/// The value of eight ASCII digits (first digit in the lowest byte), by
/// combining neighbours pairwise: 8 × 1 digit → 4 × 2 → 2 × 4 → 1 × 8.
fn parse_eight_digits(word: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let word = word.wrapping_sub(0x3030_3030_3030_3030);
    let word = word.wrapping_mul(10).wrapping_add(word >> 8);
    let pairs = (word & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((word >> 16) & MASK).wrapping_mul(MUL2));
    pairs >> 32
}

/// A number as serde_json hands it to a visitor.
#[derive(Clone, Copy)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
}

struct Scanner<'a, 'l> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    limits: &'l Limits,
    now_ns: i64,
    external: bool,
    points_left: usize,
}

impl<'a> Scanner<'a, '_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Skips whitespace, then takes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.ws();
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    /// After an element: `true` for another one, `false` at the close.
    fn next_or_close(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b if b == close => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A string without escapes (they are rare in batches; the serde path
    /// decodes them).
    fn string(&mut self) -> Option<&'a str> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.at + 1;
        let len = self.bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = start + len;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        // Both ends are ASCII quotes, so they are char boundaries.
        Some(&self.text[start..end])
    }

    /// A number by JSON's grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<Num> {
        self.ws();
        let b = &self.bytes[self.at..];
        let negative = b.first() == Some(&b'-');
        let mut i = usize::from(negative);
        // The digits, as one integer. It wraps past 19 digits; those
        // numbers are never read from it.
        let mut mantissa = 0u64;
        let digits = |i: &mut usize, mantissa: &mut u64| {
            let start = *i;
            // Eight at a time while they last: the digit loop is the
            // hottest code of a batch.
            while let Some(&chunk) = b.get(*i..).and_then(|rest| rest.first_chunk::<8>()) {
                let word = u64::from_le_bytes(chunk);
                if !eight_digits(word) {
                    break;
                }
                *mantissa = mantissa
                    .wrapping_mul(100_000_000)
                    .wrapping_add(parse_eight_digits(word));
                *i += 8;
            }
            while let Some(&d @ b'0'..=b'9') = b.get(*i) {
                *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                *i += 1;
            }
            *i - start
        };
        let int_digits = match b.get(i)? {
            b'0' => {
                i += 1;
                1
            }
            b'1'..=b'9' => digits(&mut i, &mut mantissa),
            _ => return None,
        };
        let mut fraction_digits = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            fraction_digits = digits(&mut i, &mut mantissa);
            if fraction_digits == 0 {
                return None;
            }
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if digits(&mut i, &mut 0) == 0 {
                return None;
            }
            exponent = true;
        }
        let token = &self.text[self.at..self.at + i];
        self.at += i;

        if fraction_digits == 0 && !exponent {
            // 19 digits always fit in a u64; wider integers are left to
            // serde (which reads them as floats).
            if int_digits > 19 {
                return None;
            }
            return if !negative {
                Some(Num::U(mantissa))
            } else if mantissa == 0 {
                // serde_json reads `-0` as the float -0.0.
                Some(Num::F(-0.0))
            } else {
                // -2^63 fits; anything beyond goes to serde.
                0i64.checked_sub_unsigned(mantissa).map(Num::I)
            };
        }
        // Clinger's fast path: when the digits and the power of ten are
        // both exact doubles, one correctly rounded division is the
        // correctly rounded value. Most metric values qualify.
        if !exponent
            && int_digits + fraction_digits <= 19
            && mantissa <= 1 << 53
            && let Some(&scale) = POWERS_OF_TEN.get(fraction_digits)
        {
            let v = mantissa as f64 / scale;
            return Some(Num::F(if negative { -v } else { v }));
        }
        // The standard library's parser is exact (Eisel–Lemire, then a
        // big-decimal fallback).
        let v: f64 = token.parse().ok()?;
        // serde_json refuses what overflows to infinity.
        v.is_finite().then_some(Num::F(v))
    }

    /// Skips a value of an unknown field, as the serde path's `Ignore`
    /// does: every container counts against the depth limit.
    fn skip(&mut self, depth: usize) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'{' | b'[' if depth > self.limits.max_json_depth.min(MAX_DEPTH) => None,
            b'{' => {
                self.at += 1;
                if self.eat(b'}') {
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.expect(b':')?;
                    self.skip(depth + 1)?;
                    if !self.next_or_close(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.at += 1;
                if self.eat(b']') {
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    if !self.next_or_close(b']')? {
                        return Some(());
                    }
                }
            }
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true").then_some(()),
            b'f' => self.literal(b"false").then_some(()),
            b'n' => self.literal(b"null").then_some(()),
            _ => self.number().map(drop),
        }
    }

    fn batch(&mut self) -> Option<Vec<Parsed>> {
        self.expect(b'{')?;
        let mut series = None;
        if self.eat(b'}') {
            return None;
        }
        loop {
            match self.string()? {
                "series" if series.is_none() => {
                    self.expect(b':')?;
                    series = Some(self.series_list()?);
                }
                "series" => return None,
                _ => {
                    self.expect(b':')?;
                    self.skip(2)?;
                }
            }
            if !self.next_or_close(b'}')? {
                return series;
            }
        }
    }

    fn series_list(&mut self) -> Option<Vec<Parsed>> {
        self.expect(b'[')?;
        let mut out: Vec<Parsed> = Vec::new();
        if self.eat(b']') {
            return Some(out);
        }
        loop {
            if out.len() == self.limits.max_series_per_request {
                return None;
            }
            let hint = out.last().map_or(0, |(_, c)| c.len());
            out.push(self.series(hint)?);
            if !self.next_or_close(b']')? {
                return Some(out);
            }
        }
    }

    fn series(&mut self, hint: usize) -> Option<Parsed> {
        self.expect(b'{')?;
        let mut name = None;
        let mut steps: Option<Option<Vec<i64>>> = None;
        let mut times: Option<Option<Vec<i64>>> = None;
        let mut values: Option<Option<Vec<f64>>> = None;
        let mut labels: Option<Vec<(&str, &str)>> = None;
        if self.eat(b'}') {
            return None;
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            let hint = [&steps, &times]
                .into_iter()
                .filter_map(|c| c.as_ref().and_then(|c| c.as_ref().map(Vec::len)))
                .chain(values.as_ref().and_then(|c| c.as_ref().map(Vec::len)))
                .max()
                .unwrap_or(hint);
            match key {
                "name" if name.is_none() => name = Some(self.name()?),
                "step" if steps.is_none() => steps = Some(self.column(hint, Self::step)?),
                "time" if times.is_none() => times = Some(self.column(hint, Self::time)?),
                "value" if values.is_none() => values = Some(self.column(hint, Self::value)?),
                "labels" if self.external && labels.is_none() => labels = Some(self.labels()?),
                "name" | "step" | "time" | "value" => return None,
                "labels" if self.external => return None,
                _ => self.skip(4)?,
            }
            if !self.next_or_close(b'}')? {
                break;
            }
        }
        let name = name?;
        let values = values??;
        let n = values.len();
        let steps = steps.flatten();
        if steps.as_ref().is_some_and(|s| s.len() != n) {
            return None;
        }
        let times_ns = match times.flatten() {
            Some(times) if times.len() == n => times,
            Some(_) => return None,
            None => vec![self.now_ns; n],
        };
        let key = if self.external {
            let labels = labels.unwrap_or_default();
            if labels.len() > crate::metrics::MAX_EXTERNAL_LABELS {
                return None; // the precise path words the error
            }
            Some(SeriesKey::new(name, labels).ok()?)
        } else {
            None
        };
        self.points_left -= n;
        let columns = SeriesColumns {
            name: name.to_string(),
            steps,
            times_ns,
            values,
        };
        Some((key, columns))
    }

    fn name(&mut self) -> Option<&'a str> {
        let name = self.string()?;
        // No NUL: a raw one is not JSON, and `string` refuses escapes.
        (!name.is_empty() && name.len() <= self.limits.name_bytes()).then_some(name)
    }

    /// An array column, or `null` for none. No column may be longer than
    /// the points the request has left.
    fn column<T>(
        &mut self,
        hint: usize,
        mut element: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Option<Vec<T>>> {
        self.ws();
        if self.literal(b"null") {
            return Some(None);
        }
        self.expect(b'[')?;
        let budget = self.points_left;
        let mut out = Vec::with_capacity(hint.min(budget));
        if self.eat(b']') {
            return Some(Some(out));
        }
        loop {
            if out.len() == budget {
                return None;
            }
            out.push(element(self)?);
            if !self.next_or_close(b']')? {
                return Some(Some(out));
            }
        }
    }

    fn value(&mut self) -> Option<f64> {
        self.ws();
        if self.peek()? == b'"' {
            // Anything but the names falls back to serde for the error.
            return loupe_model::nonfinite::parse_name(self.string()?);
        }
        Some(match self.number()? {
            Num::U(v) => v as f64,
            Num::I(v) => v as f64,
            Num::F(v) => v,
        })
    }

    fn step(&mut self) -> Option<i64> {
        match self.number()? {
            Num::U(v) => i64::try_from(v).ok(),
            Num::I(v) if v != loupe_model::NO_STEP => Some(v),
            // Whole floats and the reserved step: the serde path decides.
            Num::I(_) | Num::F(_) => None,
        }
    }

    fn time(&mut self) -> Option<i64> {
        let seconds = match self.number()? {
            Num::U(v) => v as f64,
            Num::I(v) => v as f64,
            Num::F(v) => v,
        };
        seconds_to_ns(seconds).ok()
    }

    /// Labels with plain string values; anything else goes to serde.
    fn labels(&mut self) -> Option<Vec<(&'a str, &'a str)>> {
        self.ws();
        if self.literal(b"null") {
            return Some(Vec::new());
        }
        self.expect(b'{')?;
        let mut labels = Vec::new();
        if self.eat(b'}') {
            return Some(labels);
        }
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            let value = self.string()?;
            // Counts, lengths, empty and duplicate names: `SeriesKey::new`.
            if RESERVED_LABELS.contains(&name) {
                return None;
            }
            labels.push((name, value));
            if !self.next_or_close(b'}')? {
                return Some(labels);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::json;

    const NOW: i64 = 1_700_000_000_000_000_000;

    /// The serde path alone.
    fn slow(
        text: &str,
        limits: &Limits,
        external: bool,
    ) -> Result<Vec<Parsed>, crate::DecodeError> {
        json::decode(text.as_bytes(), limits, NOW, |de, ctx| {
            crate::metrics::parse_batch(de, ctx, external)
        })
    }

    fn same(a: &[Parsed], b: &[Parsed]) -> bool {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        a.len() == b.len()
            && a.iter().zip(b).all(|((ka, ca), (kb, cb))| {
                ka == kb
                    && ca.name == cb.name
                    && ca.steps == cb.steps
                    && ca.times_ns == cb.times_ns
                    && bits(&ca.values) == bits(&cb.values)
            })
    }

    /// Where the fast path answers, the serde path answers the same.
    fn agree(text: &str, limits: &Limits) -> Result<(), TestCaseError> {
        for external in [false, true] {
            if let Some(fast) = decode_series(text, NOW, limits, external) {
                let slow = slow(text, limits, external).map_err(|e| {
                    TestCaseError::fail(format!("fast accepted, slow: {e}\n{text}"))
                })?;
                prop_assert!(same(&fast, &slow), "different results for {text}");
            }
        }
        Ok(())
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\n",
            "\"series\"",
            "\"name\"",
            "\"value\"",
            "\"step\"",
            "\"time\"",
            "\"labels\"",
            "\"x\"",
            "\"run\"",
            "\"NaN\"",
            "\"-Infinity\"",
            "\"nan\"",
            "0",
            "-0",
            "01",
            "1.",
            "-1",
            "0.5",
            "1e400",
            "1E-400",
            "2.5e+3",
            "-5e-1",
            "1732000000.25",
            "9e9",
            "9.1e9",
            "-9223372036854775808",
            "9223372036854775808",
            "18446744073709551616",
            "12345678901234567890",
            "true",
            "false",
            "null",
            "nul",
            "\"a\\\"b\"",
            "\"é\"",
            "{\"series\":[",
            "{\"name\":\"a\",\"value\":[",
            "]}",
            "}]}",
            "{\"name\":\"b\",\"step\":[1,2],\"time\":[1,2],\"value\":[1,2]}",
            "{\"name\":\"c\",\"labels\":{\"host\":\"n1\"},\"value\":[3]}",
        ])
    }

    fn number_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| format!("{v:?}")),
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| serde_json::to_string(&v).unwrap()),
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| format!("{v:e}")),
            any::<i64>().prop_map(|v| v.to_string()),
            any::<u64>().prop_map(|v| v.to_string()),
            (0.0f64..9.0e9).prop_map(|v| format!("{v:.7}")),
        ]
    }

    /// One token from `pool`, as an owned string.
    fn token(pool: &'static [&'static str]) -> BoxedStrategy<String> {
        prop::sample::select(pool).prop_map(str::to_string).boxed()
    }

    /// A column of `n` entries (sometimes one more), mostly good ones.
    fn column_text(
        n: usize,
        good: BoxedStrategy<String>,
        odd: &'static [&'static str],
    ) -> BoxedStrategy<String> {
        let entry = prop_oneof![8 => good, 1 => token(odd)];
        (vec(entry, n..=n + usize::from(n % 5 == 4)), 0..12u8)
            .prop_map(|(entries, form)| match form {
                0 => "null".to_string(),
                _ => format!("[{}]", entries.join(",")),
            })
            .boxed()
    }

    /// A series object: every field optional, in any order, each usually
    /// valid and sometimes one of the inputs the fast path must hand over.
    fn series_text() -> BoxedStrategy<String> {
        (0usize..6)
            .prop_flat_map(|n| {
                let name = token(&[
                    "\"a\"", "\"train/loss\"", "\"é😀\"", "\"\"", "\"a\\u0000b\"",
                    "\"esc\\/aped\"", "7", "null",
                ]);
                let long_name = prop_oneof![Just(256usize), Just(257)]
                    .prop_map(|len| format!("\"{}\"", "n".repeat(len)));
                let step = column_text(
                    n,
                    (-3i64..1000).prop_map(|v| v.to_string()).boxed(),
                    &[
                        "3.0", "-0", "1e3", "1.5", "9223372036854775807", "9223372036854775808",
                        "-9223372036854775808", "-9223372036854775807", "\"1\"",
                        "18446744073709551616", "01",
                    ],
                );
                let time = column_text(
                    n,
                    (1.6e9f64..1.8e9).prop_map(|v| format!("{v:?}")).boxed(),
                    &[
                        "0", "-0", "-0.0", "1.7e9", "9e9", "9000000000", "9.1e9", "-1", "1e-400",
                        "\"1\"", "1732000000", "0.000000001", "1e400",
                    ],
                );
                let value = column_text(
                    n,
                    number_text().boxed(),
                    &[
                        "\"NaN\"", "\"Infinity\"", "\"+Infinity\"", "\"-Infinity\"", "\"nan\"",
                        "\"\\u004eaN\"", "-0", "1e400", "true", "null", "18446744073709551616",
                        "-9223372036854775809", "[1]",
                    ],
                );
                let label = (
                    token(&["\"host\"", "\"gpu\"", "\"run\"", "\"project\"", "\"\"", "\"a b\"", "\"k\\u0041\""]),
                    token(&["\"n1\"", "\"n1\"", "\"0\"", "0", "true", "1.5", "\"\"", "null"]),
                );
                let many = (0usize..36).prop_map(|k| {
                    (0..k).map(|i| format!("\"l{i}\":\"v\"")).collect::<Vec<_>>().join(",")
                });
                let labels = prop_oneof![
                    3 => vec(label, 0..4).prop_map(|kv| {
                        let kv: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                        format!("{{{}}}", kv.join(","))
                    }),
                    1 => many.prop_map(|kv| format!("{{{kv}}}")),
                    1 => Just(format!("{{\"k\":\"{}\"}}", "v".repeat(1025))),
                    1 => Just("null".to_string()),
                ];
                let unknown = prop_oneof![
                    Just("{\"a\":[[1,\"x\"],null,true,-2.5e-3]}".to_string()),
                    (55usize..70).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
                ];
                (
                    prop_oneof![4 => name, 1 => long_name],
                    prop::option::weighted(0.6, step),
                    prop::option::weighted(0.6, time),
                    prop::option::weighted(0.95, value),
                    prop::option::weighted(0.5, labels),
                    prop::option::weighted(0.2, unknown),
                    any::<prop::sample::Index>(),
                    0u8..20,
                )
            })
            .prop_map(|(name, step, time, value, labels, unknown, order, dup)| {
                let mut fields = vec![format!("\"name\":{name}")];
                let named = [("step", step), ("time", time), ("value", value), ("labels", labels), ("unit", unknown)];
                for (key, text) in named {
                    if let Some(text) = text {
                        fields.push(format!("\"{key}\":{text}"));
                    }
                }
                if dup < 4 {
                    let again = fields[usize::from(dup) % fields.len()].clone();
                    fields.push(again);
                }
                let first = order.index(fields.len());
                fields.rotate_left(first);
                format!("{{{}}}", fields.join(","))
            })
            .boxed()
    }

    fn batch_text() -> impl Strategy<Value = String> {
        (vec(series_text(), 0..4), 0u8..10).prop_map(|(series, extra)| match extra {
            0 => format!("{{\"v\":[1,{{}}],\"series\":[{}]}}", series.join(",")),
            1 => format!("[{}]", series.join(",")),
            _ => format!(" {{\"series\":[{}]}}\n", series.join(",")),
        })
    }

    #[test]
    fn fast_path_agrees_with_serde_on_near_valid_batches() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let taken = AtomicUsize::new(0);
        let cases = 3000;
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
        let limits = Limits::default();
        let tight = Limits {
            max_series_per_request: 2,
            max_points_per_request: 6,
            max_json_depth: 62,
            ..Limits::default()
        };
        runner
            .run(&batch_text(), |text| {
                if decode_series(&text, NOW, &limits, true).is_some() {
                    taken.fetch_add(1, Ordering::Relaxed);
                }
                agree(&text, &limits)?;
                agree(&text, &tight)
            })
            .unwrap();
        // The comparison means something only if the fast path often answers.
        let taken = taken.into_inner();
        assert!(
            taken > cases as usize / 20,
            "fast path taken {taken} times of {cases}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn fast_path_agrees_on_fragments(pieces in vec(piece(), 0..40)) {
            let text = pieces.concat();
            agree(&text, &Limits::default())?;
            let tight = Limits {
                max_series_per_request: 2,
                max_points_per_request: 3,
                max_json_depth: 5,
                ..Limits::default()
            };
            agree(&text, &tight)?;
        }

        #[test]
        fn fast_path_agrees_on_numbers(values in vec(number_text(), 1..8), steps in any::<bool>()) {
            // The same texts as values, as times and (when asked) as steps.
            let list = values.join(",");
            let step = if steps { format!(",\"step\":[{list}]") } else { String::new() };
            let text = format!(
                "{{\"series\":[{{\"name\":\"a\",\"value\":[{list}]}},{{\"name\":\"b\",\"time\":[{list}],\"value\":[{list}]{step}}}]}}"
            );
            agree(&text, &Limits::default())?;
        }
    }

    #[test]
    fn eight_digits_at_a_time() {
        let word = |s: &[u8; 8]| u64::from_le_bytes(*s);
        assert_eq!(parse_eight_digits(word(b"12345678")), 12_345_678);
        assert_eq!(parse_eight_digits(word(b"00000009")), 9);
        assert_eq!(parse_eight_digits(word(b"99999999")), 99_999_999);
        assert!(eight_digits(word(b"01234567")));
        for bad in [
            *b"1234567.",
            *b"/2345678",
            *b"123:5678",
            *b"1234567\xff",
            *b"\x001234567",
        ] {
            assert!(!eight_digits(word(&bad)), "{bad:?}");
        }
        // Every byte value in every position.
        for at in 0..8 {
            for byte in 0..=255u8 {
                let mut s = *b"55555555";
                s[at] = byte;
                assert_eq!(
                    eight_digits(word(&s)),
                    byte.is_ascii_digit(),
                    "{byte} at {at}"
                );
            }
        }
    }

    #[test]
    fn fast_path_takes_ordinary_batches() {
        let limits = Limits::default();
        let text = r#" {"series": [
            {"name": "train/loss", "step": [1, 2], "time": [1732000000.5, 1732000001], "value": [0.25, "NaN"]},
            {"name": "gpu/util", "labels": {"host": "n1"}, "value": [-1e-3, 7], "unit": {"a": [1, "x", null]}}
        ], "sdk": "py/1.0"} "#;
        for external in [false, true] {
            let fast = decode_series(text, NOW, &limits, external).expect("fast path");
            assert!(same(&fast, &slow(text, &limits, external).unwrap()));
        }
    }
}
