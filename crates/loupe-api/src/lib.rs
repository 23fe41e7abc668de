//! Loupe's HTTP API as types: the body of every request and response of
//! `/api/v1`, each with its OpenAPI schema (`utoipa::ToSchema`) and its
//! query parameters (`utoipa::IntoParams`).
//!
//! The server's handlers return these types and its OpenAPI document is
//! generated from them (the web UI's TypeScript types in turn are generated
//! from that document); `loupe-client` sends and reads them. A type here is
//! the wire format: renaming a field or changing whether it is omitted is a
//! change of the public API.
//!
//! Conventions, kept by every type:
//! - NaN and ±∞ are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`
//!   ([`loupe_model::nonfinite`]; their schema is [`Float`]).
//! - An `Option` field of a response is sent as `null` when empty (and
//!   marked required in the schema), unless its docs say it is left out.
//! - Times are Unix seconds (`f64`) unless the name says otherwise (`_ns`).
//!
//! The shared vocabulary ([`Run`], [`RunStatus`], [`Severity`], …) is
//! `loupe-model`'s, re-exported here; what only the API speaks is defined
//! here, as are mirrors of what other crates store and the API serves
//! (incidents, alerts), which the server converts field by field so that a
//! change on either side does not compile until the other follows.

pub mod alerts;
pub mod error;
pub mod feedback;
pub mod incidents;
pub mod live;
pub mod logs;
pub mod runs;
pub mod series;
pub mod system;

pub use alerts::*;
pub use error::{ErrorBody, ErrorDetail};
pub use feedback::*;
pub use incidents::*;
pub use live::*;
pub use logs::*;
pub use runs::*;
pub use series::*;
pub use system::*;

pub use loupe_model::nonfinite::Float;
pub use loupe_model::{
    IncidentState, LogLevel, LogStream, Run, RunFailure, RunStatus, SeriesSummary, Severity,
};

/// The path every endpoint of the API starts with.
pub const API_PREFIX: &str = "/api/v1";
