//! One line of `spool.jsonl`, decoded with serde: the envelope's fields
//! are read, the body is borrowed as raw JSON (checked to be well formed,
//! never re-encoded), so what is sent is the bytes the SDK wrote.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

/// What a line's body is, and so where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `POST /api/v1/runs`: create or resume the run.
    Run,
    /// `POST /api/v1/runs/{id}/metrics`.
    Metrics,
    /// `POST /api/v1/runs/{id}/logs`.
    Logs,
    /// `PATCH /api/v1/runs/{id}`.
    Patch,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Run, Kind::Metrics, Kind::Logs, Kind::Patch];

    /// The name the spool writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Metrics => "metrics",
            Kind::Logs => "logs",
            Kind::Patch => "patch",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a complete line is not a spool entry.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Not JSON, or not the envelope (unknown kind, no seq, …); serde's
    /// message names the field and the column.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("the body is not a JSON object")]
    BodyNotObject,
    #[error("a line of {len} bytes is longer than the {max} a spool line may be")]
    TooLong { len: u64, max: u64 },
}

/// One decoded line, borrowing from the line's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolLine<'a> {
    pub kind: Kind,
    pub seq: u64,
    /// The idempotency key, when the line has a valid one (an invalid key
    /// is dropped, as the SDK does: the request still goes, without it).
    pub key: Option<Cow<'a, str>>,
    /// The request body, exactly as written.
    pub body: &'a [u8],
}

/// The envelope as serde sees it; fields other than these are ignored.
#[derive(Deserialize)]
struct Envelope<'a> {
    kind: Kind,
    seq: u64,
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Decodes one line (its newline, if any, included).
pub fn decode_line(line: &[u8]) -> Result<SpoolLine<'_>, LineError> {
    let env: Envelope<'_> = serde_json::from_slice(line)?;
    // A raw value starts at its first byte (whitespace before it is not
    // part of it), so an object starts with `{`.
    let body = env.body.get().as_bytes();
    if body.first() != Some(&b'{') {
        return Err(LineError::BodyNotObject);
    }
    Ok(SpoolLine {
        kind: env.kind,
        seq: env.seq,
        key: env.key.filter(|k| valid_key(k)),
        body,
    })
}

/// The SDK's rule for idempotency keys: 1 to 128 of `A-Za-z0-9_.:-`.
pub fn valid_key(k: &str) -> bool {
    (1..=128).contains(&k.len())
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.:-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_line_keeps_its_body_bytes_and_key() {
        let l = decode_line(
            b"{\"kind\":\"logs\",\"seq\":8,\"key\":\"ab:1\",\"body\":{\"records\":[]}}\n",
        )
        .unwrap();
        assert_eq!(
            (l.kind, l.seq, l.key.as_deref(), l.body),
            (Kind::Logs, 8, Some("ab:1"), &b"{\"records\":[]}"[..])
        );
    }

    #[test]
    fn a_hand_written_line_in_any_field_order_is_read_as_written() {
        let l = decode_line(
            b"{ \"seq\": 3, \"kind\": \"patch\", \"extra\": [1], \"body\":  {\"status\": \"finished\"} }\n",
        )
        .unwrap();
        assert_eq!(
            (l.kind, l.seq, l.key, l.body),
            (Kind::Patch, 3, None, &b"{\"status\": \"finished\"}"[..])
        );
    }

    #[test]
    fn an_escaped_key_is_unescaped_and_an_invalid_one_dropped() {
        let l = decode_line(br#"{"kind":"logs","seq":1,"key":"a\u003ab","body":{}}"#).unwrap();
        assert_eq!(l.key.as_deref(), Some("a:b"));
        let l = decode_line(br#"{"kind":"logs","seq":1,"key":"a b","body":{}}"#).unwrap();
        assert_eq!(l.key, None);
    }

    #[test]
    fn nan_in_a_body_is_the_api_string_and_passes_untouched() {
        let line = br#"{"kind":"metrics","seq":2,"body":{"series":[{"name":"x","value":["NaN","-Infinity"]}]}}"#;
        let l = decode_line(line).unwrap();
        assert_eq!(
            l.body,
            &br#"{"series":[{"name":"x","value":["NaN","-Infinity"]}]}"#[..]
        );
    }

    #[test]
    fn what_is_not_an_entry_says_why() {
        let err = |line: &[u8]| decode_line(line).unwrap_err().to_string();
        assert!(
            err(b"{\"kind\":\"nope\",\"seq\":1,\"body\":{}}").contains("unknown variant `nope`")
        );
        assert!(err(b"{\"kind\":\"run\",\"body\":{}}").contains("missing field `seq`"));
        assert!(err(b"{\"kind\":\"run\",\"seq\":-1,\"body\":{}}").contains("invalid value"));
        assert!(err(b"{\"kind\":\"run\",\"seq\":1,\"body\":[]}").contains("not a JSON object"));
        assert!(err(b"{\"kind\":\"run\",\"seq\":1,\"body\":{\"x\":NaN}}").contains("column"));
        assert!(err(b"{\"kind\":\"run\",\"seq\":1,\"body\":{}}}").contains("trailing"));
        assert!(err(b"garbage\n").contains("line 1"));
        assert!(err(b"").contains("EOF"));
    }
}
