//! The one error type of this crate.

/// What can go wrong in the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing named does not exist (or is not visible in the scope asked).
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },

    /// The caller's input is malformed; the message names what and why.
    #[error("invalid input: {0}")]
    Invalid(String),

    /// The request is well formed but clashes with what is stored, e.g. resuming
    /// a run id that belongs to another project.
    #[error("conflict: {0}")]
    Conflict(String),

    /// The database file was written by a newer Loupe with a schema this build
    /// does not know; opening it anyway could corrupt it.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },

    /// Stored bytes that do not decode (e.g. a config column that is not JSON).
    #[error("corrupt metadata: {0}")]
    Corrupt(String),

    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            what,
            id: id.into(),
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// True when the write failed for want of disk space (`SQLITE_FULL`, an
    /// `ENOSPC` underneath). The API answers it as the time-series store's
    /// full disk is answered (503: nothing was stored, retry later), never 500.
    pub fn is_no_space(&self) -> bool {
        matches!(
            self,
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_database_is_no_space_and_other_failures_are_not() {
        // A page limit makes SQLite fail exactly as a full disk does: SQLITE_FULL.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA max_page_count=4; CREATE TABLE t(x BLOB UNIQUE);")
            .unwrap();
        let full = (0..100)
            .map(|i| conn.execute("INSERT INTO t VALUES (zeroblob(2000 + ?1))", [i]))
            .find_map(|r| r.err())
            .expect("the page limit is reached");
        assert!(Error::Sqlite(full).is_no_space());
        let dup = conn
            .execute("INSERT INTO t VALUES (zeroblob(2000))", [])
            .unwrap_err();
        assert!(!Error::Sqlite(dup).is_no_space());
        assert!(!Error::invalid("x").is_no_space());
    }
}
