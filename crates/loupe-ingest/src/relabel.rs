//! Prometheus' relabelling (`relabel_configs`, `metric_relabel_configs`):
//! rules applied in order to a label set, which may rewrite it or drop it.
//!
//! Semantics are Prometheus' own: the source labels' values joined by
//! `separator` are matched against `regex`, **fully anchored**
//! (`^(?:regex)$`); a missing label reads as the empty string;
//! `replacement` expands `$1`, `${1}` and `${name}` (the longest name after
//! a bare `$`, as Go does: `$1x` is the group named `1x`). Actions:
//! `replace` (an empty result deletes the target label), `keep`, `drop`,
//! `labelmap`, `labeldrop`, `labelkeep`, `lowercase`, `uppercase`,
//! `keepequal`, `dropequal`. `hashmod` (MD5-based) is refused with a clear
//! error rather than computed differently.

use std::collections::BTreeMap;

use regex::Regex;

/// A label set being relabelled: name → value (the metric name, when
/// there is one, under `__name__`).
pub type LabelSet = BTreeMap<String, String>;

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelabelAction {
    Replace,
    Keep,
    Drop,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
    KeepEqual,
    DropEqual,
}

impl RelabelAction {
    /// Prometheus' spelling (case-insensitive, as Prometheus reads it).
    pub fn parse(s: &str) -> Result<RelabelAction, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => RelabelAction::Replace,
            "keep" => RelabelAction::Keep,
            "drop" => RelabelAction::Drop,
            "labelmap" => RelabelAction::LabelMap,
            "labeldrop" => RelabelAction::LabelDrop,
            "labelkeep" => RelabelAction::LabelKeep,
            "lowercase" => RelabelAction::Lowercase,
            "uppercase" => RelabelAction::Uppercase,
            "keepequal" => RelabelAction::KeepEqual,
            "dropequal" => RelabelAction::DropEqual,
            "hashmod" => {
                return Err("action \"hashmod\" is not supported by Loupe's scraper".into());
            }
            other => return Err(format!("unknown relabel action {other:?}")),
        })
    }

    fn needs_target(self) -> bool {
        matches!(
            self,
            RelabelAction::Replace
                | RelabelAction::Lowercase
                | RelabelAction::Uppercase
                | RelabelAction::KeepEqual
                | RelabelAction::DropEqual
        )
    }
}

/// One rule, validated.
#[derive(Debug, Clone)]
pub struct RelabelRule {
    pub source_labels: Vec<String>,
    pub separator: String,
    /// Anchored: `^(?:…)$`.
    pub regex: Regex,
    pub target_label: String,
    pub replacement: String,
    pub action: RelabelAction,
}

/// A rule as written, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct RelabelSpec {
    pub source_labels: Vec<String>,
    pub separator: Option<String>,
    pub regex: Option<String>,
    pub target_label: Option<String>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

impl RelabelRule {
    /// Checks a written rule: the action, the regex (compiled anchored),
    /// and that the actions that write a label name one.
    pub fn new(spec: RelabelSpec) -> Result<RelabelRule, String> {
        let action = RelabelAction::parse(spec.action.as_deref().unwrap_or("replace"))?;
        let pattern = spec.regex.unwrap_or_else(|| "(.*)".to_string());
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("regex {pattern:?}: {e}"))?;
        let target_label = spec.target_label.unwrap_or_default();
        if action.needs_target() && target_label.is_empty() {
            return Err(format!("action {action:?} needs a target_label"));
        }
        Ok(RelabelRule {
            source_labels: spec.source_labels,
            separator: spec.separator.unwrap_or_else(|| ";".to_string()),
            regex,
            target_label,
            replacement: spec.replacement.unwrap_or_else(|| "$1".to_string()),
            action,
        })
    }
}

/// Applies `rules` in order; `false` when a rule dropped the set (it is
/// then left half-rewritten and must not be used).
pub fn relabel(labels: &mut LabelSet, rules: &[RelabelRule]) -> bool {
    rules.iter().all(|r| apply(labels, r))
}

