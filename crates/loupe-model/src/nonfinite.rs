//! The one JSON encoding of NaN and ±∞ every Loupe crate uses.
//!
//! JSON has no literal for them, so the API writes the strings `"NaN"`,
//! `"Infinity"` and `"-Infinity"` (what JavaScript's `Number()` and Python's
//! `float()` read back). Readers also accept `"+Infinity"`. Any other string
//! is an error, never a silent NaN: `"nan"` is a typo, not a value.
//!
//! `null` is decided once, here: it means "no value". An `Option<f64>` reads
//! it as `None`; where a value must be present (a plain `f64`, an element of
//! a column) it reads as NaN, the value that stands for "not a number we
//! have" — older writers and SQLite's NULL meant exactly that. Writers never
//! produce `null` for a number. The ingest decoders refuse `null` in a value
//! column: a point with no value is not a point, and the client is told.
//!
//! Use the module itself with `#[serde(with = "loupe_model::nonfinite")]` on
//! an `f64`, [`opt`] on an `Option<f64>`, [`vec`] on a `Vec<f64>`; the
//! functions below serve hand-written encoders and decoders (the ingest
//! scanner, the agent's batch writer).

use std::fmt::Write as _;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The text of NaN.
pub const NAN: &str = "NaN";
/// The text of +∞.
pub const INFINITY: &str = "Infinity";
/// The text of -∞.
pub const NEG_INFINITY: &str = "-Infinity";
/// What a reader expects, for error messages.
pub const EXPECTED: &str = r#"a number or "NaN", "Infinity", "-Infinity""#;

/// The string for a non-finite value; `None` for a finite one.
pub fn name(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some(NAN)
    } else if v == f64::INFINITY {
        Some(INFINITY)
    } else if v == f64::NEG_INFINITY {
        Some(NEG_INFINITY)
    } else {
        None
    }
}

/// The value a string stands for; `None` when it is none of the names.
pub fn parse_name(s: &str) -> Option<f64> {
    match s {
        NAN => Some(f64::NAN),
        INFINITY | "+Infinity" => Some(f64::INFINITY),
        NEG_INFINITY => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A value as a JSON value: a number, or the string of a non-finite one.
pub fn to_json(v: f64) -> serde_json::Value {
    match name(v) {
        Some(n) => n.into(),
        // Finite: `from_f64` cannot fail, so null is unreachable.
        None => serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into),
    }
}

/// A JSON value read as a number: numbers, the names, and `null` (NaN, see
/// the module docs); `None` for anything else.
pub fn from_json(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => parse_name(s),
        serde_json::Value::Null => Some(f64::NAN),
        _ => None,
    }
}

/// Appends `v` as JSON text: the shortest decimal that reads back to the
/// same value (Rust's `{}` of an f64 never writes an exponent JSON refuses),
/// or the quoted name of a non-finite value.
pub fn write_json(out: &mut String, v: f64) {
    match name(v) {
        Some(n) => {
            out.push('"');
            out.push_str(n);
            out.push('"');
        }
        None => {
            let _ = write!(out, "{v}");
        }
    }
}

/// What a serialised value may look like.
#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Num(f64),
    Text(String),
    Null(()),
}

fn from_repr<E: serde::de::Error>(r: Repr) -> Result<f64, E> {
    match r {
        Repr::Num(v) => Ok(v),
        Repr::Null(()) => Ok(f64::NAN),
        Repr::Text(t) => {
            parse_name(&t).ok_or_else(|| E::custom(format!("expected {EXPECTED}, found {t:?}")))
        }
    }
}

/// A value that writes through [`serialize`]; for sequences.
struct Encoded(f64);

impl Serialize for Encoded {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, s)
    }
}

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    match name(*v) {
        Some(n) => s.serialize_str(n),
        None => s.serialize_f64(*v),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    from_repr(Repr::deserialize(d)?)
}

/// For `Option<f64>` fields: `None` ⇄ `null`.
pub mod opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<Repr>::deserialize(d)? {
            None | Some(Repr::Null(())) => Ok(None),
            Some(r) => from_repr(r).map(Some),
        }
    }
}

/// For `Vec<f64>` fields (a `null` element reads as NaN).
pub mod vec {
    use serde::ser::SerializeSeq;

