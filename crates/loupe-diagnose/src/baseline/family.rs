//! Config families: which runs are alike enough to compare curves, and how
//! two configs differ.
//!
//! A config is flattened to dotted paths (`optimizer.betas`,
//! `model.hidden_size`); values compare as their JSON text. A path *shapes
//! the curve* when one of its segments is a family key and none is an
//! ignored key (see [`super::BaselineConfig`]). Two runs are of one family
//! when they have the same shaping paths with the same values. A run whose
//! config names no shaping key has no family and is compared with nothing:
//! nothing says which runs it resembles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Nesting followed when flattening a config; deeper objects compare whole.
const MAX_DEPTH: usize = 8;
/// Longest value text kept in a config change.
const MAX_VALUE_CHARS: usize = 120;

/// The shaping paths of a config and their values, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FamilySignature(pub Vec<(String, String)>);

/// One key on which a run's config differs from another's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    pub key: String,
    /// The value in this run's config (`None`: absent).
    pub this: Option<String>,
    /// The value in the other run's config.
    pub other: Option<String>,
}

impl ConfigChange {
    /// Its two values as people read them: `0.003 (was 0.0003)`.
    pub fn values(&self) -> String {
        format!(
            "{} (was {})",
            self.this.as_deref().unwrap_or("unset"),
            self.other.as_deref().unwrap_or("unset")
        )
    }
}

/// `lr: 0.003 (was 0.0003)`.
impl std::fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.values())
    }
}

/// The family of a config, or `None` when it names no shaping key.
pub fn family_of(
    config: &serde_json::Value,
    family_keys: &[String],
    ignore_keys: &[String],
) -> Option<FamilySignature> {
    let sig: Vec<(String, String)> = flatten(config)
        .into_iter()
        .filter(|(path, _)| has_segment(path, family_keys) && !has_segment(path, ignore_keys))
        .collect();
    (!sig.is_empty()).then_some(FamilySignature(sig))
}

/// The keys on which `this` differs from `other`, ignored keys left out,
/// at most `limit`, in path order.
pub fn config_changes(
    this: &serde_json::Value,
    other: &serde_json::Value,
    ignore_keys: &[String],
    limit: usize,
) -> Vec<ConfigChange> {
    let a = flatten(this);
    let b = flatten(other);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !has_segment(k, ignore_keys))
        .filter(|k| a.get(*k) != b.get(*k))
        .take(limit)
        .map(|k| ConfigChange {
            key: k.clone(),
            this: a.get(k).map(|v| clip(v)),
            other: b.get(k).map(|v| clip(v)),
        })
        .collect()
}

fn has_segment(path: &str, keys: &[String]) -> bool {
    path.split('.')
        .any(|seg| keys.iter().any(|k| k.eq_ignore_ascii_case(seg)))
}

fn flatten(v: &serde_json::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(obj) = v.as_object() {
        for (k, v) in obj {
            walk(k.clone(), v, 1, &mut out);
        }
    }
    out
}

fn walk(path: String, v: &serde_json::Value, depth: usize, out: &mut BTreeMap<String, String>) {
    match v.as_object() {
        Some(obj) if depth < MAX_DEPTH && !obj.is_empty() => {
            for (k, child) in obj {
                walk(format!("{path}.{k}"), child, depth + 1, out);
            }
        }
        _ => {
            out.insert(path, v.to_string());
        }
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::baseline::BaselineConfig;

    fn fam(v: serde_json::Value) -> Option<FamilySignature> {
        let c = BaselineConfig::default();
        family_of(&v, &c.family_keys, &c.ignore_keys)
    }

    #[test]
    fn seeds_names_and_learning_rates_do_not_split_a_family() {
        let a =
            json!({"model": "llama-7b", "batch_size": 32, "seed": 1, "run_name": "a", "lr": 3e-4});
        let b =
            json!({"model": "llama-7b", "batch_size": 32, "seed": 2, "run_name": "b", "lr": 1e-3});
        assert!(fam(a.clone()).is_some());
        assert_eq!(fam(a), fam(b));
    }

    #[test]
    fn a_shaping_key_nested_or_not_splits_a_family() {
        let a = json!({"model": {"name": "llama", "hidden_size": 4096}, "optimizer": {"name": "adamw"}});
        let b = json!({"model": {"name": "llama", "hidden_size": 2048}, "optimizer": {"name": "adamw"}});
        let c =
            json!({"model": {"name": "llama", "hidden_size": 4096}, "optimizer": {"name": "sgd"}});
        assert_ne!(fam(a.clone()), fam(b));
        assert_ne!(fam(a), fam(c));
        assert_ne!(
            fam(json!({"Batch_Size": 8})),
            fam(json!({"batch_size": 16})),
            "keys match case-insensitively"
        );
    }

    #[test]
    fn a_config_without_shaping_keys_has_no_family() {
        assert_eq!(fam(json!({"seed": 3, "lr": 0.1})), None);
        assert_eq!(fam(json!(null)), None);
        assert_eq!(fam(json!([1, 2])), None);
    }

    #[test]
    fn changes_name_the_differing_keys_but_not_the_ignored_ones() {
        let this = json!({"model": "m", "lr": 1e-3, "warmup": 100, "seed": 7, "extra": true});
        let other = json!({"model": "m", "lr": 3e-4, "warmup": 100, "seed": 1});
        let ch = config_changes(&this, &other, &BaselineConfig::default().ignore_keys, 10);
        assert_eq!(
            ch,
            vec![
                ConfigChange {
                    key: "extra".into(),
                    this: Some("true".into()),
                    other: None
                },
                ConfigChange {
                    key: "lr".into(),
                    this: Some("0.001".into()),
                    other: Some("0.0003".into())
                },
            ]
        );
        assert_eq!(config_changes(&this, &other, &[], 1).len(), 1);
    }
}