fn apply(labels: &mut LabelSet, r: &RelabelRule) -> bool {
    let value = || {
        r.source_labels
            .iter()
            .map(|l| labels.get(l).map(String::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&r.separator)
    };
    match r.action {
        RelabelAction::Keep => return r.regex.is_match(&value()),
        RelabelAction::Drop => return !r.regex.is_match(&value()),
        RelabelAction::KeepEqual => {
            return labels
                .get(&r.target_label)
                .map(String::as_str)
                .unwrap_or("")
                == value();
        }
        RelabelAction::DropEqual => {
            return labels
                .get(&r.target_label)
                .map(String::as_str)
                .unwrap_or("")
                != value();
        }
        RelabelAction::Replace => {
            let v = value();
            let Some(caps) = r.regex.captures(&v) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&r.target_label, &mut target);
            if !crate::exposition::is_label_name(&target) {
                return true;
            }
            let mut out = String::new();
            caps.expand(&r.replacement, &mut out);
            if out.is_empty() {
                labels.remove(&target);
            } else {
                labels.insert(target, out);
            }
        }
        RelabelAction::Lowercase => {
            let v = value().to_lowercase();
            labels.insert(r.target_label.clone(), v);
        }
        RelabelAction::Uppercase => {
            let v = value().to_uppercase();
            labels.insert(r.target_label.clone(), v);
        }
        RelabelAction::LabelMap => {
            let mapped: Vec<(String, String)> = labels
                .iter()
                .filter(|(k, _)| r.regex.is_match(k))
                .map(|(k, v)| {
                    (
                        r.regex.replace_all(k, r.replacement.as_str()).into_owned(),
                        v.clone(),
                    )
                })
                .collect();
            labels.extend(mapped);
        }
        RelabelAction::LabelDrop => labels.retain(|k, _| !r.regex.is_match(k)),
        RelabelAction::LabelKeep => labels.retain(|k, _| r.regex.is_match(k)),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        action: &str,
        src: &[&str],
        regex: &str,
        target: &str,
        repl: Option<&str>,
    ) -> RelabelRule {
        RelabelRule::new(RelabelSpec {
            source_labels: src.iter().map(|s| s.to_string()).collect(),
            regex: Some(regex.to_string()),
            target_label: (!target.is_empty()).then(|| target.to_string()),
            replacement: repl.map(str::to_string),
            action: Some(action.to_string()),
            ..Default::default()
        })
        .unwrap()
    }

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn regex_is_fully_anchored() {
        let keep = rule("keep", &["__name__"], "up", "", None);
        assert!(relabel(
            &mut set(&[("__name__", "up")]),
            std::slice::from_ref(&keep)
        ));
        // Prometheus would not keep `upstream` with regex `up`.
        assert!(!relabel(&mut set(&[("__name__", "upstream")]), &[keep]));
    }

    #[test]
    fn keep_and_drop_join_sources_with_the_separator() {
        let drop = rule("drop", &["a", "b"], "x;y", "", None);
        assert!(!relabel(
            &mut set(&[("a", "x"), ("b", "y")]),
            std::slice::from_ref(&drop)
        ));
        assert!(relabel(&mut set(&[("a", "x")]), &[drop]));
    }

    #[test]
    fn replace_expands_groups_and_an_empty_result_deletes() {
        let r = rule(
            "replace",
            &["__address__"],
            "([^:]+):(\\d+)",
            "host",
            Some("${1}"),
        );
        let mut l = set(&[("__address__", "node1:9100")]);
        assert!(relabel(&mut l, &[r]));
        assert_eq!(l["host"], "node1");
        let del = rule("replace", &["missing"], "(.*)", "host", None);
        assert!(relabel(&mut l, &[del]));
        assert!(!l.contains_key("host"));
        // No match: nothing changes.
        let nomatch = rule("replace", &["__address__"], "zzz", "other", Some("v"));
        assert!(relabel(&mut l, &[nomatch]));
        assert!(!l.contains_key("other"));
        // `$1x` is the group named `1x` (empty), as in Go.
        let go = rule("replace", &["__address__"], "(.*)", "t", Some("$1x"));
        let mut l = set(&[("__address__", "a")]);
        relabel(&mut l, &[go]);
        assert!(!l.contains_key("t"));
    }

    #[test]
    fn labelmap_labeldrop_labelkeep() {
        let mut l = set(&[("__meta_role", "db"), ("keep_me", "1"), ("tmp_x", "2")]);
        let map = rule("labelmap", &[], "__meta_(.+)", "", None);
        let drop = rule("labeldrop", &[], "tmp_.*", "", None);
        assert!(relabel(&mut l, &[map, drop]));
        assert_eq!(
            l,
            set(&[("__meta_role", "db"), ("keep_me", "1"), ("role", "db")])
        );
        let keep = rule("labelkeep", &[], "role|keep_me", "", None);
        assert!(relabel(&mut l, &[keep]));
        assert_eq!(l, set(&[("keep_me", "1"), ("role", "db")]));
    }

    #[test]
    fn bad_rules_are_refused() {
        let e = RelabelRule::new(RelabelSpec {
            action: Some("hashmod".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("hashmod"), "{e}");
        let e = RelabelRule::new(RelabelSpec {
            regex: Some("(".into()),
            target_label: Some("x".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("regex"), "{e}");
        let e = RelabelRule::new(RelabelSpec::default()).unwrap_err();
        assert!(e.contains("target_label"), "{e}");
    }
}
