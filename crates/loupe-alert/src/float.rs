//! JSON for values that may be NaN or ±∞ (a NaN loss is the alert): written
//! as the strings "NaN", "Infinity", "-Infinity", as the rest of the API
//! does, and read back from those, numbers, or null.

use serde::de::{Deserializer, Error as _};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Num(f64),
    Text(String),
    Null(()),
}

fn to_repr(v: f64) -> Repr {
    if v.is_nan() {
        Repr::Text("NaN".into())
    } else if v == f64::INFINITY {
        Repr::Text("Infinity".into())
    } else if v == f64::NEG_INFINITY {
        Repr::Text("-Infinity".into())
    } else {
        Repr::Num(v)
    }
}

fn from_repr<E: serde::de::Error>(r: Repr) -> Result<Option<f64>, E> {
    match r {
        Repr::Num(v) => Ok(Some(v)),
        Repr::Null(()) => Ok(None),
        Repr::Text(t) => match t.as_str() {
            "NaN" => Ok(Some(f64::NAN)),
            "Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            _ => Err(E::custom(format!("{t:?} is not a number"))),
        },
    }
}

/// For `Option<f64>` fields.
pub mod opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => to_repr(*v).serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<Repr>::deserialize(d)? {
            None => Ok(None),
            Some(r) => from_repr(r),
        }
    }
}

/// For `Vec<f64>` fields (null reads back as NaN).
pub mod vec {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for x in v {
            seq.serialize_element(&to_repr(*x))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let raw = Vec::<Repr>::deserialize(d)?;
        raw.into_iter()
            .map(|r| from_repr::<D::Error>(r).map(|v| v.unwrap_or(f64::NAN)))
            .collect::<Result<_, _>>()
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, Debug)]
    struct T {
        #[serde(with = "super::opt", default)]
        a: Option<f64>,
        #[serde(with = "super::vec")]
        b: Vec<f64>,
    }

    #[test]
    fn non_finite_round_trips() {
        let t = T {
            a: Some(f64::NAN),
            b: vec![1.5, f64::INFINITY, f64::NEG_INFINITY, f64::NAN],
        };
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, r#"{"a":"NaN","b":[1.5,"Infinity","-Infinity","NaN"]}"#);
        let back: T = serde_json::from_str(&s).unwrap();
        assert!(back.a.unwrap().is_nan());
        assert_eq!(back.b[1], f64::INFINITY);
        assert!(back.b[3].is_nan());
        let n: T = serde_json::from_str(r#"{"a":null,"b":[null,2]}"#).unwrap();
        assert!(n.a.is_none() && n.b[0].is_nan());
        assert!(serde_json::from_str::<T>(r#"{"b":["x"]}"#).is_err());
    }
}