    use super::*;

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for x in v {
            seq.serialize_element(&Encoded(*x))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Repr>::deserialize(d)?
            .into_iter()
            .map(from_repr)
            .collect()
    }
}

/// The OpenAPI schema of a value written by this module: a JSON number, or
/// one of the strings [`NAN`], [`INFINITY`], [`NEG_INFINITY`]. Use it as
/// `#[schema(value_type = loupe_model::nonfinite::Float)]` (or
/// `Option<Float>`, `Vec<Float>`) on fields encoded here.
#[cfg(feature = "schema")]
pub struct Float;

#[cfg(feature = "schema")]
impl utoipa::PartialSchema for Float {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([NAN, INFINITY, NEG_INFINITY])),
            )
            .description(Some(
                "A number; NaN and ±∞ (which JSON cannot write) as the strings \"NaN\", \"Infinity\", \"-Infinity\".",
            ))
            .into()
    }
}

#[cfg(feature = "schema")]
impl utoipa::ToSchema for Float {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug)]
    struct T {
        #[serde(with = "super")]
        x: f64,
        #[serde(with = "super::opt", default)]
        a: Option<f64>,
        #[serde(with = "super::vec")]
        b: Vec<f64>,
    }

    #[test]
    fn non_finite_values_round_trip_as_strings() {
        let t = T {
            x: f64::NEG_INFINITY,
            a: Some(f64::NAN),
            b: vec![1.5, f64::INFINITY, f64::NEG_INFINITY, f64::NAN],
        };
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(
            s,
            r#"{"x":"-Infinity","a":"NaN","b":[1.5,"Infinity","-Infinity","NaN"]}"#
        );
        let back: T = serde_json::from_str(&s).unwrap();
        assert_eq!(back.x, f64::NEG_INFINITY);
        assert!(back.a.unwrap().is_nan());
        assert_eq!(back.b[1], f64::INFINITY);
        assert!(back.b[3].is_nan());
    }

    #[test]
    fn null_is_none_for_options_and_nan_for_values() {
        let n: T = serde_json::from_str(r#"{"x":null,"a":null,"b":[null,2]}"#).unwrap();
        assert!(n.x.is_nan() && n.a.is_none() && n.b[0].is_nan());
        assert_eq!(n.b[1], 2.0);
        let missing: T = serde_json::from_str(r#"{"x":1,"b":[]}"#).unwrap();
        assert!(missing.a.is_none());
    }

    #[test]
    fn plus_infinity_is_read_and_unknown_strings_are_refused() {
        let t: T = serde_json::from_str(r#"{"x":"+Infinity","b":["+Infinity"]}"#).unwrap();
        assert_eq!((t.x, t.b[0]), (f64::INFINITY, f64::INFINITY));
        for bad in [r#""nan""#, r#""inf""#, r#""x""#, "true"] {
            let j = format!(r#"{{"x":{bad},"b":[]}}"#);
            assert!(serde_json::from_str::<T>(&j).is_err(), "{j}");
            let j = format!(r#"{{"x":1,"b":[{bad}]}}"#);
            assert!(serde_json::from_str::<T>(&j).is_err(), "{j}");
        }
        let e = serde_json::from_str::<T>(r#"{"x":"nan","b":[]}"#).unwrap_err();
        assert!(e.to_string().contains(EXPECTED), "{e}");
    }

    #[test]
    fn hand_written_helpers_agree_with_serde() {
        for v in [
            0.1,
            -2.0,
            1e300,
            5e-324,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let mut text = String::new();
            write_json(&mut text, v);
            let serde_text = serde_json::to_string(&Encoded(v)).unwrap();
            // `-2` and `-2.0` are the same number: compare what reads back.
            let same = |x: f64| x.to_bits() == v.to_bits() || (x.is_nan() && v.is_nan());
            for t in [&text, &serde_text, &to_json(v).to_string()] {
                let j: serde_json::Value = serde_json::from_str(t).unwrap();
                assert!(same(from_json(&j).unwrap()), "{v}: {t}");
            }
            assert_eq!(text.starts_with('"'), !v.is_finite(), "{text}");
        }
        assert_eq!(parse_name("+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_name("Inf"), None);
        assert!(from_json(&serde_json::Value::Null).unwrap().is_nan());
        assert_eq!(from_json(&serde_json::json!("x")), None);
        assert_eq!(from_json(&serde_json::json!([1])), None);
    }
}
