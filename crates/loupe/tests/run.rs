//! `loupe run` end to end: the real binary supervising real Python child
//! processes, reporting to a real `loupe serve` (the harness of
//! `tests/api/`), everything read back through the HTTP API.

#[path = "api/support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Api, Server, loupe_cmd, same_value};

/// `loupe run` with the given options against `server`, running `python3
/// SCRIPT` written to a temporary directory (which is also the working
/// directory and the spool base).
fn loupe_run(server: &Server, dir: &Path, opts: &[&str], script: &str) -> Command {
    let path = dir.join("script.py");
    std::fs::write(&path, script).unwrap();
    let mut c = loupe_cmd();
    c.current_dir(dir)
        .arg("run")
        .args(["--server", &server.base(), "--no-gpu", "--dir"])
        .arg(dir.join("spool"))
        .args(opts)
        .args(["--", "python3"])
        .arg(&path);
    c
}

fn output(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("running loupe run")
}

/// The only run on the server.
fn the_run(api: &Api) -> Value {
    let list = api.get("/api/v1/runs").expect(200);
    let runs = list["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{list}");
    api.run(runs[0]["id"].as_str().unwrap())
}

/// `(step, value)` of every point of a series, in time order.
fn points(api: &Api, run: &str, name: &str) -> Vec<(Option<i64>, f64)> {
    let p = api.read_all(run, name, "time", 10_000);
    p.step.iter().copied().zip(p.y.iter().copied()).collect()
}

fn assert_points(got: &[(Option<i64>, f64)], want: &[(Option<i64>, f64)]) {
    let same = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(a, b)| a.0 == b.0 && same_value(a.1, b.1));
    assert!(same, "got {got:?}\nwant {want:?}");
}

// As a Hugging Face Trainer writes: its bar (global steps) redrawn on
// stderr, its dicts, without a step, on stdout between redraws.
const HF_SCRIPT: &str = r#"
import sys, time
print("***** Running training *****")
print("  Num examples = 1,000", flush=True)
def bar(b):
    sys.stderr.write("\r" + b)
    sys.stderr.flush()
    time.sleep(0.1)
def say(d):
    print(d, flush=True)
    time.sleep(0.1)
bar("  0%|          | 0/4 [00:00<?, ?it/s]")
bar(" 25%|##5       | 1/4 [00:00<00:01,  1.98it/s, loss=0.9]")
bar(" 50%|#####     | 2/4 [00:01<00:01,  2.00it/s, loss=0.8]")
say({'loss': 0.5123, 'grad_norm': 1.84, 'learning_rate': 4.9e-05, 'epoch': 0.5})
bar(" 75%|#######5  | 3/4 [00:01<00:00,  2.01it/s, loss=0.7]")
bar("100%|##########| 4/4 [00:02<00:00,  2.01it/s, loss=0.6]")
say({'loss': 0.4871, 'grad_norm': 2.0625, 'learning_rate': 4.8e-05, 'epoch': 1.0})
sys.stderr.write("\n")
sys.stderr.flush()
time.sleep(0.1)
say({'eval_loss': 0.4012, 'eval_runtime': 1.2345, 'epoch': 1.0})
print("step 7 loss=nan")
time.sleep(0.6)
"#;

