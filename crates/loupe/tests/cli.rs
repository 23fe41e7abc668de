//! The CLI as a shell user meets it: a closed pipe ends a listing quietly,
//! errors are one line without API paths or backtraces, exit codes follow
//! convention (0 ok, 1 failed or nothing found, 2 usage), and output to a
//! pipe has no terminal escapes.

#[path = "api/support.rs"]
mod support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Output, Stdio};

use serde_json::json;
use support::{Server, loupe_cmd};

fn cli(server: &Server, args: &[&str]) -> Output {
    loupe_cmd()
        .args(args)
        .args(["--server", &server.base()])
        .stdin(Stdio::null())
        .output()
        .expect("running loupe")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `loupe ARGS | head -1`: reads one line and closes the pipe; returns
/// that line, loupe's stderr and how it ended.
fn piped_to_head(server: &Server, args: &[&str]) -> (String, String, ExitStatus) {
    let mut child = loupe_cmd()
        .args(args)
        .args(["--server", &server.base()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running loupe");
    let mut first = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    drop(out);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (first, stderr, child.wait().unwrap())
}

#[test]
fn a_closed_pipe_ends_listings_quietly() {
    let server = Server::start();
    let api = server.api();
    // Enough runs that the listing outgrows a pipe's buffer.
    for i in 0..700 {
        api.post_json(
            "/api/v1/runs",
            &json!({"id": format!("pipe-{i:04}"), "project": "cli", "name": format!("run number {i}")}),
        )
        .expect(201);
    }
    for args in [
        &["runs", "--limit", "1000"][..],
        &["runs", "--json", "--limit", "1000"],
    ] {
        let (first, stderr, status) = piped_to_head(&server, args);
        assert!(!first.is_empty(), "{args:?}");
        assert!(stderr.is_empty(), "{args:?}: loupe said {stderr:?}");
        // Ended by the closed pipe (SIGPIPE), as `ls | head` is, or done
        // before noticing; never a failure of its own.
        assert!(
            status.success() || status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {status}"
        );
    }
}

#[test]
fn errors_are_one_line_with_conventional_exit_codes() {
    let server = Server::start();
    let api = server.api();
    api.post_json("/api/v1/runs", &json!({"id": "r1", "project": "cli"}))
        .expect(201);
    api.post_json(
        "/api/v1/runs/r1/logs",
        &json!({"records": [{"time": 1.0, "stream": "stderr", "level": "error",
            "text": "torch.OutOfMemoryError: CUDA out of memory"}]}),
    )
    .expect(200);

    // An unknown run: 1, the server's words, no API path, no backtrace.
    let out = cli(&server, &["show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err, "loupe: run \"nope\" not found\n");

    // A search with no match says so and exits 1, as grep does; a match 0.
    let out = cli(&server, &["logs", "r1", "-q", "zebra"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "loupe logs: no line of run r1 matches \"zebra\"\n"
    );
    let out = cli(&server, &["logs", "r1", "-q", "OutOfMemory"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("torch.OutOfMemoryError"));

    // A usage error: 2.
    let out = cli(&server, &["runs", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));

    // No server there: 1, one line.
    let out = loupe_cmd()
        .args(["runs", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("loupe: cannot reach the Loupe server at http://127.0.0.1:9")
            && err.lines().count() == 1
            && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn output_to_a_pipe_has_no_terminal_escapes() {
    let server = Server::start();
    server
        .api()
        .post_json("/api/v1/runs", &json!({"id": "r1", "project": "cli"}))
        .expect(201);
    for args in [
        &["runs"][..],
        &["show", "r1"],
        &["--help"],
        &["runs", "--help"],
    ] {
        let out = if args.contains(&"--help") {
            loupe_cmd().args(args).output().unwrap()
        } else {
            cli(&server, args)
        };
        assert!(out.status.success(), "{args:?}: {out:?}");
        for stream in [&out.stdout, &out.stderr] {
            assert!(!stream.contains(&0x1b), "{args:?}: {}", text(stream));
        }
    }
    // `--help` names every command with what it does.
    let help = text(&loupe_cmd().arg("--help").output().unwrap().stdout);
    for cmd in [
        "demo", "serve", "runs", "show", "logs", "run", "detect", "diagnose",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "{cmd} missing from:\n{help}"
        );
    }
    // `show` prints the run's UI page.
    let show = text(&cli(&server, &["show", "r1"]).stdout);
    assert!(
        show.contains(&format!("url         {}/r/r1", server.base())),
        "{show}"
    );
}
