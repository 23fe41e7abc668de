//! The one HTTP client of Loupe's API, for everything that talks to a
//! server from outside it: the CLI, `loupe sync`, `loupe demo`, the agent
//! and `loupe run`.
//!
//! - [`Client`]: blocking (`ureq`: no async runtime), one connection pool
//!   per client. Typed calls take and return `loupe-api` types
//!   ([`Client::create_run`], [`Client::list_runs`], …); [`Client::send`]
//!   sends a body that is already JSON text (a spool line, a buffered
//!   record) exactly as it is, gzipped if asked.
//! - [`Error`]: no answer, a refusal in the API's error shape, or an
//!   answer that is not Loupe's. [`Error::is_retryable`] is the one rule
//!   for what a later attempt may fix.
//! - [`Backoff`]: the one schedule for waiting between attempts.
//!
//! Nothing here logs or sleeps on its own: callers decide what a failure
//! means for them (the agent's sender keeps the record, `loupe sync` stops
//! after some attempts, the CLI reports it).

mod backoff;
mod client;
mod error;

pub use backoff::Backoff;
pub use client::{Client, ClientOptions, Encoding, Method, Raw};
pub use error::{Error, retryable_status};
pub use loupe_api as api;
