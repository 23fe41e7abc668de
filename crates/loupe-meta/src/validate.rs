//! Input checks shared by the write paths. Every message names the field,
//! so the server can pass it on as a 4xx body unchanged.

use serde_json::Value;

use crate::error::{Error, Result};

pub(crate) const MAX_ID_BYTES: usize = 64;
pub(crate) const MAX_NAME_BYTES: usize = 256;
pub(crate) const MAX_TAG_BYTES: usize = 128;
pub(crate) const MAX_TAGS: usize = 256;
/// Notes, commands and the like: free text, bounded so one request cannot
/// bloat every listing.
pub(crate) const MAX_TEXT_BYTES: usize = 64 * 1024;
pub(crate) const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// A short label: non-empty, bounded, no control characters (they break
/// terminals, logs and URLs alike).
pub(crate) fn label(what: &str, s: &str, max_bytes: usize) -> Result<()> {
    if s.trim().is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if s.len() > max_bytes {
        return Err(Error::invalid(format!(
            "{what} is {} bytes, more than {max_bytes}",
            s.len()
        )));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "{what} {s:?} contains the control character {c:?}"
        )));
    }
    Ok(())
}

/// Free text: only its size is bounded.
pub(crate) fn text(what: &str, s: &str) -> Result<()> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(Error::invalid(format!(
            "{what} is {} bytes, more than {MAX_TEXT_BYTES}",
            s.len()
        )));
    }
    Ok(())
}

/// Run ids travel in URLs and log file names: `[A-Za-z0-9_.-]`, 1–64 bytes.
pub(crate) fn run_id(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= MAX_ID_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && s != "."
        && s != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "run id {s:?} must be 1-{MAX_ID_BYTES} characters of A-Z, a-z, 0-9, '_', '-', '.'"
        )))
    }
}

/// Project names appear in URL paths: no separators or URL syntax.
pub(crate) fn project_name(s: &str) -> Result<()> {
    label("project name", s, MAX_NAME_BYTES)?;
    if s.trim() != s {
        return Err(Error::invalid(format!(
            "project name {s:?} must not start or end with whitespace"
        )));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#' | '%'))
    {
        return Err(Error::invalid(format!(
            "project name {s:?} must not contain {c:?}"
        )));
    }
    Ok(())
}

pub(crate) fn finite(what: &str, t: f64) -> Result<()> {
    if t.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} must be a finite number, got {t}"
        )))
    }
}

/// The latest time a run may name, in Unix seconds: the end of what the
/// time-series store's `i64` nanoseconds represent (April 2262). A value past
/// it (`1e300`) is a unit mistake, not a date, and would sort and chart as one.
pub(crate) const MAX_TIMESTAMP_SECS: f64 = i64::MAX as f64 / 1e9;

/// A wall-clock time in Unix seconds: finite, and from 1970 to
/// [`MAX_TIMESTAMP_SECS`].
pub(crate) fn timestamp(what: &str, t: f64) -> Result<()> {
    finite(what, t)?;
    if (0.0..=MAX_TIMESTAMP_SECS).contains(&t) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} must be Unix seconds from 0 to {MAX_TIMESTAMP_SECS:.0}, got {t}"
        )))
    }
}

/// Checks tags and drops repeats, keeping the first occurrence's position.
pub(crate) fn tags(tags: Vec<String>) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid(format!(
            "{} tags, more than {MAX_TAGS}",
            tags.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        label("tag", &tag, MAX_TAG_BYTES)?;
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// A run's config is a JSON object; `null` means empty.
pub(crate) fn config(what: &str, v: Value) -> Result<Value> {
    let v = match v {
        Value::Null => Value::Object(Default::default()),
        v @ Value::Object(_) => v,
        other => {
            return Err(Error::invalid(format!(
                "{what} must be a JSON object, got {}",
                json_kind(&other)
            )));
        }
    };
    Ok(v)
}

pub(crate) fn config_size(what: &str, encoded: &str) -> Result<()> {
    if encoded.len() > MAX_CONFIG_BYTES {
        return Err(Error::invalid(format!(
            "{what} is {} bytes of JSON, more than {MAX_CONFIG_BYTES}",
            encoded.len()
        )));
    }
    Ok(())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
