//! The `loupe run` supervisor: runs a command as a child process and makes a
//! Loupe run of it, with no code in the command.
//!
//! What [`supervise`] does, in order:
//! 1. blocks the forwarded signals (see `signals.rs`), picks a run id, and
//!    creates the run (`POST /api/v1/runs`, at most 2 s: the command must not
//!    wait on the server) with its name, command line, working directory,
//!    git commit and dirty flag, host, and rank / world size / group from the
//!    torchrun, MPI, PMI or SLURM environment;
//! 2. starts the child with piped stdout and stderr, `PYTHONUNBUFFERED=1`,
//!    and `LOUPE_RUN_ID`, `LOUPE_SERVER`, `LOUPE_TOKEN`, `LOUPE_PROJECT`,
//!    `LOUPE_DIR` so that the Python SDK inside attaches to the same run
//!    (and `LOUPE_CONSOLE=0` unless set: the supervisor already captures the
//!    console, so the SDK must not send each line a second time);
//! 3. tees every byte of the child's output to its own stdout/stderr
//!    unchanged, as soon as it is read; splits it into lines on `\n` and
//!    `\r`; sends each line as a log record (stderr lines that belong to a
//!    traceback or look like errors get level `error`, warnings `warning`)
//!    and the metrics a [`LineMetricFn`] finds in it as run series (the
//!    line's step when it names one; the time the line was read);
//! 4. every `interval` samples the process tree, the host and the GPUs;
//!    every 10 s sends a heartbeat; forwards signals to the child;
//! 5. when the child exits: status `finished` (exit 0), `failed` (non-zero)
//!    or `killed` (a signal); for failures, the last Python traceback's
//!    exception type, message and text, the signal, and the last 50 stderr
//!    lines go into the run's `failure`. Everything is flushed with a
//!    bounded wait; what the server did not take stays in the run
//!    directory `DIR/run-ID` (`buffer/`, `held/`, `pending_create.json`,
//!    `pending_patch.json`) for `loupe sync DIR/run-ID`.
//!
//! Metrics and logs go through the [`Sender`] (ordered, retried, spooled to
//! disk while the server is away, never blocking the output path). The
//! sender drops what the server refuses, and data sent before its run
//! exists is refused (404); so while the run is not created (the server was
//! away at the start) the bodies are held in `held/` in the run directory
//! (see `gate.rs`) and creation is retried every 3 s; once it succeeds they
//! go to the sender first, in order. The creation, heartbeats and the final
//! status are sent directly (the sender only POSTs gzipped bodies, which the
//! run endpoints do not read), with short timeouts.
//!
//! # System series
//! | name | meaning |
//! |---|---|
//! | `sys/proc.cpu_percent` | CPU of the child and its descendants, % of one core |
//! | `sys/proc.rss_bytes` | their resident memory, summed |
//! | `sys/proc.threads`, `sys/proc.processes` | thread and process counts |
//! | `sys/proc.read_bytes`, `sys/proc.write_bytes` | storage IO of the live processes since they started (cumulative) |
//! | `sys/host.cpu_percent`, `sys/host.cpu_iowait_percent` | the machine's CPU busy / IO wait, % |
//! | `sys/host.load1` | 1-minute load average |
//! | `sys/host.memory_used_bytes`, `…_available_bytes`, `…_total_bytes`, `sys/host.swap_used_bytes` | memory |
//! | `sys/host.disk_read_bytes_per_s`, `…_write_bytes_per_s` | all whole disks, summed |
//! | `sys/host.net_rx_bytes_per_s`, `…_tx_bytes_per_s` | all interfaces but `lo`, summed |
//! | `gpu/{i}/utilization`, `gpu/{i}/memory_utilization` | % of the sample period |
//! | `gpu/{i}/memory_used_bytes`, `gpu/{i}/memory_total_bytes` | device memory |
//! | `gpu/{i}/process_memory_bytes` | device memory of the supervised processes |
//! | `gpu/{i}/temperature` | °C |
//! | `gpu/{i}/power_watts`, `gpu/{i}/power_limit_watts` | W |
//! | `gpu/{i}/sm_clock_mhz`, `gpu/{i}/memory_clock_mhz` | MHz |
//! | `gpu/{i}/throttle_reasons` | NVML's clock-throttle bitmask |
//! | `gpu/{i}/ecc_corrected_errors`, `gpu/{i}/ecc_uncorrected_errors` | volatile counts |
//! | `gpu/{i}/pcie_rx_bytes_per_s`, `…tx…`, `gpu/{i}/nvlink_rx_bytes_per_s`, `…tx…` | bytes/s |
//! | `gpu/{i}/xid` | Xid error code, one point per event |
//!
//! All are points without a step (their time is the sample's).

