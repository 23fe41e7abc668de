//! A full disk under a real server: `loupe serve` on a small tmpfs that a
//! filler file has nearly used up. Every kind of write answers 503 with a
//! JSON error that says what ran out; SIGTERM exits with a message about
//! the final flush (not about opening the store); and once space returns,
//! a restart serves every point acknowledged before the disk filled.
//!
//! Mounting needs root (as in CI). Where it is refused, the test re-runs
//! itself inside `unshare -rm` (a user and mount namespace, in which the
//! server it starts runs too); where that fails as well, it fails and says
//! why.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::Server;

const FS_SIZE_MB: u64 = 24;
const FILLER_MB: u64 = 20;
/// Set in the re-run inside a user and mount namespace.
const NAMESPACE_ENV: &str = "LOUPE_FULL_DISK_IN_NAMESPACE";
const TEST_NAME: &str = "full_disk::every_write_says_no_space_and_nothing_acknowledged_is_lost";

/// A tmpfs mounted with the `mount` command; unmounted (lazily) on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount() -> Result<SmallFs, String> {
        let dir = tempfile::Builder::new()
            .prefix("loupe-full-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE_MB}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn metrics_batch(first_step: i64, n: i64) -> serde_json::Value {
    let steps: Vec<i64> = (first_step..first_step + n).collect();
    let values: Vec<f64> = steps.iter().map(|s| (*s as f64 * 0.37).sin()).collect();
    json!({"series": [{"name": "train/loss", "step": steps, "value": values}]})
}

/// The answer to a write on a full disk: 503, the JSON error shape, and a
/// message that names the lack of space.
fn assert_no_space(what: &str, status: u16, body: &serde_json::Value) {
    assert_eq!(status, 503, "{what} on a full disk: {body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("No space left") || msg.contains("disk is full"),
        "{what}: the error names the lack of space: {body}"
    );
    assert!(body["error"]["code"].is_string(), "{what}: {body}");
}

fn scenario(fs: &Path) {
    let filler = fs.join("filler");
    let data: PathBuf = fs.join("data");
    let mut server = Server::configured("127.0.0.1:0", &[], Some(data.clone()));
    let api = server.api();
    let run = api
        .post_json("/api/v1/runs", &json!({"project": "p", "name": "r"}))
        .expect(201);
    let run = run["id"].as_str().expect("run id").to_owned();
    let status = Command::new("fallocate")
        .args(["-l", &format!("{FILLER_MB}m")])
        .arg(&filler)
        .status()
        .expect("fallocate runs");
    assert!(status.success(), "fallocate made the filler file");

    // Metrics until the disk is full: every batch before that was acknowledged.
    let batch = 5_000;
    let mut acked = 0i64;
    let full = loop {
        assert!(acked < 10_000_000, "the disk never filled");
        let r = api
            .try_post_json(
                &format!("/api/v1/runs/{run}/metrics"),
                &metrics_batch(acked, batch),
            )
            .expect("the server answers");
        if r.status != 200 {
            break r;
        }
        acked += batch;
    };
    assert!(acked > 0, "some batches fit before the disk filled");
    eprintln!("full disk after {acked} acknowledged points");
    assert_no_space("metrics", full.status, &full.json());

    // Logs and new runs on the same full disk: the same status.
    let logs = api
        .try_post_json(
            &format!("/api/v1/runs/{run}/logs"),
            &json!({"records": vec![json!({"stream": "stdout", "text": "z".repeat(2000), "time": 1.7e9}); 400]}),
        )
        .expect("the server answers");
    assert_no_space("logs", logs.status, &logs.json());
    let mut created = 0;
    let refused = loop {
        let r = api
            .try_post_json("/api/v1/runs", &json!({"project": "p", "name": format!("more-{created}"), "notes": "n".repeat(4000)}))
            .expect("the server answers");
        if r.status != 201 {
            break r;
        }
        created += 1;
        assert!(created < 10_000, "run creation never ran out of space");
    };
    assert_no_space("run creation", refused.status, &refused.json());

    // SIGTERM on a full disk: a clean exit or a message about the final
    // flush, never a misleading one about opening the store.
    let _ = server.sigterm();
    let stderr = server.stderr();
    assert!(!stderr.contains("opening the store"), "{stderr}");

    // Space returns; a restart serves every acknowledged point.
    std::fs::remove_file(&filler).expect("removing the filler");
    server.start_again();
    let series = server
        .api()
        .get(&format!("/api/v1/runs/{run}/series"))
        .expect(200);
    let count = series["series"][0]["count"].as_i64().unwrap_or(-1);
    assert!(
        count >= acked,
        "{acked} points were acknowledged before the disk filled; {count} came back"
    );
    // And writes work again.
    api_after(&server, &run, acked);
}

fn api_after(server: &Server, run: &str, from: i64) {
    server
        .api()
        .post_json(
            &format!("/api/v1/runs/{run}/metrics"),
            &metrics_batch(from + 10_000_000, 10),
        )
        .expect(200);
}

#[test]
fn every_write_says_no_space_and_nothing_acknowledged_is_lost() {
    let in_namespace = std::env::var_os(NAMESPACE_ENV).is_some();
    match SmallFs::mount() {
        Ok(fs) => scenario(fs.path()),
        Err(e) if !in_namespace => {
            let exe = std::env::current_exe().expect("path of the test binary");
            let out = Command::new("unshare")
                .arg("-rm")
                .arg(&exe)
                .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
                .env(NAMESPACE_ENV, "1")
                .output()
                .unwrap_or_else(|u| panic!("mount refused ({e}) and unshare could not run ({u})"));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "inside `unshare -rm` (mount refused: {e}):\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) => panic!(
            "cannot mount a {FS_SIZE_MB} MiB tmpfs even inside `unshare -rm` ({e}); this test \
             needs root or unprivileged user namespaces"
        ),
    }
}
