//! `loupe sync DIR...`: uploads what a run directory holds that the server
//! has not acknowledged, exactly once — the same job as the Python SDK's
//! `python -m loupe sync DIR`, for machines without the SDK's Python.
//!
//! A run directory holds either or both of:
//! - the Python SDK's spool (`run.json`, `spool.jsonl`, `acked`), read by
//!   [`loupe_agent::spool`] (the format and its invariants are documented
//!   there): its unacknowledged requests are sent in order, and each is
//!   acknowledged in the marker before the next one starts;
//! - what `loupe run` could not deliver, sent in this order: the run's
//!   creation (`pending_create.json`), the data held back until the run
//!   existed (`held/`) and the sender's disk buffer (`buffer/`), both
//!   replayed by the agent's sender, oldest first; then the run's final
//!   status (`pending_patch.json`).
//!
//! DIR is a run directory or a directory of them (`./loupe`). The server is
//! `--server`, else `$LOUPE_SERVER`, else the one in `run.json`, else
//! `http://127.0.0.1:7070`. A directory in use (its `lock` flock'd by a
//! live SDK, or `buffer.lock` by a live `loupe run`) is refused: that
//! process uploads its data itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use loupe_agent::spool::{self, Entries, Kind, Request, Requests, RunInfo, Spool};
use loupe_agent::supervise::{
    self, BUFFER_DIR, BUFFER_LOCK_FILE, HELD_DIR, PENDING_CREATE_FILE, PENDING_PATCH_FILE,
};
use loupe_agent::{Sender, SenderConfig};
use loupe_client::{Backoff, Client, ClientOptions, Encoding, Error as ClientError, Method, Raw};
use loupe_model::RunStatus;

const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// Run directories, or directories of them (e.g. ./loupe).
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// The server (default: $LOUPE_SERVER, else the run's own).
    #[arg(long, env = "LOUPE_SERVER")]
    server: Option<String>,
    /// A token.
    #[arg(long, env = "LOUPE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Failed attempts per request before giving up on a directory.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
}

