//! A finding's extra facts, typed: what the cause rules read (an Xid code,
//! the step a rank stalled at, a loss scale…) is a field of its own type,
//! set where the fact is found and read as it is; what only people read
//! (a regex capture, a detector's z-score) stays text in [`extra`].
//!
//! **Wire form: unchanged.** A finding's `attributes` serialize as they
//! always did, a JSON object of string values with the keys in order
//! (`{"code": "79", "origin": "hardware", …}`); the typed fields are keys of
//! that object like any other. Findings are not stored or served (an
//! incident carries its evidence, never its findings' attributes), so the
//! shape is kept for the offline tools and tests that print findings, not
//! for old data — and keeping it costs only this module's two conversions.
//! Reading a map back ([`FindingAttributes::from_map`], what `Deserialize`
//! does) puts each known key in its field; a value that does not read as
//! its type stays text under its key in [`extra`] (and so do config
//! changes, whose text cannot be split back safely), so nothing is lost: a
//! round trip gives the same keys and values, numbers in their shortest
//! form (`"1e4"` comes back `"10000"`).
//!
//! Numbers render with Rust's shortest round-trip form (`32768`, `0.25`);
//! the NaN/±Inf of a log line is a [`NonFiniteValue`], not a float, so the
//! JSON codec for floats (`loupe_model::nonfinite`) is not needed here.
//!
//! [`extra`]: FindingAttributes::extra

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::baseline::ConfigChange;
use crate::logsig::XidOrigin;

/// What a log line said a value became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonFiniteValue {
    /// `nan`.
    NaN,
    /// `inf`.
    Infinity,
    /// A non-finite value the line does not name ("loss is not finite").
    Unnamed,
}

impl NonFiniteValue {
    pub fn as_str(self) -> &'static str {
        match self {
            NonFiniteValue::NaN => "nan",
            NonFiniteValue::Infinity => "inf",
            NonFiniteValue::Unnamed => "non-finite",
        }
    }

    pub fn from_name(s: &str) -> Option<NonFiniteValue> {
        match s {
            "nan" => Some(NonFiniteValue::NaN),
            "inf" => Some(NonFiniteValue::Infinity),
            "non-finite" => Some(NonFiniteValue::Unnamed),
            _ => None,
        }
    }
}

/// Extra facts of a finding; see the module's documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingAttributes {
    /// The rank a log line or a group member belongs to.
    pub rank: Option<u32>,
    /// Stalls: the step the run stopped at, and for how long (seconds).
    pub last_step: Option<i64>,
    pub stalled_s: Option<f64>,
    /// Loss findings: the learning rate then, as a fraction of its peak.
    pub lr_fraction_of_peak: Option<f64>,
    /// A NaN/Inf a log line reported.
    pub value: Option<NonFiniteValue>,
    /// The loss scale a scaler's overflow line reduced to.
    pub loss_scale: Option<f64>,
    /// An Xid: its code, where it comes from and NVIDIA's action (from the
    /// catalogue, when the code is in it).
    pub code: Option<u32>,
    pub origin: Option<XidOrigin>,
    pub action: Option<String>,
    /// A Python exception: its type and innermost frame.
    pub exception_type: Option<String>,
    pub frame: Option<String>,
    /// A run's exit: its code, the signal the code names, and the last
    /// error-looking lines of its output.
    pub exit_code: Option<i32>,
    /// A signal's name (`SIGKILL`), from a line or an exit code.
    pub signal: Option<String>,
    pub last_errors: Option<String>,
    /// The line a failure family matched (clipped).
    pub line: Option<String>,
    /// Baseline deviations: the runs compared with, the closest of them and
    /// its config changes, as people read them.
    pub baseline_runs: Vec<String>,
    pub closest_run: Option<String>,
    /// Rendered `key: this (was other)`, `; `-separated; read back from
    /// text it stays text (in `extra`): findings are not stored, and a
    /// config value may hold any of those separators.
    pub config_changes: Vec<ConfigChange>,
    /// Everything else, for people: captures of log signatures, detectors'
    /// figures. Ordered by key.
    pub extra: BTreeMap<String, String>,
}

/// The keys of the typed fields, as the wire names them.
const TYPED_KEYS: &[&str] = &[
    "rank",
    "last_step",
    "stalled_s",
    "lr_fraction_of_peak",
    "value",
    "loss_scale",
    "code",
    "origin",
    "action",
    "exception_type",
    "frame",
    "exit_code",
    "signal",
    "last_errors",
    "line",
    "baseline_runs",
    "closest_run",
    "config_changes",
];

impl FindingAttributes {
    /// Free-form facts only (a detector's figures): none may be a typed key.
    pub(crate) fn extras<const N: usize>(pairs: [(&str, String); N]) -> Self {
        let mut out = FindingAttributes::default();
        for (k, v) in pairs {
            debug_assert!(!TYPED_KEYS.contains(&k), "{k} is a typed attribute");
            out.extra.insert(k.to_owned(), v);
        }
        out
    }

    /// Sets a fact given as text (a log line's capture; replacing one of
    /// the same key): a typed key's text is read into its field, the rest
    /// is free-form.
    pub fn insert_text(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.set_text(key.into(), value.into());
    }