mod api;
mod batch;
pub mod context;
mod gate;
mod lines;
mod progress;
mod signals;
mod system;
pub mod traceback;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{Map, Value, json};

pub use api::{
    PENDING_CREATE_FILE, PENDING_PATCH_FILE, PatchError, PendingError, PendingRequest, RunApi,
    load_pending,
};
pub use gate::HELD_DIR;

pub use batch::Batch;
use gate::{Created, Gate};
pub use lines::{LineSplitter, MAX_LINE_BYTES, Piece};
use progress::{RedrawHold, is_progress_bar};
pub use traceback::{PythonException, TracebackTracker};

use crate::{AgentError, GpuCollector, HostCollector, ProcessTreeSampler, Sender, SenderConfig};

/// What [`SuperviseConfig::on_start`] calls with the new run's id.
pub type RunStartFn = Box<dyn FnOnce(&str) + Send>;

/// Finds metrics in one line of output: `(step, [(name, value)])`. The
/// supervisor takes it as a function so this crate needs no parser; `loupe
/// run` passes `loupe_ingest::LineMetricExtractor`. One per stream: a
/// parser may keep state between lines.
pub type LineMetricFn = Box<dyn FnMut(&str) -> Option<(Option<i64>, Vec<(String, f64)>)> + Send>;

/// Stderr lines kept for the run's `failure.stderr_tail`.
pub const STDERR_TAIL_LINES: usize = 50;

/// Directory of a run's spooled data inside the base directory.
pub fn run_dir(base: &Path, run_id: &str) -> PathBuf {
    base.join(format!("run-{run_id}"))
}

/// Name of the sender's disk buffer inside a run directory.
pub const BUFFER_DIR: &str = "buffer";

/// A file in the run directory that `loupe run` holds `flock`ed while it
/// runs, so `loupe sync` leaves its live buffer alone.
pub const BUFFER_LOCK_FILE: &str = "buffer.lock";

/// Takes [`BUFFER_LOCK_FILE`] in `run_dir` (created if needed); `None` if
/// another process holds it.
fn lock_run_dir(run_dir: &Path) -> io::Result<Option<std::fs::File>> {
    std::fs::create_dir_all(run_dir)?;
    loupe_model::lock::try_lock_file(&run_dir.join(BUFFER_LOCK_FILE))
}

/// What to run and where to report it.
pub struct SuperviseConfig {
    /// The program and its arguments.
    pub command: Vec<OsString>,
    /// Base URL of the server.
    pub server: String,
    pub token: Option<String>,
    pub project: Option<String>,
    /// Default: the script's name and the run id.
    pub name: Option<String>,
    pub tags: Vec<String>,
    /// Default: from the environment (`LOUPE_GROUP`, torchrun, SLURM).
    pub group: Option<String>,
    /// Process, host and GPU sampling period.
    pub interval: Duration,
    pub gpu: bool,
    /// Base directory of run directories (`$LOUPE_DIR`, default `./loupe`,
    /// as the Python SDK).
    pub dir: PathBuf,
    pub heartbeat: Duration,
    /// Longest wait, after the child exits, for the server to take
    /// everything.
    pub flush_timeout: Duration,
    /// Metric parsers for stdout and stderr; `None` sends lines as logs only.
    pub stdout_metrics: Option<LineMetricFn>,
    pub stderr_metrics: Option<LineMetricFn>,
    /// Called with the run id before the command starts (the binary prints
    /// the run's UI link with it).
    pub on_start: Option<RunStartFn>,
}

