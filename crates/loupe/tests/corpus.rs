//! The real-world log corpus end to end (issue 12): every excerpt of
//! `crates/loupe-diagnose/corpus/logs/` replayed against a real `loupe
//! serve` two ways — posted to `POST /api/v1/runs/{id}/logs` as a run's
//! stderr lines and ended with the case's exit code, and printed to stderr
//! by a child of `loupe run` (`sh -c 'cat FILE >&2; exit N'`) — and judged
//! by the same rules as the in-process evaluation (`tests/corpus.rs` of
//! loupe-diagnose): detection, right cause first, no incident on healthy
//! logs.

#[path = "api/support.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use loupe_diagnose::Severity;
use loupe_diagnose::corpus::{self, Case, Report, Seen, Targets};
use serde_json::{Value, json};
use support::{Api, Server, loupe_cmd};

/// How long the incidents of all runs must stay unchanged before they are
/// judged (the diagnoser runs beside ingestion).
const SETTLE: Duration = Duration::from_secs(3);
/// The longest wait for the incidents to settle.
const SETTLE_MAX: Duration = Duration::from_secs(60);

fn run_id(path: &str, i: usize) -> String {
    format!("{path}-{i}")
}

/// What a judge needs of one incident of the API.
fn seen(v: &Value) -> Option<Seen> {
    Some(Seen {
        kind: v["kind"].as_str()?.to_string(),
        title: v["title"].as_str().unwrap_or_default().to_string(),
        severity: serde_json::from_value::<Severity>(v["severity"].clone()).ok()?,
        opened: v["opened"].as_f64().unwrap_or_default(),
    })
}

fn incidents(api: &Api, run: &str) -> Vec<Seen> {
    api.get(&format!("/api/v1/runs/{run}/incidents"))
        .expect(200)["incidents"]
        .as_array()
        .map(|a| a.iter().filter_map(seen).collect())
        .unwrap_or_default()
}

/// The incidents of every run, once they stopped changing.
fn settled(api: &Api, runs: &[String]) -> Vec<Vec<Seen>> {
    let start = Instant::now();
    let mut last: Vec<Vec<Seen>> = Vec::new();
    let mut stable_since = Instant::now();
    loop {
        let now: Vec<Vec<Seen>> = runs.iter().map(|r| incidents(api, r)).collect();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= SETTLE || start.elapsed() >= SETTLE_MAX {
            return last;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Posts the excerpt as stderr lines (level info, one second apart in data
/// time) and ends the run with its exit code.
fn post_case(api: &Api, id: &str, case: &Case) {
    api.create_run(json!({"id": id, "project": "corpus", "name": case.file}));
    let records: Vec<Value> = case
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({"time": corpus::REPLAY_START + i as f64, "stream": "stderr", "level": "info", "text": l})
        })
        .collect();
    for chunk in records.chunks(500) {
        api.post_logs(id, &json!({ "records": chunk }));
    }
    api.patch_json(
        &format!("/api/v1/runs/{id}"),
        &json!({"status": case.status(), "exit_code": case.exit_code}),
    )
    .expect(200);
}

/// Runs `loupe run -- sh -c 'cat FILE >&2; exit N'` for the case, as a run
/// named `name`.
fn loupe_run_case(server: &Server, dir: &std::path::Path, name: &str, case: &Case) {
    let file = corpus::default_dir()
        .join("logs")
        .join(&case.family)
        .join(&case.file);
    let status = loupe_cmd()
        .current_dir(dir)
        .arg("run")
        .args(["--server", &server.base(), "--no-gpu", "--interval", "60s"])
        .args(["--project", "corpus-run", "--name", name, "--dir"])
        .arg(dir.join("spool"))
        .args(["--", "sh", "-c", "cat \"$0\" >&2; exit \"$1\""])
        .arg(&file)
        .arg(case.exit_code.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running loupe run");
    assert_eq!(
        status.code(),
        Some(case.exit_code & 0xff),
        "{}: loupe run returns the child's exit code",
        case.file
    );
}

/// The ids of the runs `loupe run` created, by name.
fn ids_by_name(api: &Api, names: &[String]) -> Vec<String> {
    let list = api.get_q(
        "/api/v1/runs",
        &[("project", "corpus-run"), ("limit", "10000")],
    );
    let runs = list.expect(200)["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    names
        .iter()
        .map(|n| {
            runs.iter()
                .find(|r| r["name"].as_str() == Some(n))
                .and_then(|r| r["id"].as_str())
                .unwrap_or_else(|| panic!("no run named {n}"))
                .to_string()
        })
        .collect()
}

fn judge_all(cases: &[Case], incidents: &[Vec<Seen>]) -> Report {
    Report {
        outcomes: cases
            .iter()
            .zip(incidents)
            .map(|(c, i)| corpus::judge(c, i))
            .collect(),
    }
}

fn check(how: &str, report: &Report) {
    println!("## {how}\n\n{}", report.markdown());
    // The in-process evaluation's bar (see loupe-diagnose's tests/corpus.rs):
    // every target on both halves.
    let below: Vec<String> = report.below(&Targets::default());
    assert!(
        below.is_empty(),
        "{how}: under target:\n{}",
        below.join("\n")
    );
}

#[test]
fn real_logs_through_the_api_and_loupe_run() {
    let cases = corpus::load(&corpus::default_dir()).expect("the corpus loads");
    assert!(!cases.is_empty());
    let server = Server::start();
    let api = server.api();
    let started = Instant::now();

    let posted: Vec<String> = (0..cases.len()).map(|i| run_id("post", i)).collect();
    for (id, case) in posted.iter().zip(&cases) {
        post_case(&api, id, case);
    }

    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..cases.len()).map(|i| run_id("run", i)).collect();
    for (name, case) in names.iter().zip(&cases) {
        loupe_run_case(&server, dir.path(), name, case);
    }
    let supervised = ids_by_name(&api, &names);

    let mut all = posted.clone();
    all.extend(supervised.iter().cloned());
    let found = settled(&api, &all);
    let (by_post, by_run) = found.split_at(posted.len());
    check("POST /logs", &judge_all(&cases, by_post));
    check("loupe run", &judge_all(&cases, by_run));
    eprintln!("{} cases both ways in {:?}", cases.len(), started.elapsed());
}
