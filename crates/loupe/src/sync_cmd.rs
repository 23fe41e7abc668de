//! `loupe sync DIR...`: uploads what a run directory holds that the server
//! has not acknowledged, exactly once — the same job as the Python SDK's
//! `python -m loupe sync DIR`, for machines without the SDK's Python.
//!
//! A run directory holds either or both of:
//! - the Python SDK's spool (`run.json`, `spool.jsonl`, `acked`; the format
//!   is described in `python/loupe/_spool.py`): lines
//!   `{"kind","seq"[,"key"],"body"}` whose body is the exact API request,
//!   and the marker `{"seq": N, "offset": B}` saying that every line up to
//!   seq N (ending at byte B) was acknowledged. Lines after the marker are
//!   sent in order; after each acknowledged request the marker is replaced
//!   atomically (write, fsync, rename) before the next one starts, so each
//!   line is uploaded once. Consecutive metric or log batches without an
//!   idempotency key are merged into one request, as the SDK does; a log
//!   batch with a key goes alone, under its key.
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

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use loupe_agent::supervise::{
    BUFFER_DIR, BUFFER_LOCK_FILE, HELD_DIR, PENDING_CREATE_FILE, PENDING_PATCH_FILE,
};
use loupe_agent::{Sender, SenderConfig};
use loupe_client::{Backoff, Client, ClientOptions, Encoding, Error as ClientError, Method, Raw};
use loupe_model::RunStatus;
use serde_json::Value;

const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";
const SPOOL: &str = "spool.jsonl";
const ACKED: &str = "acked";
const RUN_JSON: &str = "run.json";
const KINDS: [&str; 4] = ["run", "metrics", "logs", "patch"];
/// Largest merged request body, as the SDK's.
const MAX_MERGED_BYTES: usize = 8 << 20;

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
    p.join(RUN_JSON).is_file() || is_supervisor_dir(p)
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

/// An exclusive, non-blocking `flock` on `dir/name`; `None` when another
/// process holds it. The file stays (the SDK leaves its `lock` too).
fn try_lock(dir: &Path, name: &str) -> Result<Option<File>> {
    loupe_model::lock::try_lock_file(&dir.join(name))
        .with_context(|| format!("{}: cannot open {name}", dir.display()))
}

fn sync_dir(dir: &Path, args: &SyncArgs) -> Result<()> {
    let info: Option<Value> = fs::read(dir.join(RUN_JSON))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let server = args
        .server
        .clone()
        .or_else(|| {
            info.as_ref()
                .and_then(|i| i["server"].as_str().map(str::to_owned))
        })
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
    if dir.join(SPOOL).is_file() || dir.join(RUN_JSON).is_file() {
        let info = info
            .as_ref()
            .ok_or_else(|| anyhow!("{}: no readable run.json", dir.display()))?;
        sync_spool(dir, info, &client, args.attempts)?;
    }
    if is_supervisor_dir(dir) {
        sync_supervisor(dir, &server, args.token.as_deref(), &client)?;
    }
    Ok(())
}

/// One entry of `spool.jsonl`.
struct Entry {
    seq: u64,
    kind: String,
    key: Option<String>,
    body: Vec<u8>,
    /// Offset just past the line.
    end: u64,
}

/// The SDK's spool with its acknowledgement marker.
struct Spool {
    path: PathBuf,
    acked_path: PathBuf,
    /// Bytes of complete lines.
    size: u64,
    last_seq: u64,
    acked_seq: u64,
    acked_offset: u64,
}

