//! Log batches: `POST /api/v1/runs/{id}/logs` ([`decode_logs`]).
//!
//! ```json
//! {"records": [{"time": 1732000000.5, "stream": "stdout", "level": "info",
//!               "text": "epoch 3 done", "attributes": {"epoch": 3}}]}
//! ```
//!
//! - `text` (required): a string of at most [`Limits::max_log_text_bytes`].
//! - `time` (optional): Unix seconds, 1970 to 2255; absent or `null` → now.
//! - `stream` (optional): `stdout`, `stderr` or `app` (the default).
//! - `level` (optional): `debug`, `info` (the default), `warning`, `error`,
//!   `critical`, any case, with the aliases `trace`, `warn` and `fatal`.
//! - `attributes` (optional): an object of strings; numbers and booleans
//!   are taken as their JSON text (`3` → `"3"`); `null`, arrays and objects
//!   are refused. At most [`Limits::max_attributes`], names within
//!   [`Limits::max_name_bytes`], values within
//!   [`Limits::max_attribute_value_bytes`].
//! - Unknown fields, at the top level and in records, are ignored.

use std::collections::BTreeMap;
use std::fmt;

use loupe_model::{LogLevel, LogRecord, LogStream};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::Segment;
use crate::json::{self, Ctx, Key, KeySeed, quote};
use crate::{DecodeErrorKind, Limits, Result};

/// Decodes a run's log batch. `now_ns` (Unix nanoseconds) is the time given
/// to records sent without one.
pub fn decode_logs(body: &[u8], now_ns: i64, limits: &Limits) -> Result<Vec<LogRecord>> {
    json::decode(body, limits, now_ns, |de, ctx| {
        de::Deserializer::deserialize_any(de, LogBatchVisitor { ctx })
    })
}

const DEPTH_RECORDS: usize = 2;
const DEPTH_RECORD: usize = 3;
const DEPTH_FIELD: usize = 4;

struct LogBatchVisitor<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl<'de> Visitor<'de> for LogBatchVisitor<'_, '_> {
    type Value = Vec<LogRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object with a "records" array"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        ctx.enter(1)?;
        let mut records = None;
        while let Some(key) = map.next_key_seed(KeySeed(&["records"]))? {
            match key {
                Key::Known(_) => {
                    if records.is_some() {
                        return Err(json::duplicate(ctx, "records"));
                    }
                    let value = map.next_value_seed(RecordsSeed { ctx });
                    records = Some(ctx.at(value, Segment::Field("records"))?);
                }
                Key::Unknown(name) => json::skip_field(ctx, &mut map, name, DEPTH_RECORDS)?,
            }
        }
        records.ok_or_else(|| {
            ctx.fail(
                DecodeErrorKind::Invalid,
                r#"expected an object with a "records" array"#,
            )
        })
    }
}

struct RecordsSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_> {
    type Value = Vec<LogRecord>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_> {
    type Value = Vec<LogRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of log records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        ctx.enter(DEPTH_RECORDS)?;
        let max = ctx.limits.max_log_records_per_request;
        let mut out = Vec::new();
        loop {
            if out.len() == max {
                let total = json::count_rest(ctx, &mut seq, out.len(), DEPTH_RECORD)?;
                if total > max {
                    return Err(ctx.fail(
                        DecodeErrorKind::LimitExceeded,
                        format_args!("{total} records, over the limit of {max} per request"),
                    ));
                }
                break;
            }
            match ctx.at(
                seq.next_element_seed(RecordSeed { ctx }),
                Segment::Index(out.len()),
            )? {
                Some(record) => out.push(record),
                None => break,
            }
        }
        Ok(out)
    }
}

struct RecordSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = LogRecord;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<LogRecord, D::Error> {
        d.deserialize_any(self)
    }
}

