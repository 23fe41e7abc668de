//! The Prometheus exposition formats a scrape target answers with: the
//! text format 0.0.4 and OpenMetrics 1.0.
//!
//! ```text
//! # HELP http_requests_total Requests served.
//! # TYPE http_requests_total counter
//! http_requests_total{code="200",path="/a \"b\""} 1027 1395066363000
//! rpc_seconds_bucket{le="0.5"} 129389
//! ```
//!
//! **What comes out** is one [`ScrapedSample`] per sample line, in body
//! order, named as on the wire: a histogram is its `_bucket` (with `le`),
//! `_sum` and `_count` series, a summary its quantile series (with
//! `quantile`), `_sum` and `_count`, an OpenMetrics counter its `_total`
//! (and `_created`) series — the series Prometheus stores. `# HELP`,
//! `# TYPE` and `# UNIT` are kept as [`MetricMetadata`].
//!
//! **The two formats differ** where it matters here:
//! - timestamps: integer milliseconds in 0.0.4, (fractional) seconds in
//!   OpenMetrics, both returned in milliseconds (OpenMetrics' truncated
//!   toward zero, as Prometheus does);
//! - OpenMetrics ends with `# EOF` (required; nothing may follow it) and may
//!   carry exemplars after a sample (`… # {trace_id="x"} 0.67`): Loupe
//!   **drops exemplars explicitly** (as Prometheus does without its exemplar
//!   storage) and counts them in [`Exposition::exemplars_dropped`].
//!
//! Choose the format from the answer's `Content-Type` ([`format_of`]); ask
//! for it with [`SCRAPE_ACCEPT`], the `Accept` header Prometheus sends.
//!
//! **Label values** unescape `\\`, `\"` and `\n`; any other backslash pair
//! is kept as written (as Prometheus' parser does). Names follow
//! Prometheus' grammar: metrics `[a-zA-Z_:][a-zA-Z0-9_:]*`, labels
//! `[a-zA-Z_][a-zA-Z0-9_]*`. **Values** are floats with `NaN`, `+Inf`,
//! `-Inf`. Errors name the line and quote its start.

use crate::error::DecodeError;
use crate::{DecodeErrorKind, Result};

/// The `Accept` header Prometheus sends to a target: OpenMetrics first,
/// the 0.0.4 text as the fallback.
pub const SCRAPE_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Which of the two formats a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// `text/plain; version=0.0.4` (and anything that is not OpenMetrics,
    /// as Prometheus reads it).
    Text004,
    /// `application/openmetrics-text`.
    OpenMetrics,
}

/// The format a target's `Content-Type` names.
pub fn format_of(content_type: Option<&str>) -> ExpositionFormat {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/openmetrics-text") => ExpositionFormat::OpenMetrics,
        _ => ExpositionFormat::Text004,
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedSample {
    pub name: String,
    /// In the order written; a label given twice is an error.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// The sample's own timestamp, in Unix milliseconds, if it has one.
    pub timestamp_ms: Option<i64>,
}

/// A metric family's `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricType {
    fn parse(s: &str) -> Option<MetricType> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "untyped" | "unknown" => MetricType::Unknown,
            _ => return None,
        })
    }
}

/// What `# HELP`, `# TYPE` and `# UNIT` said about one family.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricMetadata {
    pub name: String,
    pub kind: Option<MetricType>,
    pub help: Option<String>,
    pub unit: Option<String>,
}

/// A decoded scrape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition {
    pub samples: Vec<ScrapedSample>,
    /// One entry per family that had metadata, in order first seen.
    pub metadata: Vec<MetricMetadata>,
    /// Exemplars read and not kept (OpenMetrics only).
    pub exemplars_dropped: u64,
}

/// Decodes a scrape body in `format`. The first bad line refuses the whole
/// body, as Prometheus fails the scrape.
pub fn decode_exposition(body: &[u8], format: ExpositionFormat) -> Result<Exposition> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = 1 + body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        fail(
            line,
            DecodeErrorKind::Malformed,
            "is not valid UTF-8".into(),
        )
    })?;
    let om = format == ExpositionFormat::OpenMetrics;
    let mut out = Exposition::default();
    let mut eof = false;
    for (n, raw) in text.split('\n').enumerate() {
        let line_no = n + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if eof {
            if line.is_empty() {
                continue;
            }
            return Err(fail(
                line_no,
                DecodeErrorKind::Malformed,
                format!("{:?} follows # EOF", excerpt(line)),
            ));
        }
        let trimmed = if om {
            line
        } else {
            line.trim_start_matches([' ', '\t'])
        };
        if trimmed.is_empty() {
            continue;
        }
        let why = if let Some(comment) = trimmed.strip_prefix('#') {
            match read_comment(comment, om, &mut out.metadata) {
                Ok(Comment::Eof) => {
                    eof = true;
                    continue;
                }
                Ok(Comment::Other) => continue,
                Err(why) => why,
            }
        } else {
            match read_sample(trimmed, om) {
                Ok((sample, exemplar)) => {
                    out.exemplars_dropped += u64::from(exemplar);
                    out.samples.push(sample);
                    continue;
                }
                Err(why) => why,
            }
        };
        return Err(fail(
            line_no,
            DecodeErrorKind::Malformed,
            format!("unable to parse {:?}: {why}", excerpt(trimmed)),
        ));
    }
    if om && !eof {
        return Err(DecodeError {
            path: "body".into(),
            message: "OpenMetrics body does not end with # EOF (cut short?)".into(),
            kind: DecodeErrorKind::Malformed,
        });
    }
    Ok(out)
}

enum Comment {
    Eof,
    Other,
}

