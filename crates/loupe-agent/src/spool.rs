//! [`Spool`]: the reader of the Python SDK's offline spool — the run
//! directory the SDK leaves when the server was away (or the run was
//! `mode="offline"`), which `loupe sync` uploads. The writer is the SDK
//! (`python/loupe/_spool.py`, the format's reference); this is the other
//! half, next to the agent's own [`DiskBuffer`](crate::DiskBuffer).
//!
//! ```text
//! DIR/run.json        the run: {"id", "server", "create": {...}, "final_status", ...}
//! DIR/spool.jsonl     one request per line, appended in order:
//!                     {"kind":"metrics","seq":7,"body":{"series":[...]}}
//!                     {"kind":"logs","seq":8,"key":"3f9c0a1b2c4d:12","body":{"records":[...]}}
//! DIR/acked           {"seq": N, "offset": B}: the acknowledgement marker
//! DIR/lock            flock'd by the live SDK process that owns DIR
//! DIR/rejected.jsonl  requests the server refused for good, set aside
//! ```
//!
//! `kind` names the request (`run`: create or resume, `metrics`, `logs`,
//! `patch`: status); `body` is the exact API request body, kept as the bytes
//! written (never parsed into values and re-encoded: NaN travels as the
//! string `"NaN"` and only the server reads it); `key` is a log batch's
//! `Idempotency-Key`, so every send of it is stored once.
//!
//! **Invariants.**
//! - *Acknowledged* means the marker says so: every line up to seq N, ending
//!   at byte B, was taken by the server. [`Spool::ack`] replaces the marker
//!   atomically (write, fsync, rename, fsync the directory) after each
//!   acknowledged request and before the next starts, so a line is uploaded
//!   once. A marker whose offset does not fit the file (past its end, not at
//!   a line start, or in front of a line it claims) is placed by its seq
//!   instead; an unreadable marker counts as none (everything is sent
//!   again, as the SDK does) and is reported by [`Spool::ignored_marker`].
//! - A *torn* line is the bytes after the file's last newline: a crash cut
//!   the write short, so nothing acknowledged it. It is never read, and the
//!   SDK cuts it off before its next append; [`Spool::torn_tail`] says where.
//! - A *damaged* line is a complete line that does not decode (not JSON, an
//!   unknown kind, no seq, a body that is not an object, longer than
//!   [`MAX_LINE_BYTES`]). It costs that line and nothing else: it is skipped,
//!   left in the file, and reported with its byte offset
//!   ([`Entries::damaged`]).
//! - *Set aside*: a request the server refused for good (400, 413, 415,
//!   422) goes to `rejected.jsonl` in the SDK's format ([`Spool::set_aside`])
//!   and then counts as acknowledged: retrying cannot help it.
//! - One process at a time: [`Spool::open`] takes `lock` and holds it while
//!   the [`Spool`] lives; a live SDK holds it while it appends.

mod ack;
mod entries;
mod line;
mod rejected;
mod requests;
mod run_info;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub use ack::{AckMarker, MarkerError};
pub use entries::{DamagedLine, Entries, Entry, MAX_LINE_BYTES};
pub use line::{Kind, LineError, SpoolLine, decode_line, valid_key};
pub use requests::{MAX_MERGED_BYTES, Request, Requests};
pub use run_info::RunInfo;

/// The request lines.
pub const SPOOL_FILE: &str = "spool.jsonl";
/// The acknowledgement marker.
pub const ACKED_FILE: &str = "acked";
/// The run's description, written by the SDK when the run starts.
pub const RUN_INFO_FILE: &str = "run.json";
/// Locked by the process that owns the directory.
pub const LOCK_FILE: &str = "lock";
/// Requests the server refused for good.
pub const REJECTED_FILE: &str = "rejected.jsonl";

/// Errors of the spool reader; each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: in use by a live process (it holds {}); it uploads its spool itself", dir.display(), lock.display())]
    InUse { dir: PathBuf, lock: PathBuf },
    #[error("{path}: {source}")]
    RunInfo {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = SpoolError> = std::result::Result<T, E>;

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes at the end of `spool.jsonl` after its last newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Where the torn line starts.
    pub offset: u64,
    pub len: u64,
}

