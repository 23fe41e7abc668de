//! Diagnosis: what went wrong in a run or a service, where, why, and what
//! to change — computed while the data streams in.
//!
//! - [`detect`]: streaming detectors, one state per series, O(1) or
//!   O(log n) per point with bounded state.
//! - [`anomaly`]: the general streaming detector for series with no rule
//!   of their own (seasonal baseline, calibrated likelihood, one alarm per
//!   episode).
//! - [`logsig`]: log signatures (CUDA OOM, NCCL timeouts, Xid, tracebacks…)
//!   and templates of unknown error lines.
//! - [`incident`]: findings close in time within a run, group or host are
//!   correlated into incidents with ranked causes, evidence and fixes.
//! - [`health`]: a 0–100 score per run with its breakdown.
//! - [`Diagnoser`]: the front door that the server (live) and the CLI
//!   (`loupe detect`, `loupe diagnose --replay`) feed; each tick it runs
//!   the time-driven checks of `watch` (stalls, silences, cohorts).
//! - [`FindingAttributes`]: a finding's extra facts, typed.
//!
//! **Invariants:** no IO, no clock (callers pass times), no dependency on the
//! stores or HTTP; every state is bounded, so a long run or a flood of
//! series cannot grow memory without limit.

pub mod logsig;

mod severity;

pub use severity::Severity;

pub mod baseline;
pub mod config;
#[cfg(feature = "corpus")]
pub mod corpus;
#[cfg(feature = "corpus")]
pub mod curves;
pub mod detect;
pub mod finding;

pub use config::{ConfigError, DiagnoseConfig};
pub use finding::{
    Direction, Finding, FindingAttributes, FindingKind, LogRef, NonFiniteValue, Scope, SeriesRole,
};
pub mod anomaly;
pub mod diagnoser;
pub mod health;
pub mod incident;
pub mod offline;
#[cfg(feature = "scenario")]
pub mod scenario;
mod watch;

pub use diagnoser::{DiagnoseStats, Diagnoser, RunInfo};
pub use health::{Health, HealthItem};
pub use incident::{Cause, CauseKind, Evidence, Incident, IncidentState};

/// The one NaN/±Infinity JSON codec (`loupe_model::nonfinite`), under the
/// path this crate's serde attributes name.
pub(crate) use loupe_model::nonfinite::opt as nonfinite_opt;