/// `# HELP`, `# TYPE`, `# UNIT`, `# EOF`; other comments are skipped.
fn read_comment(
    comment: &str,
    om: bool,
    metadata: &mut Vec<MetricMetadata>,
) -> Result<Comment, String> {
    if om && comment == " EOF" {
        return Ok(Comment::Eof);
    }
    let Some(rest) = comment
        .strip_prefix(' ')
        .or(if om { None } else { Some(comment) })
    else {
        return Ok(Comment::Other);
    };
    let rest = if om {
        rest
    } else {
        rest.trim_start_matches([' ', '\t'])
    };
    let (keyword, rest) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") || (!om && keyword == "UNIT") {
        return Ok(Comment::Other);
    }
    let rest = if om {
        rest
    } else {
        rest.trim_start_matches([' ', '\t'])
    };
    let (name, text) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    if !is_metric_name(name) {
        return Err(format!("# {keyword} names {name:?}, not a metric name"));
    }
    let slot = match metadata.iter().rposition(|m| m.name == name) {
        Some(i) => i,
        None => {
            metadata.push(MetricMetadata {
                name: name.to_string(),
                ..Default::default()
            });
            metadata.len() - 1
        }
    };
    let m = &mut metadata[slot];
    match keyword {
        "HELP" => m.help = Some(unescape_help(text, om)),
        "TYPE" => {
            let t = text.trim_end_matches([' ', '\t']);
            m.kind =
                Some(MetricType::parse(t).ok_or_else(|| format!("unknown metric type {t:?}"))?);
        }
        _ => m.unit = Some(text.to_string()),
    }
    Ok(Comment::Other)
}

/// A sample line; the flag says it carried an exemplar (dropped).
fn read_sample(line: &str, om: bool) -> Result<(ScrapedSample, bool), String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err("a sample must start with a metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    // The text format allows blanks between the name and its labels.
    let before_labels = if om {
        rest
    } else {
        rest.trim_start_matches([' ', '\t'])
    };
    if let Some(after) = before_labels.strip_prefix('{') {
        rest = read_labels(after, &mut labels)?;
    }
    // One separator, then the value.
    let sep = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    if sep == 0 {
        return Err("expected a space before the value".into());
    }
    if om && sep != 1 {
        return Err("expected one space before the value".into());
    }
    rest = &rest[sep..];
    let (value_text, mut rest) = split_token(rest);
    let value = parse_value(value_text)?;
    let mut timestamp_ms = None;
    let mut exemplar = false;
    rest = rest.trim_start_matches([' ', '\t']);
    if !rest.is_empty() && !rest.starts_with('#') {
        let (ts, after) = split_token(rest);
        timestamp_ms = Some(if om {
            let s = parse_value(ts)?;
            if !s.is_finite() {
                return Err(format!("timestamp {ts:?} is not a time"));
            }
            // Truncated toward zero, as Prometheus does.
            (s * 1000.0) as i64
        } else {
            ts.parse::<i64>()
                .map_err(|_| format!("timestamp {ts:?} is not an integer of milliseconds"))?
        });
        rest = after.trim_start_matches([' ', '\t']);
    }
    if !rest.is_empty() {
        if om && rest.starts_with("# {") {
            // An exemplar: its labels must parse; it is then dropped.
            let mut ex = Vec::new();
            let after = read_labels(&rest[3..], &mut ex).map_err(|e| format!("exemplar: {e}"))?;
            let (v, _) = split_token(after.trim_start_matches(' '));
            parse_value(v).map_err(|e| format!("exemplar: {e}"))?;
            exemplar = true;
        } else {
            return Err(format!("unexpected {:?} after the value", excerpt(rest)));
        }
    }
    Ok((
        ScrapedSample {
            name: name.to_string(),
            labels,
            value,
            timestamp_ms,
        },
        exemplar,
    ))
}

/// Reads `name="value",…}` (the `{` already taken); returns what follows
/// the `}`.
fn read_labels<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let name = &s[..end];
        if !is_label_name(name) {
            return Err(format!("expected a label name at {:?}", excerpt(s)));
        }
        s = s[end..].trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('=')
            .ok_or_else(|| format!("expected '=' after label {name:?}"))?;
        s = s.trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('"')
            .ok_or_else(|| format!("expected '\"' to open label {name:?}'s value"))?;
        let (value, after) =
            read_quoted(s).ok_or_else(|| format!("label {name:?}'s value is not closed"))?;
        if labels.iter().any(|(k, _)| k == name) {
            return Err(format!("label {name:?} given twice"));
        }
        labels.push((name.to_string(), value));
        s = after.trim_start_matches([' ', '\t']);
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {name:?}"));
        }
    }
}

/// A quoted label value up to its closing quote, unescaped; and the rest.
fn read_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            '\n' => return None,
            c => out.push(c),
        }
    }
    None
}

fn unescape_help(s: &str, om: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') if om => out.push('"'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn split_token(s: &str) -> (&str, &str) {
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// A sample value: a float, `NaN`, `+Inf`, `-Inf` (Go's spellings, which
/// Rust's parser reads too).
fn parse_value(s: &str) -> Result<f64, String> {
    if s.is_empty() {
        return Err("expected a value".into());
    }
    s.parse::<f64>()
        .map_err(|_| format!("value {:?} is not a number", excerpt(s)))
}

fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn fail(line: usize, kind: DecodeErrorKind, message: String) -> DecodeError {
    DecodeError {
        path: format!("line {line}"),
        message,
        kind,
    }
}

/// The start of a line, for error messages.
fn excerpt(s: &str) -> &str {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
