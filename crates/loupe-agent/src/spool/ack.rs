//! The `acked` marker, `{"seq": N, "offset": B}`: every line up to seq N,
//! ending at byte B, was acknowledged. Read and written the SDK's way.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Result, io_error};

/// The acknowledgement marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckMarker {
    /// Lines up to this seq were acknowledged (0: none).
    pub seq: u64,
    /// Where the line after them starts, when the marker says.
    pub offset: Option<u64>,
}

/// Why a marker file was not read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct MarkerError {
    pub path: String,
    pub why: String,
}

/// The file as the SDK writes it; negative numbers (never written) read as
/// "no marker" and "no offset".
#[derive(Deserialize, Serialize)]
struct MarkerFile {
    seq: i64,
    #[serde(default)]
    offset: Option<i64>,
}

impl AckMarker {
    /// `Ok(None)` when there is no marker.
    pub fn read(path: &Path) -> Result<Option<AckMarker>, MarkerError> {
        let err = |why: String| MarkerError {
            path: path.display().to_string(),
            why,
        };
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e.to_string())),
        };
        let m: MarkerFile = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
        Ok(Some(AckMarker {
            seq: u64::try_from(m.seq).unwrap_or(0),
            offset: m.offset.and_then(|o| u64::try_from(o).ok()),
        }))
    }

    /// Replaces the marker at `path`: write a temporary file, fsync, rename,
    /// fsync the directory, so a crash leaves the old marker or the new one
    /// and the new one survives a power loss once this returns.
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let file = MarkerFile {
            seq: i64::try_from(self.seq).unwrap_or(i64::MAX),
            offset: self.offset.map(|o| i64::try_from(o).unwrap_or(i64::MAX)),
        };
        let text = serde_json::to_vec(&file).expect("two integers serialize");
        let mut f = File::create(&tmp).map_err(io_error(&tmp))?;
        f.write_all(&text).map_err(io_error(&tmp))?;
        f.sync_all().map_err(io_error(&tmp))?;
        fs::rename(&tmp, path).map_err(io_error(path))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(dir))?;
        }
        Ok(())
    }
}