/// Exit code 0 when every directory was synced, 1 otherwise.
pub fn run(args: SyncArgs) -> Result<i32> {
    let mut code = 0;
    for d in &args.dirs {
        let dirs = match run_dirs(d) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("loupe sync: {e:#}");
                code = 1;
                continue;
            }
        };
        for rd in dirs {
            if let Err(e) = sync_dir(&rd, &args) {
                eprintln!("loupe sync: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn is_run_dir(p: &Path) -> bool {
    p.join(spool::RUN_INFO_FILE).is_file() || is_supervisor_dir(p)
}

/// Whether `loupe run` left something in `p`.
fn is_supervisor_dir(p: &Path) -> bool {
    p.join(BUFFER_DIR).is_dir()
        || p.join(HELD_DIR).is_dir()
        || p.join(PENDING_CREATE_FILE).is_file()
        || p.join(PENDING_PATCH_FILE).is_file()
}

/// `path` if it is a run directory, else the run directories in it.
fn run_dirs(path: &Path) -> Result<Vec<PathBuf>> {
    if is_run_dir(path) {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out: Vec<PathBuf> = fs::read_dir(path)
        .with_context(|| path.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_run_dir(p))
        .collect();
    out.sort();
    if out.is_empty() {
        bail!(
            "{}: not a run directory (no run.json, buffer/ or pending_patch.json) and holds none",
            path.display()
        );
    }
    Ok(out)
}

fn sync_dir(dir: &Path, args: &SyncArgs) -> Result<()> {
    let info = RunInfo::read(dir);
    let server = args
        .server
        .clone()
        .or_else(|| info.as_ref().ok().and_then(|i| i.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let server = server.trim_end_matches('/').to_owned();
    let client = Client::new(
        &server,
        ClientOptions {
            token: args.token.clone(),
            timeout: Some(Duration::from_secs(30)),
            connect_timeout: None,
        },
    );
    if dir.join(spool::SPOOL_FILE).is_file() || dir.join(spool::RUN_INFO_FILE).is_file() {
        let info = info.context("no readable run.json")?;
        sync_spool(dir, &info, &client, args.attempts)?;
    }
    if is_supervisor_dir(dir) {
        sync_supervisor(dir, &server, args.token.as_deref(), &client)?;
    }
    Ok(())
}

/// What one request came to.
enum Sent {
    Ok,
    /// HTTP status and the server's message.
    Status(u16, String),
    /// No answer.
    Failed(String),
}

/// Sends one request of `kind` with its body as it was spooled.
fn send(client: &Client, run_id: &str, kind: Kind, body: &[u8], key: Option<&str>) -> Sent {
    let (method, path) = match kind {
        Kind::Metrics => (Method::Post, format!("/api/v1/runs/{run_id}/metrics")),
        Kind::Logs => (Method::Post, format!("/api/v1/runs/{run_id}/logs")),
        Kind::Patch => (Method::Patch, format!("/api/v1/runs/{run_id}")),
        Kind::Run => (Method::Post, "/api/v1/runs".to_string()),
    };
    let sent = client.send(Raw {
        method,
        path: &path,
        body,
        encoding: Encoding::Identity,
        idempotency_key: key.filter(|_| method == Method::Post),
    });
    match sent {
        Ok(_) => Sent::Ok,
        Err(ClientError::Unreachable { why, .. } | ClientError::Request(why)) => Sent::Failed(why),
        Err(e) => Sent::Status(e.status().unwrap_or(0), e.to_string()),
    }
}

/// What a spool upload sent, for its summary line.
#[derive(Default)]
struct Tally {
    /// Batches per kind, in [`Kind::ALL`]'s order.
    batches: [usize; 4],
    requests: usize,
    /// Whether this upload sent the run's creation, and then a final status.
    sent_run: bool,
    final_sent: bool,
}

impl Tally {
    fn add(&mut self, req: &Request) {
        let slot = Kind::ALL.iter().position(|k| *k == req.kind).unwrap_or(0);
        self.batches[slot] += req.entries;
        self.requests += 1;
        match req.kind {
            Kind::Run => (self.sent_run, self.final_sent) = (true, false),
            Kind::Patch if is_terminal_patch(&req.body) => self.final_sent = true,
            _ => {}
        }
    }
}

/// Whether a PATCH body sets a terminal status.
fn is_terminal_patch(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct StatusField {
        status: Option<RunStatus>,
    }
    serde_json::from_slice::<StatusField>(body)
        .ok()
        .and_then(|p| p.status)
        .is_some_and(RunStatus::is_terminal)
}

/// Uploads one SDK spool's requests, each acknowledged before the next.
struct SpoolUpload<'a> {
    client: &'a Client,
    info: &'a RunInfo,
    create: Vec<u8>,
    attempts: u32,
}

impl SpoolUpload<'_> {
    /// Sends `req` until the server is done with it, up to `attempts`
    /// failed tries; the error says why the last one failed.
    fn deliver(&self, spool: &Spool, req: &Request) -> Result<(), String> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut failures = 0;
        loop {
            match self.try_once(spool, req) {
                Ok(()) => return Ok(()),
                Err(why) => {
                    failures += 1;
                    if failures >= self.attempts {
                        return Err(why);
                    }
                    std::thread::sleep(backoff.next_delay());
                }
            }
        }
    }

    /// One try; `Ok` when the server took the request, or refused it for
    /// good and it was set aside in `rejected.jsonl`.
    fn try_once(&self, spool: &Spool, req: &Request) -> Result<(), String> {
        let (rid, kind) = (self.info.id.as_str(), req.kind);
        let mut created = false;
        loop {
            match send(self.client, rid, kind, &req.body, req.key.as_deref()) {
                Sent::Ok => return Ok(()),
                // The server does not know the run (a fresh data directory):
                // create it, then try once more.
                Sent::Status(404, _) if kind != Kind::Run && !created => {
                    created = true;
                    match send(self.client, rid, Kind::Run, &self.create, None) {
                        Sent::Ok => continue,
                        Sent::Status(s, m) => {
                            return Err(format!("HTTP {s} creating the run: {m}"));
                        }
                        Sent::Failed(m) => return Err(m),
                    }
                }
                // Malformed for good: retrying cannot help; keep it aside.
                Sent::Status(s @ (400 | 413 | 415 | 422), msg) => {
                    let kept = spool
                        .set_aside(kind, s, &msg, &req.body)
                        .map_err(|e| format!("cannot set a refused {kind} batch aside: {e}"))?;
                    eprintln!(
                        "loupe sync: run {rid}: the server refused a {kind} batch ({s} {msg}); it is kept in {}",
                        kept.display()
                    );
                    return Ok(());
                }
                Sent::Status(s, msg) => return Err(format!("HTTP {s} {msg}")),
                Sent::Failed(m) => return Err(m),
            }
        }
    }
}

/// Says what the spool's reader passed over: a torn last line, a marker it
/// could not read, damaged lines (damage is never silent).
fn report_damage(spool: &Spool, entries: Option<&Entries>) {
    let path = spool.path().display();
    if let Some(t) = spool.torn_tail() {
        eprintln!(
            "loupe sync: {path}: ignoring {} byte(s) of a torn last line at byte {} (a write cut short; never acknowledged)",
            t.len, t.offset
        );
    }
    if let Some(why) = spool.ignored_marker() {
        eprintln!("loupe sync: {why}: unreadable, so every line is sent again");
    }
    let Some(entries) = entries.filter(|e| e.damaged_count() > 0) else {
        return;
    };
    for d in entries.damaged() {
        eprintln!("loupe sync: {path}: skipped {d}");
    }
    let more = entries.damaged_count() - entries.damaged().len() as u64;
    if more > 0 {
        eprintln!("loupe sync: {path}: skipped {more} more damaged line(s)");
    }
}

/// Uploads the SDK spool's unacknowledged requests; see the module docs.
fn sync_spool(dir: &Path, info: &RunInfo, client: &Client, attempts: u32) -> Result<()> {
    let rid = info.id.as_str();
    let mut spool = Spool::open(dir)?;
    if !spool.pending() {
        report_damage(&spool, None);
        println!(
            "loupe sync: run {rid}: nothing to upload ({})",
            dir.display()
        );
        return Ok(());
    }
    let upload = SpoolUpload {
        client,
        info,
        create: info.create_body(),
        attempts,
    };
    let mut tally = Tally::default();
    let mut requests = Requests::new(spool.unacked()?);
    while let Some(req) = requests.next() {
        let req = req?;
        if let Err(why) = upload.deliver(&spool, &req) {
            report_damage(&spool, Some(requests.entries()));
            bail!(
                "run {rid}: {}: {why}; {} batch(es) left in {} (run sync again)",
                client.server(),
                spool.last_seq() - spool.acked_seq(),
                spool.path().display()
            );
        }
        spool.ack(req.last_seq, req.end)?;
        tally.add(&req);
    }
    report_damage(&spool, Some(requests.entries()));
    if tally.sent_run && !tally.final_sent && info.final_status.is_none() {
        // The session this sync created never said how it ended, and its
        // process is gone (we hold its lock): it crashed.
        let _ = send(client, rid, Kind::Patch, br#"{"status":"crashed"}"#, None);
    }
    let [run, metric, log, patch] = tally.batches;
    println!(
        "loupe sync: run {rid}: uploaded {metric} metric, {log} log, {} update batch(es) in {} request(s) to {}",
        run + patch,
        tally.requests,
        client.server()
    );
    Ok(())
}

/// Sends the request `loupe run` left in `dir/name`, if any, and removes
/// the file once the server took it. Whether there was one.
fn send_pending(dir: &Path, name: &str, kind: Kind, server: &str, client: &Client) -> Result<bool> {
    let Some(pending) = supervise::load_pending(dir, name)? else {
        return Ok(false);
    };
    let body = pending.body.get().as_bytes();
    match send(client, &pending.run_id, kind, body, None) {
        Sent::Ok => {
            fs::remove_file(dir.join(name))?;
            Ok(true)
        }
        Sent::Status(s, m) => bail!(
            "{}: the server answered {s} to {}: {m}",
            dir.display(),
            if kind == Kind::Run {
                "the run's creation"
            } else {
                "the run's final status"
            }
        ),
        Sent::Failed(m) => bail!("{}: {server}: {m}; run sync again", dir.display()),
    }
}

/// Replays one of `loupe run`'s disk queues through the agent's sender
/// (oldest first, acknowledged as it goes) and removes it once delivered.
/// The number of requests it held.
fn replay_queue(queue: &Path, server: &str, token: Option<&str>) -> Result<u64> {
    let mut cfg = SenderConfig::new(server, queue.to_path_buf());
    cfg.token = token.map(str::to_owned);
    let sender = Sender::start(cfg).with_context(|| format!("opening {}", queue.display()))?;
    let records = sender.stats().queued_disk;
    let delivered = sender.flush(Duration::from_secs(60));
    let stats = sender.stats();
    sender.shutdown(Duration::from_secs(1));
    if !delivered {
        bail!(
            "{}: {server} did not take {} buffered request(s); run sync again",
            queue.display(),
            stats.queued_disk + stats.queued_memory as u64
        );
    }
    if stats.refused > 0 {
        eprintln!(
            "loupe sync: {}: the server refused {} buffered request(s)",
            queue.display(),
            stats.refused
        );
    }
    fs::remove_dir_all(queue).with_context(|| queue.display().to_string())?;
    Ok(records)
}

/// Replays what `loupe run` left, in the order it was meant to go: the
/// run's creation, the held and buffered requests, then its final status.
fn sync_supervisor(dir: &Path, server: &str, token: Option<&str>, client: &Client) -> Result<()> {
    let lock = loupe_model::lock::try_lock_file(&dir.join(BUFFER_LOCK_FILE))
        .with_context(|| format!("{}: cannot open {BUFFER_LOCK_FILE}", dir.display()))?;
    let Some(_lock) = lock else {
        return Err(anyhow!(
            "{}: in use by a live `loupe run`; it uploads its data itself",
            dir.display()
        ));
    };
    send_pending(dir, PENDING_CREATE_FILE, Kind::Run, server, client)?;
    let mut records = 0;
    for sub in [HELD_DIR, BUFFER_DIR] {
        let queue = dir.join(sub);
        if queue.is_dir() {
            records += replay_queue(&queue, server, token)?;
        }
    }
    let patched = send_pending(dir, PENDING_PATCH_FILE, Kind::Patch, server, client)?;
    println!(
        "loupe sync: {}: uploaded {records} buffered request(s){} to {server}",
        dir.display(),
        if patched { " and the final status" } else { "" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_terminal_status_counts_as_the_final_patch() {
        assert!(is_terminal_patch(br#"{"status":"finished","exit_code":0}"#));
        assert!(is_terminal_patch(br#"{"status": "crashed"}"#));
        assert!(!is_terminal_patch(br#"{"status":"running"}"#));
        assert!(!is_terminal_patch(br#"{"heartbeat":true}"#));
        assert!(!is_terminal_patch(br#"{"status":"nope"}"#));
    }
}