impl Spool {
    fn open(dir: &Path) -> Result<Spool> {
        let path = dir.join(SPOOL);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| path.display().to_string()),
        };
        // A line torn by a crash has no newline: it is not part of the spool.
        let size = data.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
        let entries = parse_entries(&data[..size], 0);
        let last_seq = entries.last().map_or(0, |e| e.seq);
        let mut s = Spool {
            path,
            acked_path: dir.join(ACKED),
            size: size as u64,
            last_seq,
            acked_seq: 0,
            acked_offset: 0,
        };
        let (seq, off) = read_acked(&s.acked_path);
        if seq == 0 {
            return Ok(s);
        }
        if seq >= last_seq {
            (s.acked_seq, s.acked_offset) = (last_seq, s.size);
            return Ok(s);
        }
        // The marker's offset must sit at the start of a later line;
        // otherwise find the line by its seq, as the SDK does.
        let fits = off.is_some_and(|o| {
            o <= s.size
                && (o == 0 || data[o as usize - 1] == b'\n')
                && parse_entries(&data[o as usize..size], o)
                    .first()
                    .is_some_and(|e| e.seq > seq)
        });
        s.acked_seq = seq;
        s.acked_offset = if fits {
            off.unwrap_or(0)
        } else {
            entries
                .iter()
                .take_while(|e| e.seq <= seq)
                .last()
                .map_or(0, |e| e.end)
        };
        Ok(s)
    }

    fn pending(&self) -> bool {
        self.last_seq > self.acked_seq
    }

    /// Entries after the acknowledged ones, in order.
    fn unacked(&self) -> Result<Vec<Entry>> {
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.acked_offset))?;
        let mut data = Vec::new();
        f.take(self.size - self.acked_offset.min(self.size))
            .read_to_end(&mut data)?;
        Ok(parse_entries(&data, self.acked_offset)
            .into_iter()
            .filter(|e| e.seq > self.acked_seq)
            .collect())
    }

    /// Records that every line up to `seq` (ending at `offset`) was
    /// acknowledged: the SDK's format, replaced atomically.
    fn ack(&mut self, seq: u64, offset: u64) -> Result<()> {
        if seq <= self.acked_seq {
            return Ok(());
        }
        let tmp = self.acked_path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        write!(f, "{{\"seq\": {seq}, \"offset\": {offset}}}")?;
        f.sync_all()?;
        fs::rename(&tmp, &self.acked_path)?;
        (self.acked_seq, self.acked_offset) = (seq, offset);
        Ok(())
    }
}

/// `(seq, offset)` of the marker; `(0, None)` when absent or unreadable.
fn read_acked(path: &Path) -> (u64, Option<u64>) {
    let Some(v) = fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return (0, None);
    };
    let seq = v["seq"].as_i64().filter(|s| *s > 0).map_or(0, |s| s as u64);
    (
        seq,
        v["offset"].as_i64().filter(|o| *o >= 0).map(|o| o as u64),
    )
}

/// The complete lines of `data` (which starts at file offset `base`);
/// damaged lines are skipped (they cost that line, not the rest).
fn parse_entries(data: &[u8], base: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(nl) = data[pos..].iter().position(|&c| c == b'\n') {
        let line = &data[pos..pos + nl + 1];
        pos += nl + 1;
        if let Some((seq, kind, key, body)) = parse_line(line) {
            out.push(Entry {
                seq,
                kind,
                key,
                body,
                end: base + pos as u64,
            });
        }
    }
    out
}

fn valid_key(k: &str) -> bool {
    (1..=128).contains(&k.len())
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.:-".contains(&c))
}

/// One line: the SDK's exact prefix is read without parsing the body (so it
/// is sent byte for byte); anything else through a JSON parse.
fn parse_line(line: &[u8]) -> Option<(u64, String, Option<String>, Vec<u8>)> {
    if let Some(fast) = parse_line_fast(line) {
        return Some(fast);
    }
    let v: Value = serde_json::from_slice(line).ok()?;
    let kind = v["kind"].as_str().filter(|k| KINDS.contains(k))?.to_owned();
    let seq = v["seq"].as_u64()?;
    let body = v.get("body").filter(|b| b.is_object())?;
    let key = v["key"]
        .as_str()
        .filter(|k| valid_key(k))
        .map(str::to_owned);
    Some((seq, kind, key, serde_json::to_vec(body).ok()?))
}

