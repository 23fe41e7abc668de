//! Tokens: who may do what, in which project; and when tokens are needed.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::{Api, Server, create_token, prom_sample, run_cli};

fn run_ids(api: &Api, q: &[(&str, &str)]) -> BTreeSet<String> {
    api.get_q("/api/v1/runs", q).expect(200)["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const BATCH: &str = r#"{"series":[{"name":"loss","step":[1,2],"value":[0.5,0.25]}]}"#;

fn post_batch(api: &Api, run: &str) -> crate::support::Resp {
    api.post_raw(
        &format!("/api/v1/runs/{run}/metrics"),
        BATCH.as_bytes(),
        &[("Content-Type", "application/json")],
    )
}

#[test]
fn tokens_are_scoped_to_a_project_and_a_role() {
    let dir = Server::temp_data_dir();
    // Tokens made before the server starts…
    let ingest_a = create_token(dir.path(), "A", "ingest");
    let read_a = create_token(dir.path(), "A", "read");
    let admin_a = create_token(dir.path(), "A", "admin");
    let read_b = create_token(dir.path(), "B", "read");
    let server = Server::configured(
        "127.0.0.1:0",
        &["--require-auth"],
        Some(dir.path().to_path_buf()),
    );
    // …and while it runs: the metadata store is shared.
    let ingest_b = create_token(dir.path(), "B", "ingest");
    let mut secrets = vec![
        ingest_a.clone(),
        read_a.clone(),
        admin_a.clone(),
        read_b.clone(),
        ingest_b.clone(),
    ];
    assert_eq!(secrets.iter().collect::<BTreeSet<_>>().len(), 5);

    let anon = server.api();
    let ia = anon.with_token(&ingest_a);
    let ra = anon.with_token(&read_a);
    let aa = anon.with_token(&admin_a);
    let rb = anon.with_token(&read_b);
    let ib = anon.with_token(&ingest_b);

    // No token, or a bad one: 401 in the API's error shape.
    anon.get("/api/v1/runs").expect_error(401, "token");
    anon.post_json("/api/v1/runs", &json!({"id": "x"}))
        .expect_error(401, "token");
    let mut tampered = read_a.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    secrets.push(tampered.clone());
    for bad in [tampered.as_str(), "loupe_notatoken", "garbage", ""] {
        anon.with_token(bad)
            .get("/api/v1/runs")
            .expect_error(401, "");
    }
    // A non-bearer scheme carrying a real secret.
    anon.get_h(
        "/api/v1/runs",
        &[("Authorization", &format!("Basic {read_a}"))],
    )
    .expect_error(401, "token");
    anon.get_h(
        "/api/v1/runs",
        &[("Authorization", &format!("bearer{read_a}"))],
    )
    .expect_error(401, "token");
    // Health needs no token.
    assert_eq!(anon.get("/healthz").status, 200);

    // Ingest: writes, never reads.
    let a1 = ia.create_run(json!({"id": "a1", "name": "first"}));
    assert_eq!(a1["project"], "A", "a token's project is the default");
    ia.create_run(json!({"id": "a2", "project": "A"}));
    ia.post_json("/api/v1/runs", &json!({"id": "x", "project": "B"}))
        .expect_error(403, "");
    assert_eq!(post_batch(&ia, "a1").expect(200)["accepted"], 2);
    ia.post_logs("a1", &json!({"records": [{"text": "from ingest"}]}));
    ia.patch_json("/api/v1/runs/a1", &json!({"heartbeat": true}))
        .expect(200);
    for path in [
        "/api/v1/runs",
        "/api/v1/runs/a1",
        "/api/v1/runs/a1/series",
        "/api/v1/runs/a1/logs",
        "/api/v1/live?run=a1",
    ] {
        ia.get(path).expect_error(403, "role");
    }
    ia.get_q("/api/v1/runs/a1/series/data", &[("name", "loss")])
        .expect_error(403, "role");
    ia.delete("/api/v1/runs/a1").expect_error(403, "role");

    // Read: reads, never writes.
    assert_eq!(ra.run("a1")["name"], "first");
    assert_eq!(ra.series("a1")["loss"]["count"], 2);
    assert_eq!(ra.all_logs("a1", &[]).len(), 1);
    post_batch(&ra, "a1").expect_error(403, "role");
    ra.post_json(
        "/api/v1/runs/a1/logs",
        &json!({"records": [{"text": "no"}]}),
    )
    .expect_error(403, "role");
    ra.post_json("/api/v1/runs", &json!({"id": "a3"}))
        .expect_error(403, "role");
    ra.patch_json("/api/v1/runs/a1", &json!({"status": "finished"}))
        .expect_error(403, "role");
    ra.delete("/api/v1/runs/a1").expect_error(403, "role");
    assert_eq!(ra.run("a1")["status"], "running");

    // Project B, through a token made while the server ran.
    ib.create_run(json!({"id": "b1"}));
    assert_eq!(post_batch(&ib, "b1").status, 200);

    // Nobody sees another project's runs: 404, as if they did not exist.
    for path in [
        "/api/v1/runs/b1",
        "/api/v1/runs/b1/series",
        "/api/v1/runs/b1/logs",
    ] {
        ra.get(path).expect_error(404, "b1");
        aa.get(path).expect_error(404, "b1");
    }
    ra.get_q("/api/v1/runs/b1/series/data", &[("name", "loss")])
        .expect_error(404, "b1");
    rb.get("/api/v1/runs/a1").expect_error(404, "a1");
    post_batch(&ia, "b1").expect_error(404, "b1");
    ia.post_json("/api/v1/runs/b1/logs", &json!({"records": [{"text": "x"}]}))
        .expect_error(404, "b1");
    ia.patch_json("/api/v1/runs/b1", &json!({"status": "killed"}))
        .expect_error(404, "b1");
    // Resuming another project's run id is refused the same way.
    ia.post_json("/api/v1/runs", &json!({"id": "b1"}))
        .expect_error(404, "b1");
    aa.delete("/api/v1/runs/b1").expect_error(404, "b1");
    ra.get("/api/v1/live?run=b1").expect_error(404, "b1");
    assert_eq!(run_ids(&ra, &[]), set(&["a1", "a2"]));
    assert_eq!(run_ids(&aa, &[]), set(&["a1", "a2"]));
    assert!(run_ids(&ra, &[("project", "B")]).is_empty());
    assert_eq!(run_ids(&rb, &[]), set(&["b1"]));
    let projects = ra.get("/api/v1/projects").expect(200);
    let names: Vec<&str> = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["A"], "a token sees only its project");
    assert_eq!(rb.run("b1")["status"], "running", "B's run untouched");
    assert_eq!(rb.series("b1")["loss"]["count"], 2);

    // Series outside runs belong to the token's project too.
    let ext = json!({"series": [{"name": "gpu/util", "labels": {"host": "n1"}, "value": [50]}]});
    assert_eq!(
        ia.post_json("/api/v1/metrics", &ext).expect(200)["accepted"],
        1
    );
    ia.post_json("/api/v1/metrics?project=B", &ext)
        .expect_error(403, "");
    ra.post_json("/api/v1/metrics", &ext)
        .expect_error(403, "role");
    let mine = ra.get("/api/v1/metrics/series").expect(200);
    assert_eq!(mine["series"].as_array().unwrap().len(), 1);
    assert!(
        rb.get("/api/v1/metrics/series").expect(200)["series"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    ra.get_q("/api/v1/metrics/series", &[("project", "B")])
        .expect_error(404, "B");
    ia.get("/api/v1/metrics/series").expect_error(403, "role");
    // A project-scoped token must name a run to follow live events.
    ra.get("/api/v1/live").expect_error(400, "run");

    // Admin: everything in its project, deletion included.
    assert_eq!(post_batch(&aa, "a2").status, 200);
    let r = aa.delete("/api/v1/runs/a2");
    assert_eq!(r.status, 204, "{}", r.text());
    aa.get("/api/v1/runs/a2").expect_error(404, "a2");
    assert_eq!(run_ids(&ra, &[]), set(&["a1"]));

    // The CLI reads with a token, and fails without one.
    let url = server.base();
    let out = run_cli(&["runs", "--json", "--server", &url, "--token", &read_a]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    let out = crate::support::loupe_cmd()
        .args(["runs", "--server", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Revoking works while the server runs.
    let listed = run_cli(&[
        "token",
        "list",
        "--project",
        "A",
        "--data",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!listed.contains(&read_a), "token list shows a secret");
    let read_id = listed
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("read"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the read token is listed")
        .to_string();
    run_cli(&[
        "token",
        "revoke",
        &read_id,
        "--data",
        dir.path().to_str().unwrap(),
    ]);
    ra.get("/api/v1/runs").expect_error(401, "");
    assert_eq!(
        aa.get("/api/v1/runs").status,
        200,
        "other tokens still work"
    );

    // Failures are counted, and no secret ever reaches the log.
    let prom = aa.prometheus();
    assert!(prom_sample(&prom, "loupe_auth_failures_total").unwrap() >= 7.0);
    let log = server.stderr();
    assert!(log.contains("refused"), "failed attempts are logged: {log}");
    for s in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "the server logged a token secret"
        );
        // Not even the part after the public id.
        if s.len() > 30 {
            assert!(
                !log.contains(&s[s.len() - 20..]),
                "the server logged part of a secret"
            );
        }
    }
}

#[test]
fn tokens_are_needed_off_loopback_unless_disabled() {
    // Loopback by default: open.
    let local = Server::start();
    assert_eq!(local.api().get("/api/v1/runs").status, 200);
    local
        .api()
        .create_run(json!({"id": "open-run", "project": "p"}));
    drop(local);

    // Any address: tokens required by default.
    let open_to_all = Server::configured("0.0.0.0:0", &[], None);
    let api = open_to_all.api();
    api.get("/api/v1/runs").expect_error(401, "token");
    api.post_json("/api/v1/runs", &json!({"project": "p"}))
        .expect_error(401, "token");
    assert_eq!(api.get("/healthz").status, 200);
    let token = create_token(open_to_all.data_dir(), "p", "admin");
    let api = api.with_token(&token);
    api.create_run(json!({"id": "r1"}));
    assert_eq!(api.get("/api/v1/runs").status, 200);
    drop(open_to_all);

    // --insecure-no-auth turns them off, loudly.
    let insecure = Server::configured("0.0.0.0:0", &["--insecure-no-auth"], None);
    let api = insecure.api();
    assert_eq!(api.get("/api/v1/runs").status, 200);
    api.create_run(json!({"id": "r2", "project": "p"}));
    crate::support::wait_for(
        std::time::Duration::from_secs(5),
        "the warning on stderr",
        || {
            insecure
                .stderr()
                .contains("AUTHENTICATION IS OFF")
                .then_some(())
        },
    );

    // --require-auth on loopback.
    let strict = Server::with_args(&["--require-auth"]);
    strict.api().get("/api/v1/runs").expect_error(401, "token");
}
