//! Metric batches: `POST /api/v1/runs/{id}/metrics` ([`decode_metrics`]) and
//! `POST /api/v1/metrics` ([`decode_external_metrics`]).
//!
//! ```json
//! {"series": [{"name": "train/loss", "step": [1, 2], "time": [1732000000.5, 1732000001.5],
//!              "value": [0.91, "NaN"]}]}
//! ```
//!
//! - `value` (required): JSON numbers, or exactly the strings `"NaN"`,
//!   `"Infinity"`, `"+Infinity"`, `"-Infinity"` (JSON has no literal for them).
//! - `time` (optional): Unix seconds, integer or fraction, 1970 to 2255,
//!   stored as the nanosecond nearest to the number's double value;
//!   absent or `null` means "now" (the server's clock) for every point.
//! - `step` (optional): integers (`3` or `3.0`; never `3.5`); negative steps
//!   are allowed, `i64::MIN` is reserved for "no step". Absent or `null` →
//!   the points have no step.
//! - `labels` (external metrics only): string values; numbers and booleans
//!   are taken as their JSON text (`0` → `"0"`). `run` and `project` are set
//!   by the server and refused here.
//! - Unknown fields, at the top level and in series objects, are ignored so
//!   that older servers accept newer clients' batches (they still count
//!   towards the depth limit). On the run endpoint that includes `labels`.
//!
//! Decoding tries [`crate::fast`] first, a scanner for plain batches, and
//! falls back to the serde visitors below, which define the format and word
//! the errors.

use std::fmt;

use loupe_model::{KeyError, MAX_LABEL_BYTES, MAX_LABELS, SeriesKey};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::Segment;
use crate::fast;
use crate::json::{self, Ctx, Key, KeySeed, quote};
use crate::{DecodeErrorKind, Limits, Result};

/// One series' points, as columns of equal length.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesColumns {
    pub name: String,
    /// `None` when the client sent no steps.
    pub steps: Option<Vec<i64>>,
    /// Unix nanoseconds; the server's "now" for every point when the client
    /// sent no times.
    pub times_ns: Vec<i64>,
    /// NaN and ±Infinity included, as sent.
    pub values: Vec<f64>,
}

impl SeriesColumns {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A run's metrics batch, in the order the client sent its series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricBatch {
    pub series: Vec<SeriesColumns>,
}

impl MetricBatch {
    /// Points in all series together.
    pub fn points(&self) -> usize {
        self.series.iter().map(SeriesColumns::len).sum()
    }
}

/// Decodes a run's metrics batch (`POST /api/v1/runs/{id}/metrics`).
/// `now_ns` (Unix nanoseconds) is the time given to points sent without one.
/// Series names are checked as [`SeriesKey`] names; the server adds the
/// run's labels.
pub fn decode_metrics(body: &[u8], now_ns: i64, limits: &Limits) -> Result<MetricBatch> {
    let parsed = decode_series(body, now_ns, limits, false)?;
    Ok(MetricBatch {
        series: parsed.into_iter().map(|(_, columns)| columns).collect(),
    })
}

/// Decodes a batch of series that belong to no run (`POST /api/v1/metrics`:
/// host, GPU, serving metrics), each with its labels, into validated keys.
pub fn decode_external_metrics(
    body: &[u8],
    now_ns: i64,
    limits: &Limits,
) -> Result<Vec<(SeriesKey, SeriesColumns)>> {
    let parsed = decode_series(body, now_ns, limits, true)?;
    Ok(parsed
        .into_iter()
        // Every external series carries its key.
        .filter_map(|(key, columns)| Some((key?, columns)))
        .collect())
}

/// The fast path when it can, else the serde path, which defines the
/// format and words the errors (see [`crate::fast`]).
fn decode_series(body: &[u8], now_ns: i64, limits: &Limits, external: bool) -> Result<Vec<Parsed>> {
    if let Ok(text) = std::str::from_utf8(body)
        && let Some(parsed) = fast::decode_series(text, now_ns, limits, external)
    {
        return Ok(parsed);
    }
    json::decode(body, limits, now_ns, |de, ctx| {
        parse_batch(de, ctx, external)
    })
}

/// The serde path: one pass of serde_json through the visitors below.
pub(crate) fn parse_batch(
    de: &mut json::Deserializer<'_>,
    ctx: &Ctx<'_>,
    external: bool,
) -> Result<Vec<Parsed>, json::JsonError> {
    de::Deserializer::deserialize_any(de, BatchVisitor { ctx, external })
}

/// Label names the server sets from the request's route and token.
pub const RESERVED_LABELS: [&str; 2] = loupe_model::label::RESERVED;

/// Labels a series outside runs may carry: one fewer than a series key
/// holds, since the server adds `project`.
pub const MAX_EXTERNAL_LABELS: usize = MAX_LABELS - 1;

