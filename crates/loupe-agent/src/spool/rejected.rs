//! `rejected.jsonl`: requests the server refused for good, one per line in
//! the SDK's format, `{"kind","status","error","body"}`, the body as sent.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

use super::line::Kind;

/// Appends one refused request with one `write`, so lines never interleave.
pub(super) fn append(
    path: &Path,
    kind: Kind,
    status: u16,
    error: &str,
    body: &[u8],
) -> io::Result<()> {
    let error = serde_json::to_string(error).expect("a string serializes");
    let mut line = format!("{{\"kind\":\"{kind}\",\"status\":{status},\"error\":{error},\"body\":")
        .into_bytes();
    line.reserve(body.len() + 2);
    line.extend_from_slice(body);
    line.extend_from_slice(b"}\n");
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}