impl SuperviseConfig {
    /// Defaults: 1 s sampling, GPUs on, heartbeat every 10 s, 10 s final
    /// flush, `./loupe` (or `$LOUPE_DIR`), no metric parsers.
    pub fn new(command: Vec<OsString>, server: &str) -> Self {
        let dir = std::env::var_os("LOUPE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("loupe"));
        Self {
            command,
            server: server.trim_end_matches('/').to_owned(),
            token: None,
            project: None,
            name: None,
            tags: Vec::new(),
            group: None,
            interval: Duration::from_secs(1),
            gpu: true,
            dir,
            heartbeat: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(10),
            stdout_metrics: None,
            stderr_metrics: None,
            on_start: None,
        }
    }
}

/// How the supervised command ended, and what became of its data.
#[derive(Debug)]
pub struct Outcome {
    pub run_id: String,
    /// Where undelivered data waits (removed when everything was delivered).
    pub run_dir: PathBuf,
    /// The exit code to exit with: the child's, or 128 + N when signal N
    /// killed it (as a shell reports it); 127 / 126 when it could not start.
    pub exit_code: i32,
    /// `finished`, `failed` or `killed`.
    pub status: &'static str,
    /// Why the command could not be started, if it could not.
    pub spawn_error: Option<String>,
    /// Whether the server took every record and the final status.
    pub delivered: bool,
    /// Records the server refused (a bad token, a project not allowed).
    pub refused: u64,
}

/// Why supervision could not even start.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("no command given: use `loupe run [OPTIONS] -- CMD ARGS...`")]
    EmptyCommand,
    #[error("cannot block signals for forwarding: {0}")]
    Signals(io::Error),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("cannot start a supervisor thread: {0}")]
    Thread(io::Error),
}

use loupe_model::clock::now_s as unix_now;

/// What the readers and the sampler share.
struct Collected {
    batch: Batch,
    /// Last time stamped: times are made strictly increasing (by at least
    /// 1 µs, which an f64 of Unix seconds still resolves) so two step-less
    /// points of one series read in the same instant do not share an
    /// identity and overwrite each other.
    last_time: f64,
    stderr_tail: VecDeque<String>,
    traceback: TracebackTracker,
}

impl Collected {
    fn stamp(&mut self) -> f64 {
        let t = unix_now().max(self.last_time + 1e-6);
        self.last_time = t;
        t
    }
}

struct Shared {
    collected: Mutex<Collected>,
    sender: Sender,
    gate: Gate,
    run_id: String,
}

impl Shared {
    fn metrics_path(&self) -> String {
        format!("/api/v1/runs/{}/metrics", self.run_id)
    }

    fn logs_path(&self) -> String {
        format!("/api/v1/runs/{}/logs", self.run_id)
    }

    /// Hands what is pending on (to the sender, or held until the run
    /// exists).
    fn submit(&self, batch: &mut Batch) {
        let bodies = batch.take();
        if let Some(m) = bodies.metrics {
            self.gate.submit(&self.sender, &self.metrics_path(), m);
        }
        if let Some(l) = bodies.logs {
            self.gate.submit(&self.sender, &self.logs_path(), l);
        }
    }
}