/// A decoded series; the key is built for external series only.
pub(crate) type Parsed = (Option<SeriesKey>, SeriesColumns);

/// Nesting depth of each level of the batch (the top object is 1).
const DEPTH_SERIES_LIST: usize = 2;
const DEPTH_SERIES: usize = 3;
const DEPTH_FIELD: usize = 4;

struct BatchVisitor<'c, 'l> {
    ctx: &'c Ctx<'l>,
    external: bool,
}

impl<'de> Visitor<'de> for BatchVisitor<'_, '_> {
    type Value = Vec<Parsed>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object with a "series" array"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        ctx.enter(1)?;
        let mut series = None;
        while let Some(key) = map.next_key_seed(KeySeed(&["series"]))? {
            match key {
                Key::Known(_) => {
                    if series.is_some() {
                        return Err(json::duplicate(ctx, "series"));
                    }
                    let seed = SeriesListSeed {
                        ctx,
                        external: self.external,
                    };
                    series = Some(ctx.at(map.next_value_seed(seed), Segment::Field("series"))?);
                }
                Key::Unknown(name) => json::skip_field(ctx, &mut map, name, 2)?,
            }
        }
        series.ok_or_else(|| {
            ctx.fail(
                DecodeErrorKind::Invalid,
                r#"expected an object with a "series" array"#,
            )
        })
    }
}

struct SeriesListSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    external: bool,
}

impl<'de> DeserializeSeed<'de> for SeriesListSeed<'_, '_> {
    type Value = Vec<Parsed>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SeriesListSeed<'_, '_> {
    type Value = Vec<Parsed>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of series objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        ctx.enter(DEPTH_SERIES_LIST)?;
        let max = ctx.limits.max_series_per_request;
        let mut out: Vec<Parsed> = Vec::new();
        loop {
            if out.len() == max {
                let total = json::count_rest(ctx, &mut seq, out.len(), DEPTH_SERIES)?;
                if total > max {
                    return Err(ctx.fail(
                        DecodeErrorKind::LimitExceeded,
                        format_args!("{total} series, over the limit of {max} per request"),
                    ));
                }
                break;
            }
            let seed = SeriesSeed {
                ctx,
                external: self.external,
                // Series of one batch usually have equal lengths.
                hint: out.last().map_or(0, |(_, c)| c.len()),
            };
            match ctx.at(seq.next_element_seed(seed), Segment::Index(out.len()))? {
                Some(series) => out.push(series),
                None => break,
            }
        }
        Ok(out)
    }
}

struct SeriesSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
    external: bool,
    /// Expected number of points, to size the columns up front.
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for SeriesSeed<'_, '_> {
    type Value = Parsed;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_any(self)
    }
}

const RUN_FIELDS: &[&str] = &["name", "step", "time", "value"];
const EXTERNAL_FIELDS: &[&str] = &["name", "step", "time", "value", "labels"];

