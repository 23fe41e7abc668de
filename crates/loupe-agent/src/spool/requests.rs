//! [`Requests`]: entries turned into requests, as the SDK sends them.
//! Consecutive metric (or log) batches without an idempotency key are
//! merged into one body, up to [`MAX_MERGED_BYTES`]; a batch with a key goes
//! alone, under its key, so that a retry is stored once.

use super::entries::Entry;
use super::line::Kind;
use super::{Result, SpoolError};

/// The largest merged request body, as the SDK's.
pub const MAX_MERGED_BYTES: usize = 8 << 20;

/// One request: one entry, or consecutive entries merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub key: Option<String>,
    pub body: Vec<u8>,
    /// Entries it carries.
    pub entries: usize,
    /// Seq and end offset of its last entry: what acknowledging it records.
    pub last_seq: u64,
    pub end: u64,
}

impl Request {
    fn single(e: Entry) -> Request {
        Request {
            kind: e.kind,
            last_seq: e.seq,
            end: e.end,
            key: e.key.clone(),
            entries: 1,
            body: e.into_body(),
        }
    }
}

/// The requests for a stream of entries, built as they are consumed.
pub struct Requests<I> {
    entries: I,
    /// An entry read ahead that did not fit the previous request.
    ahead: Option<Result<Entry>>,
}

impl<I: Iterator<Item = Result<Entry>>> Requests<I> {
    pub fn new(entries: I) -> Self {
        Requests {
            entries,
            ahead: None,
        }
    }

    /// The entries underneath (for their damage report).
    pub fn entries(&self) -> &I {
        &self.entries
    }

    fn next_entry(&mut self) -> Option<Result<Entry>> {
        self.ahead.take().or_else(|| self.entries.next())
    }
}

/// The JSON around a batch's items: `{"series":[` … `]}`.
fn batch_frame(kind: Kind) -> Option<(&'static [u8], &'static [u8])> {
    match kind {
        Kind::Metrics => Some((b"{\"series\":[", b"]}")),
        Kind::Logs => Some((b"{\"records\":[", b"]}")),
        Kind::Run | Kind::Patch => None,
    }
}

/// Whether `e` may join a merged request of `kind` framed by `head`/`tail`:
/// only bodies in the SDK's exact shape, `{"series":[…]}` and nothing
/// else, are merged byte-wise.
fn mergeable(e: &Entry, kind: Kind, (head, tail): (&[u8], &[u8])) -> bool {
    let b = e.body();
    e.kind == kind
        && e.key.is_none()
        && b.len() >= head.len() + tail.len()
        && b.starts_with(head)
        && b.ends_with(tail)
        && array_closes_at(b, head.len() - 1) == Some(b.len() - tail.len())
}

/// Where the array opening at `open` closes, in a body already known to be
/// valid JSON (so only strings need care). `{"series":[1],"x":[2]}` starts
/// and ends like a batch, but its array closes early: merging its bytes
/// would put the next batch's items into `x`.
fn array_closes_at(body: &[u8], open: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &c) in body.iter().enumerate().skip(open) {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// One body holding the items of every body in `batch`.
fn merge(batch: &[Entry], (head, tail): (&[u8], &[u8]), size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head);
    let mut first = true;
    for e in batch {
        let b = e.body();
        let items = &b[head.len()..b.len() - tail.len()];
        if items.trim_ascii().is_empty() {
            continue;
        }
        if !first {
            body.push(b',');
        }
        body.extend_from_slice(items);
        first = false;
    }
    body.extend_from_slice(tail);
    body
}

impl<I: Iterator<Item = Result<Entry>>> Iterator for Requests<I> {
    type Item = Result<Request, SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        let first = match self.next_entry()? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let kind = first.kind;
        let Some(frame) = batch_frame(kind).filter(|&f| mergeable(&first, kind, f)) else {
            return Some(Ok(Request::single(first)));
        };
        let mut size = first.body().len();
        let mut batch = vec![first];
        while let Some(next) = self.next_entry() {
            match next {
                Ok(e) if mergeable(&e, kind, frame) && size + e.body().len() < MAX_MERGED_BYTES => {
                    size += e.body().len();
                    batch.push(e);
                }
                // Sent with the next request; an error after what was read
                // is reported once these are sent.
                other => {
                    self.ahead = Some(other);
                    break;
                }
            }
        }
        if batch.len() == 1 {
            return batch.pop().map(|e| Ok(Request::single(e)));
        }
        let last = batch.last().expect("two or more");
        Some(Ok(Request {
            kind,
            key: None,
            entries: batch.len(),
            last_seq: last.seq,
            end: last.end,
            body: merge(&batch, frame, size),
        }))
    }
}
