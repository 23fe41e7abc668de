//! Feedback on incidents through the API: a cause marked wrong or
//! confirmed and a fix marked as the one that worked change how the
//! project's *next* incidents are ranked, and no other project's.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Api, Server, create_token, wait_for};

/// A run of `project` whose logs show an NCCL watchdog timeout and an
/// NCCL network error: two causes, the collective hang first (0.8 against
/// 0.7). Returns the incident once both causes are listed.
fn nccl_incident(api: &Api, project: &str) -> Value {
    let run = api
        .post_json("/api/v1/runs", &json!({"project": project, "name": "nccl"}))
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines = [
        "[rank3]:[E501 12:10:03.123456 ProcessGroupNCCL.cpp:563] [Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=123456, OpType=ALLREDUCE, NumelIn=1048576, NumelOut=1048576, Timeout(ms)=600000) ran for 600027 milliseconds before timing out.",
        "node01:12345:12399 [3] NCCL WARN NET/IB : Got completion from peer 10.0.0.2<47346> with error 12, opcode 0, len 0, vendor err 129 (Recv)",
    ];
    let records: Vec<Value> = lines
        .iter()
        .map(|t| json!({"text": t, "stream": "stderr", "level": "error"}))
        .collect();
    api.post_json(
        &format!("/api/v1/runs/{run}/logs"),
        &json!({"records": records}),
    )
    .expect(200);
    wait_for(
        Duration::from_secs(10),
        "an incident with two causes",
        || {
            let list = api
                .get(&format!("/api/v1/runs/{run}/incidents"))
                .expect(200);
            list["incidents"]
                .as_array()?
                .iter()
                .find(|i| i["causes"].as_array().is_some_and(|c| c.len() >= 2))
                .cloned()
        },
    )
}

fn kinds(inc: &Value) -> Vec<String> {
    inc["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap().to_string())
        .collect()
}

fn cause<'a>(inc: &'a Value, kind: &str) -> &'a Value {
    inc["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no cause {kind} in {inc:#}"))
}

#[test]
fn feedback_reranks_the_projects_next_incidents_and_no_others() {
    let dir = Server::temp_data_dir();
    let admin_a = create_token(dir.path(), "A", "admin");
    let ingest_a = create_token(dir.path(), "A", "ingest");
    let read_a = create_token(dir.path(), "A", "read");
    let admin_b = create_token(dir.path(), "B", "admin");
    let server = Server::configured(
        "127.0.0.1:0",
        &["--require-auth"],
        Some(dir.path().to_path_buf()),
    );
    let anon = server.api();
    let (a, b) = (anon.with_token(&admin_a), anon.with_token(&admin_b));

    let first = nccl_incident(&a, "A");
    assert_eq!(kinds(&first)[..2], ["collective_hang", "network_fault"]);
    assert!(first.get("feedback").is_none(), "{first:#}");
    let id = first["id"].as_str().unwrap();
    let path = format!("/api/v1/incidents/{id}/feedback");

    // A read-only token may look but not mark; another project's token
    // does not see the incident at all.
    let wrong = json!({"cause": "collective_hang", "verdict": "wrong"});
    anon.with_token(&read_a)
        .try_post_json(&path, &wrong)
        .unwrap()
        .expect_error(403, "role");
    b.try_post_json(&path, &wrong).unwrap().expect(404);
    b.get(&path).expect(404);
    // Verdicts must name the incident's own causes and fixes.
    let ia = anon.with_token(&ingest_a);
    for (bad, needle) in [
        (
            json!({"cause": "disk_full", "verdict": "wrong"}),
            "no cause",
        ),
        (
            json!({"cause": "network_fault", "verdict": "worked"}),
            "needs `fix`",
        ),
        (
            json!({"cause": "network_fault", "verdict": "worked", "fix": "Reboot"}),
            "no fix",
        ),
        (
            json!({"cause": "network_fault", "verdict": "wrong", "fix": "x"}),
            "leave out",
        ),
    ] {
        ia.try_post_json(&path, &bad)
            .unwrap()
            .expect_error(400, needle);
    }
    ia.try_post_json(
        &path,
        &json!({"cause": "network_fault", "verdict": "maybe"}),
    )
    .unwrap()
    .expect(422);
    assert_eq!(a.get(&path).expect(200)["feedback"], json!([]));

    // The write role marks the top cause wrong and a fix of the other as
    // the one that worked.
    let drain = cause(&first, "network_fault")["fixes"][2]
        .as_str()
        .unwrap()
        .to_string();
    let stored = ia.post_json(&path, &wrong).expect(201);
    assert_eq!(stored["verdict"], "wrong");
    assert_eq!(stored["project"], "A");
    assert!(!stored["who"].as_str().unwrap().is_empty());
    ia.post_json(
        &path,
        &json!({"cause": "network_fault", "verdict": "worked", "fix": drain}),
    )
    .expect(201);
    let listed = anon.with_token(&read_a).get(&path).expect(200);
    assert_eq!(
        listed["feedback"].as_array().unwrap().len(),
        2,
        "{listed:#}"
    );
    assert_eq!(listed["feedback"][0]["cause"], "collective_hang");
    assert_eq!(listed["feedback"][1]["fix"], drain.as_str());

    let weights = a.get("/api/v1/projects/A/feedback").expect(200);
    assert_eq!(weights["causes"][0]["cause"], "collective_hang");
    assert_eq!(weights["causes"][0]["wrong"], 1);
    assert_eq!(weights["causes"][0]["weight"], 0.75);
    assert_eq!(weights["fixes"][0]["weight"], 1.5);
    assert_eq!(weights["feedback"].as_array().unwrap().len(), 2);
    b.get("/api/v1/projects/A/feedback").expect(404);

    // The next incident in A ranks the network first, with the fix that
    // worked at the top; the stored one keeps its order.
    let next = nccl_incident(&a, "A");
    assert_eq!(
        kinds(&next)[..2],
        ["network_fault", "collective_hang"],
        "{next:#}"
    );
    assert_eq!(next["kind"], "network_fault");
    assert_eq!(cause(&next, "network_fault")["fixes"][0], drain.as_str());
    let fb = &next["feedback"];
    assert_eq!(fb["causes"][1]["kind"], "collective_hang");
    assert_eq!(fb["causes"][1]["weight"], 0.75);
    assert_eq!(fb["causes"][1]["rule_score"], 0.8);
    let again = a.get(&format!("/api/v1/incidents/{id}")).expect(200);
    assert_eq!(kinds(&again)[0], "collective_hang");

    // Project B is untouched.
    let other = nccl_incident(&b, "B");
    assert_eq!(kinds(&other)[..2], ["collective_hang", "network_fault"]);
    assert!(other.get("feedback").is_none());
    assert_eq!(
        b.get("/api/v1/projects/B/feedback").expect(200)["causes"],
        json!([])
    );

    // Confirming the hang twice outweighs the one "wrong": it leads again.
    for _ in 0..2 {
        ia.post_json(
            &path,
            &json!({"cause": "collective_hang", "verdict": "confirmed"}),
        )
        .expect(201);
    }
    let third = nccl_incident(&a, "A");
    assert_eq!(kinds(&third)[0], "collective_hang", "{third:#}");
}