fn parse_line_fast(line: &[u8]) -> Option<(u64, String, Option<String>, Vec<u8>)> {
    let rest = line.strip_prefix(b"{\"kind\":\"")?;
    let k_end = rest.iter().position(|&c| c == b'"')?;
    let kind = std::str::from_utf8(&rest[..k_end]).ok()?;
    if !KINDS.contains(&kind) {
        return None;
    }
    let rest = rest[k_end..].strip_prefix(b"\",\"seq\":")?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let seq: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let mut rest = rest[digits..].strip_prefix(b",")?;
    let mut key = None;
    if let Some(r) = rest.strip_prefix(b"\"key\":\"") {
        let end = r.iter().position(|&c| c == b'"')?;
        let k = std::str::from_utf8(&r[..end]).ok()?;
        if !valid_key(k) {
            return None;
        }
        key = Some(k.to_owned());
        rest = r[end..].strip_prefix(b"\",")?;
    }
    let body = rest.strip_prefix(b"\"body\":")?.strip_suffix(b"}\n")?;
    Some((seq, kind.to_owned(), key, body.to_vec()))
}

/// The request for `entries[i..j]`: consecutive metric (or log) batches
/// without a key merged byte-wise into one body, up to [`MAX_MERGED_BYTES`].
fn next_request(entries: &[Entry], i: usize) -> (usize, Vec<u8>) {
    let e = &entries[i];
    let (head, tail): (&[u8], &[u8]) = match e.kind.as_str() {
        "metrics" => (b"{\"series\":[", b"]}"),
        "logs" => (b"{\"records\":[", b"]}"),
        _ => return (i + 1, e.body.clone()),
    };
    if e.key.is_some() {
        return (i + 1, e.body.clone());
    }
    let mergeable =
        |b: &[u8]| b.starts_with(head) && b.ends_with(tail) && b.len() >= head.len() + tail.len();
    if !mergeable(&e.body) {
        return (i + 1, e.body.clone());
    }
    let mut j = i + 1;
    let mut size = e.body.len();
    while j < entries.len()
        && entries[j].kind == e.kind
        && entries[j].key.is_none()
        && mergeable(&entries[j].body)
        && size + entries[j].body.len() < MAX_MERGED_BYTES
    {
        size += entries[j].body.len();
        j += 1;
    }
    if j == i + 1 {
        return (j, e.body.clone());
    }
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head);
    let mut first = true;
    for x in &entries[i..j] {
        let inner = &x.body[head.len()..x.body.len() - tail.len()];
        if inner.is_empty() {
            continue;
        }
        if !first {
            body.push(b',');
        }
        body.extend_from_slice(inner);
        first = false;
    }
    body.extend_from_slice(tail);
    (j, body)
}

/// What one request came to.
enum Sent {
    Ok,
    /// HTTP status and the server's message.
    Status(u16, String),
    /// No answer.
    Failed(String),
}