impl<'de> Visitor<'de> for SeriesSeed<'_, '_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a series object with "name" and "value""#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let ctx = self.ctx;
        ctx.enter(DEPTH_SERIES)?;
        let fields = if self.external {
            EXTERNAL_FIELDS
        } else {
            RUN_FIELDS
        };
        let mut name: Option<String> = None;
        let mut steps: Option<Option<Vec<i64>>> = None;
        let mut times: Option<Option<Vec<i64>>> = None;
        let mut values: Option<Option<Vec<f64>>> = None;
        let mut labels: Option<Vec<(String, String)>> = None;
        let hint = |a: &Option<Option<Vec<i64>>>,
                    b: &Option<Option<Vec<i64>>>,
                    c: &Option<Option<Vec<f64>>>| {
            let seen = [
                a.as_ref().and_then(|v| v.as_ref().map(Vec::len)),
                b.as_ref().and_then(|v| v.as_ref().map(Vec::len)),
                c.as_ref().and_then(|v| v.as_ref().map(Vec::len)),
            ];
            seen.into_iter().flatten().max().unwrap_or(self.hint)
        };
        while let Some(key) = map.next_key_seed(KeySeed(fields))? {
            match key {
                Key::Known(0) => {
                    if name.is_some() {
                        return Err(json::duplicate(ctx, "name"));
                    }
                    let value = map.next_value_seed(NameSeed { ctx });
                    name = Some(ctx.at(value, Segment::Field("name"))?);
                }
                Key::Known(1) => {
                    if steps.is_some() {
                        return Err(json::duplicate(ctx, "step"));
                    }
                    let seed = Column {
                        ctx,
                        hint: hint(&steps, &times, &values),
                        element: StepSeed { ctx },
                    };
                    steps = Some(ctx.at(map.next_value_seed(seed), Segment::Field("step"))?);
                }
                Key::Known(2) => {
                    if times.is_some() {
                        return Err(json::duplicate(ctx, "time"));
                    }
                    let seed = Column {
                        ctx,
                        hint: hint(&steps, &times, &values),
                        element: TimeSeed { ctx },
                    };
                    times = Some(ctx.at(map.next_value_seed(seed), Segment::Field("time"))?);
                }
                Key::Known(3) => {
                    if values.is_some() {
                        return Err(json::duplicate(ctx, "value"));
                    }
                    let seed = Column {
                        ctx,
                        hint: hint(&steps, &times, &values),
                        element: ValueSeed { ctx },
                    };
                    values = Some(ctx.at(map.next_value_seed(seed), Segment::Field("value"))?);
                }
                Key::Known(_) => {
                    if labels.is_some() {
                        return Err(json::duplicate(ctx, "labels"));
                    }
                    let value = map.next_value_seed(LabelsSeed { ctx });
                    labels = Some(ctx.at(value, Segment::Field("labels"))?);
                }
                Key::Unknown(field) => json::skip_field(ctx, &mut map, field, DEPTH_FIELD)?,
            }
        }

        let Some(name) = name else {
            return Err(json::missing(ctx, "name"));
        };
        let Some(Some(values)) = values else {
            return Err(json::missing(ctx, "value"));
        };
        let n = values.len();
        let steps = steps.flatten();
        if let Some(steps) = &steps {
            check_length(ctx, "step", steps.len(), n)?;
        }
        let times_ns = match times.flatten() {
            Some(times) => {
                check_length(ctx, "time", times.len(), n)?;
                times
            }
            None => vec![ctx.now_ns; n],
        };
        let key = if self.external {
            let labels = labels.unwrap_or_default();
            Some(SeriesKey::new(name.as_str(), labels).map_err(|e| key_error(ctx, e))?)
        } else {
            None
        };
        // Each column was checked against what was left; the series is now
        // known whole, so its points are spent.
        ctx.points_left.set(ctx.points_left.get() - n);
        Ok((
            key,
            SeriesColumns {
                name,
                steps,
                times_ns,
                values,
            },
        ))
    }
}

fn check_length<E: de::Error>(
    ctx: &Ctx<'_>,
    column: &str,
    len: usize,
    values: usize,
) -> Result<(), E> {
    if len != values {
        return Err(ctx.fail(
            DecodeErrorKind::Invalid,
            format_args!("{column:?} has {len} entries but \"value\" has {values}"),
        ));
    }
    Ok(())
}

/// The checks left to [`SeriesKey::new`] (the rest were made as the labels
/// were read, where the path could name the label).
fn key_error<E: de::Error>(ctx: &Ctx<'_>, err: KeyError) -> E {
    let kind = match err {
        KeyError::NameTooLong { .. }
        | KeyError::TooManyLabels { .. }
        | KeyError::LabelTooLong { .. } => DecodeErrorKind::LimitExceeded,
        _ => DecodeErrorKind::Invalid,
    };
    let field = match err {
        KeyError::EmptyName | KeyError::NameTooLong { .. } => "name",
        _ => "labels",
    };
    ctx.push(Segment::Field(field));
    ctx.fail(kind, err)
}

/// A series name: non-empty, within the name limit, no NUL.
#[derive(Clone, Copy)]
struct NameSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_, '_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_, '_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a series name as a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        let max = self.ctx.limits.name_bytes();
        if v.is_empty() {
            return Err(self
                .ctx
                .fail(DecodeErrorKind::Invalid, "the series name is empty"));
        }
        if v.len() > max {
            return Err(self.ctx.fail(
                DecodeErrorKind::LimitExceeded,
                format_args!("{} bytes, over the limit of {max}", v.len()),
            ));
        }
        if v.contains('\0') {
            return Err(self
                .ctx
                .fail(DecodeErrorKind::Invalid, "series names may not contain NUL"));
        }
        Ok(v.to_string())
    }
}

/// An array column of a series; `null` counts as absent.
struct Column<'c, 'l, S> {
    ctx: &'c Ctx<'l>,
    hint: usize,
    element: S,
}

impl<'de, S: Copy + DeserializeSeed<'de>> DeserializeSeed<'de> for Column<'_, '_, S> {
    type Value = Option<Vec<S::Value>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: Copy + DeserializeSeed<'de>> Visitor<'de> for Column<'_, '_, S> {
    type Value = Option<Vec<S::Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        ctx.enter(DEPTH_FIELD)?;
        // Every column of a series is as long as its values, so none may be
        // longer than the points this request has left.
        let budget = ctx.points_left.get();
        let mut out = Vec::with_capacity(self.hint.min(budget));
        loop {
            if out.len() == budget {
                if seq
                    .next_element_seed(json::Ignore {
                        ctx,
                        depth: DEPTH_FIELD + 1,
                    })?
                    .is_some()
                {
                    let max = ctx.limits.max_points_per_request;
                    return Err(ctx.fail(
                        DecodeErrorKind::LimitExceeded,
                        format_args!(
                            "the request has more than {max} points, over the limit of {max} per request"
                        ),
                    ));
                }
                break;
            }
            match ctx.at(
                seq.next_element_seed(self.element),
                Segment::Index(out.len()),
            )? {
                Some(x) => out.push(x),
                None => break,
            }
        }
        Ok(Some(out))
    }
}

