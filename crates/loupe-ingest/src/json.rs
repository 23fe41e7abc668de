//! The serde path: one pass of serde_json straight into typed values, with
//! errors located by JSON path. It defines what every decoder accepts and
//! words every error; metric batches try [`crate::fast`] first and come
//! here when it hands over.
//!
//! Why not re-parse into `serde_json::Value` to explain an error: a `Value`
//! costs ~32 bytes per number, so explaining a 64 MiB body of numbers would
//! take a gigabyte. Instead each visitor, when an error passes through it on
//! the way out, adds its own step of the path ([`Ctx::at`]); the happy path
//! pays nothing for this. Errors our own checks raise carry their kind and
//! message in [`Ctx`]; errors serde_json raises (syntax, wrong types) are
//! translated once at the end ([`Ctx::into_error`]).

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::{Segment, format_path};
use crate::{DecodeError, DecodeErrorKind, Limits};

pub(crate) type JsonError = serde_json::Error;
pub(crate) type Deserializer<'de> = serde_json::Deserializer<serde_json::de::StrRead<'de>>;

/// State shared by all visitors of one request.
pub(crate) struct Ctx<'l> {
    pub limits: &'l Limits,
    pub now_ns: i64,
    /// Set when one of our own checks stopped decoding; serde_json's own
    /// errors leave it empty.
    failure: RefCell<Option<(DecodeErrorKind, String)>>,
    /// The error's path, innermost segment first (pushed on the way out).
    path: RefCell<Vec<Segment>>,
    /// Points this request may still carry (metrics only).
    pub points_left: Cell<usize>,
}

impl<'l> Ctx<'l> {
    pub fn new(limits: &'l Limits, now_ns: i64) -> Self {
        Self {
            limits,
            now_ns,
            failure: RefCell::new(None),
            path: RefCell::new(Vec::new()),
            points_left: Cell::new(limits.max_points_per_request),
        }
    }

    /// Records why decoding stops and returns the error that unwinds the
    /// parse. Only the first failure is kept: it is the one the client
    /// needs, and nothing after it ran.
    pub fn fail<E: de::Error>(&self, kind: DecodeErrorKind, message: impl fmt::Display) -> E {
        let mut failure = self.failure.borrow_mut();
        if failure.is_none() {
            *failure = Some((kind, message.to_string()));
        }
        E::custom("rejected by loupe-ingest")
    }

    /// Adds one path segment to an error passing outward.
    pub fn at<T, E>(&self, result: Result<T, E>, segment: Segment) -> Result<T, E> {
        if result.is_err() {
            self.path.borrow_mut().push(segment);
        }
        result
    }

    /// Adds a path segment for an error about to be raised at this level.
    pub fn push(&self, segment: Segment) {
        self.path.borrow_mut().push(segment);
    }

    /// Like [`Ctx::at`], for a segment that costs an allocation to build.
    pub fn at_with<T, E>(
        &self,
        result: Result<T, E>,
        segment: impl FnOnce() -> Segment,
    ) -> Result<T, E> {
        if result.is_err() {
            self.path.borrow_mut().push(segment());
        }
        result
    }

    /// Refuses a container opened deeper than the limit allows.
    pub fn enter<E: de::Error>(&self, depth: usize) -> Result<(), E> {
        let max = self.limits.max_json_depth;
        if depth > max {
            return Err(self.fail(
                DecodeErrorKind::LimitExceeded,
                format_args!("JSON nested deeper than {max} levels"),
            ));
        }
        Ok(())
    }

    /// Turns the error that ended the parse into the error the client sees.
    fn into_error(self, err: JsonError, body: &str) -> DecodeError {
        let mut segments = self.path.into_inner();
        segments.reverse();
        let path = format_path(&segments);
        if let Some((kind, message)) = self.failure.into_inner() {
            return DecodeError {
                path,
                message,
                kind,
            };
        }
        match err.classify() {
            serde_json::error::Category::Data => DecodeError {
                path,
                message: data_message(&err),
                kind: DecodeErrorKind::Invalid,
            },
            _ => {
                let bare = bare_message(&err);
                // serde_json's own, fixed limit; reached only when
                // `max_json_depth` is set above it.
                if bare == "recursion limit exceeded" {
                    return DecodeError {
                        path,
                        message: "JSON nested deeper than 127 levels".to_string(),
                        kind: DecodeErrorKind::LimitExceeded,
                    };
                }
                let offset = byte_offset(body, err.line(), err.column());
                let mut message = format!("invalid JSON at byte {offset}: {bare}");
                if starts_bare_special(body, offset) {
                    message.push_str(
                        r#"; NaN and infinities are not JSON numbers: send the strings "NaN", "Infinity", "-Infinity""#,
                    );
                }
                DecodeError {
                    path,
                    message,
                    kind: DecodeErrorKind::Malformed,
                }
            }
        }
    }
}