/// Runs `cfg.command` under supervision; see the module docs. Returns once
/// the child has exited and its data has been flushed (or the flush timed
/// out).
pub fn supervise(mut cfg: SuperviseConfig) -> Result<Outcome, SuperviseError> {
    if cfg.command.is_empty() {
        return Err(SuperviseError::EmptyCommand);
    }
    // Before any thread starts, so every thread inherits the mask.
    let blocked = signals::BlockedSignals::block().map_err(SuperviseError::Signals)?;

    let run_id = context::new_run_id();
    let run_dir = run_dir(&cfg.dir, &run_id);
    let cleanup = Cleanup {
        run_dir: run_dir.clone(),
        base_created: !cfg.dir.exists(),
    };
    // The id is fresh, so nobody else holds the lock; failing to take it
    // (a read-only directory) only loses the protection against a
    // concurrent `loupe sync`, and the sender reports the directory itself.
    let _lock = lock_run_dir(&run_dir).ok().flatten();
    let mut sender_cfg = SenderConfig::new(&cfg.server, run_dir.join(BUFFER_DIR));
    sender_cfg.token = cfg.token.clone();
    let sender = Sender::start(sender_cfg)?;
    let create = serde_json::to_vec(&create_body(&cfg, &run_id)).unwrap_or_default();
    let shared = Arc::new(Shared {
        collected: Mutex::new(Collected {
            batch: Batch::new(),
            last_time: 0.0,
            stderr_tail: VecDeque::with_capacity(STDERR_TAIL_LINES),
            traceback: TracebackTracker::new(),
        }),
        sender,
        gate: Gate::new(run_dir.join(gate::HELD_DIR), create),
        run_id: run_id.clone(),
    });
    // Before the child starts, so that its first lines need not wait on
    // disk; bounded (a refused connection answers at once, a black hole
    // costs at most this) — the training must not wait on us.
    let quick = RunApi::new(&cfg.server, cfg.token.as_deref(), Duration::from_secs(2));
    shared.gate.try_create(&quick, &shared.sender);
    let api = RunApi::new(&cfg.server, cfg.token.as_deref(), Duration::from_secs(5));
    if let Some(announce) = cfg.on_start.take() {
        announce(&run_id);
    }

    let mut cmd = child_command(&cfg, &run_id);
    blocked.unblock_in_child(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let outcome = spawn_failed(&e, &cfg, shared, &api, &cleanup, run_id, run_dir);
            drop(blocked);
            return Ok(outcome);
        }
    };
    let pid = child.id();
    let exited = Arc::new(AtomicBool::new(false));
    let forwarder = signals::Forwarder::start(&blocked, pid as libc::pid_t, exited.clone())
        .map_err(SuperviseError::Thread)?;

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let readers = start_readers(&mut child, &shared, &mut cfg, done_tx)?;

    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let sampler = {
        let (shared, stop) = (shared.clone(), stop.clone());
        let api = RunApi::new(&cfg.server, cfg.token.as_deref(), Duration::from_secs(2));
        let (interval, heartbeat, gpu) = (cfg.interval, cfg.heartbeat, cfg.gpu);
        std::thread::Builder::new()
            .name("loupe-sampler".into())
            .spawn(move || sample_loop(&shared, &api, pid, interval, heartbeat, gpu, &stop))
            .map_err(SuperviseError::Thread)?
    };

    let status = wait_child(&mut child);
    exited.store(true, Ordering::SeqCst);

    wait_readers(&done_rx, readers);
    {
        let (flag, cv) = &*stop;
        *flag.lock() = true;
        cv.notify_all();
    }
    let _ = sampler.join();

    let (exit_code, signal) = exit_code(status);
    let run_status = match (signal, exit_code) {
        (Some(_), _) => "killed",
        (None, 0) => "finished",
        _ => "failed",
    };
    let failure = submit_rest_and_failure(&shared, run_status, signal);
    // A signal from here on (Ctrl-C again while the server is away) cuts
    // the final flush short.
    let signalled = forwarder.last.clone();
    signalled.store(0, Ordering::SeqCst);
    let body = final_body(run_status, exit_code, failure);
    let (delivered, refused) = finish(
        shared,
        &api,
        &cleanup,
        &body,
        cfg.flush_timeout,
        Some(&signalled),
    );
    forwarder.stop();
    drop(blocked);
    Ok(Outcome {
        run_id,
        run_dir,
        exit_code,
        status: run_status,
        spawn_error: None,
        delivered,
        refused,
    })
}

