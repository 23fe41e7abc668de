//! [`MetaStore`]: one SQLite file, one writer connection, a pool of readers.
//!
//! SQLite in WAL mode lets readers run on their own snapshot while the
//! writer commits, so reads never queue behind ingestion. Writes are
//! serialised in-process by a mutex (SQLite allows one writer anyway; taking
//! the mutex is cheaper than bouncing off `SQLITE_BUSY`).

mod pool;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::Result;
use pool::ReadPool;

/// How to open a [`MetaStore`].
#[derive(Debug, Clone)]
pub struct MetaOptions {
    /// Most read connections open at once; more concurrent readers wait.
    pub read_connections: usize,
    /// How long a statement waits for a lock held by another process (or a
    /// checkpoint) before failing with `SQLITE_BUSY`.
    pub busy_timeout: Duration,
    /// Page cache per connection, in KiB.
    pub cache_kib: u32,
}

impl Default for MetaOptions {
    fn default() -> Self {
        MetaOptions {
            read_connections: 8,
            busy_timeout: Duration::from_secs(5),
            cache_kib: 16 * 1024,
        }
    }
}

/// The metadata store: projects, runs and their summaries, logs, tokens.
///
/// Every write method returns only after its transaction is committed with
/// `synchronous=FULL`, i.e. fsync'd: an acknowledged write survives `kill -9`
/// and power loss. `MetaStore` is `Send + Sync`; share it with an `Arc`.
pub struct MetaStore {
    writer: Mutex<Connection>,
    readers: ReadPool,
    path: PathBuf,
    /// Runs deleted since open ([`MetaStore::runs_deleted`]).
    runs_deleted: AtomicU64,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl MetaStore {
    /// Opens (creating if needed) the database file at `path` and brings its
    /// schema up to date.
    pub fn open(path: &Path, opts: MetaOptions) -> Result<MetaStore> {
        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        writer.busy_timeout(opts.busy_timeout)?;
        // WAL first: the mode is persistent in the file, and `synchronous`
        // means something different per mode. FULL in WAL mode fsyncs the WAL
        // at every commit, which is what "acknowledged means durable" needs
        // (NORMAL would only fsync at checkpoints).
        let mode: String = writer.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(crate::Error::Corrupt(format!(
                "{}: could not switch to WAL journal mode (got {mode})",
                path.display()
            )));
        }
        writer.execute_batch(&format!(
            "PRAGMA synchronous=FULL;
             PRAGMA foreign_keys=ON;
             PRAGMA temp_store=MEMORY;
             PRAGMA cache_size=-{};",
            opts.cache_kib
        ))?;
        schema::migrate(&mut writer)?;
        Ok(MetaStore {
            writer: Mutex::new(writer),
            readers: ReadPool::new(path.to_path_buf(), opts),
            path: path.to_path_buf(),
            runs_deleted: AtomicU64::new(0),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in an immediate write transaction and commits it; an error
    /// from `f` rolls everything back.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock();
        Self::write_on(&mut conn, f)
    }

    /// Like [`write`](Self::write) but gives up at once when another write
    /// holds the connection: for bookkeeping that may be skipped (token
    /// `last_used`), which must never make a request wait behind ingestion.
    pub(crate) fn try_write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Option<Result<T>> {
        let mut conn = self.writer.try_lock()?;
        Some(Self::write_on(&mut conn, f))
    }

    fn write_on<T>(
        conn: &mut Connection,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` on a pooled read connection inside one read transaction, so
    /// every statement in `f` sees the same snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.readers.get()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let out = f(&tx);
        // Read-only: nothing to commit; ending it releases the snapshot.
        tx.finish()?;
        out
    }
}

pub(crate) use loupe_model::clock::now_s as now;

impl MetaStore {
    /// How many runs this store has deleted since it was opened. A run's
    /// project never changes while the run exists, but a deleted run's id
    /// can come back in another project: a cache of run facts keeps the
    /// count it was filled under and starts over when it moves. It moves
    /// after the deletion commits.
    pub fn runs_deleted(&self) -> u64 {
        self.runs_deleted.load(Ordering::Acquire)
    }

    pub(crate) fn count_run_deleted(&self) {
        self.runs_deleted.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MetaStore>();
    }
}
