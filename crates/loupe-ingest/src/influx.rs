//! InfluxDB line protocol: what Telegraf and the InfluxDB client libraries
//! send to `/api/v2/write` and `/write`.
//!
//! ```text
//! gpu,host=node1,gpu=0 util=97.5,mem_used=7.1e10i,throttled=f 1733500000000000000
//! measurement[,tag=value…] field=value[,field=value…] [timestamp]
//! ```
//!
//! **Mapping.** Each field of a line is one point of the series
//! `{measurement}_{field}` (the name Telegraf's Prometheus output gives it),
//! labelled with the line's tags. Steps are absent: these are series by
//! time, like the agent's.
//!
//! **Field values**, handled explicitly by type:
//! - floats (`97.5`, `-1e-3`, `1.`) as they are; `NaN` and infinities are not
//!   line protocol and are refused, as InfluxDB refuses them;
//! - integers (`42i`) and unsigned integers (`42u`) as doubles: exact up to
//!   2^53, rounded to the nearest double beyond;
//! - booleans (`t`, `T`, `true`, `True`, `TRUE` and the same for false) as
//!   1 and 0;
//! - strings (`"text"`) are not numbers and are not stored: each is counted
//!   in [`LineBatch::string_fields`] so the server can say so; a line with
//!   only string fields stores nothing.
//!
//! **Timestamps** are integers in the request's [`precision_ns`] (nanoseconds
//! unless told); a line without one takes the server's "now".
//!
//! **Escapes**: in measurements, `\,` and `\ `; in tag keys, tag values and
//! field keys, `\,`, `\=` and `\ `; in string values, `\"` and `\\`. A
//! backslash before anything else is itself. Lines starting with `#` are
//! comments; blank lines are skipped; `\r\n` endings are accepted.
//!
//! **A bad line refuses the whole batch** (as InfluxDB OSS 2 documents it),
//! and the error names the line by number and quotes it: nothing of a
//! refused batch is stored, so a client may correct and resend it whole.

use std::collections::HashMap;

use loupe_model::SeriesKey;

use crate::error::DecodeError;
use crate::{DecodeErrorKind, Limits, RESERVED_LABELS, Result, SeriesColumns};

