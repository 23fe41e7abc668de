//! [`Sender`]: ships request bodies to the server from a background thread.
//!
//! - [`Sender::submit`] never waits on the network: it appends to a bounded
//!   in-memory queue. When that queue is full, or while the server is
//!   failing, the queue goes to the [`DiskBuffer`] instead (a local,
//!   bounded write).
//! - The thread sends the oldest record first: the disk buffer's records are
//!   always older than the memory queue's, so it drains the disk first. A
//!   record stays queued until the server answers 2xx, so nothing is lost
//!   to a failed attempt, and nothing is sent twice within one process.
//! - Failures (no connection, timeouts, 5xx, 408, 429) are retried with
//!   exponential backoff (200 ms doubling to 30 s, ±50% jitter so a fleet of
//!   agents does not come back in step); at the first failure the memory
//!   queue is spooled to disk, so a crash during an outage loses nothing.
//! - Any other 4xx is a permanent refusal (a bad token, a malformed batch):
//!   retrying cannot help, so the record is dropped, counted, and logged
//!   once per path.
//! - Bodies are gzipped (`Content-Encoding: gzip`); a token goes in
//!   `Authorization: Bearer`.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loupe_client::{Backoff, Client, ClientOptions, Encoding, Error, Method, Raw};
use parking_lot::{Condvar, Mutex};

use crate::AgentError;
use crate::buffer::{DiskBuffer, Record, RecordId};