/// Parses one request body. `parse` reads the top-level value; anything
/// after it but whitespace is an error.
pub(crate) fn decode<T>(
    body: &[u8],
    limits: &Limits,
    now_ns: i64,
    parse: impl FnOnce(&mut Deserializer<'_>, &Ctx<'_>) -> Result<T, JsonError>,
) -> Result<T, DecodeError> {
    // Checking UTF-8 once up front is cheap (an ASCII fast path) and lets
    // serde_json skip its per-string checks; it also gives an exact offset.
    let text = std::str::from_utf8(body).map_err(|e| {
        DecodeError::body(
            DecodeErrorKind::Malformed,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    if text.trim_ascii().is_empty() {
        return Err(DecodeError::body(
            DecodeErrorKind::Malformed,
            "the body is empty; expected a JSON object",
        ));
    }
    let ctx = Ctx::new(limits, now_ns);
    let mut de = serde_json::Deserializer::from_str(text);
    let result = parse(&mut de, &ctx).and_then(|value| de.end().map(|()| value));
    result.map_err(|err| ctx.into_error(err, text))
}

/// serde_json appends " at line L column C" to its messages; we report a
/// path (and a byte offset for syntax errors) instead.
fn bare_message(err: &JsonError) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match full.strip_suffix(&suffix) {
        Some(bare) => bare.to_string(),
        None => full,
    }
}

/// Rewrites serde's "invalid type: boolean `true`, expected X" as
/// "expected X, found true", in JSON's words rather than Rust's.
fn data_message(err: &JsonError) -> String {
    let bare = bare_message(err);
    let Some(rest) = bare.strip_prefix("invalid type: ") else {
        return bare;
    };
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return bare;
    };
    let found = match found {
        "unit value" => "null".to_string(),
        "sequence" => "an array".to_string(),
        "map" => "an object".to_string(),
        other => other
            .replace("boolean ", "")
            .replace("integer ", "")
            .replace("floating point ", "")
            .replace('`', ""),
    };
    format!("expected {expected}, found {found}")
}

/// serde_json's line is 1-based and its column is the 1-based byte position
/// in that line of the character it stopped at.
fn byte_offset(body: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        body.match_indices('\n')
            .nth(line - 2)
            .map_or(body.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(body.len())
}

/// True when a bare `NaN`, `Infinity` or `-Infinity` (as Python's json
/// module writes them) starts at or right around `offset`.
fn starts_bare_special(body: &str, offset: usize) -> bool {
    let bytes = body.as_bytes();
    (offset.saturating_sub(1)..=offset + 1).any(|at| {
        bytes.get(at..).is_some_and(|rest| {
            [&b"NaN"[..], b"Infinity", b"-Infinity", b"+Infinity"]
                .iter()
                .any(|token| rest.starts_with(token))
        })
    })
}

/// Abbreviates client text quoted back in a message, so that an error about
/// a megabyte string is not itself a megabyte.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 40;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}…", &s[..end])
}

/// A field name read as an object key: one of the names a visitor knows
/// (its index in the list), or any other name, kept for error paths.
pub(crate) enum Key<'de> {
    Known(usize),
    Unknown(std::borrow::Cow<'de, str>),
}

pub(crate) struct KeySeed(pub &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(match self.0.iter().position(|k| *k == v) {
            Some(i) => Key::Known(i),
            None => Key::Unknown(v.into()),
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match self.0.iter().position(|k| *k == v) {
            Some(i) => Key::Known(i),
            None => Key::Unknown(v.to_string().into()),
        })
    }
}

/// Skips a value of a field we do not know, enforcing the depth limit as it
/// goes (unknown fields are ignored for forward compatibility, but not
/// unboundedly).
#[derive(Clone, Copy)]
pub(crate) struct Ignore<'c, 'l> {
    pub ctx: &'c Ctx<'l>,
    /// The depth a container at this position would have.
    pub depth: usize,
}

impl<'de> DeserializeSeed<'de> for Ignore<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // Not `deserialize_ignored_any`: serde_json skips those values
        // without calling back, and we need to see each level to count it.
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Ignore<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.ctx.enter(self.depth)?;
        let inner = Ignore {
            ctx: self.ctx,
            depth: self.depth + 1,
        };
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.ctx.enter(self.depth)?;
        let inner = Ignore {
            ctx: self.ctx,
            depth: self.depth + 1,
        };
        while map.next_key::<de::IgnoredAny>()?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// Skips an unknown field's value, naming the field if it fails.
pub(crate) fn skip_field<'de, A: MapAccess<'de>>(
    ctx: &Ctx<'_>,
    map: &mut A,
    name: std::borrow::Cow<'_, str>,
    depth: usize,
) -> Result<(), A::Error> {
    let result = map.next_value_seed(Ignore { ctx, depth });
    ctx.at_with(result, || Segment::Key(name.into_owned()))
}

/// The error for a field given twice in one object.
pub(crate) fn duplicate<E: de::Error>(ctx: &Ctx<'_>, field: &'static str) -> E {
    ctx.push(Segment::Field(field));
    ctx.fail(DecodeErrorKind::Invalid, "given more than once")
}

/// A required field that was absent (or null).
pub(crate) fn missing<E: de::Error>(ctx: &Ctx<'_>, field: &'static str) -> E {
    ctx.fail(DecodeErrorKind::Invalid, format_args!("missing {field:?}"))
}

/// Reads a count-limited array: after `limit` elements the rest are only
/// counted, so the error can say how many there were.
pub(crate) fn count_rest<'de, A: SeqAccess<'de>>(
    ctx: &Ctx<'_>,
    seq: &mut A,
    seen: usize,
    depth: usize,
) -> Result<usize, A::Error> {
    let mut total = seen;
    while seq.next_element_seed(Ignore { ctx, depth })?.is_some() {
        total += 1;
    }
    Ok(total)
}

/// Text of a JSON scalar, for attribute and label values sent as numbers or
/// booleans: `1`, `-2`, `0.5`, `true`.
pub(crate) struct ScalarText<'c, 'l> {
    pub ctx: &'c Ctx<'l>,
    pub max_bytes: usize,
    pub what: &'static str,
}

impl<'de> DeserializeSeed<'de> for ScalarText<'_, '_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarText<'_, '_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as a string, number or boolean", self.what)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.len() > self.max_bytes {
            return Err(self.ctx.fail(
                DecodeErrorKind::LimitExceeded,
                format_args!(
                    "{} is {} bytes, over the limit of {}",
                    self.what,
                    v.len(),
                    self.max_bytes
                ),
            ));
        }
        Ok(v.to_string())
    }
    fn visit_bool<E>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E>(self, v: f64) -> Result<String, E> {
        // serde_json writes the shortest text that reads back as `v`.
        Ok(serde_json::Value::from(v).to_string())
    }
}

