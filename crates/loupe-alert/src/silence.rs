//! Silences: a label matcher and a time window. A silenced alert keeps its
//! record and state; only its notifications are held back.

use std::collections::BTreeMap;

use crate::error::RulesError;
use crate::glob;

pub use loupe_model::alerting::Silence;

/// What alerting asks of a silence (the shape is `loupe-model`'s).
pub trait SilenceRules {
    /// Every problem at once.
    fn validate(&self) -> Result<(), RulesError>;
    fn active(&self, now: f64) -> bool;
    /// Every matcher matches its label (`*` wildcards).
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool;
}

impl SilenceRules for Silence {
    fn validate(&self) -> Result<(), RulesError> {
        let mut errs = Vec::new();
        if self.matchers.is_empty() {
            errs.push("field `matchers`: needs at least one label (a silence of everything is too easy to leave on)".to_string());
        }
        if !(self.starts.is_finite() && self.ends.is_finite()) || self.ends <= self.starts {
            errs.push("fields `starts`/`ends`: `ends` must come after `starts`".to_string());
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(RulesError { errors: errs })
        }
    }

    fn active(&self, now: f64) -> bool {
        self.starts <= now && now < self.ends
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers
            .iter()
            .all(|(k, pat)| labels.get(k).is_some_and(|v| glob::matches(pat, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_inside_its_window() {
        let s = Silence {
            id: "s1".into(),
            matchers: BTreeMap::from([
                ("run".into(), "r-*".into()),
                ("alertname".into(), "hot".into()),
            ]),
            starts: 100.0,
            ends: 200.0,
            comment: String::new(),
            created_by: None,
        };
        s.validate().unwrap();
        let l = BTreeMap::from([
            ("run".into(), "r-1".into()),
            ("alertname".into(), "hot".into()),
        ]);
        assert!(s.matches(&l) && s.active(150.0));
        assert!(!s.active(200.0) && !s.active(99.0));
        let other = BTreeMap::from([
            ("run".into(), "x".into()),
            ("alertname".into(), "hot".into()),
        ]);
        assert!(!s.matches(&other));
        let bad = Silence {
            ends: 50.0,
            matchers: BTreeMap::new(),
            ..s
        };
        assert_eq!(bad.validate().unwrap_err().errors.len(), 2);
    }
}