/// Sends one of the four request kinds with its body as it was spooled.
fn send(client: &Client, run_id: &str, kind: &str, body: &[u8], key: Option<&str>) -> Sent {
    let (method, path) = match kind {
        "metrics" => (Method::Post, format!("/api/v1/runs/{run_id}/metrics")),
        "logs" => (Method::Post, format!("/api/v1/runs/{run_id}/logs")),
        "patch" => (Method::Patch, format!("/api/v1/runs/{run_id}")),
        _ => (Method::Post, "/api/v1/runs".to_string()),
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

/// Uploads the SDK spool's unacknowledged lines; see the module docs.
fn sync_spool(dir: &Path, info: &Value, client: &Client, attempts: u32) -> Result<()> {
    let rid = info["id"]
        .as_str()
        .ok_or_else(|| anyhow!("{}: run.json has no run id", dir.display()))?;
    let Some(_lock) = try_lock(dir, "lock")? else {
        bail!(
            "{}: in use by a live process (pid in {}); it uploads its spool itself",
            dir.display(),
            dir.join("lock").display()
        );
    };
    let mut spool = Spool::open(dir)?;
    if !spool.pending() {
        println!(
            "loupe sync: run {rid}: nothing to upload ({})",
            dir.display()
        );
        return Ok(());
    }
    let create = match info.get("create") {
        Some(c) if c.is_object() => serde_json::to_vec(c)?,
        _ => serde_json::to_vec(&serde_json::json!({ "id": rid }))?,
    };
    let mut counts = [0usize; 4]; // run, metrics, logs, patch
    let mut requests = 0;
    let (mut sent_run, mut final_sent) = (false, false);
    let entries = spool.unacked()?;
    let mut i = 0;
    let mut failures = 0;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    while i < entries.len() {
        let (j, body) = next_request(&entries, i);
        let e = &entries[i];
        let done = match send_entry(client, rid, &e.kind, &body, e.key.as_deref(), &create, dir) {
            Ok(()) => true,
            Err(why) => {
                failures += 1;
                if failures >= attempts {
                    bail!(
                        "run {rid}: {}: {why}; {} batch(es) left in {} (run sync again)",
                        client.server(),
                        spool.last_seq - spool.acked_seq,
                        spool.path.display()
                    );
                }
                std::thread::sleep(backoff.next_delay());
                false
            }
        };
        if !done {
            continue;
        }
        let last = &entries[j - 1];
        spool.ack(last.seq, last.end)?;
        let slot = KINDS.iter().position(|k| *k == e.kind).unwrap_or(0);
        counts[slot] += j - i;
        requests += 1;
        failures = 0;
        backoff.reset();
        if e.kind == "run" {
            (sent_run, final_sent) = (true, false);
        } else if e.kind == "patch"
            && serde_json::from_slice::<Value>(&e.body)
                .ok()
                .and_then(|v| v["status"].as_str()?.parse::<RunStatus>().ok())
                .map(RunStatus::is_terminal)
                .unwrap_or(false)
        {
            final_sent = true;
        }
        i = j;
    }
    if sent_run && !final_sent && info["final_status"].is_null() {
        // The session this sync created never said how it ended, and its
        // process is gone (we hold its lock): it crashed.
        let _ = send(client, rid, "patch", br#"{"status":"crashed"}"#, None);
    }
    println!(
        "loupe sync: run {rid}: uploaded {} metric, {} log, {} update batch(es) in {requests} request(s) to {}",
        counts[1],
        counts[2],
        counts[0] + counts[3],
        client.server()
    );
    Ok(())
}

/// Sends one request; `Ok` when the server is done with it (took it, or
/// refused it for good and it was set aside in `rejected.jsonl`).
fn send_entry(
    client: &Client,
    rid: &str,
    kind: &str,
    body: &[u8],
    key: Option<&str>,
    create: &[u8],
    dir: &Path,
) -> Result<(), String> {
    let mut created = false;
    loop {
        match send(client, rid, kind, body, key) {
            Sent::Ok => return Ok(()),
            // The server does not know the run (a fresh data directory):
            // create it, then try once more.
            Sent::Status(404, _) if kind != "run" && !created => {
                created = true;
                match send(client, rid, "run", create, None) {
                    Sent::Ok => continue,
                    Sent::Status(s, m) => return Err(format!("HTTP {s} creating the run: {m}")),
                    Sent::Failed(m) => return Err(m),
                }
            }
            Sent::Status(s @ (400 | 413 | 415 | 422), msg) => {
                // Malformed for good: retrying cannot help; keep it aside.
                set_aside(dir, kind, s, &msg, body);
                eprintln!(
                    "loupe sync: run {rid}: the server refused a {kind} batch ({s} {msg}); it is kept in {}",
                    dir.join("rejected.jsonl").display()
                );
                return Ok(());
            }
            Sent::Status(s, msg) => return Err(format!("HTTP {s} {msg}")),
            Sent::Failed(m) => return Err(m),
        }
    }
}

/// Appends a refused body to `rejected.jsonl`, in the SDK's format.
fn set_aside(dir: &Path, kind: &str, status: u16, msg: &str, body: &[u8]) {
    let mut line = format!(
        "{{\"kind\":\"{kind}\",\"status\":{status},\"error\":{},\"body\":",
        Value::from(msg)
    )
    .into_bytes();
    line.extend_from_slice(body);
    line.extend_from_slice(b"}\n");
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("rejected.jsonl"))
    {
        let _ = f.write_all(&line);
    }
}

/// Replays what `loupe run` left, in the order it was meant to go: the
/// run's creation, the held and buffered requests (through the agent's
/// sender, which sends oldest first and acknowledges as it goes), then the
/// run's final status.
fn sync_supervisor(dir: &Path, server: &str, token: Option<&str>, client: &Client) -> Result<()> {
    let Some(_lock) = try_lock(dir, BUFFER_LOCK_FILE)? else {
        bail!(
            "{}: in use by a live `loupe run`; it uploads its data itself",
            dir.display()
        );
    };
    let pending = |name: &str| -> Result<Option<(String, Vec<u8>)>> {
        let path = dir.join(name);
        let Ok(bytes) = fs::read(&path) else {
            return Ok(None);
        };
        let v: Value =
            serde_json::from_slice(&bytes).with_context(|| path.display().to_string())?;
        let rid = v["run_id"]
            .as_str()
            .ok_or_else(|| anyhow!("{}: no run_id", path.display()))?;
        Ok(Some((rid.to_owned(), serde_json::to_vec(&v["body"])?)))
    };
    if let Some((rid, body)) = pending(PENDING_CREATE_FILE)? {
        match send(client, &rid, "run", &body, None) {
            Sent::Ok => fs::remove_file(dir.join(PENDING_CREATE_FILE))?,
            Sent::Status(s, m) => bail!(
                "{}: the server answered {s} to the run's creation: {m}",
                dir.display()
            ),
            Sent::Failed(m) => bail!("{}: {server}: {m}; run sync again", dir.display()),
        }
    }
    let mut records = 0;
    for sub in [HELD_DIR, BUFFER_DIR] {
        let queue = dir.join(sub);
        if !queue.is_dir() {
            continue;
        }
        let mut cfg = SenderConfig::new(server, queue.clone());
        cfg.token = token.map(str::to_owned);
        let sender = Sender::start(cfg).with_context(|| format!("opening {}", queue.display()))?;
        records += sender.stats().queued_disk;
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
        fs::remove_dir_all(&queue).with_context(|| queue.display().to_string())?;
    }
    let mut patched = false;
    if let Some((rid, body)) = pending(PENDING_PATCH_FILE)? {
        match send(client, &rid, "patch", &body, None) {
            Sent::Ok => {
                fs::remove_file(dir.join(PENDING_PATCH_FILE))?;
                patched = true;
            }
            Sent::Status(s, m) => bail!(
                "{}: the server answered {s} to the run's final status: {m}",
                dir.display()
            ),
            Sent::Failed(m) => bail!("{}: {server}: {m}; run sync again", dir.display()),
        }
    }
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
    fn lines() {
        let (seq, kind, key, body) = parse_line(
            b"{\"kind\":\"logs\",\"seq\":8,\"key\":\"ab:1\",\"body\":{\"records\":[]}}\n",
        )
        .unwrap();
        assert_eq!(
            (seq, kind.as_str(), key.as_deref(), body.as_slice()),
            (8, "logs", Some("ab:1"), &b"{\"records\":[]}"[..])
        );
        // Written by hand, with spaces: the general path.
        let (seq, kind, key, body) = parse_line(
            b"{ \"seq\": 3, \"kind\": \"patch\", \"body\": {\"status\": \"finished\"} }\n",
        )
        .unwrap();
        assert_eq!(
            (seq, kind.as_str(), key, body.as_slice()),
            (3, "patch", None, &b"{\"status\":\"finished\"}"[..])
        );
        assert!(parse_line(b"{\"kind\":\"nope\",\"seq\":1,\"body\":{}}\n").is_none());
        assert!(parse_line(b"garbage\n").is_none());
    }

    #[test]
    fn merging() {
        let e = |seq, kind: &str, key: Option<&str>, body: &str| Entry {
            seq,
            kind: kind.into(),
            key: key.map(Into::into),
            body: body.as_bytes().to_vec(),
            end: 0,
        };
        let entries = vec![
            e(1, "metrics", None, "{\"series\":[{\"name\":\"a\"}]}"),
            e(2, "metrics", None, "{\"series\":[{\"name\":\"b\"}]}"),
            e(3, "logs", Some("k"), "{\"records\":[]}"),
            e(4, "logs", None, "{\"records\":[1]}"),
        ];
        let (j, body) = next_request(&entries, 0);
        assert_eq!(
            (j, body.as_slice()),
            (2, &b"{\"series\":[{\"name\":\"a\"},{\"name\":\"b\"}]}"[..])
        );
        assert_eq!(next_request(&entries, 2).0, 3);
        assert_eq!(next_request(&entries, 3).0, 4);
    }
}
