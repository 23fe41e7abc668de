//! Damage is never silent, through the real binary: WAL files cut and
//! segments damaged in a data directory `loupe serve` wrote, then the server
//! started on it, read from, and `loupe store verify|repair` run on it.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::{Value, json};

use crate::support::{Server, loupe_cmd};

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// The server's log once it holds `needle` (or after 5 s, for the
/// assertion to show): it is read by a thread of its own, which may lag
/// behind the server's answers on a loaded machine.
fn logged(server: &Server, needle: &str) -> String {
    for _ in 0..100 {
        let log = server.stderr();
        if log.contains(needle) {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stderr()
}

fn cut(path: &Path, by: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - by).unwrap();
}

fn store(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = loupe_cmd()
        .arg("store")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn batch(name: &str, n: i64) -> Value {
    json!({"series": [{"name": name, "step": (0..n).collect::<Vec<_>>(),
                       "value": (0..n).map(|s| (s as f64 * 0.37).sin()).collect::<Vec<_>>()}]})
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_damaged_segment_is_named_by_reads_metrics_and_verify_until_repair_quarantines_it() {
    let mut server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));
    api.post_metrics("r", &batch("loss", 2000));
    assert!(server.sigterm().success());
    let data = server.data_dir().to_path_buf();
    let dir = data.to_str().unwrap();

    let ok = store(&["verify", dir], "");
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("SQLite files pass"), "{}", text(&ok));

    let seg = files(&data.join("tsdb/segments"), "seg").pop().unwrap();
    cut(&seg, 5);
    server.start_again();
    let api = server.api();
    let r = api.get_q("/api/v1/runs/r/series/data", &[("name", "loss")]);
    let err = r.expect_error(500, seg.file_name().unwrap().to_str().unwrap());
    assert_eq!(err["error"]["code"], "damaged_data");
    let m = api.get("/metrics").text();
    assert!(metric(&m, "loupe_tsdb_damage_found_total") >= 1.0, "{m}");
    assert!(server.stderr().contains("damaged data found on open"));
    assert!(server.sigterm().success());

    let bad = store(&["verify", dir, "--json"], "");
    assert!(!bad.status.success());
    let doc: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["problems"][0]["file"], seg.to_str().unwrap());

    let refused = store(&["repair", dir], "n\n");
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(seg.exists(), "nothing changes without confirmation");
    let done = store(&["repair", dir], "y\n");
    assert!(done.status.success(), "{}", text(&done));
    assert!(!seg.exists());
    let quarantine = data.join("tsdb/quarantine");
    let stamp = std::fs::read_dir(&quarantine)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert!(stamp.path().join(seg.file_name().unwrap()).exists());
    assert!(stamp.path().join("NOTE.json").exists());
    let again = store(&["verify", dir], "");
    assert!(again.status.success(), "{}", text(&again));

    server.start_again();
    let r = server
        .api()
        .get_q("/api/v1/runs/r/series/data", &[("name", "loss")])
        .expect(200);
    assert_eq!(
        r["count"], 0,
        "the lost chunk is gone, and the note says so"
    );
}

#[test]
fn verify_names_a_damaged_sqlite_file_and_refuses_what_is_not_a_data_directory() {
    let mut server = Server::start();
    server.api().create_run(json!({"id": "r", "project": "p"}));
    assert!(server.sigterm().success());
    let data = server.data_dir().to_path_buf();
    let meta = data.join("meta.sqlite");
    let mut bytes = std::fs::read(&meta).unwrap();
    bytes[..16].copy_from_slice(b"garbage-garbage!");
    std::fs::write(&meta, &bytes).unwrap();
    let out = store(&["verify", data.to_str().unwrap()], "");
    assert!(!out.status.success());
    assert!(text(&out).contains("meta.sqlite"), "{}", text(&out));

    let empty = tempfile::tempdir().unwrap();
    let out = store(&["verify", empty.path().to_str().unwrap()], "");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not a Loupe data directory"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

#[test]
fn a_torn_wal_tail_is_logged_and_a_cut_sealed_wal_file_is_counted_as_damage() {
    let mut server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));
    api.post_metrics("r", &batch("loss", 1000));
    api.post_metrics("r", &batch("acc", 1000));
    server.kill9();
    let wal_dir = server.data_dir().join("tsdb/wal");
    let newest = files(&wal_dir, "wal").pop().unwrap();
    cut(&newest, 7);
    server.start_again();
    // The server's stderr is read by a thread of its own, which may lag
    // behind the address it printed on stdout.
    let log = logged(&server, "torn WAL tail");
    assert!(log.contains("torn WAL tail"), "{log}");
    assert!(log.contains("dropped"), "{log}");
    let m = server.api().get("/metrics").text();
    assert_eq!(metric(&m, "loupe_tsdb_damage_found_total"), 0.0);
    assert!(metric(&m, "loupe_tsdb_torn_tail_bytes") > 0.0);

    // The restart sealed that file at its acknowledged length; cutting it
    // now loses acknowledged points: damage, not a torn tail.
    server.kill9();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    f.set_len(1000).unwrap();
    server.start_again();
    let log = logged(&server, "unreadable or missing");
    assert!(log.contains("unreadable or missing"), "{log}");
    let m = server.api().get("/metrics").text();
    assert_eq!(metric(&m, "loupe_tsdb_damage_found_total"), 1.0);
}

#[test]
fn a_missing_meta_sqlite_beside_time_series_data_is_refused_unless_accepted() {
    let mut server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));
    api.post_metrics("r", &batch("loss", 10));
    assert!(server.sigterm().success());
    let data = server.data_dir().to_path_buf();
    for f in ["meta.sqlite", "meta.sqlite-wal", "meta.sqlite-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let out = loupe_cmd()
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--accept-missing-meta"),
        "{}",
        text(&out)
    );
    assert!(!data.join("meta.sqlite").exists(), "nothing was created");

    let s = Server::configured(
        "127.0.0.1:0",
        &["--accept-missing-meta"],
        Some(data.clone()),
    );
    s.api().get("/api/v1/runs/r").expect(404);
}

#[test]
fn an_absurd_run_start_time_is_refused_naming_the_field() {
    let server = Server::start();
    server
        .api()
        .post_json(
            "/api/v1/runs",
            &json!({"id": "r", "project": "p", "start_time": 1e300}),
        )
        .expect_error(400, "start_time");
}