/// The child's command: piped output, and the environment that lets the
/// SDK inside attach to the same run.
fn child_command(cfg: &SuperviseConfig, run_id: &str) -> Command {
    let mut cmd = Command::new(&cfg.command[0]);
    cmd.args(&cfg.command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("PYTHONUNBUFFERED", "1")
        .env("LOUPE_RUN_ID", run_id)
        .env("LOUPE_SERVER", &cfg.server)
        .env("LOUPE_DIR", &cfg.dir);
    if let Some(t) = &cfg.token {
        cmd.env("LOUPE_TOKEN", t);
    }
    if let Some(p) = &cfg.project {
        cmd.env("LOUPE_PROJECT", p);
    }
    if std::env::var_os("LOUPE_CONSOLE").is_none() {
        cmd.env("LOUPE_CONSOLE", "0");
    }
    cmd
}

/// The command could not start: the run ends `failed` with 127 (not
/// found) or 126, and why.
fn spawn_failed(
    e: &io::Error,
    cfg: &SuperviseConfig,
    shared: Arc<Shared>,
    api: &RunApi,
    cleanup: &Cleanup,
    run_id: String,
    run_dir: PathBuf,
) -> Outcome {
    let code = match e.kind() {
        io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    let message = format!("cannot run {}: {e}", cfg.command[0].to_string_lossy());
    let failure = json!({
        "exception_type": null, "message": message, "signal": null,
        "stderr_tail": [], "traceback": null,
    });
    let body = final_body("failed", code, Some(failure));
    let (delivered, refused) = finish(shared, api, cleanup, &body, cfg.flush_timeout, None);
    Outcome {
        run_id,
        run_dir,
        exit_code: code,
        status: "failed",
        spawn_error: Some(message),
        delivered,
        refused,
    }
}

/// One reader thread per piped stream; returns how many started.
fn start_readers(
    child: &mut std::process::Child,
    shared: &Arc<Shared>,
    cfg: &mut SuperviseConfig,
    done_tx: mpsc::Sender<()>,
) -> Result<usize, SuperviseError> {
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        spawn_reader(
            out,
            false,
            shared.clone(),
            cfg.stdout_metrics.take(),
            done_tx.clone(),
        )?;
        readers += 1;
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(
            err,
            true,
            shared.clone(),
            cfg.stderr_metrics.take(),
            done_tx.clone(),
        )?;
        readers += 1;
    }
    drop(done_tx);
    Ok(readers)
}

/// Waits for the readers to reach the end of their pipes. The pipes close
/// when the child exits, unless a descendant that outlives it still holds
/// them (a daemonised worker): do not wait for that longer than a moment.
fn wait_readers(done_rx: &mpsc::Receiver<()>, readers: usize) {
    let deadline = Instant::now() + Duration::from_secs(2);
    for _ in 0..readers {
        if done_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_err()
        {
            break;
        }
    }
}

/// Submits what is still pending and, unless the run finished, returns
/// its `failure`: the last traceback, the signal, the stderr tail.
fn submit_rest_and_failure(
    shared: &Shared,
    run_status: &str,
    signal: Option<i32>,
) -> Option<Value> {
    let mut c = shared.collected.lock();
    let mut batch = std::mem::take(&mut c.batch);
    shared.submit(&mut batch);
    (run_status != "finished").then(|| {
        let exc = c.traceback.last();
        json!({
            "exception_type": exc.map(|e| e.exception_type.clone()),
            "message": exc.and_then(|e| e.message.clone()),
            "signal": signal,
            "stderr_tail": c.stderr_tail.iter().collect::<Vec<_>>(),
            "traceback": exc.map(|e| e.traceback.clone()),
        })
    })
}

/// The create-run request.
fn create_body(cfg: &SuperviseConfig, run_id: &str) -> Value {
    let cwd = std::env::current_dir().ok();
    let git = cwd.as_deref().map(context::git_state).unwrap_or_default();
    let dist = context::distributed(|k| std::env::var(k).ok());
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.to_owned(), v);
        }
    };
    put("id", json!(run_id));
    put("project", json!(cfg.project));
    put(
        "name",
        json!(
            cfg.name
                .clone()
                .unwrap_or_else(|| context::default_name(&cfg.command, run_id))
        ),
    );
    put("command", json!(context::command_line(&cfg.command)));
    put("cwd", json!(cwd.map(|p| p.to_string_lossy().into_owned())));
    put("git_commit", json!(git.commit));
    put("git_dirty", json!(git.dirty));
    put("host", json!(context::host_name()));
    put("rank", json!(dist.rank));
    put("world_size", json!(dist.world_size));
    put("group", json!(cfg.group.clone().or(dist.group)));
    if !cfg.tags.is_empty() {
        put("tags", json!(cfg.tags));
    }
    put("start_time", json!(unix_now()));
    Value::Object(m)
}