#[test]
fn trainer_dicts_and_tqdm_bars_become_series_and_logs() {
    let server = Server::start();
    let api = server.api();
    let dir = tempfile::tempdir().unwrap();
    let out = output(loupe_run(
        &server,
        dir.path(),
        &["--interval", "100ms", "--tag", "e2e"],
        HF_SCRIPT,
    ));
    assert!(out.status.success(), "{out:?}");
    // The child's output reached our stdout and stderr unchanged.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("***** Running training *****\n  Num examples = 1,000\n{'loss': 0.5123"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\r 25%|##5       | 1/4 [00:00<00:01,  1.98it/s, loss=0.9]\r"),
        "{stderr}"
    );

    let run = the_run(&api);
    let id = run["id"].as_str().unwrap();
    // The run's UI page, at the start and at the end.
    let url = format!("{}/r/{id}", server.base());
    assert!(
        stderr.starts_with(&format!("loupe run: {url}\n"))
            && stderr.ends_with(&format!("loupe run: finished {url}\n")),
        "{stderr}"
    );
    assert_eq!(run["status"], "finished", "{run}");
    assert_eq!(run["exit_code"], 0);
    assert!(
        run["name"].as_str().unwrap().starts_with("script-"),
        "{run}"
    );
    assert!(
        run["command"].as_str().unwrap().contains("script.py"),
        "{run}"
    );
    assert_eq!(run["tags"], serde_json::json!(["e2e"]));
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        run["cwd"].as_str().map(Path::new),
        Some(cwd.as_path()),
        "{run}"
    );
    assert!(run["host"].is_string(), "{run}");
    assert!(run["failure"].is_null(), "{run}");

    // The Trainer's dicts take the bar's global step at the time they were
    // printed; the evaluation dict, printed after the bar ended, the last one.
    assert_points(
        &points(&api, id, "loss"),
        &[
            (Some(1), 0.9),
            (Some(2), 0.5123),
            (Some(3), 0.7),
            (Some(4), 0.4871),
            (Some(7), f64::NAN),
        ],
    );
    assert_points(
        &points(&api, id, "learning_rate"),
        &[(Some(2), 4.9e-05), (Some(4), 4.8e-05)],
    );
    assert_points(
        &points(&api, id, "grad_norm"),
        &[(Some(2), 1.84), (Some(4), 2.0625)],
    );
    assert_points(
        &points(&api, id, "epoch"),
        &[(Some(2), 0.5), (Some(4), 1.0)],
    );
    assert_points(&points(&api, id, "eval_loss"), &[(Some(4), 0.4012)]);
    assert_points(
        &points(&api, id, "tqdm/n"),
        &[
            (Some(0), 0.0),
            (Some(1), 1.0),
            (Some(2), 2.0),
            (Some(3), 3.0),
            (Some(4), 4.0),
        ],
    );
    assert_points(
        &points(&api, id, "tqdm/total"),
        &[
            (Some(0), 4.0),
            (Some(1), 4.0),
            (Some(2), 4.0),
            (Some(3), 4.0),
            (Some(4), 4.0),
        ],
    );
    assert_points(
        &points(&api, id, "tqdm/rate"),
        &[
            (Some(1), 1.98),
            (Some(2), 2.0),
            (Some(3), 2.01),
            (Some(4), 2.01),
        ],
    );
    // Prose made no series.
    let series = api.series(id);
    let user: Vec<&String> = series.keys().filter(|k| !k.starts_with("sys/")).collect();
    assert_eq!(
        user,
        [
            "epoch",
            "eval_loss",
            "eval_runtime",
            "grad_norm",
            "learning_rate",
            "loss",
            "tqdm/n",
            "tqdm/rate",
            "tqdm/total"
        ]
    );
    let rss = points(&api, id, "sys/proc.rss_bytes");
    assert!(
        !rss.is_empty()
            && rss.iter().all(|(s, v)| s.is_none() && *v > 0.0)
            && rss.iter().any(|(_, v)| *v > 1e6),
        "{rss:?}"
    );
    assert!(
        series.contains_key("sys/proc.cpu_percent")
            && series.contains_key("sys/host.memory_used_bytes")
    );

    let logs = api.all_logs(id, &[]);
    let texts: Vec<(&str, &str)> = logs
        .iter()
        .map(|r| (r["stream"].as_str().unwrap(), r["text"].as_str().unwrap()))
        .collect();
    assert!(texts.contains(&(
        "stdout",
        "{'loss': 0.5123, 'grad_norm': 1.84, 'learning_rate': 4.9e-05, 'epoch': 0.5}"
    )));
    assert!(texts.contains(&("stdout", "step 7 loss=nan")));
    // Only the bar's last state is a log line.
    let stderr_lines: Vec<&str> = texts
        .iter()
        .filter(|(s, _)| *s == "stderr")
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(
        stderr_lines,
        ["100%|##########| 4/4 [00:02<00:00,  2.01it/s, loss=0.6]"],
        "{texts:?}"
    );
    // Everything was delivered: no spool left behind.
    assert!(!dir.path().join("spool").exists());
}

