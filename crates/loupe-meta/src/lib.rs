//! Loupe's metadata store: projects, runs and their summaries, run logs
//! with full-text search, diagnosis incidents and health scores, and API
//! tokens, in one SQLite file.
//!
//! The time series themselves live in `loupe-tsdb`; this crate holds
//! everything that is a row rather than a point. [`MetaStore`] is the one
//! entry point: open it once, share it (`Send + Sync`), and call its methods
//! from any thread. Writes are durable when they return (WAL journal,
//! `synchronous=FULL`); reads run on pooled connections and never wait for
//! writes.

mod error;
mod feedback;
mod incidents;
mod integrity;
mod logs;
mod projects;
mod runs;
mod store;
mod tokens;
mod validate;

pub use error::{Error, Result};
pub use feedback::{MAX_FEEDBACK_LIMIT, NewFeedback};
pub use incidents::{GroupHealth, IncidentQuery, IncidentRecord, MAX_INCIDENT_LIMIT};
pub use integrity::integrity_check;
pub use logs::{DEFAULT_LOG_LIMIT, LogOrder, LogPage, LogQuery, MAX_LOG_LIMIT};
/// A stored verdict, as the store returns it: the API's entry, one type.
pub use loupe_model::feedback::FeedbackEntry;
pub use projects::ProjectInfo;
pub use runs::{
    DEFAULT_RUN_LIMIT, MAX_RUN_LIMIT, NewRun, RunPage, RunPatch, RunQuery, RunSort, SortKey,
    SummaryStat, SummaryUpdate,
};
pub use store::{MetaOptions, MetaStore};
pub use tokens::TokenInfo;