    /// Whether the finding has a fact under `key` (typed or not).
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The fact under `key` as text, as the wire shows it.
    pub fn get(&self, key: &str) -> Option<String> {
        fn num<T: ToString>(v: Option<T>) -> Option<String> {
            v.map(|v| v.to_string())
        }
        let s = |v: &Option<String>| v.clone();
        match key {
            "rank" => num(self.rank),
            "last_step" => num(self.last_step),
            "stalled_s" => num(self.stalled_s),
            "lr_fraction_of_peak" => num(self.lr_fraction_of_peak),
            "value" => self.value.map(|v| v.as_str().to_owned()),
            "loss_scale" => num(self.loss_scale),
            "code" => num(self.code),
            "origin" => self.origin.map(|o| o.as_str().to_owned()),
            "action" => s(&self.action),
            "exception_type" => s(&self.exception_type),
            "frame" => s(&self.frame),
            "exit_code" => num(self.exit_code),
            "signal" => s(&self.signal),
            "last_errors" => s(&self.last_errors),
            "line" => s(&self.line),
            "baseline_runs" => {
                (!self.baseline_runs.is_empty()).then(|| self.baseline_runs.join(","))
            }
            "closest_run" => s(&self.closest_run),
            "config_changes" => (!self.config_changes.is_empty()).then(|| {
                let listed: Vec<String> = self
                    .config_changes
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                listed.join("; ")
            }),
            _ => None,
        }
        .or_else(|| self.extra.get(key).cloned())
    }

    /// Every fact as text, ordered by key: the wire form.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut out = self.extra.clone();
        for k in TYPED_KEYS {
            if let Some(v) = self.get(k) {
                out.insert((*k).to_owned(), v);
            }
        }
        out
    }

    /// Reads the wire form back (see the module's documentation).
    pub fn from_map(map: BTreeMap<String, String>) -> FindingAttributes {
        let mut out = FindingAttributes::default();
        for (k, v) in map {
            out.set_text(k, v);
        }
        out
    }

    /// Puts a fact given as text in its field; text that does not read as
    /// the field's type, and unknown keys, go to `extra`.
    fn set_text(&mut self, key: String, v: String) {
        fn parsed<T: FromStr>(slot: &mut Option<T>, v: &str) -> bool {
            v.parse().ok().map(|x| *slot = Some(x)).is_some()
        }
        fn text(slot: &mut Option<String>, v: &str) -> bool {
            *slot = Some(v.to_owned());
            true
        }
        let typed = match key.as_str() {
            "rank" => parsed(&mut self.rank, &v),
            "last_step" => parsed(&mut self.last_step, &v),
            "stalled_s" => parsed(&mut self.stalled_s, &v),
            "lr_fraction_of_peak" => parsed(&mut self.lr_fraction_of_peak, &v),
            "value" => NonFiniteValue::from_name(&v)
                .map(|x| self.value = Some(x))
                .is_some(),
            "loss_scale" => parsed(&mut self.loss_scale, &v),
            "code" => parsed(&mut self.code, &v),
            "origin" => XidOrigin::from_name(&v)
                .map(|o| self.origin = Some(o))
                .is_some(),
            "action" => text(&mut self.action, &v),
            "exception_type" => text(&mut self.exception_type, &v),
            "frame" => text(&mut self.frame, &v),
            "exit_code" => parsed(&mut self.exit_code, &v),
            "signal" => text(&mut self.signal, &v),
            "last_errors" => text(&mut self.last_errors, &v),
            "line" => text(&mut self.line, &v),
            "baseline_runs" => {
                self.baseline_runs = v.split(',').map(str::to_owned).collect();
                true
            }
            "closest_run" => text(&mut self.closest_run, &v),
            _ => false,
        };
        if typed {
            self.extra.remove(&key);
        } else {
            self.extra.insert(key, v);
        }
    }
}

impl Serialize for FindingAttributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for FindingAttributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(FindingAttributes::from_map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_an_object_of_strings_and_reads_back_typed() {
        let old = r#"{"action":"Drain the node","code":"79","last_step":"39","origin":"hardware","pci":"0000:3b:00","rank":"3","value":"nan"}"#;
        let a: FindingAttributes = serde_json::from_str(old).unwrap();
        assert_eq!(a.code, Some(79));
        assert_eq!(a.origin, Some(XidOrigin::Hardware));
        assert_eq!(a.last_step, Some(39));
        assert_eq!(a.rank, Some(3));
        assert_eq!(a.value, Some(NonFiniteValue::NaN));
        assert_eq!(a.action.as_deref(), Some("Drain the node"));
        assert_eq!(a.extra.get("pci").map(String::as_str), Some("0000:3b:00"));
        assert_eq!(serde_json::to_string(&a).unwrap(), old);
    }

    #[test]
    fn text_that_is_not_its_type_stays_text() {
        let old = r#"{"code":"x79","loss_scale":"1e4","rank":"three"}"#;
        let a: FindingAttributes = serde_json::from_str(old).unwrap();
        assert_eq!(a.code, None);
        assert_eq!(a.rank, None);
        assert_eq!(a.loss_scale, Some(1e4));
        assert_eq!(a.get("rank").as_deref(), Some("three"));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"code":"x79","loss_scale":"10000","rank":"three"}"#
        );
    }

    #[test]
    fn baseline_runs_keep_their_order() {
        let mut a = FindingAttributes::default();
        a.insert_text("baseline_runs", "r3,r2,r1");
        assert_eq!(a.baseline_runs, ["r3", "r2", "r1"]);
        assert_eq!(a.get("baseline_runs").as_deref(), Some("r3,r2,r1"));
    }
}
