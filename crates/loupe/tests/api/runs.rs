//! Runs: create, resume, read, patch, list (filters, sorts, pages), delete.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Api, Server, wait_for};

fn ids(list: &Value) -> Vec<String> {
    list["runs"]
        .as_array()
        .expect("runs array")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn list(api: &Api, q: &[(&str, &str)]) -> Vec<String> {
    ids(&api.get_q("/api/v1/runs", q).expect(200))
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn as_set(v: Vec<String>) -> BTreeSet<String> {
    let n = v.len();
    let s: BTreeSet<String> = v.into_iter().collect();
    assert_eq!(s.len(), n, "a run was listed twice");
    s
}

#[test]
fn create_resume_get_and_patch() {
    let server = Server::start();
    let api = server.api();

    let r = api.post_json(
        "/api/v1/runs",
        &json!({"id": "alpha-1", "project": "vision", "name": "resnet baseline",
                "tags": ["baseline", "gpu"], "host": "node-3",
                "config": {"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}}}),
    );
    assert!(r.content_type.starts_with("application/json"));
    let run = r.expect(201);
    assert_eq!(run["id"], "alpha-1");
    assert_eq!(run["project"], "vision");
    assert_eq!(run["name"], "resnet baseline");
    assert_eq!(run["status"], "running");
    assert_eq!(run["resumes"], 0);
    assert_eq!(run["host"], "node-3");
    assert!(run["end_time"].is_null());
    assert_eq!(run["tags"], json!(["baseline", "gpu"]));
    let start = run["start_time"].as_f64().expect("start_time");
    let now = crate::support::now_ns() as f64 / 1e9;
    assert!(
        (now - start).abs() < 60.0,
        "start_time {start} vs now {now}"
    );

    // Same id again: resumed, not created.
    let again = api
        .post_json(
            "/api/v1/runs",
            &json!({"id": "alpha-1", "project": "vision"}),
        )
        .expect(200);
    assert_eq!(again["resumes"], 1);
    assert_eq!(again["status"], "running");
    assert_eq!(again["name"], "resnet baseline", "a resume keeps the name");
    assert_eq!(again["start_time"].as_f64(), Some(start));

    // A run without an id gets a fresh one.
    let fresh = api.create_run(json!({"project": "vision"}));
    let fresh_id = fresh["id"].as_str().unwrap();
    assert!(!fresh_id.is_empty() && fresh_id != "alpha-1");
    assert!(!fresh["name"].as_str().unwrap().is_empty());

    let got = api.run("alpha-1");
    assert_eq!(got["id"], "alpha-1");
    assert_eq!(got["resumes"], 1);
    assert_eq!(got["config"]["opt"]["name"], "adam");

    api.get("/api/v1/runs/no-such-run")
        .expect_error(404, "no-such-run");

    // Config is deep-merged; tags are replaced.
    let patched = api
        .patch_json(
            "/api/v1/runs/alpha-1",
            &json!({"config": {"opt": {"beta": 0.95}, "bs": 32}, "tags": ["final"]}),
        )
        .expect(200);
    assert_eq!(
        patched["config"],
        json!({"lr": 0.1, "opt": {"name": "adam", "beta": 0.95}, "bs": 32})
    );
    assert_eq!(patched["tags"], json!(["final"]));
    assert_eq!(patched["status"], "running");
    assert!(patched["end_time"].is_null());

    // Finishing sets the end time.
    let done = api
        .patch_json(
            "/api/v1/runs/alpha-1",
            &json!({"status": "finished", "exit_code": 0}),
        )
        .expect(200);
    assert_eq!(done["status"], "finished");
    assert_eq!(done["exit_code"], 0);
    let end = done["end_time"].as_f64().expect("finished sets end_time");
    assert!(end >= start, "end_time {end} before start_time {start}");
    let got = api.run("alpha-1");
    assert_eq!(got["status"], "finished");
    assert_eq!(got["end_time"].as_f64(), Some(end));
    assert_eq!(got["tags"], json!(["final"]));
    assert_eq!(api.list_tagged("final"), vec!["alpha-1".to_string()]);
    assert!(api.list_tagged("gpu").is_empty(), "old tags are gone");

    // Resuming a finished run: running again, end time cleared.
    let resumed = api
        .post_json(
            "/api/v1/runs",
            &json!({"id": "alpha-1", "project": "vision"}),
        )
        .expect(200);
    assert_eq!(resumed["status"], "running");
    assert_eq!(resumed["resumes"], 2);
    assert!(resumed["end_time"].is_null());

    // An id of another project is not resumed into this one.
    api.post_json(
        "/api/v1/runs",
        &json!({"id": "alpha-1", "project": "audio"}),
    )
    .expect_error(404, "alpha-1");
    assert_eq!(api.run("alpha-1")["project"], "vision");

    // Patching a run that does not exist.
    api.patch_json("/api/v1/runs/ghost", &json!({"status": "finished"}))
        .expect_error(404, "ghost");
    // A bad status is refused with the API's error shape.
    let bad = api.patch_json("/api/v1/runs/alpha-1", &json!({"status": "exploded"}));
    assert!(bad.status == 400 || bad.status == 422, "{}", bad.status);
    crate::support::assert_error_shape(&bad);
    assert_eq!(api.run("alpha-1")["status"], "running");
}

impl Api {
    fn list_tagged(&self, tag: &str) -> Vec<String> {
        list(self, &[("tag", tag)])
    }
}

#[test]
fn list_filters_sorts_and_pages() {
    let server = Server::start();
    let api = server.api();
    let mk = |id: &str, project: &str, name: &str, tags: Value| {
        api.create_run(json!({"id": id, "project": project, "name": name, "tags": tags}));
    };
    mk("a", "nlp", "bert-small", json!(["baseline"]));
    mk("b", "nlp", "bert-large", json!(["sweep"]));
    mk("c", "nlp", "gpt-tiny", json!(["sweep", "baseline"]));
    mk("d", "vision", "resnet", json!(["baseline"]));
    mk("e", "nlp", "no-metrics", json!([]));
    api.patch_json("/api/v1/runs/b", &json!({"status": "finished"}))
        .expect(200);
    api.patch_json("/api/v1/runs/e", &json!({"status": "failed"}))
        .expect(200);

    assert_eq!(as_set(list(&api, &[])), set(&["a", "b", "c", "d", "e"]));
    assert_eq!(
        as_set(list(&api, &[("project", "nlp")])),
        set(&["a", "b", "c", "e"])
    );
    assert_eq!(as_set(list(&api, &[("project", "vision")])), set(&["d"]));
    assert!(list(&api, &[("project", "nobody")]).is_empty());
    assert_eq!(as_set(list(&api, &[("status", "finished")])), set(&["b"]));
    assert_eq!(
        as_set(list(&api, &[("status", "running"), ("project", "nlp")])),
        set(&["a", "c"])
    );
    assert_eq!(
        as_set(list(&api, &[("status", "finished,failed")])),
        set(&["b", "e"])
    );
    assert_eq!(as_set(list(&api, &[("tag", "sweep")])), set(&["b", "c"]));
    assert_eq!(as_set(list(&api, &[("q", "bert")])), set(&["a", "b"]));
    assert_eq!(
        as_set(list(&api, &[("q", "gpt"), ("tag", "baseline")])),
        set(&["c"])
    );
    assert_eq!(
        list(&api, &[("project", "nlp"), ("sort", "name")]),
        vec!["b", "a", "c", "e"],
        "sorted by name"
    );
    api.get_q("/api/v1/runs", &[("status", "exploded")])
        .expect_error(400, "exploded");
    api.get_q("/api/v1/runs", &[("sort", "shoe_size")])
        .expect_error(400, "shoe_size");

    // Sort by a summary statistic once the summaries reach the store.
    let loss = |run: &str, values: &[f64]| {
        let steps: Vec<i64> = (0..values.len() as i64).collect();
        api.post_metrics(
            run,
            &json!({"series": [{"name": "train/loss", "step": steps, "value": values}]}),
        );
    };
    loss("a", &[2.0, 1.0, 0.5]);
    loss("b", &[3.0, 0.1, 0.2]);
    loss("c", &[0.3, 0.9]);
    let expected = [("a", 0.5), ("b", 0.2), ("c", 0.9)];
    let sorted = wait_for(Duration::from_secs(15), "run summaries", || {
        let body = api
            .get_q(
                "/api/v1/runs",
                &[("project", "nlp"), ("sort", "-summary.train/loss.last")],
            )
            .expect(200);
        let runs = body["runs"].as_array().unwrap().clone();
        let ready = expected.iter().all(|(id, last)| {
            runs.iter().any(|r| {
                r["id"] == *id && r["summary"]["train/loss"]["last"].as_f64() == Some(*last)
            })
        });
        ready.then(|| ids(&body))
    });
    assert_eq!(sorted, vec!["c", "a", "b", "e"], "-summary.train/loss.last");
    let asc = list(
        &api,
        &[("project", "nlp"), ("sort", "summary.train/loss.last")],
    );
    assert_eq!(
        asc,
        vec!["b", "a", "c", "e"],
        "runs without the series come last"
    );
    // Pages of one, across the phase change (runs with the series, then without).
    for (sort, want) in [
        ("-summary.train/loss.last", ["c", "a", "b", "e"]),
        ("summary.train/loss.max", ["c", "a", "b", "e"]),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let mut q = vec![("project", "nlp"), ("limit", "1"), ("sort", sort)];
            if let Some(c) = &cursor {
                q.push(("cursor", c.as_str()));
            }
            let body = api.get_q("/api/v1/runs", &q).expect(200);
            seen.extend(ids(&body));
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, want, "pages of {sort}");
    }
    let run_b = api.run("b");
    let sum = &run_b["summary"]["train/loss"];
    assert_eq!(sum["min"].as_f64(), Some(0.1));
    assert_eq!(sum["max"].as_f64(), Some(3.0));
    assert_eq!(sum["count"].as_u64(), Some(3));
    assert_eq!(sum["last_step"].as_i64(), Some(2));

    // Cursor pagination: every run exactly once, for several sorts.
    for i in 0..9 {
        api.create_run(json!({"id": format!("p{i}"), "project": "pages",
                              "name": format!("page-run-{}", (i * 7) % 9)}));
    }
    for sort in ["-start_time", "name", "-name", "status"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut q = vec![("project", "pages"), ("limit", "2"), ("sort", sort)];
            if let Some(c) = &cursor {
                q.push(("cursor", c.as_str()));
            }
            let body = api.get_q("/api/v1/runs", &q).expect(200);
            let page = ids(&body);
            assert!(page.len() <= 2);
            seen.extend(page);
            pages += 1;
            assert!(pages < 20, "pagination does not end");
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 9, "sort {sort}: {seen:?}");
        assert_eq!(
            as_set(seen.clone()),
            (0..9).map(|i| format!("p{i}")).collect::<BTreeSet<_>>(),
            "sort {sort}"
        );
        if sort == "name" {
            let names: Vec<String> = seen
                .iter()
                .map(|id| api.run(id)["name"].as_str().unwrap().to_string())
                .collect();
            let mut sorted_names = names.clone();
            sorted_names.sort();
            assert_eq!(names, sorted_names);
        }
    }
}

#[test]
fn delete_removes_run_series_and_logs() {
    let mut server = Server::start();
    let api = server.api();
    for run in ["doomed", "kept", "flushed"] {
        api.create_run(json!({"id": run, "project": "p"}));
        api.post_metrics(
            run,
            &json!({"series": [{"name": "loss", "step": [1, 2, 3], "time": [1732000000, 1732000001, 1732000002], "value": [3.0, 2.0, 1.0]}]}),
        );
        api.post_logs(
            run,
            &json!({"records": [{"text": format!("hello from {run}")}]}),
        );
    }
    // "flushed" is on disk in a segment, not only in the WAL and memory.
    assert!(server.sigterm().success());
    server.start_again();
    let api = server.api();
    api.post_metrics(
        "doomed",
        &json!({"series": [{"name": "acc", "step": [1], "time": [1732000003], "value": [0.5]}]}),
    );
    assert_eq!(api.series("doomed").len(), 2);

    for run in ["doomed", "flushed"] {
        let r = api.delete(&format!("/api/v1/runs/{run}"));
        assert_eq!(r.status, 204, "{}", r.text());
        api.get(&format!("/api/v1/runs/{run}"))
            .expect_error(404, run);
        api.get(&format!("/api/v1/runs/{run}/series"))
            .expect_error(404, run);
        api.get_q(
            &format!("/api/v1/runs/{run}/series/data"),
            &[("name", "loss")],
        )
        .expect_error(404, run);
        api.get(&format!("/api/v1/runs/{run}/logs"))
            .expect_error(404, run);
        api.delete(&format!("/api/v1/runs/{run}"))
            .expect_error(404, run);
    }
    assert_eq!(as_set(list(&api, &[("project", "p")])), set(&["kept"]));

    // The deletion is durable: a crash right after does not bring anything back.
    server.crash_and_restart();
    let api = server.api();
    assert_eq!(as_set(list(&api, &[("project", "p")])), set(&["kept"]));
    for run in ["doomed", "flushed"] {
        // The same id again is a new, empty run: nothing of the old one is left.
        let again = api.create_run(json!({"id": run, "project": "p"}));
        assert_eq!(again["resumes"], 0);
        assert!(again["summary"].as_object().unwrap().is_empty());
        assert!(api.series(run).is_empty(), "{run}: old series survived");
        assert!(
            api.all_logs(run, &[]).is_empty(),
            "{run}: old logs survived"
        );
        let pts = api.read_all(run, "loss", "step", 100);
        assert_eq!(pts.len(), 0, "{run}: old points survived");
    }

    // The other run is untouched.
    assert_eq!(api.read_all("kept", "loss", "step", 100).len(), 3);
    assert_eq!(api.all_logs("kept", &[]).len(), 1);
}

#[test]
fn run_summary_accumulates_across_flushes() {
    // Summaries reach the store about once a second; a run's min, max and
    // count must cover all its points, not only the last second's.
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "acc", "project": "p"}));
    api.post_metrics(
        "acc",
        &json!({"series": [{"name": "loss", "step": [0, 1, 2], "value": [3.0, 0.1, 0.2]}]}),
    );
    wait_for(Duration::from_secs(10), "the first summary", || {
        (api.run("acc")["summary"]["loss"]["count"] == 3).then_some(())
    });
    api.post_metrics(
        "acc",
        &json!({"series": [{"name": "loss", "step": [3], "value": [5.0]}]}),
    );
    let s = wait_for(Duration::from_secs(10), "the second summary", || {
        let run = api.run("acc");
        (run["summary"]["loss"]["last_step"] == 3).then(|| run["summary"]["loss"].clone())
    });
    assert_eq!(s["last"], 5.0);
    assert_eq!(
        (s["min"].as_f64(), s["max"].as_f64(), s["count"].as_u64()),
        (Some(0.1), Some(5.0), Some(4)),
        "summary covers only the last flush: {s}"
    );
    // Sorting by the best loss sees it too.
    api.create_run(json!({"id": "other", "project": "p"}));
    api.post_metrics(
        "other",
        &json!({"series": [{"name": "loss", "step": [0], "value": [1.0]}]}),
    );
    let order = wait_for(Duration::from_secs(10), "both summaries", || {
        let v = api
            .get_q(
                "/api/v1/runs",
                &[("project", "p"), ("sort", "summary.loss.min")],
            )
            .expect(200);
        let got = ids(&v);
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["summary"]["loss"].is_null())
            .then_some(got)
    });
    assert_eq!(order, vec!["acc", "other"]);
}