/// Seconds since the Unix epoch, as clients send them, checked to be a
/// time Loupe can store: finite, not before 1970, and before
/// [`MAX_TIME_SECONDS`] (nanoseconds since 1970 in an `i64` end in 2262).
pub(crate) fn check_seconds(seconds: f64) -> Result<f64, String> {
    if (0.0..=MAX_TIME_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!(
            "{seconds} is not a time Loupe can store: expected Unix seconds from 0 (1970) to {MAX_TIME_SECONDS} (2255)"
        ))
    }
}

/// Latest time accepted, in Unix seconds: 2255-03-14, safely inside the
/// `i64` nanosecond range (which ends 2262-04-11).
pub const MAX_TIME_SECONDS: f64 = 9.0e9;

/// Unix seconds → Unix nanoseconds: the nanosecond nearest to the exact
/// value of `seconds`.
///
/// Whole and fractional seconds are scaled apart because `seconds * 1e9`
/// itself rounds: at today's times the product's spacing is 256 ns, so
/// `1732000000.25 * 1e9` comes out 128 ns early. The split is exact (the
/// fraction of a double is a double), and the fraction's product is within
/// a few femtoseconds.
pub(crate) fn seconds_to_ns(seconds: f64) -> Result<i64, String> {
    let seconds = check_seconds(seconds)?;
    // Casts rather than `trunc` and `round`, which are library calls on
    // baseline x86-64 and showed in profiles. `seconds` is not negative, so
    // the casts truncate as `trunc` would.
    let whole = seconds as i64;
    let fraction = seconds - whole as f64;
    let scaled = fraction * 1e9;
    let mut ns = scaled as i64;
    if scaled - ns as f64 >= 0.5 {
        ns += 1;
    }
    // In range by the check above: 9e18 < i64::MAX ≈ 9.22e18.
    Ok(whole * 1_000_000_000 + ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_convert_to_rounded_nanoseconds() {
        assert_eq!(seconds_to_ns(0.0), Ok(0));
        assert_eq!(seconds_to_ns(1.5), Ok(1_500_000_000));
        assert_eq!(seconds_to_ns(1e-9 * 0.6), Ok(1));
        assert_eq!(
            seconds_to_ns(1_732_000_000.25),
            Ok(1_732_000_000_250_000_000)
        );
        assert_eq!(
            seconds_to_ns(MAX_TIME_SECONDS),
            Ok(9_000_000_000_000_000_000)
        );
        for bad in [
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            9.1e9,
            1e300,
        ] {
            assert!(seconds_to_ns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn byte_offsets_follow_lines() {
        let body = "{\n  \"a\": x\n}";
        // serde_json reports the `x` at line 2, column 8.
        assert_eq!(&body[byte_offset(body, 2, 8)..][..1], "x");
        assert_eq!(byte_offset("abc", 1, 2), 1);
        assert_eq!(byte_offset("abc", 9, 9), 3);
    }

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote("nan"), "\"nan\"");
        let long = "é".repeat(100);
        assert!(quote(&long).len() < 60);
    }
}