/// How to reach the server and where to spool.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Base URL, e.g. `http://127.0.0.1:7070`.
    pub server: String,
    pub token: Option<String>,
    pub buffer_dir: PathBuf,
    /// Bound of the disk buffer (segment files together).
    pub buffer_max_bytes: u64,
    /// Records held in memory before they overflow to disk.
    pub memory_records: usize,
    /// Longest one request may take, connection included.
    pub request_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl SenderConfig {
    /// Defaults: 256 MiB on disk, 64 records in memory, 10 s per request,
    /// backoff from 200 ms to 30 s.
    pub fn new(server: &str, buffer_dir: PathBuf) -> SenderConfig {
        SenderConfig {
            server: server.trim_end_matches('/').to_string(),
            token: None,
            buffer_dir,
            buffer_max_bytes: 256 << 20,
            memory_records: 64,
            request_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Counters since the sender started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Records the server acknowledged.
    pub sent: u64,
    /// Records written to the disk buffer.
    pub spooled: u64,
    /// Records lost: refused permanently by the server, dropped by the disk
    /// buffer's bound, or not writable to disk.
    pub dropped: u64,
    /// The part of `dropped` the server refused (4xx).
    pub refused: u64,
    /// Records waiting in memory and on disk now.
    pub queued_memory: usize,
    pub queued_disk: u64,
    /// Whether the last attempt failed (the server looks away).
    pub server_down: bool,
}

/// Where the record being sent lives.
#[derive(Debug, Clone, Copy)]
enum InFlight {
    /// The memory queue's front; `Some` once a spill moved it to disk.
    Memory(Option<RecordId>),
    Disk(RecordId),
}

struct State {
    mem: VecDeque<Record>,
    disk: DiskBuffer,
    in_flight: Option<InFlight>,
    down: bool,
    stop: bool,
    /// Set by `flush` to cut a backoff short.
    retry_now: bool,
    sent: u64,
    spooled: u64,
    lost: u64,
    refused: u64,
    refused_paths: HashSet<String>,
    disk_error_logged: bool,
    finished: bool,
    memory_records: usize,
}

impl State {
    fn idle(&self) -> bool {
        self.mem.is_empty() && self.disk.is_empty() && self.in_flight.is_none()
    }

    /// Moves the memory queue to disk, oldest first.
    fn spill(&mut self) {
        // Invariant: a record is taken from memory only while the disk is
        // empty, and every spill moves the memory front first, so a record
        // in flight from memory lands as the disk's oldest record, keeping
        // the order.
        let mut first = true;
        while let Some(rec) = self.mem.pop_front() {
            match self.disk.push(&rec.path, &rec.body) {
                Ok(id) => {
                    self.spooled += 1;
                    if first && let Some(InFlight::Memory(None)) = self.in_flight {
                        self.in_flight = Some(InFlight::Memory(Some(id)));
                    }
                }
                Err(e) => {
                    self.lost += 1;
                    if !self.disk_error_logged {
                        self.disk_error_logged = true;
                        tracing::error!("loupe agent: cannot spool to disk, dropping data: {e}");
                    }
                }
            }
            first = false;
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the sending thread (new record, stop, flush).
    wake: Condvar,
    /// Wakes `flush` and `shutdown` (progress, thread exit).
    progress: Condvar,
}

/// See the module docs.
pub struct Sender {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What one attempt came to.
enum Outcome {
    Sent,
    Refused(String),
    Retry(String),
}

impl Sender {
    /// Opens the disk buffer (replaying what an earlier run left there) and
    /// starts the sending thread.
    pub fn start(cfg: SenderConfig) -> Result<Sender, AgentError> {
        let disk = DiskBuffer::open(&cfg.buffer_dir, cfg.buffer_max_bytes)?;
        if !disk.is_empty() {
            tracing::info!(
                "loupe agent: {} buffered requests from an earlier run will be sent",
                disk.pending()
            );
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mem: VecDeque::new(),
                disk,
                in_flight: None,
                down: false,
                stop: false,
                retry_now: false,
                sent: 0,
                spooled: 0,
                lost: 0,
                refused: 0,
                refused_paths: HashSet::new(),
                disk_error_logged: false,
                finished: false,
                memory_records: cfg.memory_records.max(1),
            }),
            wake: Condvar::new(),
            progress: Condvar::new(),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("loupe-sender".into())
            .spawn(move || run(s2, cfg))
            .map_err(AgentError::Thread)?;
        Ok(Sender {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a request body for `path` (e.g. `/api/v1/metrics`). Never waits
    /// on the network; at worst it writes to the local disk buffer.
    pub fn submit(&self, path: &str, body: Vec<u8>) {
        let mut st = self.shared.state.lock();
        st.mem.push_back(Record {
            path: path.to_string(),
            body,
        });
        // While the server is away, or when memory is full, keep the queue
        // on disk: bounded memory, and nothing lost to a crash.
        if st.down || st.mem.len() > st.memory_records {
            st.spill();
        }
        drop(st);
        self.shared.wake.notify_one();
    }

    /// Waits until everything queued has been acknowledged by the server, or
    /// `timeout` passes. Cuts a retry backoff short. `true` when drained.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        st.retry_now = true;
        self.shared.wake.notify_one();
        while !st.idle() {
            if st.finished {
                return false;
            }
            if self
                .shared
                .progress
                .wait_until(&mut st, deadline)
                .timed_out()
            {
                return st.idle();
            }
        }
        true
    }

    /// The counters now.
    pub fn stats(&self) -> SenderStats {
        let st = self.shared.state.lock();
        SenderStats {
            sent: st.sent,
            spooled: st.spooled,
            dropped: st.lost + st.refused + st.disk.dropped(),
            refused: st.refused,
            queued_memory: st.mem.len(),
            queued_disk: st.disk.pending(),
            server_down: st.down,
        }
    }

    /// Flushes for at most `timeout`, then stops the thread. What could not
    /// be sent stays in the disk buffer for the next start. `true` when
    /// everything was delivered.
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        let delivered = self.flush(timeout);
        // A request in progress may take up to its timeout; wait for it only
        // within what is left of ours (and at least a moment).
        let left = timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(200));
        self.stop(left);
        delivered
    }

    fn stop(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut st = self.shared.state.lock();
        st.stop = true;
        self.shared.wake.notify_all();
        while !st.finished {
            if self
                .shared
                .progress
                .wait_until(&mut st, deadline)
                .timed_out()
            {
                break;
            }
        }
        if st.finished {
            drop(st);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        } else {
            // The thread is stuck in a request: keep its queue safe on disk
            // ourselves and leave it behind (the process is exiting).
            st.spill();
            self.thread = None;
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(Duration::from_millis(200));
        }
    }
}

/// The sending thread.
fn run(shared: Arc<Shared>, cfg: SenderConfig) {
    let client = Client::new(
        &cfg.server,
        ClientOptions {
            token: cfg.token.clone(),
            timeout: Some(cfg.request_timeout),
            connect_timeout: Some(cfg.request_timeout.min(Duration::from_secs(3))),
        },
    );
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max).jittered();
    let mut retry_at: Option<Instant> = None;
    let mut last_error_logged: Option<Instant> = None;
    loop {
        // Pick the oldest record, waiting for one (or for the backoff).
        let (rec, src) = {
            let mut st = shared.state.lock();
            loop {
                if st.stop {
                    st.spill();
                    st.finished = true;
                    shared.progress.notify_all();
                    return;
                }
                if st.retry_now {
                    st.retry_now = false;
                    retry_at = None;
                }
                if let Some(t) = retry_at {
                    if Instant::now() < t {
                        shared.wake.wait_until(&mut st, t);
                        continue;
                    }
                    retry_at = None;
                }
                if !st.disk.is_empty() {
                    match st.disk.peek() {
                        Ok(Some((id, rec))) => {
                            st.in_flight = Some(InFlight::Disk(id));
                            break (rec, InFlight::Disk(id));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!("loupe agent: cannot read the disk buffer: {e}");
                            retry_at = Some(Instant::now() + backoff.max());
                            continue;
                        }
                    }
                }
                if let Some(rec) = st.mem.front() {
                    // Marked in flight under the same lock, so a spill by
                    // `submit` knows the front is being sent.
                    let rec = rec.clone();
                    st.in_flight = Some(InFlight::Memory(None));
                    break (rec, InFlight::Memory(None));
                }
                shared.progress.notify_all();
                shared.wake.wait(&mut st);
            }
        };
        let outcome = post(&client, &rec);

        let mut st = shared.state.lock();
        // A spill while we were sending may have moved the record to disk.
        let src = st.in_flight.take().unwrap_or(src);
        let delivered_or_refused = |st: &mut State| match src {
            InFlight::Memory(None) => {
                st.mem.pop_front();
            }
            InFlight::Memory(Some(id)) | InFlight::Disk(id) => st.disk.ack(id),
        };
        match outcome {
            Outcome::Sent => {
                delivered_or_refused(&mut st);
                st.sent += 1;
                if st.down {
                    tracing::info!("loupe agent: the server at {} answers again", cfg.server);
                }
                st.down = false;
                backoff.reset();
                last_error_logged = None;
            }
            Outcome::Refused(why) => {
                delivered_or_refused(&mut st);
                st.refused += 1;
                st.down = false;
                if st.refused_paths.insert(rec.path.clone()) {
                    tracing::error!(
                        "loupe agent: the server refused a request to {} ({why}); \
                         such requests are dropped, not retried",
                        rec.path
                    );
                }
            }
            Outcome::Retry(why) => {
                if let InFlight::Memory(None) = src {
                    // Still the memory front: the spill moves it to disk first.
                    st.in_flight = Some(src);
                }
                st.down = true;
                st.spill();
                st.in_flight = None;
                // Log the first failure, then at most once a minute.
                if last_error_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(
                        "loupe agent: cannot send to {} ({why}); buffering to disk and retrying",
                        cfg.server
                    );
                    last_error_logged = Some(Instant::now());
                }
                retry_at = Some(Instant::now() + backoff.next_delay());
            }
        }
        shared.progress.notify_all();
    }
}

/// One POST of a gzipped body, and what its answer means for the record.
fn post(client: &Client, rec: &Record) -> Outcome {
    let sent = client.send(Raw {
        method: Method::Post,
        path: &rec.path,
        body: &rec.body,
        encoding: Encoding::Gzip,
        idempotency_key: None,
    });
    match sent {
        Ok(_) => Outcome::Sent,
        Err(Error::Unreachable { why, .. }) => Outcome::Retry(why),
        Err(e) if e.is_retryable() => Outcome::Retry(match e.status() {
            Some(s) => format!("HTTP {s}"),
            None => e.to_string(),
        }),
        Err(e) => Outcome::Refused(match e.status() {
            Some(s) => format!("HTTP {s}: {e}"),
            None => e.to_string(),
        }),
    }
}
