//! Holds the run's data back until the server has created the run.
//!
//! Metrics and logs name their run in the path; sent before the run exists
//! they are refused (404) and the sender drops refused requests. So until
//! `POST /api/v1/runs` has succeeded, request bodies go to a bounded disk
//! queue of their own (`held/` in the run directory, opened only when
//! needed). Once the run exists, the held bodies are handed to the sender
//! first, in order, and everything after goes straight to it. If the run
//! never gets created (the server stayed away), the creation waits in
//! `pending_create.json` and `held/` for `loupe sync`.

use std::path::PathBuf;

use parking_lot::Mutex;

use super::api::RunApi;
use crate::{DiskBuffer, Sender};

/// Name of the held-back queue inside a run directory.
pub const HELD_DIR: &str = "held";

/// Bound of the held-back queue on disk (as the sender's buffer).
const HELD_MAX_BYTES: u64 = 256 << 20;

/// Whether creation can still succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Yes,
    No,
    /// The server refused the run for good (a bad token or project):
    /// retrying cannot help; the data stays held for `loupe sync`.
    Refused,
}

struct State {
    created: Created,
    held: Option<DiskBuffer>,
    held_lost: u64,
    error_logged: bool,
}

pub struct Gate {
    state: Mutex<State>,
    held_dir: PathBuf,
    create_body: Vec<u8>,
}

impl Gate {
    pub fn new(held_dir: PathBuf, create_body: Vec<u8>) -> Self {
        Self {
            state: Mutex::new(State {
                created: Created::No,
                held: None,
                held_lost: 0,
                error_logged: false,
            }),
            held_dir,
            create_body,
        }
    }

    pub fn created(&self) -> Created {
        self.state.lock().created
    }

    pub fn create_body(&self) -> &[u8] {
        &self.create_body
    }

    /// Records lost because the held queue could not take them.
    pub fn lost(&self) -> u64 {
        let st = self.state.lock();
        st.held_lost + st.held.as_ref().map_or(0, DiskBuffer::dropped)
    }

    /// Hands a body on: to the sender once the run exists, else to the
    /// held queue.
    pub fn submit(&self, sender: &Sender, path: &str, body: Vec<u8>) {
        let mut st = self.state.lock();
        if st.created == Created::Yes {
            drop(st);
            sender.submit(path, body);
            return;
        }
        if st.held.is_none() {
            match DiskBuffer::open(&self.held_dir, HELD_MAX_BYTES) {
                Ok(b) => st.held = Some(b),
                Err(e) => {
                    st.held_lost += 1;
                    if !st.error_logged {
                        st.error_logged = true;
                        tracing::error!(
                            "loupe run: cannot hold data on disk until the run exists: {e}"
                        );
                    }
                    return;
                }
            }
        }
        if let Some(h) = &mut st.held
            && h.push(path, &body).is_err()
        {
            st.held_lost += 1;
        }
    }

    /// Tries to create the run (once); on success moves the held bodies to
    /// the sender. Returns the state after the attempt.
    pub fn try_create(&self, api: &RunApi, sender: &Sender) -> Created {
        if self.created() != Created::No {
            return self.created();
        }
        // Not under the lock: a slow server must not stall the output path.
        let result = api.create(&self.create_body);
        let mut st = self.state.lock();
        match result {
            Ok(()) => {
                if let Some(mut h) = st.held.take() {
                    // Oldest first, before anything newer can reach the
                    // sender (the lock is held until `created` is set).
                    loop {
                        match h.peek() {
                            Ok(Some((id, rec))) => {
                                sender.submit(&rec.path, rec.body);
                                h.ack(id);
                            }
                            Ok(None) => break,
                            Err(_) => {
                                st.held_lost += 1;
                                break;
                            }
                        }
                    }
                    drop(h);
                    let _ = std::fs::remove_dir_all(&self.held_dir);
                }
                st.created = Created::Yes;
            }
            // 404 to a create: the id is another project's run.
            Err(e)
                if !e.is_transient()
                    || matches!(e, super::api::PatchError::Status { status: 404, .. }) =>
            {
                tracing::warn!("loupe run: the server refused to create the run: {e}");
                st.created = Created::Refused;
            }
            Err(_) => {}
        }
        st.created
    }
}