/// A run directory's spool, opened for upload; see the module docs.
pub struct Spool {
    dir: PathBuf,
    path: PathBuf,
    /// Holds `lock` while this spool is open.
    _lock: File,
    /// Bytes of complete lines.
    complete: u64,
    torn: Option<TornTail>,
    last_seq: u64,
    acked_seq: u64,
    /// Where reading starts: the end of an acknowledged line (or 0).
    acked_offset: u64,
    ignored_marker: Option<MarkerError>,
}

impl Spool {
    /// Opens `dir`'s spool (a missing `spool.jsonl` is an empty one) and
    /// takes its lock: [`SpoolError::InUse`] when a live process holds it.
    pub fn open(dir: &Path) -> Result<Spool> {
        let lock_path = dir.join(LOCK_FILE);
        let lock = loupe_model::lock::try_lock_file(&lock_path)
            .map_err(io_error(&lock_path))?
            .ok_or_else(|| SpoolError::InUse {
                dir: dir.to_path_buf(),
                lock: lock_path.clone(),
            })?;
        let path = dir.join(SPOOL_FILE);
        let layout = entries::FileLayout::read(&path)?;
        let (marker, ignored_marker) = match AckMarker::read(&dir.join(ACKED_FILE)) {
            Ok(m) => (m, None),
            Err(e) => (None, Some(e)),
        };
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            path,
            _lock: lock,
            complete: layout.complete,
            torn: layout.torn,
            last_seq: layout.last_seq,
            acked_seq: 0,
            acked_offset: 0,
            ignored_marker,
        };
        if let Some(m) = marker {
            (spool.acked_seq, spool.acked_offset) = spool.place_marker(m)?;
        }
        Ok(spool)
    }

    /// `(seq, offset)` to resume from: the marker's offset when it sits at
    /// the start of a line after the ones it acknowledges, else the start
    /// (lines up to its seq are then skipped by seq).
    fn place_marker(&self, m: AckMarker) -> Result<(u64, u64)> {
        if m.seq == 0 {
            return Ok((0, 0));
        }
        if m.seq >= self.last_seq {
            return Ok((self.last_seq, self.complete));
        }
        let fits = match m.offset {
            Some(off) if off <= self.complete => {
                let mut after = Entries::open(&self.path, off, self.complete, 0)?;
                after.starts_a_line()? && matches!(after.next(), Some(Ok(e)) if e.seq > m.seq)
            }
            _ => false,
        };
        Ok((m.seq, if fits { m.offset.unwrap_or(0) } else { 0 }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `spool.jsonl` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether lines remain that the server has not acknowledged.
    pub fn pending(&self) -> bool {
        self.last_seq > self.acked_seq
    }

    /// Seq of the last complete, readable line (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Seq of the last acknowledged line (0 when none).
    pub fn acked_seq(&self) -> u64 {
        self.acked_seq
    }

    /// The torn last line, if the file ends in one.
    pub fn torn_tail(&self) -> Option<TornTail> {
        self.torn
    }

    /// Why the `acked` marker was unreadable (and so ignored), if it was.
    pub fn ignored_marker(&self) -> Option<&MarkerError> {
        self.ignored_marker.as_ref()
    }

    /// The entries after the acknowledged ones, in order, read as they are
    /// consumed (a spool may be larger than memory).
    pub fn unacked(&self) -> Result<Entries> {
        Entries::open(&self.path, self.acked_offset, self.complete, self.acked_seq)
    }

    /// Records that every line up to `seq`, ending at byte `end`, was
    /// acknowledged; durable when it returns.
    pub fn ack(&mut self, seq: u64, end: u64) -> Result<()> {
        if seq <= self.acked_seq {
            return Ok(());
        }
        AckMarker {
            seq,
            offset: Some(end),
        }
        .write(&self.dir.join(ACKED_FILE))?;
        (self.acked_seq, self.acked_offset) = (seq, end);
        Ok(())
    }

    /// Appends a request the server refused for good to `rejected.jsonl`.
    pub fn set_aside(&self, kind: Kind, status: u16, error: &str, body: &[u8]) -> Result<PathBuf> {
        let path = self.dir.join(REJECTED_FILE);
        rejected::append(&path, kind, status, error, body).map_err(io_error(&path))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests;
