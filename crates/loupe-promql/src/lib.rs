//! A PromQL engine with Prometheus' semantics (modelled on Prometheus 2.x,
//! the version the comparison test runs against).
//!
//! Parsing is `promql-parser`'s; this crate evaluates its AST. It does no IO
//! and knows no store: series come through [`SeriesSource`], which the
//! server implements over its time-series engine, so every rule here is
//! testable with a few series in memory.
//!
//! ```text
//! query ─► parse ─► plan (which windows each selector needs) ─► load through SeriesSource
//!       ─► evaluate at each step ─► Value (scalar, string, vector, matrix)
//! ```
//!
//! Times are Unix milliseconds, as in Prometheus. Work is bounded by
//! [`EngineOptions::max_samples`] (samples loaded per query) and
//! [`EngineOptions::timeout`].

mod aggregate;
mod binary;
mod error;
mod eval;
mod functions;
mod labels;
mod plan;
mod source;
mod value;

pub use error::{Error, ErrorType};
pub use eval::{Engine, EngineOptions};
pub use labels::{Labels, METRIC_NAME};
pub use promql_parser::label::{MatchOp, Matcher};
pub use source::{RawSeries, STALE_NAN_BITS, SeriesSource, SourceError, is_stale};
pub use value::{Sample, Series, Value};

/// Parses a query (for callers that only validate, such as a dashboard check).
pub fn parse(query: &str) -> Result<(), Error> {
    promql_parser::parser::parse(query)
        .map(|_| ())
        .map_err(Error::Parse)
}

/// The matcher groups of a series selector such as `match[]`'s
/// `up{job="x"}` (one group, or one per `or` branch).
pub fn selector_matchers(selector: &str) -> Result<Vec<Vec<Matcher>>, Error> {
    match promql_parser::parser::parse(selector).map_err(Error::Parse)? {
        promql_parser::parser::Expr::VectorSelector(vs) => Ok(plan::matcher_groups(&vs)),
        _ => Err(Error::Parse(format!(
            "invalid parameter \"match[]\": {selector:?} is not a series selector"
        ))),
    }
}

/// A Prometheus duration (`15s`, `1h30m`) in milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, Error> {
    promql_parser::util::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(Error::Parse)
}