/// Nanoseconds per unit of a request's `precision=`, in the spellings
/// InfluxDB 2 (`ns`, `us`, `ms`, `s`) and 1.x (`n`, `u`, `ms`, `s`, `m`,
/// `h`) accept; `None` for anything else.
pub fn precision_ns(precision: &str) -> Option<i64> {
    Some(match precision {
        "ns" | "n" => 1,
        "us" | "u" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// A decoded request: its series, and what could not be stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineBatch {
    /// One entry per distinct series, in the order first seen; times in
    /// request order (the store keeps the newest write of a time).
    pub series: Vec<(SeriesKey, SeriesColumns)>,
    /// String fields seen (not stored: they are not numbers).
    pub string_fields: u64,
    /// Lines read, comments and blank lines left out.
    pub lines: u64,
}

impl LineBatch {
    pub fn points(&self) -> usize {
        self.series.iter().map(|(_, c)| c.len()).sum()
    }
}

/// Decodes a line-protocol body. `ns_per_unit` comes from
/// [`precision_ns`]; `now_ns` stamps lines without a timestamp.
pub fn decode_line_protocol(
    body: &[u8],
    ns_per_unit: i64,
    now_ns: i64,
    limits: &Limits,
) -> Result<LineBatch> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = 1 + body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        fail(
            line,
            DecodeErrorKind::Malformed,
            "is not valid UTF-8".into(),
        )
    })?;
    let mut batch = LineBatch::default();
    let mut index: HashMap<SeriesKey, usize> = HashMap::new();
    let mut points = 0usize;
    for (n, raw) in text.split('\n').enumerate() {
        let line_no = n + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        batch.lines += 1;
        let parsed = parse_line(trimmed, limits).map_err(|(kind, why)| {
            fail(
                line_no,
                kind,
                format!("unable to parse '{}': {why}", excerpt(trimmed)),
            )
        })?;
        let time = match parsed.timestamp {
            Some(t) => t
                .checked_mul(ns_per_unit)
                .filter(|t| *t >= 0 && *t as f64 <= crate::MAX_TIME_SECONDS * 1e9)
                .ok_or_else(|| {
                fail(
                    line_no,
                    DecodeErrorKind::Invalid,
                    format!(
                        "unable to parse '{}': timestamp {t} is not a time Loupe can store (1970 to 2255)",
                        excerpt(trimmed)
                    ),
                )
            })?,
            None => now_ns,
        };
        for (field, value) in parsed.fields {
            let value = match value {
                FieldValue::Number(v) => v,
                FieldValue::String => {
                    batch.string_fields += 1;
                    continue;
                }
            };
            let name = format!("{}_{}", parsed.measurement, field);
            if name.len() > limits.name_bytes() {
                return Err(fail(
                    line_no,
                    DecodeErrorKind::LimitExceeded,
                    format!(
                        "series name {:?} is {} bytes, over the limit of {}",
                        excerpt(&name),
                        name.len(),
                        limits.name_bytes()
                    ),
                ));
            }
            let key = SeriesKey::new(name, parsed.tags.iter().cloned()).map_err(|e| {
                fail(
                    line_no,
                    DecodeErrorKind::Invalid,
                    format!("unable to parse '{}': {e}", excerpt(trimmed)),
                )
            })?;
            let slot = match index.get(&key) {
                Some(&i) => i,
                None => {
                    if batch.series.len() >= limits.max_series_per_request {
                        return Err(fail(
                            line_no,
                            DecodeErrorKind::LimitExceeded,
                            format!(
                                "more than {} series in one request",
                                limits.max_series_per_request
                            ),
                        ));
                    }
                    let cols = SeriesColumns {
                        name: key.name().to_string(),
                        steps: None,
                        times_ns: Vec::new(),
                        values: Vec::new(),
                    };
                    index.insert(key.clone(), batch.series.len());
                    batch.series.push((key, cols));
                    batch.series.len() - 1
                }
            };
            points += 1;
            if points > limits.max_points_per_request {
                return Err(fail(
                    line_no,
                    DecodeErrorKind::LimitExceeded,
                    format!(
                        "more than {} points in one request",
                        limits.max_points_per_request
                    ),
                ));
            }
            let cols = &mut batch.series[slot].1;
            cols.times_ns.push(time);
            cols.values.push(value);
        }
    }
    Ok(batch)
}

fn fail(line: usize, kind: DecodeErrorKind, message: String) -> DecodeError {
    DecodeError {
        path: format!("line {line}"),
        message,
        kind,
    }
}

/// The start of a line, for error messages (a whole line may be megabytes).
fn excerpt(line: &str) -> String {
    const MAX: usize = 120;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[derive(Debug, Clone, PartialEq)]
enum FieldValue {
    Number(f64),
    String,
}

#[derive(Debug)]
struct Line {
    measurement: String,
    tags: Vec<(String, String)>,
    fields: Vec<(String, FieldValue)>,
    timestamp: Option<i64>,
}

type LineError = (DecodeErrorKind, String);

fn invalid(why: impl Into<String>) -> LineError {
    (DecodeErrorKind::Invalid, why.into())
}

/// Reads one non-empty, non-comment line.
fn parse_line(line: &str, limits: &Limits) -> std::result::Result<Line, LineError> {
    let mut cur = Cursor::new(line);
    let measurement = cur.token(&[',', ' '])?;
    if measurement.is_empty() {
        return Err(invalid("missing measurement"));
    }
    let mut tags: Vec<(String, String)> = Vec::new();
    while cur.eat(',') {
        let key = cur.token(&['=', ',', ' '])?;
        if !cur.eat('=') {
            return Err(invalid(format!("missing tag value for tag {key:?}")));
        }
        let value = cur.token(&[',', ' ', '='])?;
        if key.is_empty() {
            return Err(invalid("missing tag key"));
        }
        if value.is_empty() {
            return Err(invalid(format!("missing tag value for tag {key:?}")));
        }
        if RESERVED_LABELS.contains(&key.as_str()) {
            return Err(invalid(format!(
                "tag {key:?} is reserved: Loupe sets it (the project comes from the bucket or database)"
            )));
        }
        if tags.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!("duplicate tag {key:?}")));
        }
        if value.len() > loupe_model::MAX_LABEL_BYTES || key.len() > limits.name_bytes() {
            return Err((
                DecodeErrorKind::LimitExceeded,
                format!("tag {:?} is too long", excerpt(&key)),
            ));
        }
        tags.push((key, value));
    }
    if !cur.eat(' ') {
        return Err(invalid("missing fields"));
    }
    cur.skip_spaces();
    let mut fields: Vec<(String, FieldValue)> = Vec::new();
    loop {
        let key = cur.token(&['=', ',', ' '])?;
        if key.is_empty() {
            return Err(invalid("missing field key"));
        }
        if !cur.eat('=') {
            return Err(invalid(format!("missing field value for field {key:?}")));
        }
        let value = cur.field_value()?;
        // A repeated field: the last one wins, as in InfluxDB.
        fields.retain(|(k, _)| *k != key);
        fields.push((key, value));
        if !cur.eat(',') {
            break;
        }
    }
    let timestamp = if cur.eat(' ') {
        cur.skip_spaces();
        let t = cur.rest().trim_end_matches([' ', '\t']);
        if t.is_empty() {
            None
        } else {
            Some(
                t.parse::<i64>()
                    .map_err(|_| invalid(format!("bad timestamp {:?}", excerpt(t))))?,
            )
        }
    } else if cur.rest().is_empty() {
        None
    } else {
        return Err(invalid(format!(
            "unexpected {:?} after the fields",
            excerpt(cur.rest())
        )));
    };
    Ok(Line {
        measurement,
        tags,
        fields,
        timestamp,
    })
}