/// One metric value: a number, or one of the strings JSON needs for the
/// values it cannot write.
#[derive(Clone, Copy)]
struct ValueSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

use loupe_model::nonfinite::EXPECTED as EXPECTED_VALUE;

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = f64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED_VALUE)
    }

    fn visit_f64<E>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        // Exactly the model's spellings, so a value is never a guess;
        // "nan" or "inf" are refused. (So is null: a point has a value.)
        loupe_model::nonfinite::parse_name(v).ok_or_else(|| {
            self.ctx.fail(
                DecodeErrorKind::Invalid,
                format_args!("expected {EXPECTED_VALUE}, found {}", quote(v)),
            )
        })
    }
}

/// One step: an integer, `i64::MIN` excluded (it means "no step").
#[derive(Clone, Copy)]
struct StepSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl<'de> DeserializeSeed<'de> for StepSeed<'_, '_> {
    type Value = i64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl StepSeed<'_, '_> {
    fn reserved<E: de::Error>(self) -> E {
        self.ctx.fail(
            DecodeErrorKind::Invalid,
            format_args!("step {} is reserved (it means \"no step\")", i64::MIN),
        )
    }
}

impl<'de> Visitor<'de> for StepSeed<'_, '_> {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer step")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        if v == loupe_model::NO_STEP {
            return Err(self.reserved());
        }
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| {
            self.ctx.fail(
                DecodeErrorKind::Invalid,
                format_args!("step {v} is over the largest step, {}", i64::MAX),
            )
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // Python writes `float` steps as `3.0`; take them when they are whole.
        // 2^63 is the first float past i64::MAX; -2^63 is i64::MIN itself.
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        if v.fract() != 0.0 || !(-TWO_63..TWO_63).contains(&v) {
            return Err(self.ctx.fail(
                DecodeErrorKind::Invalid,
                format_args!("expected an integer step, found {v}"),
            ));
        }
        self.visit_i64(v as i64)
    }
}

/// One time: Unix seconds, converted to nanoseconds.
#[derive(Clone, Copy)]
struct TimeSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl<'de> DeserializeSeed<'de> for TimeSeed<'_, '_> {
    type Value = i64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeSeed<'_, '_> {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unix seconds as a number")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        json::seconds_to_ns(v).map_err(|m| self.ctx.fail(DecodeErrorKind::Invalid, m))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        self.visit_f64(v as f64)
    }
}

/// A series' labels: an object of strings (numbers and booleans taken as
/// their JSON text); `null` is no labels.
struct LabelsSeed<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl<'de> DeserializeSeed<'de> for LabelsSeed<'_, '_> {
    type Value = Vec<(String, String)>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LabelsSeed<'_, '_> {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of label names to values")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        ctx.enter(DEPTH_FIELD)?;
        let mut labels = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if labels.len() == MAX_EXTERNAL_LABELS {
                return Err(ctx.fail(
                    DecodeErrorKind::LimitExceeded,
                    format_args!(
                        "more than {MAX_EXTERNAL_LABELS} labels, over the limit of {MAX_EXTERNAL_LABELS} (the server adds `project`)"
                    ),
                ));
            }
            let checked = check_label_name(ctx, &name);
            let checked = checked.and_then(|()| {
                map.next_value_seed(json::ScalarText {
                    ctx,
                    max_bytes: MAX_LABEL_BYTES,
                    what: "a label value",
                })
            });
            let value = ctx.at_with(checked, || Segment::Key(name.clone()))?;
            labels.push((name, value));
        }
        Ok(labels)
    }
}

fn check_label_name<E: de::Error>(ctx: &Ctx<'_>, name: &str) -> Result<(), E> {
    if RESERVED_LABELS.contains(&name) {
        return Err(ctx.fail(
            DecodeErrorKind::Invalid,
            format_args!("label {name:?} is set by the server and may not be sent"),
        ));
    }
    if name.len() > MAX_LABEL_BYTES {
        return Err(ctx.fail(
            DecodeErrorKind::LimitExceeded,
            format_args!(
                "the label name is {} bytes, over the limit of {MAX_LABEL_BYTES}",
                name.len()
            ),
        ));
    }
    Ok(())
}
