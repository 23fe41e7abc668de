//! A small bounded pool of read-only connections.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags};

use super::MetaOptions;
use crate::error::Result;

pub(super) struct ReadPool {
    path: PathBuf,
    opts: MetaOptions,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    idle: Vec<Connection>,
    /// Connections that exist, idle or lent out.
    open: usize,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf, opts: MetaOptions) -> ReadPool {
        ReadPool {
            path,
            opts,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// An idle connection, a new one while under the limit, or else the next
    /// one returned.
    pub(super) fn get(&self) -> Result<PooledConn<'_>> {
        let mut state = self.state.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(PooledConn {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < self.opts.read_connections.max(1) {
                state.open += 1;
                drop(state);
                // Opened outside the lock: it reads the schema from disk.
                return match self.connect() {
                    Ok(conn) => Ok(PooledConn {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.state.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            self.returned.wait(&mut state);
        }
    }

    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.opts.busy_timeout)?;
        // query_only: a bug that writes through a reader fails loudly instead
        // of racing the writer for the lock.
        conn.execute_batch(&format!(
            "PRAGMA query_only=ON;
             PRAGMA temp_store=MEMORY;
             PRAGMA cache_size=-{};
             PRAGMA mmap_size=268435456;",
            self.opts.cache_kib
        ))?;
        Ok(conn)
    }
}

/// A lent connection; goes back to the pool on drop.
pub(super) struct PooledConn<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl Deref for PooledConn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl DerefMut for PooledConn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.state.lock().idle.push(conn);
            self.pool.returned.notify_one();
        }
    }
}