/// Reads a line left to right.
struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, at: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.eat(' ') {}
    }

    /// An unquoted, escaped token up to the first unescaped `stop`
    /// character; `\x` for a stop character or `\\`-free escapes keeps `x`.
    fn token(&mut self, stop: &[char]) -> std::result::Result<String, LineError> {
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        let start = self.at;
        while let Some((i, c)) = chars.next() {
            if stop.contains(&c) {
                self.at = start + i;
                return Ok(out);
            }
            if c == '\\' {
                match chars.clone().next() {
                    Some((_, n)) if stop.contains(&n) || n == ' ' || n == ',' || n == '=' => {
                        chars.next();
                        out.push(n);
                    }
                    _ => out.push('\\'),
                }
            } else if c == '\t' || c == '\0' {
                return Err(invalid(format!("unexpected {c:?} in a name")));
            } else {
                out.push(c);
            }
        }
        self.at = self.s.len();
        Ok(out)
    }

    /// A field value: a quoted string or a number, integer or boolean token.
    fn field_value(&mut self) -> std::result::Result<FieldValue, LineError> {
        if self.eat('"') {
            let mut chars = self.rest().char_indices();
            let start = self.at;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        self.at = start + i + 1;
                        return Ok(FieldValue::String);
                    }
                    _ => {}
                }
            }
            return Err(invalid("unterminated string field value"));
        }
        let end = self
            .rest()
            .find([',', ' '])
            .map_or(self.s.len(), |i| self.at + i);
        let token = &self.s[self.at..end];
        self.at = end;
        number(token).map(FieldValue::Number)
    }
}

