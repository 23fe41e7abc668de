//! Advisory, exclusive file locks: "one process owns this directory". Built
//! on std's `File::try_lock` (an `flock` on Unix, so it interoperates with
//! Python's `fcntl.flock` on the SDK's spool); the lock is released when the
//! returned file is dropped or the process dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// Opens (creating it if needed) and locks `path` without waiting. `Ok(None)`
/// when another open file holds the lock; `Err` when the file cannot be
/// opened or locking itself fails. The file's contents are left alone.
pub fn try_lock_file(path: &Path) -> io::Result<Option<File>> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("loupe-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("LOCK");
        let first = try_lock_file(&path).unwrap().expect("free lock");
        assert!(try_lock_file(&path).unwrap().is_none());
        drop(first);
        assert!(try_lock_file(&path).unwrap().is_some());
        assert!(try_lock_file(&dir.join("missing/LOCK")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