const CRASH_SCRIPT: &str = r#"
import sys
print("step 1 loss=2.5")
def load():
    return {}['weights']
try:
    load()
except KeyError as e:
    raise ValueError("bad thing") from e
"#;

#[test]
fn a_crash_is_failed_with_its_traceback() {
    let server = Server::start();
    let api = server.api();
    let dir = tempfile::tempdir().unwrap();
    let out = output(loupe_run(&server, dir.path(), &[], CRASH_SCRIPT));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let run = the_run(&api);
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["exit_code"], 1);
    let f = &run["failure"];
    assert_eq!(f["exception_type"], "ValueError", "{run}");
    assert_eq!(f["message"], "bad thing");
    assert!(f["signal"].is_null());
    let tb = f["traceback"].as_str().unwrap();
    assert!(
        tb.starts_with("Traceback (most recent call last):") && tb.contains("KeyError: 'weights'"),
        "{tb}"
    );
    assert!(
        tb.contains("The above exception was the direct cause")
            && tb.ends_with("ValueError: bad thing")
    );
    let tail: Vec<&str> = f["stderr_tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(tail.last(), Some(&"ValueError: bad thing"));
    assert_eq!(tail.first(), Some(&"Traceback (most recent call last):"));
    // Traceback lines are errors in the logs.
    let errors = api.all_logs(run["id"].as_str().unwrap(), &[("level", "error")]);
    assert_eq!(errors.len(), tail.len(), "{errors:?}");
}

#[test]
fn a_command_killed_by_a_signal_is_killed_and_exits_128_plus_n() {
    let server = Server::start();
    let api = server.api();
    let dir = tempfile::tempdir().unwrap();
    let script = "import os, sys\nprint('about to die', flush=True)\nsys.stderr.write('last words\\n')\nsys.stderr.flush()\nos.kill(os.getpid(), 9)\n";
    let out = output(loupe_run(&server, dir.path(), &[], script));
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let run = the_run(&api);
    assert_eq!(run["status"], "killed", "{run}");
    assert_eq!(run["exit_code"], 137);
    assert_eq!(run["failure"]["signal"], 9);
    assert_eq!(
        run["failure"]["stderr_tail"],
        serde_json::json!(["last words"])
    );
    assert!(run["failure"]["exception_type"].is_null());
}

#[test]
fn sigint_is_forwarded_and_the_childs_exit_code_returned() {
    let server = Server::start();
    let api = server.api();
    let dir = tempfile::tempdir().unwrap();
    let script = "import sys, time\ntry:\n    print('ready', flush=True)\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('interrupted, saving', flush=True)\n    sys.exit(3)\n";
    let mut c = loupe_run(&server, dir.path(), &[], script);
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // SAFETY: kill has no memory effects; the pid is our live child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    assert_eq!(lines.next().unwrap().unwrap(), "interrupted, saving");
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(started.elapsed() < Duration::from_secs(10));
    let run = the_run(&api);
    assert_eq!(
        (run["status"].as_str(), run["exit_code"].as_i64()),
        (Some("failed"), Some(3)),
        "{run}"
    );
    let logs = api.all_logs(run["id"].as_str().unwrap(), &[("stream", "stdout")]);
    assert_eq!(
        logs.iter()
            .map(|r| r["text"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["ready", "interrupted, saving"]
    );
}

#[test]
fn a_missing_command_is_a_failed_run_and_127() {
    let server = Server::start();
    let api = server.api();
    let dir = tempfile::tempdir().unwrap();
    let mut c = loupe_cmd();
    c.current_dir(dir.path()).args([
        "run",
        "--server",
        &server.base(),
        "--no-gpu",
        "--",
        "/nonexistent/train",
    ]);
    let out = output(c);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/train"));
    let run = the_run(&api);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["exit_code"], 127);
    assert!(
        run["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/train")
    );
}

#[test]
fn with_the_server_away_everything_waits_for_loupe_sync() {
    // A port nothing listens on: bind, learn it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("script.py"),
        "print('step 1 loss=0.25')\nprint('step 2 loss=0.125')\n",
    )
    .unwrap();
    let mut c = loupe_cmd();
    c.current_dir(dir.path())
        .args([
            "run",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--no-gpu",
            "--dir",
            "spool",
        ])
        .args(["--", "python3", "script.py"]);
    // A short flush wait: the server will not come.
    c.env("LOUPE_RUN_FLUSH_TIMEOUT", "1");
    let out = output(c);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loupe sync"),
        "{out:?}"
    );
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].join("pending_patch.json").is_file());

    let server = Server::start();
    let api = server.api();
    let sync = loupe_cmd()
        .args(["sync", "--server", &server.base()])
        .arg(dir.path().join("spool"))
        .output()
        .unwrap();
    assert!(sync.status.success(), "{sync:?}");
    let run = the_run(&api);
    assert_eq!(run["status"], "finished", "{run}");
    assert_points(
        &points(&api, run["id"].as_str().unwrap(), "loss"),
        &[(Some(1), 0.25), (Some(2), 0.125)],
    );
    assert!(!runs[0].join("pending_patch.json").exists());
}

