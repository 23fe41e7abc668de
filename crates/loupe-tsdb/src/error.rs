//! The engine's one error type.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on a named file: disk full, read-only
    /// directory, permissions. Nothing acknowledged is lost when this happens.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes failed their checksum or did not parse.
    #[error("corrupt data in {path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// A column failed to decode (no file known at that level).
    #[error("corrupt column: {0}")]
    Codec(String),
    /// The caller asked for something the engine does not accept.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A series key failed validation.
    #[error("invalid series key: {0}")]
    Key(#[from] loupe_model::KeyError),
    /// An earlier write failed to reach disk, so the engine refuses further
    /// appends until it is reopened or the failed write can be retried.
    #[error("the write-ahead log failed earlier and is read-only until it recovers: {0}")]
    WalPoisoned(String),
    /// The engine has been closed.
    #[error("the database is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            detail: detail.into(),
        }
    }

    /// True when the error means stored bytes are damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::Codec(_))
    }
}
