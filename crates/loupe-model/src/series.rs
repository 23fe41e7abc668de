//! Series identity: a metric name plus a sorted set of labels.
//!
//! Training scalars carry the run they belong to as a label (`run=…`); host and
//! scraped metrics carry `host=…`, `gpu=…` and so on. The key is the whole
//! identity of a series: two keys with the same name and labels are the same
//! series, whatever order the labels were given in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest metric name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest label name or value accepted, in bytes.
pub const MAX_LABEL_BYTES: usize = 1024;
/// Most labels one series may carry.
pub const MAX_LABELS: usize = 32;

/// Why a series key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("series name is empty")]
    EmptyName,
    #[error("series name is {len} bytes, over the limit of {MAX_NAME_BYTES}")]
    NameTooLong { len: usize },
    #[error("label name is empty")]
    EmptyLabelName,
    #[error("label {name:?} is {len} bytes, over the limit of {MAX_LABEL_BYTES}")]
    LabelTooLong { name: String, len: usize },
    #[error("{count} labels, over the limit of {MAX_LABELS}")]
    TooManyLabels { count: usize },
    #[error("label {name:?} is given twice")]
    DuplicateLabel { name: String },
    #[error("series names and labels may not contain NUL bytes")]
    NulByte,
}

/// The identity of one series: `name{label="value",…}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    name: String,
    /// Sorted by label name; names unique.
    labels: Vec<(String, String)>,
}

impl SeriesKey {
    /// Builds and validates a key; labels may come in any order.
    pub fn new<N, I, K, V>(name: N, labels: I) -> Result<Self, KeyError>
    where
        N: Into<String>,
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let name = name.into();
        let mut labels: Vec<(String, String)> = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        labels.sort();
        let key = SeriesKey { name, labels };
        key.validate()?;
        Ok(key)
    }

    /// The key of a run's series: `name{run="RUN"}`.
    pub fn for_run(name: impl Into<String>, run: &str) -> Result<Self, KeyError> {
        Self::new(name, [(crate::label::RUN, run)])
    }

    /// The run a series belongs to, if it is a run's.
    pub fn run(&self) -> Option<&str> {
        self.label(crate::label::RUN)
    }

    /// A key with no labels.
    pub fn named(name: impl Into<String>) -> Result<Self, KeyError> {
        Self::new(name, std::iter::empty::<(String, String)>())
    }

    fn validate(&self) -> Result<(), KeyError> {
        if self.name.is_empty() {
            return Err(KeyError::EmptyName);
        }
        if self.name.len() > MAX_NAME_BYTES {
            return Err(KeyError::NameTooLong {
                len: self.name.len(),
            });
        }
        if self.labels.len() > MAX_LABELS {
            return Err(KeyError::TooManyLabels {
                count: self.labels.len(),
            });
        }
        if self.name.contains('\0') {
            return Err(KeyError::NulByte);
        }
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if k.is_empty() {
                return Err(KeyError::EmptyLabelName);
            }
            if k.contains('\0') || v.contains('\0') {
                return Err(KeyError::NulByte);
            }
            for part in [k, v] {
                if part.len() > MAX_LABEL_BYTES {
                    return Err(KeyError::LabelTooLong {
                        name: k.clone(),
                        len: part.len(),
                    });
                }
            }
            if i > 0 && self.labels[i - 1].0 == *k {
                return Err(KeyError::DuplicateLabel { name: k.clone() });
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The value of one label, if the key carries it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    /// A compact, unambiguous byte form used by the WAL and segment indexes:
    /// `name \0 (label \0 value \0)*`. NUL is refused in names and labels, so
    /// the form decodes back to exactly this key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(self.name.as_bytes());
        out.push(0);
        for (k, v) in &self.labels {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    fn encoded_len(&self) -> usize {
        self.name.len()
            + 1
            + self
                .labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>()
    }

    /// Inverse of [`SeriesKey::to_bytes`]; validates as [`SeriesKey::new`] does.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        let text = std::str::from_utf8(bytes).map_err(|_| KeyDecodeError::NotUtf8)?;
        let mut parts = text.split('\0');
        let name = parts.next().ok_or(KeyDecodeError::Truncated)?;
        let mut rest: Vec<&str> = parts.collect();
        // The form ends with a NUL, so the last split piece is empty.
        if rest.pop() != Some("") {
            return Err(KeyDecodeError::Truncated);
        }
        if !rest.len().is_multiple_of(2) {
            return Err(KeyDecodeError::Truncated);
        }
        let labels = rest.chunks(2).map(|kv| (kv[0], kv[1]));
        let key = SeriesKey::new(name, labels).map_err(KeyDecodeError::Invalid)?;
        Ok(key)
    }
}

/// Why stored key bytes could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyDecodeError {
    #[error("series key is not valid UTF-8")]
    NotUtf8,
    #[error("series key is truncated")]
    Truncated,
    #[error("series key is invalid: {0}")]
    Invalid(KeyError),
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}={v:?}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_order_independent() {
        let a = SeriesKey::new("loss", [("run", "r1"), ("rank", "0")]).unwrap();
        let b = SeriesKey::new("loss", [("rank", "0"), ("run", "r1")]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.label("run"), Some("r1"));
        let r = SeriesKey::for_run("loss", "r1").unwrap();
        assert_eq!((r.run(), r.labels().len()), (Some("r1"), 1));
        assert!(SeriesKey::for_run("", "r1").is_err());
        assert_eq!(SeriesKey::named("x").unwrap().run(), None);
        assert_eq!(a.label("host"), None);
        assert_eq!(a.to_string(), r#"loss{rank="0",run="r1"}"#);
    }

    #[test]
    fn bytes_round_trip() {
        let a = SeriesKey::new("gpu/util", [("gpu", "3"), ("host", "n1")]).unwrap();
        assert_eq!(SeriesKey::from_bytes(&a.to_bytes()).unwrap(), a);
        let b = SeriesKey::named("x").unwrap();
        assert_eq!(SeriesKey::from_bytes(&b.to_bytes()).unwrap(), b);
    }

    #[test]
    fn refuses_bad_keys() {
        assert_eq!(SeriesKey::named(""), Err(KeyError::EmptyName));
        assert!(matches!(
            SeriesKey::named("x".repeat(257)),
            Err(KeyError::NameTooLong { len: 257 })
        ));
        assert!(matches!(
            SeriesKey::new("x", [("a", "1"), ("a", "2")]),
            Err(KeyError::DuplicateLabel { .. })
        ));
        assert_eq!(SeriesKey::named("a\0b"), Err(KeyError::NulByte));
        assert!(SeriesKey::from_bytes(b"abc").is_err());
        assert!(SeriesKey::from_bytes(b"abc\0k\0").is_err());
        assert!(SeriesKey::from_bytes(&[0xff, 0]).is_err());
    }
}
