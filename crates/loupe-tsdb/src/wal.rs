//! The write-ahead log: every append is framed, checksummed and made durable
//! here before it is acknowledged.
//!
//! The log is a sequence of files `wal/{id:016}.wal`. A flush starts a new
//! file; files whose content is in a segment are deleted once the manifest
//! says so. Each frame is `"LPWF", u32 len, u32 crc32c(len ‖ payload), payload`:
//! the marker lets replay find the next frame after damage in one pass.

pub mod file;
pub mod record;
mod replay;

pub use file::WalFile;
pub use record::{ReplayedSeries, WalRecord, decode_record, encode_append, encode_seal};
pub use replay::{ReplayOutcome, TornTail, Verdict, frame, frame_into, judge, read_frames};

use std::path::{Path, PathBuf};

/// Bytes of frame header before each payload.
pub const FRAME_HEADER: usize = 12;

/// Marks the start of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"LPWF";

/// The path of WAL file `id` under `dir`.
pub fn wal_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.wal"))
}

/// WAL file ids present in `dir`, ascending.
pub fn list_wal_files(dir: &Path) -> crate::Result<Vec<u64>> {
    let mut ids = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| crate::Error::io("list", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| crate::Error::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = name
            .strip_suffix(".wal")
            .and_then(|s| s.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}