/// What `loupe run` records beyond the basics — working directory, git
/// dirty flag, and why the run failed — is stored and read back; a resume
/// clears the old failure.
#[test]
fn run_records_cwd_git_state_and_failure() {
    let server = Server::start();
    let api = server.api();
    let run = api
        .post_json(
            "/api/v1/runs",
            &json!({"name": "wrapped", "cwd": "/home/me/proj", "git_dirty": true, "git_commit": "abc123"}),
        )
        .expect(201);
    let id = run["id"].as_str().unwrap().to_string();
    assert_eq!(run["cwd"], "/home/me/proj");
    assert_eq!(run["git_dirty"], true);
    assert!(run["failure"].is_null());
    assert_eq!(run["open_incidents"], 0);
    let failure = json!({
        "exception_type": "ValueError",
        "message": "bad shape (3, 4)",
        "signal": null,
        "stderr_tail": ["Traceback (most recent call last):", "ValueError: bad shape (3, 4)"],
        "traceback": "Traceback (most recent call last):\n  File \"train.py\", line 3\nValueError: bad shape (3, 4)"
    });
    let patched = api
        .patch_json(
            &format!("/api/v1/runs/{id}"),
            &json!({"status": "failed", "exit_code": 1, "failure": failure}),
        )
        .expect(200);
    assert_eq!(patched["failure"], failure);
    let read = api.get(&format!("/api/v1/runs/{id}")).expect(200);
    assert_eq!(read["failure"], failure);
    assert_eq!(read["status"], "failed");
    let resumed = api
        .post_json("/api/v1/runs", &json!({"id": id, "name": "wrapped"}))
        .expect(200);
    assert!(resumed["failure"].is_null(), "{resumed}");
    assert_eq!(resumed["cwd"], "/home/me/proj");
}