#[test]
fn the_python_sdk_inside_attaches_to_the_same_run() {
    let server = Server::start();
    let api = server.api();
    let dir = tempfile::tempdir().unwrap();
    let script = "import loupe\nrun = loupe.init()\nrun.log({'sdk/acc': 0.75}, step=3)\nprint('R12 ppl 31.5', flush=True)\nrun.finish()\n";
    let mut c = loupe_run(
        &server,
        dir.path(),
        &["--metric-pattern", r"^R(?P<step>\d+) ppl (?P<ppl>\S+)$"],
        script,
    );
    c.env(
        "PYTHONPATH",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../python"),
    );
    let out = output(c);
    assert!(out.status.success(), "{out:?}");
    // One run: the SDK resumed the one `loupe run` created.
    let run = the_run(&api);
    let id = run["id"].as_str().unwrap();
    assert_eq!(run["status"], "finished");
    assert_points(&points(&api, id, "sdk/acc"), &[(Some(3), 0.75)]);
    assert_points(&points(&api, id, "ppl"), &[(Some(12), 31.5)]);
    // The console was captured once, by `loupe run`.
    let logs = api.all_logs(id, &[]);
    assert_eq!(
        logs.iter().filter(|r| r["text"] == "R12 ppl 31.5").count(),
        1,
        "{logs:?}"
    );
}

/// Real tqdm output (tqdm 4.70, a 20-step training bar then a 5-step
/// evaluation bar, as it wrote them to a pipe), replayed one redraw per
/// write; then the script fails.
const TQDM_SCRIPT: &str = r#"
import sys, time
data = open(sys.argv[1], encoding="utf-8", newline="").read()
for part in data.split("\r"):
    if part:
        sys.stderr.write("\r" + part)
        sys.stderr.flush()
        time.sleep(0.005)
print("saving checkpoint", file=sys.stderr, flush=True)
raise ValueError("loss is nan")
"#;

#[test]
fn progress_bars_are_logged_once_and_kept_out_of_the_failure_tail() {
    let server = Server::start();
    let api = server.api();
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tqdm_4.70_stderr.txt"
    );
    let mut c = loupe_run(&server, dir.path(), &[], TQDM_SCRIPT);
    c.arg(fixture);
    let out = output(c);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let run = the_run(&api);
    let id = run["id"].as_str().unwrap();
    let logs = api.all_logs(id, &[("stream", "stderr")]);
    let texts: Vec<&str> = logs.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let bars: Vec<&&str> = texts.iter().filter(|t| t.contains("it/s]")).collect();
    assert_eq!(bars.len(), 2, "one line per bar, its last state: {texts:?}");
    assert!(
        bars[0].starts_with("train: 100%") && bars[0].contains("20/20"),
        "{bars:?}"
    );
    assert!(
        bars[1].starts_with("eval: 100%") && bars[1].contains("5/5"),
        "{bars:?}"
    );
    let f = &run["failure"];
    assert_eq!(f["exception_type"], "ValueError", "{run}");
    let tail: Vec<&str> = f["stderr_tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(tail.first(), Some(&"saving checkpoint"), "{tail:?}");
    assert_eq!(tail.last(), Some(&"ValueError: loss is nan"), "{tail:?}");
    assert!(!tail.iter().any(|l| l.contains("it/s")), "{tail:?}");
}
