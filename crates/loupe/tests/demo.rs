//! `loupe demo` end to end: every injected fault becomes an incident whose
//! top cause is the right one, checked through the API of the server the
//! demo keeps serving; the healthy baseline run has none.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn get(base: &str, path: &str) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    agent
        .get(format!("{base}{path}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// The first alert `pred` accepts, waiting for the server's evaluations.
fn wait_for_alert(base: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = get(base, "/api/v1/alerts");
        if let Some(a) = all["alerts"]
            .as_array()
            .and_then(|v| v.iter().find(|a| pred(a)))
        {
            return a.clone();
        }
        assert!(Instant::now() < deadline, "no such alert in {all:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn every_injected_fault_becomes_an_incident_with_the_right_top_cause() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "demo",
            "--duration",
            "60",
            "--speed",
            "10",
            "--follow",
            "--data",
        ])
        .arg(data.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut base = None;
    let mut transcript = String::new();
    let started = Instant::now();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        transcript.push_str(&line);
        transcript.push('\n');
        if let Some(b) = line.strip_prefix("loupe serve listening on ") {
            base = Some(b.trim().to_string());
        }
        if line.starts_with("loupe demo finished") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(240), "{transcript}");
    }
    let base = base.expect("the demo prints its address");
    // Keep reading, as a terminal would.
    std::thread::spawn(move || for _ in lines {});
    assert!(transcript.contains("⚠ incident"), "{transcript}");
    let incidents = get(&base, "/api/v1/incidents?project=demo&limit=1000");
    let incidents = incidents["incidents"].as_array().unwrap().clone();
    let top_kinds = |pred: &dyn Fn(&Value) -> bool| -> Vec<String> {
        incidents
            .iter()
            .filter(|i| pred(i))
            .map(|i| i["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let job = top_kinds(&|i| i["group"] == "pretrain-7b");
    for expected in [
        "learning_rate_too_high",
        "input_pipeline_bound",
        "thermal_straggler",
        "gpu_memory_leak",
    ] {
        assert!(
            job.iter().any(|k| k == expected),
            "{expected} missing from {job:?}\n{transcript}"
        );
    }
    let service = top_kinds(&|i| i["service"] == "chat-api");
    assert!(service.iter().any(|k| k == "serving_errors"), "{service:?}");
    // The leak's incident names rank 5 and the crash's traceback.
    let leak = incidents
        .iter()
        .find(|i| i["kind"] == "gpu_memory_leak")
        .unwrap();
    assert!(
        leak["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "pretrain-7b.r5")
    );
    let straggler = incidents
        .iter()
        .find(|i| i["kind"] == "thermal_straggler")
        .unwrap();
    assert!(
        straggler["title"].as_str().unwrap().contains("rank 3"),
        "{straggler:#}"
    );
    // The healthy baseline has none; the crashed rank says why it failed.
    let baseline = get(&base, "/api/v1/runs/baseline-7b/incidents");
    assert_eq!(
        baseline["incidents"].as_array().unwrap().len(),
        0,
        "{baseline:#}"
    );
    let r5 = get(&base, "/api/v1/runs/pretrain-7b.r5");
    assert_eq!(r5["status"], "failed");
    assert!(
        r5["failure"]["exception_type"]
            .as_str()
            .unwrap_or("")
            .contains("OutOfMemoryError"),
        "{r5:#}"
    );
    // Every printed link is a UI page (`/r/ID`, which the UI's browser test
    // follows); a job's incident links to the rank behind it.
    let links: Vec<&str> = transcript
        .lines()
        .filter_map(|l| l.trim().strip_prefix("see: "))
        .collect();
    assert!(!links.is_empty(), "{transcript}");
    assert!(
        links
            .iter()
            .all(|l| l.starts_with(&format!("{base}/r/")) && !l.contains("/runs/")),
        "{links:?}"
    );
    assert!(
        links.contains(&format!("{base}/r/pretrain-7b.r5").as_str()),
        "{links:?}"
    );
    // The built-in rules fire as a user expects: the rank that ran out of
    // memory is a crashed run.
    let crashed = wait_for_alert(&base, |a| {
        a["rule"] == "builtin:crashed_run"
            && a["labels"]["run"] == "pretrain-7b.r5"
            && a["state"] == "firing"
    });
    assert!(
        crashed["labels"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("OutOfMemoryError"),
        "{crashed:#}"
    );
    // --follow keeps serving until SIGTERM, then stops cleanly.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn store_commands_refuse_a_directory_that_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["store", "inspect"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Loupe data directory"));
}