fn final_body(status: &str, exit_code: i32, failure: Option<Value>) -> Value {
    let mut body = json!({ "status": status, "exit_code": exit_code, "end_time": unix_now() });
    if let Some(f) = failure {
        body["failure"] = f;
    }
    body
}

/// The directories a run may leave behind, removed when nothing is left to
/// sync.
struct Cleanup {
    run_dir: PathBuf,
    /// The base directory did not exist before: remove it too when empty.
    base_created: bool,
}

/// Creates the run if that has not happened yet, flushes the sender, sends
/// the final status, stops the sender, and removes the run directory when
/// nothing is left in it. What cannot be sent is left for `loupe sync`.
/// Returns (delivered, refused).
fn finish(
    shared: Arc<Shared>,
    api: &RunApi,
    cleanup: &Cleanup,
    body: &Value,
    timeout: Duration,
    interrupt: Option<&AtomicI32>,
) -> (bool, u64) {
    let run_dir = cleanup.run_dir.as_path();
    let run_id = shared.run_id.clone();
    let created = shared.gate.try_create(api, &shared.sender) == Created::Yes;
    if !created {
        // The data is held on disk; the creation and final status wait
        // beside it.
        let create: Value =
            serde_json::from_slice(shared.gate.create_body()).unwrap_or(Value::Null);
        let _ = api::save_pending(run_dir, PENDING_CREATE_FILE, &run_id, &create);
    }
    let delivered = created && flush_interruptible(&shared.sender, timeout, interrupt);
    // The PATCH needs the run and its data on the server first: otherwise
    // it waits on disk with them.
    let patched = if delivered {
        patch_or_save(api, &run_id, run_dir, body)
    } else {
        let _ = api::save_pending_patch(run_dir, &run_id, body);
        false
    };
    let refused = shared.sender.stats().refused;
    let lost = shared.gate.lost();
    // A reader stuck on a pipe held by a grandchild keeps a clone: then the
    // sender is only flushed, not shut down (the process exits anyway).
    let stopped = match Arc::try_unwrap(shared) {
        Ok(s) => s.sender.shutdown(Duration::from_millis(500)),
        Err(_) => false,
    };
    let all_sent = delivered && patched && stopped;
    if all_sent {
        // Nothing to sync later: leave no empty directories behind.
        let _ = std::fs::remove_dir_all(run_dir.join(BUFFER_DIR));
        let _ = std::fs::remove_file(run_dir.join(BUFFER_LOCK_FILE));
        let _ = std::fs::remove_dir(run_dir);
        if cleanup.base_created
            && let Some(base) = run_dir.parent()
        {
            let _ = std::fs::remove_dir(base);
        }
    }
    (all_sent && lost == 0, refused + lost)
}

/// Sends the final PATCH, once and once more after a moment; on a
/// transient failure the body is saved for `loupe sync`. True when sent.
fn patch_or_save(api: &RunApi, run_id: &str, run_dir: &Path, body: &Value) -> bool {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut last = None;
    for attempt in 0..2 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        match api.patch(run_id, &bytes) {
            Ok(()) => return true,
            Err(e) if e.is_transient() => last = Some(e),
            Err(e) => {
                // Refused for good (a bad token): saving it would not help.
                tracing::warn!("loupe run: the server refused the run's final status: {e}");
                return false;
            }
        }
    }
    if let Some(e) = last {
        tracing::debug!("loupe run: final status not sent ({e}); saved for `loupe sync`");
    }
    let _ = api::save_pending_patch(run_dir, run_id, body);
    false
}

/// `sender.flush(timeout)`, cut short when a new signal arrives (the user
/// pressing Ctrl-C again while the server is away).
fn flush_interruptible(sender: &Sender, timeout: Duration, interrupt: Option<&AtomicI32>) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if sender.flush(left.min(Duration::from_millis(200))) {
            return true;
        }
        if left.is_zero() {
            return false;
        }
        if interrupt.is_some_and(|last| last.load(Ordering::SeqCst) != 0) {
            return false;
        }
    }
}