/// A float, `…i` integer, `…u` unsigned integer or boolean token.
fn number(token: &str) -> std::result::Result<f64, LineError> {
    let bad = || invalid(format!("invalid field value {:?}", excerpt(token)));
    match token {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(1.0),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(0.0),
        "" => return Err(invalid("missing field value")),
        _ => {}
    }
    if let Some(int) = token.strip_suffix('i') {
        return int.parse::<i64>().map(|v| v as f64).map_err(|_| bad());
    }
    if let Some(uint) = token.strip_suffix('u') {
        return uint.parse::<u64>().map(|v| v as f64).map_err(|_| bad());
    }
    // Rust's parser also takes "inf", "NaN" and "infinity": not line protocol.
    let digits_only = token
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !digits_only || !token.bytes().any(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    token
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn decode(body: &str) -> Result<LineBatch> {
        decode_line_protocol(body.as_bytes(), 1, NOW, &Limits::default())
    }

    fn series(b: &LineBatch) -> Vec<(String, Vec<i64>, Vec<f64>)> {
        b.series
            .iter()
            .map(|(k, c)| (k.to_string(), c.times_ns.clone(), c.values.clone()))
            .collect()
    }

    #[test]
    fn fields_become_series_named_after_measurement_and_field() {
        let b = decode(
            "gpu,host=n1,gpu=0 util=97.5,mem=7i,ok=t,big=18446744073709551615u 100\n\
             gpu,gpu=0,host=n1 util=98 200\n",
        )
        .unwrap();
        assert_eq!(b.lines, 2);
        let s = series(&b);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].0, r#"gpu_util{gpu="0",host="n1"}"#);
        assert_eq!(s[0].1, vec![100, 200]);
        assert_eq!(s[0].2, vec![97.5, 98.0]);
        assert_eq!(s[1].2, vec![7.0]);
        assert_eq!(s[2].2, vec![1.0]);
        assert_eq!(s[3].2, vec![u64::MAX as f64]);
    }

    #[test]
    fn escapes_strings_comments_and_missing_timestamps() {
        let b = decode(
            "# a comment\r\n\
             \r\n\
             my\\ meas\\,x,tag\\ key=a\\=b\\,c note=\"a \\\"quoted\\\" text, with = signs\",v=1.5e3\r\n",
        )
        .unwrap();
        assert_eq!(b.string_fields, 1);
        let s = series(&b);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0, r#"my meas,x_v{tag key="a=b,c"}"#);
        assert_eq!(s[0].1, vec![NOW]);
        assert_eq!(s[0].2, vec![1500.0]);
    }

    #[test]
    fn precision_scales_timestamps() {
        let ms = precision_ns("ms").unwrap();
        let b = decode_line_protocol(b"m v=1 1733500000000", ms, NOW, &Limits::default()).unwrap();
        assert_eq!(b.series[0].1.times_ns, vec![1_733_500_000_000_000_000]);
        assert!(precision_ns("weeks").is_none());
        let e = decode_line_protocol(b"m v=1 9223372036854775", ms, NOW, &Limits::default())
            .unwrap_err();
        assert!(e.message.contains("not a time"), "{e}");
    }

    #[test]
    fn a_bad_line_refuses_the_batch_naming_it() {
        for (body, line, why) in [
            ("m v=1\nm\n", 2, "missing fields"),
            ("m v=1\nm v=abc\n", 2, "invalid field value"),
            ("m v=NaN", 1, "invalid field value"),
            ("m v=inf", 1, "invalid field value"),
            ("m v=1i2", 1, "invalid field value"),
            ("m,t v=1", 1, "missing tag value"),
            ("m,t= v=1", 1, "missing tag value"),
            ("m v=\"open", 1, "unterminated string"),
            ("m v=1 12x", 1, "bad timestamp"),
            ("m v=1 -5", 1, "not a time"),
            (",t=1 v=1", 1, "missing measurement"),
            ("m,run=a v=1", 1, "reserved"),
            ("m,a=1,a=2 v=1", 1, "duplicate tag"),
            ("m v=", 1, "missing field value"),
            ("m =1", 1, "missing field key"),
            ("m v=1,", 1, "missing field key"),
        ] {
            let e = decode(body).unwrap_err();
            assert_eq!(e.path, format!("line {line}"), "{body:?}: {e}");
            assert!(e.message.contains(why), "{body:?}: {e}");
            assert!(
                e.message.contains("unable to parse") || why == "not a time",
                "{e}"
            );
        }
    }

    #[test]
    fn limits_hold() {
        let limits = Limits {
            max_series_per_request: 2,
            max_points_per_request: 3,
            ..Limits::default()
        };
        let e = decode_line_protocol(b"m a=1,b=2,c=3", 1, NOW, &limits).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::LimitExceeded);
        let e = decode_line_protocol(b"m a=1\nm a=2\nm a=3\nm a=4", 1, NOW, &limits).unwrap_err();
        assert!(e.message.contains("points"), "{e}");
        let e = decode_line_protocol(b"m v=1\n\xff", 1, NOW, &limits).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.kind),
            ("line 2", DecodeErrorKind::Malformed)
        );
    }

    #[test]
    fn a_repeated_field_keeps_the_last_value() {
        let b = decode("m v=1,v=2 5").unwrap();
        assert_eq!(series(&b), vec![("m_v".to_string(), vec![5], vec![2.0])]);
    }
}
