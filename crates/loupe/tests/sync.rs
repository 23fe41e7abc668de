//! `loupe sync` on a spool written by the real Python SDK in offline mode,
//! uploaded to a real `loupe serve`: the data reads back exactly, the
//! `acked` marker is the SDK's (its own `python -m loupe sync` then finds
//! nothing to do), and a second sync uploads nothing.

#[path = "api/support.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{Server, loupe_cmd, same_value};

const PYTHON_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python");

/// Runs `python3 -c CODE` with the SDK importable and no server settings.
fn python(code: &str, cwd: &Path) -> Output {
    let out = Command::new("python3")
        .args(["-c", code])
        .current_dir(cwd)
        .env("PYTHONPATH", PYTHON_DIR)
        .env_remove("LOUPE_SERVER")
        .env_remove("LOUPE_TOKEN")
        .env_remove("LOUPE_RUN_ID")
        .env_remove("LOUPE_DIR")
        .output()
        .expect("python3");
    assert!(out.status.success(), "python failed: {out:?}");
    out
}

fn sync(server: &Server, dirs: &[&Path]) -> String {
    let out = loupe_cmd()
        .arg("sync")
        .args(["--server", &server.base()])
        .args(dirs)
        .output()
        .unwrap();
    assert!(out.status.success(), "loupe sync failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// An offline run: config, 6 steps of two series (a NaN among them), a
/// printed line (console capture makes it a log batch with an idempotency
/// key), a finish.
const OFFLINE_RUN: &str = r#"
import loupe, sys
run = loupe.init(project="p", name="offline-1", mode="offline", dir=sys.argv[1] if len(sys.argv) > 1 else "loupe/run-x", config={"lr": 0.1, "layers": 4})
for i in range(5):
    run.log({"loss": 1.0 / (i + 1), "acc": i * 0.1}, step=i)
run.log({"loss": float("nan")}, step=5)
print("hello from the run", flush=True)
run.finish()
print("ID=" + run.id)
"#;

#[test]
fn an_offline_sdk_spool_uploads_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = python(OFFLINE_RUN, dir.path());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ID="))
        .expect("run id")
        .to_owned();
    let run_dir = dir.path().join("loupe/run-x");
    assert!(run_dir.join("spool.jsonl").is_file());
    assert!(!run_dir.join("acked").exists());

    let server = Server::start();
    let api = server.api();
    // The parent directory: every run directory in it is synced.
    let said = sync(&server, &[&dir.path().join("loupe")]);
    assert!(
        said.contains(&format!(
            "run {id}: uploaded 1 metric, 1 log, 2 update batch(es)"
        )),
        "{said}"
    );

    let run = api.run(&id);
    assert_eq!(run["name"], "offline-1");
    assert_eq!(run["status"], "finished", "{run}");
    assert_eq!(run["config"]["lr"], 0.1);
    let loss = api.read_all(&id, "loss", "step", 1000);
    assert_eq!(loss.step, (0..6).map(Some).collect::<Vec<_>>());
    let want = [1.0, 0.5, 1.0 / 3.0, 0.25, 0.2, f64::NAN];
    assert!(
        loss.y.iter().zip(want).all(|(a, b)| same_value(*a, b)),
        "{:?}",
        loss.y
    );
    let acc = api.read_all(&id, "acc", "step", 1000);
    assert_eq!(
        acc.y,
        (0..5).map(|i| f64::from(i) * 0.1).collect::<Vec<_>>()
    );
    let logs = api.all_logs(&id, &[]);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["text"], "hello from the run");

    // The marker is the SDK's: every line acknowledged.
    let spool = std::fs::read_to_string(run_dir.join("spool.jsonl")).unwrap();
    let acked: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("acked")).unwrap()).unwrap();
    assert_eq!(acked["seq"].as_u64(), Some(spool.lines().count() as u64));
    assert_eq!(acked["offset"].as_u64(), Some(spool.len() as u64));

    // Again: nothing is sent (the logs would be stored twice otherwise).
    let said = sync(&server, &[&run_dir]);
    assert!(said.contains("nothing to upload"), "{said}");
    assert_eq!(api.all_logs(&id, &[]).len(), 1);
    assert_eq!(api.read_all(&id, "loss", "step", 1000).len(), 6);
    // The SDK's own sync agrees.
    let code = format!(
        "import sys; from loupe import sync; sys.exit(sync.main(['{}', '--server', '{}']))",
        run_dir.display(),
        server.base()
    );
    let out = python(&code, dir.path());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to upload"),
        "{out:?}"
    );
}

#[test]
fn a_partly_acknowledged_spool_sends_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let out = python(OFFLINE_RUN, dir.path());
    let id = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("ID="))
        .unwrap()
        .to_owned();
    let run_dir = dir.path().join("loupe/run-x");
    let server = Server::start();
    let api = server.api();
    // The creation was uploaded before (by hand here), and the marker says
    // so: seq 1, ending at the end of the first line.
    let spool = std::fs::read_to_string(run_dir.join("spool.jsonl")).unwrap();
    let first = spool.lines().next().unwrap();
    let body: serde_json::Value = serde_json::from_str(first).unwrap();
    api.create_run(body["body"].clone());
    std::fs::write(
        run_dir.join("acked"),
        format!("{{\"seq\": 1, \"offset\": {}}}", first.len() + 1),
    )
    .unwrap();
    let said = sync(&server, &[&run_dir]);
    assert!(
        said.contains(&format!(
            "run {id}: uploaded 1 metric, 1 log, 1 update batch(es)"
        )),
        "{said}"
    );
    assert_eq!(api.run(&id)["status"], "finished");
    assert_eq!(api.read_all(&id, "loss", "step", 1000).len(), 6);
}

#[test]
fn a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    python(OFFLINE_RUN, dir.path());
    let run_dir = dir.path().join("loupe/run-x");
    let server = Server::start();
    // Hold the SDK's lock as a live run would.
    let lock = std::fs::OpenOptions::new()
        .append(true)
        .open(run_dir.join("lock"))
        .unwrap();
    lock.lock().unwrap();
    let out = loupe_cmd()
        .args(["sync", "--server", &server.base()])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by a live process"),
        "{out:?}"
    );
    assert!(!run_dir.join("acked").exists());
}
