//! Selecting series by name and labels, as `loupe` reads, deletes and retains them.

use serde::{Deserialize, Serialize};

use crate::SeriesKey;

/// One condition on a series key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LabelMatch {
    /// The series name equals `value`.
    NameEq { value: String },
    /// The series name starts with `prefix` (`train/`, `gpu/`).
    NamePrefix { prefix: String },
    /// The label is present and equals `value`.
    Eq { label: String, value: String },
    /// The label is absent or differs from `value`.
    NotEq { label: String, value: String },
    /// The label is present with any value.
    Exists { label: String },
    /// The label's value starts with `prefix`.
    Prefix { label: String, prefix: String },
}

impl LabelMatch {
    pub fn matches(&self, key: &SeriesKey) -> bool {
        match self {
            LabelMatch::NameEq { value } => key.name() == value,
            LabelMatch::NamePrefix { prefix } => key.name().starts_with(prefix.as_str()),
            LabelMatch::Eq { label, value } => key.label(label) == Some(value.as_str()),
            LabelMatch::NotEq { label, value } => key.label(label) != Some(value.as_str()),
            LabelMatch::Exists { label } => key.label(label).is_some(),
            LabelMatch::Prefix { label, prefix } => key
                .label(label)
                .is_some_and(|v| v.starts_with(prefix.as_str())),
        }
    }
}

/// A conjunction of conditions; the empty matcher selects every series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesMatcher {
    pub all: Vec<LabelMatch>,
}

impl SeriesMatcher {
    /// Selects every series.
    pub fn any() -> Self {
        Self::default()
    }

    /// Adds `label == value`.
    pub fn label_eq(mut self, label: impl Into<String>, value: impl Into<String>) -> Self {
        self.all.push(LabelMatch::Eq {
            label: label.into(),
            value: value.into(),
        });
        self
    }

    /// Adds `name == value`.
    pub fn name_eq(mut self, value: impl Into<String>) -> Self {
        self.all.push(LabelMatch::NameEq {
            value: value.into(),
        });
        self
    }

    /// Adds `name starts with prefix`.
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.all.push(LabelMatch::NamePrefix {
            prefix: prefix.into(),
        });
        self
    }

    pub fn with(mut self, m: LabelMatch) -> Self {
        self.all.push(m);
        self
    }

    pub fn matches(&self, key: &SeriesKey) -> bool {
        self.all.iter().all(|m| m.matches(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conjunction_of_conditions() {
        let k = SeriesKey::new("train/loss", [("run", "r1"), ("rank", "0")]).unwrap();
        assert!(SeriesMatcher::any().matches(&k));
        assert!(SeriesMatcher::any().label_eq("run", "r1").matches(&k));
        assert!(!SeriesMatcher::any().label_eq("run", "r2").matches(&k));
        assert!(SeriesMatcher::any().name_prefix("train/").matches(&k));
        assert!(
            !SeriesMatcher::any()
                .name_prefix("train/")
                .name_eq("train/acc")
                .matches(&k)
        );
        let ne = LabelMatch::NotEq {
            label: "host".into(),
            value: "a".into(),
        };
        assert!(ne.matches(&k));
        assert!(
            !LabelMatch::Exists {
                label: "host".into()
            }
            .matches(&k)
        );
        assert!(
            LabelMatch::Prefix {
                label: "run".into(),
                prefix: "r".into()
            }
            .matches(&k)
        );
    }
}