const RECORD_FIELDS: &[&str] = &["time", "stream", "level", "text", "attributes"];

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = LogRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a log record object with a "text""#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LogRecord, A::Error> {
        let ctx = self.ctx;
        ctx.enter(DEPTH_RECORD)?;
        // Outer Option: the field was given; inner: it was not null.
        let mut time: Option<Option<f64>> = None;
        let mut stream: Option<Option<LogStream>> = None;
        let mut level: Option<Option<LogLevel>> = None;
        let mut text: Option<Option<String>> = None;
        let mut attributes: Option<BTreeMap<String, String>> = None;
        while let Some(key) = map.next_key_seed(KeySeed(RECORD_FIELDS))? {
            match key {
                Key::Known(0) => {
                    if time.is_some() {
                        return Err(json::duplicate(ctx, "time"));
                    }
                    let value = map.next_value_seed(Scalar::new(ctx, TimeField));
                    time = Some(ctx.at(value, Segment::Field("time"))?);
                }
                Key::Known(1) => {
                    if stream.is_some() {
                        return Err(json::duplicate(ctx, "stream"));
                    }
                    let value = map.next_value_seed(Scalar::new(ctx, StreamField));
                    stream = Some(ctx.at(value, Segment::Field("stream"))?);
                }
                Key::Known(2) => {
                    if level.is_some() {
                        return Err(json::duplicate(ctx, "level"));
                    }
                    let value = map.next_value_seed(Scalar::new(ctx, LevelField));
                    level = Some(ctx.at(value, Segment::Field("level"))?);
                }
                Key::Known(3) => {
                    if text.is_some() {
                        return Err(json::duplicate(ctx, "text"));
                    }
                    let value = map.next_value_seed(Scalar::new(ctx, TextField));
                    text = Some(ctx.at(value, Segment::Field("text"))?);
                }
                Key::Known(_) => {
                    if attributes.is_some() {
                        return Err(json::duplicate(ctx, "attributes"));
                    }
                    let value = map.next_value_seed(AttributesSeed { ctx });
                    attributes = Some(ctx.at(value, Segment::Field("attributes"))?);
                }
                Key::Unknown(name) => json::skip_field(ctx, &mut map, name, DEPTH_FIELD)?,
            }
        }
        let Some(Some(text)) = text else {
            return Err(json::missing(ctx, "text"));
        };
        Ok(LogRecord {
            time: time.flatten().unwrap_or_else(|| ctx.now_ns as f64 / 1e9),
            stream: stream.flatten().unwrap_or(LogStream::App),
            level: level.flatten().unwrap_or(LogLevel::Info),
            text,
            attributes: attributes.unwrap_or_default(),
        })
    }
}

/// How one scalar field of a record reads its JSON value. `None` means the
/// JSON type is wrong for the field (serde then names what was found).
trait FieldReader: Copy {
    type Out;
    const EXPECTING: &'static str;
    fn number(self, _ctx: &Ctx<'_>, _v: f64) -> Option<Result<Self::Out, Refusal>> {
        None
    }
    fn string(self, _ctx: &Ctx<'_>, _v: &str) -> Option<Result<Self::Out, Refusal>> {
        None
    }
}

type Refusal = (DecodeErrorKind, String);

#[derive(Clone, Copy)]
struct TimeField;
#[derive(Clone, Copy)]
struct StreamField;
#[derive(Clone, Copy)]
struct LevelField;
#[derive(Clone, Copy)]
struct TextField;

impl FieldReader for TimeField {
    type Out = f64;
    const EXPECTING: &'static str = "Unix seconds as a number";
    fn number(self, _: &Ctx<'_>, v: f64) -> Option<Result<f64, Refusal>> {
        Some(json::check_seconds(v).map_err(|m| (DecodeErrorKind::Invalid, m)))
    }
}

impl FieldReader for StreamField {
    type Out = LogStream;
    const EXPECTING: &'static str = r#""stdout", "stderr" or "app""#;
    fn string(self, _: &Ctx<'_>, v: &str) -> Option<Result<LogStream, Refusal>> {
        Some(v.parse().map_err(|_| {
            let message = format!(
                "unknown stream {}: expected stdout, stderr or app",
                quote(v)
            );
            (DecodeErrorKind::Invalid, message)
        }))
    }
}

