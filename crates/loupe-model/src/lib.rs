//! Loupe's shared vocabulary: series keys, label names, runs, severities, the
//! JSON encoding of NaN and ±∞, the clock and file locks. Every other Loupe
//! crate may depend on it, and it depends on none of them. It does no IO
//! beyond reading the clock ([`clock`]) and taking a lock file ([`lock`]).

pub mod alerting;
pub mod clock;
pub mod feedback;
mod incident;
pub mod label;
pub mod lock;
mod matcher;
pub mod nonfinite;
mod run;
mod series;
pub mod stale;
mod ui_url;
pub mod units;

pub use incident::{IncidentState, Severity, UnknownSeverity};
pub use matcher::{LabelMatch, SeriesMatcher};
pub use run::{
    LogLevel, LogRecord, LogStream, Role, Run, RunFailure, RunStatus, SeriesSummary, UnknownStatus,
};
pub use series::{
    KeyDecodeError, KeyError, MAX_LABEL_BYTES, MAX_LABELS, MAX_NAME_BYTES, SeriesKey,
};
pub use ui_url::{RunTab, project_url, run_tab_url, run_url};

/// A step value that means "this point has no step" (system metrics carry
/// only a time). Real steps must be greater than this.
pub const NO_STEP: i64 = i64::MIN;
