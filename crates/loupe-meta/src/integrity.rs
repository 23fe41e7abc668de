//! `integrity_check`: SQLite's own check of a database file, for
//! `loupe store verify`, run on a read-only connection.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::{Error, Result};

/// Runs `PRAGMA integrity_check` on the SQLite file at `path` without
/// changing it; returns the problems SQLite names (empty when it says `ok`).
/// A file SQLite cannot open at all is one problem, not an error: it is what
/// a damaged header looks like.
pub fn integrity_check(path: &Path) -> Result<Vec<String>> {
    if !path.is_file() {
        return Err(Error::not_found(
            "database file",
            path.display().to_string(),
        ));
    }
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => return Ok(vec![format!("cannot open: {e}")]),
    };
    let rows = conn.prepare("PRAGMA integrity_check").and_then(|mut st| {
        st.query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()
    });
    match rows {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(Vec::new()),
        Ok(lines) => Ok(lines),
        // "file is not a database", "database disk image is malformed": damage.
        Err(e) => Ok(vec![e.to_string()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sound_file_passes_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.sqlite");
        let store = crate::MetaStore::open(&path, Default::default()).unwrap();
        drop(store);
        assert_eq!(integrity_check(&path).unwrap(), Vec::<String>::new());
        let mut bytes = std::fs::read(&path).unwrap();
        // The header's magic string: SQLite no longer sees a database.
        bytes[0..16].copy_from_slice(b"not a database!!");
        std::fs::write(&path, &bytes).unwrap();
        let problems = integrity_check(&path).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(integrity_check(&dir.path().join("absent.sqlite")).is_err());
    }
}
