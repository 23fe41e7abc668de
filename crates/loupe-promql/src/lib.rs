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
    parse_expr(query).map(|_| ())
}

/// The parser, behind a check of the numbers it would turn into durations.
/// `promql-parser` converts a plain number in a duration's place (`x[5]`,
/// `offset 30`, a subquery's `[60:15]`) with `Duration::from_secs_f64`,
/// which panics on a number too large to be a duration
/// (`delta(g[8888888888888888888888888888])`, found by fuzzing); such a
/// query is refused here, as Prometheus refuses it, before the parser sees it.
pub(crate) fn parse_expr(query: &str) -> Result<promql_parser::parser::Expr, Error> {
    check_duration_numbers(query)?;
    promql_parser::parser::parse(query).map_err(Error::Parse)
}

/// Longest duration a query may write as a plain number of seconds: about
/// 31 million years, far past anything a store holds and far below where
/// the conversion fails.
const MAX_DURATION_SECONDS: f64 = 1e15;

fn check_duration_numbers(query: &str) -> Result<(), Error> {
    let bytes = query.as_bytes();
    let mut i = 0;
    // The last significant token: a duration follows `[`, `:` and `offset`.
    let mut after_duration_opener = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' | b'\'' | b'`' => {
                // Skip a string literal (escapes included).
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                after_duration_opener = false;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'[' | b':' => {
                after_duration_opener = true;
                i += 1;
            }
            _ if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'.'
                        || bytes[i] == b'_'
                        || ((bytes[i] == b'+' || bytes[i] == b'-')
                            && matches!(bytes[i - 1], b'e' | b'E')
                            && bytes[start].is_ascii_digit()))
                {
                    i += 1;
                }
                let token = &query[start..i];
                if after_duration_opener && !duration_number_ok(token) {
                    return Err(Error::Parse(format!(
                        "{token:?} is not a duration Loupe can use: a duration written as seconds must be a finite number below {MAX_DURATION_SECONDS:e}"
                    )));
                }
                after_duration_opener = token.eq_ignore_ascii_case("offset");
            }
            _ => {
                after_duration_opener = false;
                i += 1;
            }
        }
    }
    Ok(())
}

/// Whether a token in a duration's place is safe to convert: anything that
/// is not a plain number (`5m`, a name) is the parser's to judge.
fn duration_number_ok(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    let value = if let Some(hex) = lower.strip_prefix("0x") {
        match u128::from_str_radix(hex, 16) {
            Ok(v) => v as f64,
            // Too large, or not a number at all: neither is a duration.
            Err(_) => return false,
        }
    } else if lower == "inf" || lower == "nan" || lower == "infinity" {
        return false;
    } else {
        match lower.parse::<f64>() {
            Ok(v) => v,
            Err(_) => return true,
        }
    };
    value.is_finite() && value < MAX_DURATION_SECONDS
}

/// The matcher groups of a series selector such as `match[]`'s
/// `up{job="x"}` (one group, or one per `or` branch).
pub fn selector_matchers(selector: &str) -> Result<Vec<Vec<Matcher>>, Error> {
    match parse_expr(selector)? {
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

#[cfg(test)]
mod duration_guard_tests {
    use super::parse;

    #[test]
    fn numbers_too_large_for_a_duration_are_refused_not_a_panic() {
        for q in [
            "delta(g[8888888888888888888888888888])",
            "rate(x[1e300])",
            "x offset 0xffffffffffffffffffffffff",
            "max_over_time(x[5m:1e30])",
            "x[Inf]",
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.to_string().contains("duration"), "{q}: {e}");
        }
        for q in [
            "rate(x[5m])",
            "x[300]",
            "x offset 30",
            "avg_over_time(x[1h:15])",
            "x > Inf",
            r#"x{a="[1e300]"}"#,
        ] {
            assert!(parse(q).is_ok(), "{q}");
        }
    }
}