/// Waits for the child, retrying on EINTR (a blocked signal does not
/// interrupt, but a debugger or SIGCONT may).
fn wait_child(child: &mut std::process::Child) -> Option<ExitStatus> {
    for _ in 0..1000 {
        match child.wait() {
            Ok(s) => return Some(s),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    None
}

/// (exit code, signal): 128 + N when signal N ended the child, as a shell
/// reports it.
fn exit_code(status: Option<ExitStatus>) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => (c, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            (None, None) => (1, None),
        },
        None => (1, None),
    }
}

fn spawn_reader(
    src: impl Read + Send + 'static,
    stderr: bool,
    shared: Arc<Shared>,
    metrics: Option<LineMetricFn>,
    done: mpsc::Sender<()>,
) -> Result<(), SuperviseError> {
    std::thread::Builder::new()
        .name(
            if stderr {
                "loupe-stderr"
            } else {
                "loupe-stdout"
            }
            .into(),
        )
        .spawn(move || {
            read_stream(src, stderr, &shared, metrics);
            let _ = done.send(());
        })
        .map(|_| ())
        .map_err(SuperviseError::Thread)
}

/// Copies one of the child's streams to ours and into the batch.
fn read_stream(
    mut src: impl Read,
    stderr: bool,
    shared: &Shared,
    mut metrics: Option<LineMetricFn>,
) {
    let mut buf = vec![0u8; 64 << 10];
    let mut splitter = LineSplitter::new();
    let mut hold = RedrawHold::default();
    let mut tee = true;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if tee {
            // Unchanged and at once; if our own output is gone (a closed
            // pipe), keep draining the child's so it never blocks.
            tee = if stderr {
                write_now(&mut io::stderr().lock(), &buf[..n])
            } else {
                write_now(&mut io::stdout().lock(), &buf[..n])
            };
        }
        let mut c = shared.collected.lock();
        splitter.push(&buf[..n], |piece| {
            take_piece(&mut c, stderr, piece, &mut hold, &mut metrics)
        });
        if c.batch.is_large() {
            let mut batch = std::mem::take(&mut c.batch);
            drop(c);
            shared.submit(&mut batch);
        }
    }
    let mut c = shared.collected.lock();
    splitter.finish(|piece| take_piece(&mut c, stderr, piece, &mut hold, &mut metrics));
    take_piece(&mut c, stderr, Piece::RedrawEnd, &mut hold, &mut metrics);
}

fn write_now(w: &mut impl Write, bytes: &[u8]) -> bool {
    w.write_all(bytes).and_then(|_| w.flush()).is_ok()
}

/// One piece of output. Every line and every redraw gives its metrics at
/// once (a bar's step and rate); only a redrawn line's last state becomes a
/// log record.
fn take_piece(
    c: &mut Collected,
    stderr: bool,
    piece: Piece<'_>,
    hold: &mut RedrawHold,
    metrics: &mut Option<LineMetricFn>,
) {
    match piece {
        Piece::Redraw(text) => {
            let time = c.stamp();
            take_metrics(c, text, time, metrics);
            hold.replace(text);
        }
        Piece::RedrawEnd => {
            if let Some(text) = hold.take() {
                let time = c.stamp();
                log_line(c, stderr, &text, time);
            }
        }
        Piece::LastRedraw(text) => {
            // The final state replaces the held one.
            hold.take();
            let time = c.stamp();
            log_line(c, stderr, text, time);
            take_metrics(c, text, time, metrics);
        }
        Piece::Line(text) => {
            // A redraw that another line interrupted was its last state.
            if let Some(held) = hold.take() {
                let time = c.stamp();
                log_line(c, stderr, &held, time);
            }
            let time = c.stamp();
            log_line(c, stderr, text, time);
            take_metrics(c, text, time, metrics);
        }
    }
}

fn take_metrics(c: &mut Collected, line: &str, time: f64, metrics: &mut Option<LineMetricFn>) {
    if let Some(f) = metrics
        && let Some((step, values)) = f(line)
    {
        for (name, value) in values {
            c.batch.point(&name, step, time, value);
        }
    }
}

