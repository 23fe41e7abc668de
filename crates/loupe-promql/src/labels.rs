//! A series' label set: sorted by name, shared cheaply between the samples
//! of every step.

use std::sync::Arc;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// Labels sorted by name, without empty values (Prometheus treats an empty
/// value as an absent label).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<Vec<(String, String)>>);

impl Labels {
    /// From pairs in any order; empty values are dropped, a repeated name keeps its last value.
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.reverse();
        pairs.dedup_by(|a, b| a.0 == b.0);
        pairs.reverse();
        Labels(Arc::new(pairs))
    }

    pub fn empty() -> Self {
        Labels::default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same labels without the metric name.
    pub fn without_name(&self) -> Labels {
        if self.get(METRIC_NAME).is_none() {
            return self.clone();
        }
        self.filtered(|n| n != METRIC_NAME)
    }

    /// Only the labels `keep` says yes to.
    pub fn filtered(&self, keep: impl Fn(&str) -> bool) -> Labels {
        Labels(Arc::new(
            self.0.iter().filter(|(n, _)| keep(n)).cloned().collect(),
        ))
    }

    /// The labels with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut pairs: Vec<(String, String)> =
            self.0.iter().filter(|(n, _)| n != name).cloned().collect();
        if !value.is_empty() {
            pairs.push((name.to_string(), value.to_string()));
        }
        Labels::new(pairs)
    }

    /// A key over the labels `include` says yes to, for grouping and matching.
    pub fn signature(&self, include: impl Fn(&str) -> bool) -> Vec<u8> {
        let mut sig = Vec::new();
        for (n, v) in self.0.iter().filter(|(n, _)| include(n)) {
            sig.extend_from_slice(n.as_bytes());
            sig.push(0xff);
            sig.extend_from_slice(v.as_bytes());
            sig.push(0xff);
        }
        sig
    }
}

impl std::fmt::Display for Labels {
    /// `{a="1", b="2"}`, as Prometheus prints a label set in its errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (n, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}
