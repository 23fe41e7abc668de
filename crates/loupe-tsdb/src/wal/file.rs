//! One open WAL file being appended to.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::FRAME_HEADER;
use crate::fsutil;
use crate::{Error, Result};

/// The WAL file appends go to. Keeps the length of its last durable frame,
/// so a failed write can be cut back and later frames never follow garbage.
pub struct WalFile {
    id: u64,
    path: PathBuf,
    file: File,
    good_len: u64,
    frame_buf: Vec<u8>,
}

impl WalFile {
    /// Creates WAL file `id`, starting with the seal of its predecessor
    /// (`id - 1` ended, acknowledged, at `prev_len` bytes; 0 when it does not
    /// exist), and makes both durable.
    ///
    /// The seal is what lets replay tell a cut or damaged older file (damage
    /// to acknowledged data) from the torn tail a crash leaves in the newest.
    pub fn create(dir: &Path, id: u64, prev_len: u64) -> Result<Self> {
        let path = super::wal_path(dir, id);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let mut wal = Self {
            id,
            path,
            file,
            good_len: 0,
            frame_buf: Vec::new(),
        };
        let seal = super::encode_seal(id.saturating_sub(1), prev_len);
        let made = fsutil::sync_dir(dir).and_then(|()| {
            wal.append(&[&seal], true)
                .map_err(|(AppendError::Failed(e) | AppendError::Unusable(e))| e)
        });
        match made {
            Ok(()) => Ok(wal),
            Err(e) => {
                // Leave no half-made file behind: the next try creates the
                // same id again (a full disk must not block it forever).
                let _ = std::fs::remove_file(&wal.path);
                Err(e)
            }
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of complete, written frames.
    pub fn len(&self) -> u64 {
        self.good_len
    }

    pub fn is_empty(&self) -> bool {
        self.good_len == 0
    }

    /// Writes the payloads as frames in one `write`, then fsyncs when `sync`.
    ///
    /// On failure the file is cut back to its previous length, so the frames
    /// that were durable before stay the last thing in the file; if even that
    /// fails, the caller must stop using this file.
    pub fn append(&mut self, payloads: &[&[u8]], sync: bool) -> Result<(), AppendError> {
        self.frame_buf.clear();
        for p in payloads {
            super::frame_into(&mut self.frame_buf, p);
        }
        debug_assert!(
            payloads
                .iter()
                .all(|p| p.len() + FRAME_HEADER <= u32::MAX as usize)
        );
        let res = self
            .file
            .write_all(&self.frame_buf)
            .map_err(|e| Error::io("write", &self.path, e))
            .and_then(|()| {
                if sync {
                    self.file
                        .sync_data()
                        .map_err(|e| Error::io("fsync", &self.path, e))
                } else {
                    Ok(())
                }
            });
        match res {
            Ok(()) => {
                self.good_len += self.frame_buf.len() as u64;
                if self.frame_buf.capacity() > 64 << 20 {
                    self.frame_buf = Vec::new();
                }
                Ok(())
            }
            Err(err) => {
                // Cut the partial frames away and move the write position
                // back with them: later frames must follow the last good one
                // directly, never a gap or a fragment.
                let cut = self
                    .file
                    .set_len(self.good_len)
                    .and_then(|()| self.file.seek(SeekFrom::Start(self.good_len)).map(|_| ()))
                    .and_then(|()| self.file.sync_all());
                match cut {
                    Ok(()) => Err(AppendError::Failed(err)),
                    Err(_) => Err(AppendError::Unusable(err)),
                }
            }
        }
    }

    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.path, e))
    }
}

/// Why an append to the WAL failed.
#[derive(Debug)]
pub enum AppendError {
    /// Nothing of this append is in the file; the file is fine for the next one.
    Failed(Error),
    /// The file could not be cut back; it must be replaced before the next append.
    Unusable(Error),
}