/// A log record, and for stderr the traceback tracker and the failure's
/// tail (progress bars left out of it).
fn log_line(c: &mut Collected, stderr: bool, line: &str, time: f64) {
    let in_tb = stderr && c.traceback.feed(line);
    if stderr && !is_progress_bar(line) {
        if c.stderr_tail.len() == STDERR_TAIL_LINES {
            c.stderr_tail.pop_front();
        }
        // The tail is for reading: a 64 KiB line is cut shorter there.
        c.stderr_tail
            .push_back(traceback::truncate(line, 4096).to_owned());
    }
    c.batch
        .log(time, stderr, lines::level(stderr, line, in_tb), line);
}

/// Samples the process tree, host and GPUs every `interval`, hands the
/// batch to the sender every second, and heartbeats the run.
fn sample_loop(
    shared: &Shared,
    api: &RunApi,
    pid: u32,
    interval: Duration,
    heartbeat: Duration,
    gpu: bool,
    stop: &(Mutex<bool>, Condvar),
) {
    let mut procs = ProcessTreeSampler::new(pid);
    let mut host = HostCollector::new();
    let mut gpus = if gpu {
        match GpuCollector::new() {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::debug!("loupe run: {e}");
                None
            }
        }
    } else {
        None
    };
    let interval = interval.max(Duration::from_millis(50));
    let flush_every = Duration::from_secs(1);
    let start = Instant::now();
    // While the run is not created, the heartbeat slot retries creation.
    let retry_create = Duration::from_secs(3).min(heartbeat);
    let first_beat = if shared.gate.created() == Created::No {
        retry_create
    } else {
        heartbeat
    };
    // The first sample one interval in: at once, the child may not have
    // exec'd yet, and the tree's CPU figure needs a previous reading anyway.
    let (mut next_sample, mut next_flush, mut next_beat) =
        (start + interval, start + flush_every, start + first_beat);
    let mut values: Vec<(String, f64)> = Vec::with_capacity(64);
    let mut host_samples = Vec::with_capacity(64);
    let (flag, cv) = stop;
    loop {
        {
            let mut stopped = flag.lock();
            let wake = next_sample.min(next_flush).min(next_beat);
            while !*stopped && Instant::now() < wake {
                cv.wait_until(&mut stopped, wake);
            }
            if *stopped {
                return;
            }
        }
        let now = Instant::now();
        if now >= next_sample {
            values.clear();
            // No resident memory: the child has exited and is a zombie
            // until reaped; that is no reading of the program.
            if let Some(p) = procs.sample().filter(|p| p.rss_bytes > 0) {
                system::process_series(&p, &mut values);
            }
            host_samples.clear();
            host.collect_into(&mut host_samples);
            system::host_series(&host_samples, &mut values);
            if let Some(g) = &mut gpus {
                let samples = g.sample();
                system::gpu_series(&samples, &mut values);
                system::gpu_process_series(&g.processes(), pid, &mut values);
            }
            let mut c = shared.collected.lock();
            let t = c.stamp();
            for (name, v) in values.drain(..) {
                c.batch.point(&name, None, t, v);
            }
            next_sample += interval;
            if next_sample < now {
                // Fell behind (a stalled machine): skip, do not catch up.
                next_sample = now + interval;
            }
        }
        if now >= next_flush {
            let mut batch = std::mem::take(&mut shared.collected.lock().batch);
            shared.submit(&mut batch);
            next_flush = now + flush_every;
        }
        if now >= next_beat {
            match shared.gate.created() {
                // Best effort: a missed heartbeat is repaired by the next one.
                Created::Yes => {
                    let _ = api.patch(&shared.run_id, br#"{"heartbeat": true}"#);
                }
                // The server was away at the start: try again (its data
                // is held on disk meanwhile).
                Created::No => {
                    shared.gate.try_create(api, &shared.sender);
                }
                Created::Refused => {}
            }
            next_beat = Instant::now()
                + if shared.gate.created() == Created::No {
                    retry_create
                } else {
                    heartbeat
                };
        }
    }
}
