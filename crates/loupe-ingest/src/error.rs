//! The two errors a request can earn: one for the body's bytes and
//! encoding ([`BodyError`]), one for its JSON content ([`DecodeError`]).

use std::fmt;

/// What sort of problem a [`DecodeError`] is; the server picks the HTTP
/// status from it (see [`DecodeErrorKind::http_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// The body is not JSON at all: empty, invalid UTF-8, or a syntax error.
    Malformed,
    /// The body is JSON but not a valid batch: a wrong type, a missing field,
    /// columns of different lengths, a time out of range, a reserved value.
    Invalid,
    /// The body is a valid batch shape but crosses one of the [`crate::Limits`]:
    /// too many series, points or records, a name or text too long, nesting
    /// too deep.
    LimitExceeded,
}

impl DecodeErrorKind {
    /// A stable, machine-readable name for API error bodies.
    pub fn code(self) -> &'static str {
        match self {
            DecodeErrorKind::Malformed => "malformed_json",
            DecodeErrorKind::Invalid => "invalid_batch",
            DecodeErrorKind::LimitExceeded => "limit_exceeded",
        }
    }

    /// The HTTP status to answer with: 400 when the body cannot be parsed,
    /// 422 when it parses but is refused. Never 413: that is reserved for
    /// the body's byte size ([`BodyError::TooLarge`]).
    pub fn http_status(self) -> u16 {
        match self {
            DecodeErrorKind::Malformed => 400,
            DecodeErrorKind::Invalid | DecodeErrorKind::LimitExceeded => 422,
        }
    }
}

/// Why a batch was refused. The batch is refused whole; `path` locates the
/// first problem in document order, as a JSON path (`series[2].value[17]`),
/// or `body` when the problem is the body as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DecodeError {
    pub path: String,
    pub message: String,
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    pub(crate) fn body(kind: DecodeErrorKind, message: impl Into<String>) -> Self {
        Self {
            path: "body".to_string(),
            message: message.into(),
            kind,
        }
    }

    /// See [`DecodeErrorKind::code`].
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// See [`DecodeErrorKind::http_status`].
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }
}

/// Why a request body could not be turned into plain bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The `Content-Encoding` is not one Loupe decodes (HTTP 415).
    #[error("unsupported Content-Encoding {0:?}: expected identity, gzip, zstd or snappy")]
    UnsupportedEncoding(String),
    /// The body, once decompressed, is over `limit` bytes (HTTP 413).
    /// Decompression stops as soon as the limit is crossed.
    #[error("body is over the limit of {limit} bytes{}", if *.compressed { " once decompressed" } else { "" })]
    TooLarge { limit: usize, compressed: bool },
    /// The server's memory budget for bodies in flight would not take the
    /// decompressed bytes (HTTP 503: send it again later).
    #[error(
        "the server's memory budget for request bodies would not take the body once decompressed"
    )]
    OverBudget,
    /// The body is not in the encoding it was declared to be in (HTTP 400).
    #[error("body is not valid {encoding}: {message}")]
    Corrupt {
        encoding: &'static str,
        message: String,
    },
}

impl BodyError {
    /// A stable, machine-readable name for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::UnsupportedEncoding(_) => "unsupported_encoding",
            BodyError::TooLarge { .. } => "body_too_large",
            BodyError::Corrupt { .. } => "invalid_encoding",
            BodyError::OverBudget => "overloaded",
        }
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            BodyError::UnsupportedEncoding(_) => 415,
            BodyError::TooLarge { .. } => 413,
            BodyError::Corrupt { .. } => 400,
            BodyError::OverBudget => 503,
        }
    }
}

/// One step of a JSON path.
#[derive(Debug, Clone)]
pub(crate) enum Segment {
    /// A field name known at compile time.
    Field(&'static str),
    /// A field name from the request (a label or an unknown field).
    Key(String),
    Index(usize),
}

/// Writes segments (outermost first) as `series[2].labels.host`; keys that
/// are not plain identifiers are quoted: `labels["a b"]`.
pub(crate) fn format_path(segments: &[Segment]) -> String {
    use fmt::Write;
    if segments.is_empty() {
        return "body".to_string();
    }
    let mut out = String::new();
    for (i, seg) in segments.iter().enumerate() {
        match seg {
            Segment::Field(name) => {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(name);
            }
            Segment::Key(name) if name.len() > MAX_KEY_IN_PATH => {
                let mut end = MAX_KEY_IN_PATH;
                while !name.is_char_boundary(end) {
                    end -= 1;
                }
                let head = serde_json::Value::from(&name[..end]).to_string();
                let _ = write!(out, "[{}…\"]", &head[..head.len() - 1]);
            }
            Segment::Key(name) if is_identifier(name) => {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(name);
            }
            Segment::Key(name) => {
                let _ = write!(out, "[{}]", serde_json::Value::from(name.as_str()));
            }
            Segment::Index(n) => {
                let _ = write!(out, "[{n}]");
            }
        }
    }
    out
}

/// Longer keys (a client's mistake, or an attack) are cut in paths, so the
/// error stays readable and small.
const MAX_KEY_IN_PATH: usize = 64;

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_json_access() {
        use Segment::*;
        assert_eq!(format_path(&[]), "body");
        assert_eq!(
            format_path(&[Field("series"), Index(2), Field("value"), Index(17)]),
            "series[2].value[17]"
        );
        assert_eq!(
            format_path(&[
                Field("series"),
                Index(0),
                Field("labels"),
                Key("host".into())
            ]),
            "series[0].labels.host"
        );
        assert_eq!(
            format_path(&[Field("labels"), Key("a \"b\"".into())]),
            r#"labels["a \"b\""]"#
        );
        assert_eq!(format_path(&[Key("extra".into())]), "extra");
        let long = format_path(&[Key("k".repeat(1000))]);
        assert_eq!(long, format!("[\"{}…\"]", "k".repeat(64)));
    }
}