impl FieldReader for LevelField {
    type Out = LogLevel;
    const EXPECTING: &'static str = r#""debug", "info", "warning", "error" or "critical""#;
    fn string(self, _: &Ctx<'_>, v: &str) -> Option<Result<LogLevel, Refusal>> {
        Some(v.parse().map_err(|_| {
            let message = format!(
                "unknown level {}: expected debug, info, warning, error or critical",
                quote(v)
            );
            (DecodeErrorKind::Invalid, message)
        }))
    }
}

impl FieldReader for TextField {
    type Out = String;
    const EXPECTING: &'static str = "the log text as a string";
    fn string(self, ctx: &Ctx<'_>, v: &str) -> Option<Result<String, Refusal>> {
        let max = ctx.limits.max_log_text_bytes;
        if v.len() > max {
            let message = format!("{} bytes, over the limit of {max}", v.len());
            return Some(Err((DecodeErrorKind::LimitExceeded, message)));
        }
        Some(Ok(v.to_string()))
    }
}

/// Reads one scalar field of a record; `null` is absent.
struct Scalar<'c, 'l, R> {
    ctx: &'c Ctx<'l>,
    reader: R,
}

impl<'c, 'l, R: FieldReader> Scalar<'c, 'l, R> {
    fn new(ctx: &'c Ctx<'l>, reader: R) -> Self {
        Self { ctx, reader }
    }

    fn finish<E: de::Error>(
        self,
        read: Option<Result<R::Out, Refusal>>,
        found: de::Unexpected<'_>,
    ) -> Result<Option<R::Out>, E> {
        match read {
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err((kind, message))) => Err(self.ctx.fail(kind, message)),
            None => Err(de::Error::invalid_type(found, &self)),
        }
    }
}

impl<'de, R: FieldReader> DeserializeSeed<'de> for Scalar<'_, '_, R> {
    type Value = Option<R::Out>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, R: FieldReader> Visitor<'de> for Scalar<'_, '_, R> {
    type Value = Option<R::Out>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(R::EXPECTING)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let read = self.reader.number(self.ctx, v);
        self.finish(read, de::Unexpected::Float(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        let read = self.reader.number(self.ctx, v as f64);
        self.finish(read, de::Unexpected::Signed(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let read = self.reader.number(self.ctx, v as f64);
        self.finish(read, de::Unexpected::Unsigned(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let read = self.reader.string(self.ctx, v);
        self.finish(read, de::Unexpected::Str(v))
    }
}

/// A record's attributes; `null` is none.
struct AttributesSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl<'de> DeserializeSeed<'de> for AttributesSeed<'_, '_> {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AttributesSeed<'_, '_> {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of attribute names to values")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        ctx.enter(DEPTH_FIELD)?;
        let limits = ctx.limits;
        let mut out = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            if out.len() == limits.max_attributes {
                return Err(ctx.fail(
                    DecodeErrorKind::LimitExceeded,
                    format_args!(
                        "more than {0} attributes, over the limit of {0}",
                        limits.max_attributes
                    ),
                ));
            }
            let checked = check_attribute_name(ctx, &name, &out).and_then(|()| {
                map.next_value_seed(json::ScalarText {
                    ctx,
                    max_bytes: limits.max_attribute_value_bytes,
                    what: "an attribute value",
                })
            });
            let value = ctx.at_with(checked, || Segment::Key(name.clone()))?;
            out.insert(name, value);
        }
        Ok(out)
    }
}

fn check_attribute_name<E: de::Error>(
    ctx: &Ctx<'_>,
    name: &str,
    seen: &BTreeMap<String, String>,
) -> Result<(), E> {
    let max = ctx.limits.max_name_bytes;
    if name.is_empty() {
        return Err(ctx.fail(DecodeErrorKind::Invalid, "the attribute name is empty"));
    }
    if name.len() > max {
        return Err(ctx.fail(
            DecodeErrorKind::LimitExceeded,
            format_args!(
                "the attribute name is {} bytes, over the limit of {max}",
                name.len()
            ),
        ));
    }
    if seen.contains_key(name) {
        return Err(ctx.fail(DecodeErrorKind::Invalid, "given more than once"));
    }
    Ok(())
}
