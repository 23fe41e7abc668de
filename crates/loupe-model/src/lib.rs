//! Loupe's shared data types. This crate does no IO; every other Loupe crate
//! may depend on it, and it depends on none of them.

mod matcher;
mod run;
mod series;
mod ui_url;

pub use matcher::{LabelMatch, SeriesMatcher};
pub use run::{
    LogLevel, LogRecord, LogStream, Role, Run, RunFailure, RunStatus, SeriesSummary, UnknownStatus,
    nonfinite,
};
pub use series::{
    KeyDecodeError, KeyError, MAX_LABEL_BYTES, MAX_LABELS, MAX_NAME_BYTES, SeriesKey,
};
pub use ui_url::{RunTab, project_url, run_tab_url, run_url};

/// A step value that means "this point has no step" (system metrics carry
/// only a time). Real steps must be greater than this.
pub const NO_STEP: i64 = i64::MIN;
