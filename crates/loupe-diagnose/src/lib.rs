//! Diagnosis: what went wrong in a run or a service, where, why, and what
//! to change — computed while the data streams in.
//!
//! - [`detect`]: streaming detectors, one state per series, O(1) or
//!   O(log n) per point with bounded state.
//! - [`logsig`]: log signatures (CUDA OOM, NCCL timeouts, Xid, tracebacks…)
//!   and templates of unknown error lines.
//! - [`incident`]: findings close in time within a run, group or host are
//!   correlated into incidents with ranked causes, evidence and fixes.
//! - [`health`]: a 0–100 score per run with its breakdown.
//! - [`Diagnoser`]: the front door that the server (live) and the CLI
//!   (`loupe detect`, `loupe diagnose --replay`) feed.
//!
//! **Invariants:** no IO, no clock (callers pass times), no dependency on the
//! stores or HTTP; every state is bounded, so a long run or a flood of
//! series cannot grow memory without limit.

pub mod logsig;

mod severity;

pub use severity::Severity;

pub mod config;
pub mod detect;
pub mod finding;

pub use config::{ConfigError, DiagnoseConfig};
pub use finding::{Direction, Finding, FindingKind, LogRef, Scope, SeriesRole};
pub mod diagnoser;
pub mod health;
pub mod incident;
pub mod anomaly;
pub mod offline;
pub mod scenario;

pub use diagnoser::{DiagnoseStats, Diagnoser, RunInfo};
pub use health::{Health, HealthItem};
pub use incident::{Cause, CauseKind, Evidence, Incident, IncidentState};

/// Serde for `Option<f64>` that writes NaN and ±Infinity as the strings the
/// API uses everywhere (JSON has no literal for them).
pub(crate) mod nonfinite_opt {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(x) if x.is_nan() => "NaN".serialize(s),
            Some(x) if x.is_infinite() && *x > 0.0 => "Infinity".serialize(s),
            Some(x) if x.is_infinite() => "-Infinity".serialize(s),
            Some(x) => x.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum N {
            Num(f64),
            Text(String),
        }
        Ok(match Option::<N>::deserialize(d)? {
            None => None,
            Some(N::Num(x)) => Some(x),
            Some(N::Text(t)) => Some(match t.as_str() {
                "NaN" => f64::NAN,
                "Infinity" | "+Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "expected a number or \"NaN\", \"Infinity\", \"-Infinity\", found {other:?}"
                    )));
                }
            }),
        })
    }
}
