//! The manifest: which segment files make up the database, and where WAL
//! replay starts. Replaced atomically; the one source of truth on open.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::{Error, Result};

pub const MANIFEST_FILE: &str = "MANIFEST";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    /// Published segments, oldest first: a newer segment's points win over
    /// an older one's for the same step.
    pub segments: Vec<u64>,
    pub next_segment_id: u64,
    /// WAL files with lower ids hold only data already in segments.
    pub wal_start: u64,
    /// Series ids are never reused.
    pub next_series_id: u64,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            format: FORMAT,
            segments: Vec::new(),
            next_segment_id: 1,
            wal_start: 1,
            next_series_id: 1,
        }
    }
}

impl Manifest {
    /// Reads the manifest in `dir`, or `None` for a new database.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(&path, format!("manifest does not parse: {e}")))?;
        if m.format != FORMAT {
            return Err(Error::corrupt(
                &path,
                format!(
                    "manifest format {} is not supported (expected {FORMAT})",
                    m.format
                ),
            ));
        }
        Ok(Some(m))
    }

    /// Replaces the manifest atomically.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("manifest serialises");
        fsutil::write_atomic(&dir.join(MANIFEST_FILE), &bytes)
    }
}
