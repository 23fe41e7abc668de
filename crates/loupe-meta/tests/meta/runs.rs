//! Create/resume, update, lost runs, delete.

use std::collections::BTreeMap;

use loupe_meta::{Error, NewRun, RunPatch};
use loupe_model::{RunStatus, SeriesSummary};
use serde_json::json;

use crate::support::{info, named_run, new_run, now, open};

fn summary(last: f64, min: f64, max: f64) -> SeriesSummary {
    SeriesSummary {
        last,
        min,
        max,
        count: 10,
        last_step: Some(9),
    }
}

#[test]
fn create_generates_an_id_and_a_name() {
    let t = open();
    let before = now();
    let (run, created) = t.store.create_or_resume_run(new_run("vision")).unwrap();
    assert!(created);
    assert_eq!(run.id.len(), 8);
    assert!(
        run.id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    );
    assert_eq!(run.name.split('-').count(), 2, "{}", run.name);
    assert_eq!(run.project, "vision");
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.resumes, 0);
    assert_eq!(run.config, json!({}));
    assert!(run.start_time >= before - 1.0 && run.start_time <= now() + 1.0);
    assert_eq!(run.end_time, None);
    assert_eq!(t.store.get_run(&run.id).unwrap(), run);

    let (other, _) = t.store.create_or_resume_run(new_run("vision")).unwrap();
    assert_ne!(other.id, run.id);
}

#[test]
fn create_keeps_every_given_field() {
    let t = open();
    let new = NewRun {
        id: Some("llama-7b.r0".into()),
        project: "llm".into(),
        name: Some("Llama 7B pretrain".into()),
        group: Some("job-42".into()),
        rank: Some(0),
        world_size: Some(8),
        tags: Some(vec!["pretrain".into(), "7b".into(), "pretrain".into()]),
        config: Some(json!({"lr": 3e-4, "model": {"layers": 32}})),
        host: Some("gpu-node-1".into()),
        command: Some("python train.py --lr 3e-4".into()),
        git_commit: Some("abc123".into()),
        notes: Some("baseline".into()),
        resume_step: None,
        start_time: Some(1_700_000_000.5),
        cwd: Some("/srv/train".into()),
        git_dirty: Some(false),
    };
    let (run, created) = t.store.create_or_resume_run(new).unwrap();
    assert!(created);
    assert_eq!(run.id, "llama-7b.r0");
    assert_eq!(run.name, "Llama 7B pretrain");
    assert_eq!(run.group.as_deref(), Some("job-42"));
    assert_eq!((run.rank, run.world_size), (Some(0), Some(8)));
    assert_eq!(run.cwd.as_deref(), Some("/srv/train"));
    assert_eq!(run.git_dirty, Some(false));
    // Repeats dropped, order kept.
    assert_eq!(run.tags, vec!["pretrain", "7b"]);
    assert_eq!(run.config, json!({"lr": 3e-4, "model": {"layers": 32}}));
    assert_eq!(run.host.as_deref(), Some("gpu-node-1"));
    assert_eq!(run.command.as_deref(), Some("python train.py --lr 3e-4"));
    assert_eq!(run.git_commit.as_deref(), Some("abc123"));
    assert_eq!(run.notes.as_deref(), Some("baseline"));
    assert_eq!(run.start_time, 1_700_000_000.5);
}

#[test]
fn resume_keeps_the_id_counts_resumes_and_merges_config() {
    let t = open();
    let mut new = named_run("p", "exp-1");
    new.config = Some(json!({"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}}));
    new.tags = Some(vec!["a".into(), "b".into()]);
    let (first, created) = t.store.create_or_resume_run(new).unwrap();
    assert!(created);
    t.store
        .update_run(
            "exp-1",
            RunPatch {
                status: Some(RunStatus::Crashed),
                exit_code: Some(137),
                ..Default::default()
            },
        )
        .unwrap();

    let mut again = named_run("p", "exp-1");
    again.config = Some(json!({"opt": {"beta": 0.95}, "epochs": 3}));
    again.resume_step = Some(1000);
    let (resumed, created) = t.store.create_or_resume_run(again).unwrap();
    assert!(!created);
    assert_eq!(resumed.id, "exp-1");
    assert_eq!(resumed.resumes, 1);
    assert_eq!(resumed.status, RunStatus::Running);
    assert_eq!(resumed.end_time, None);
    assert_eq!(resumed.exit_code, None);
    assert_eq!(
        resumed.config,
        json!({"lr": 0.1, "opt": {"name": "adam", "beta": 0.95}, "epochs": 3})
    );
    assert_eq!(resumed.tags, vec!["a", "b"], "tags kept when not given");
    assert_eq!(resumed.name, first.name, "name kept when not given");
    assert_eq!(resumed.start_time, first.start_time);
    assert!(resumed.heartbeat_time >= first.heartbeat_time);
    assert_eq!(t.store.run_resume_step("exp-1").unwrap(), Some(1000));

    let mut third = named_run("p", "exp-1");
    third.tags = Some(vec!["c".into()]);
    third.name = Some("renamed".into());
    let (resumed, created) = t.store.create_or_resume_run(third).unwrap();
    assert!(!created);
    assert_eq!(resumed.resumes, 2);
    assert_eq!(resumed.tags, vec!["c"]);
    assert_eq!(resumed.name, "renamed");
    assert_eq!(t.store.run_resume_step("exp-1").unwrap(), None);
}

#[test]
fn resuming_another_projects_run_is_a_conflict() {
    let t = open();
    t.store
        .create_or_resume_run(named_run("a", "shared"))
        .unwrap();
    let err = t
        .store
        .create_or_resume_run(named_run("b", "shared"))
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    let run = t.store.get_run("shared").unwrap();
    assert_eq!((run.project.as_str(), run.resumes), ("a", 0));
    assert_eq!(t.store.run_project("shared").unwrap(), "a");
    assert!(matches!(
        t.store.run_project("ghost"),
        Err(Error::NotFound { .. })
    ));
    // The failed call did not leave project "b" behind.
    let projects: Vec<_> = t
        .store
        .list_projects()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(projects, vec!["a"]);
}

#[test]
fn bad_input_is_rejected_with_a_reason() {
    let t = open();
    let cases: Vec<(NewRun, &str)> = vec![
        (named_run("p", "a/b"), "run id"),
        (named_run("p", ""), "run id"),
        (new_run(""), "project"),
        (new_run("a/b"), "project"),
        (
            NewRun {
                config: Some(json!([1, 2])),
                ..new_run("p")
            },
            "config",
        ),
        (
            NewRun {
                rank: Some(8),
                world_size: Some(8),
                ..new_run("p")
            },
            "rank",
        ),
        (
            NewRun {
                tags: Some(vec!["ok".into(), "bad\ntag".into()]),
                ..new_run("p")
            },
            "tag",
        ),
        (
            NewRun {
                start_time: Some(f64::NAN),
                ..new_run("p")
            },
            "start_time",
        ),
        (
            NewRun {
                start_time: Some(1e300),
                ..new_run("p")
            },
            "start_time",
        ),
        (
            NewRun {
                start_time: Some(-5.0),
                ..new_run("p")
            },
            "start_time",
        ),
        (
            NewRun {
                name: Some("   ".into()),
                ..new_run("p")
            },
            "name",
        ),
    ];
    for (new, needle) in cases {
        match t.store.create_or_resume_run(new.clone()) {
            Err(Error::Invalid(msg)) => assert!(msg.contains(needle), "{msg:?} for {new:?}"),
            other => panic!("{new:?}: expected Invalid, got {other:?}"),
        }
    }
    assert!(t.store.list_projects().unwrap().is_empty());
}

#[test]
fn terminal_status_sets_end_time_and_running_clears_it() {
    let t = open();
    let (run, _) = t.store.create_or_resume_run(new_run("p")).unwrap();
    let before = now();
    let failed = t
        .store
        .update_run(
            &run.id,
            RunPatch {
                status: Some(RunStatus::Failed),
                exit_code: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.exit_code, Some(1));
    let end = failed.end_time.expect("terminal status sets end_time");
    assert!(end >= before - 1.0 && end <= now() + 1.0);

    // A later patch without a status keeps the end time.
    let noted = t
        .store
        .update_run(
            &run.id,
            RunPatch {
                notes: Some("OOM at step 5k".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(noted.end_time, Some(end));
    assert_eq!(noted.notes.as_deref(), Some("OOM at step 5k"));

    // An explicit end time wins.
    let finished = t
        .store
        .update_run(
            &run.id,
            RunPatch {
                status: Some(RunStatus::Finished),
                end_time: Some(1234.5),
                exit_code: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(finished.end_time, Some(1234.5));
    assert_eq!(finished.exit_code, Some(0));

    let running = t
        .store
        .update_run(
            &run.id,
            RunPatch {
                status: Some(RunStatus::Running),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((running.end_time, running.exit_code), (None, None));
}

#[test]
fn patch_merges_config_replaces_tags_and_upserts_summaries() {
    let t = open();
    let mut new = new_run("p");
    new.config = Some(json!({"a": 1, "nested": {"x": 1, "y": 2}, "list": [1, 2]}));
    new.tags = Some(vec!["old".into()]);
    let (run, _) = t.store.create_or_resume_run(new).unwrap();

    let mut first = BTreeMap::new();
    first.insert("train/loss".to_string(), summary_of(2.0));
    first.insert("eval/acc".to_string(), summary_of(0.5));
    let updated = t
        .store
        .update_run(
            &run.id,
            RunPatch {
                config_merge: Some(json!({"nested": {"y": 3, "z": 4}, "list": [3], "b": null})),
                tags: Some(vec!["new".into(), "best".into()]),
                summary: Some(first),
                name: Some("renamed".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        updated.config,
        json!({"a": 1, "nested": {"x": 1, "y": 3, "z": 4}, "list": [3], "b": null})
    );
    assert_eq!(updated.tags, vec!["new", "best"]);
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.summary.len(), 2);

    // Upsert: one series replaced, the other kept.
    let mut changes = BTreeMap::new();
    changes.insert("train/loss".to_string(), summary(1.0, 0.9, 3.0));
    let updated = t
        .store
        .update_run(
            &run.id,
            RunPatch {
                summary: Some(changes),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(updated.summary["train/loss"], summary(1.0, 0.9, 3.0));
    assert_eq!(updated.summary["eval/acc"], summary_of(0.5));
    assert_eq!(t.store.get_run(&run.id).unwrap(), updated);

    // Config merges must be objects.
    let err = t
        .store
        .update_run(
            &run.id,
            RunPatch {
                config_merge: Some(json!(3)),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
}

fn summary_of(v: f64) -> SeriesSummary {
    summary(v, v, v)
}

#[test]
fn nan_and_infinite_summaries_round_trip() {
    let t = open();
    let (run, _) = t.store.create_or_resume_run(new_run("p")).unwrap();
    let mut summary_map = BTreeMap::new();
    summary_map.insert("loss".to_string(), summary(f64::NAN, 0.1, f64::INFINITY));
    summary_map.insert(
        "neg".to_string(),
        summary(f64::NEG_INFINITY, f64::NEG_INFINITY, 0.0),
    );
    t.store
        .update_run(
            &run.id,
            RunPatch {
                summary: Some(summary_map),
                ..Default::default()
            },
        )
        .unwrap();
    let got = t.store.get_run(&run.id).unwrap().summary;
    assert!(got["loss"].last.is_nan());
    assert_eq!(got["loss"].min, 0.1);
    assert_eq!(got["loss"].max, f64::INFINITY);
    assert_eq!(got["neg"].last, f64::NEG_INFINITY);
}

#[test]
fn unknown_runs_are_not_found() {
    let t = open();
    let is_not_found = |e: Error| matches!(e, Error::NotFound { what: "run", .. });
    assert!(is_not_found(t.store.get_run("nope").unwrap_err()));
    assert!(is_not_found(
        t.store.update_run("nope", RunPatch::default()).unwrap_err()
    ));
    assert!(is_not_found(t.store.delete_run("nope").unwrap_err()));
    assert!(is_not_found(
        t.store.append_logs("nope", &[info(1.0, "x")]).unwrap_err()
    ));
}

#[test]
fn silent_running_runs_become_lost_and_come_back() {
    let t = open();
    let (a, _) = t.store.create_or_resume_run(new_run("p")).unwrap();
    let (b, _) = t.store.create_or_resume_run(new_run("p")).unwrap();
    let (done, _) = t.store.create_or_resume_run(new_run("p")).unwrap();
    t.store
        .update_run(
            &done.id,
            RunPatch {
                status: Some(RunStatus::Finished),
                ..Default::default()
            },
        )
        .unwrap();

    // Heartbeats are fresh: nothing is lost yet.
    assert!(t.store.mark_lost_runs(now(), 60.0).unwrap().is_empty());

    // Two minutes later with a 60 s timeout, both running runs are lost.
    let mut lost = t.store.mark_lost_runs(now() + 120.0, 60.0).unwrap();
    lost.sort();
    let mut expect = vec![a.id.clone(), b.id.clone()];
    expect.sort();
    assert_eq!(lost, expect);
    assert_eq!(t.store.get_run(&a.id).unwrap().status, RunStatus::Lost);
    assert_eq!(
        t.store.get_run(&done.id).unwrap().status,
        RunStatus::Finished
    );
    // Lost runs are not reported twice.
    assert!(
        t.store
            .mark_lost_runs(now() + 120.0, 60.0)
            .unwrap()
            .is_empty()
    );

    // A heartbeat revives one; any other update revives the other.
    let revived = t
        .store
        .update_run(
            &a.id,
            RunPatch {
                heartbeat: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(revived.status, RunStatus::Running);
    assert_eq!(revived.end_time, None);
    let revived = t
        .store
        .update_run(
            &b.id,
            RunPatch {
                notes: Some("still alive".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(revived.status, RunStatus::Running);
    assert!(revived.heartbeat_time >= b.heartbeat_time);

    // So does the cheap heartbeat.
    t.store.mark_lost_runs(now() + 120.0, 60.0).unwrap();
    assert_eq!(t.store.heartbeat(&a.id).unwrap(), RunStatus::Running);
    assert_eq!(t.store.heartbeat(&done.id).unwrap(), RunStatus::Finished);
    assert!(matches!(
        t.store.heartbeat("ghost"),
        Err(Error::NotFound { .. })
    ));

    // A lost run may also be closed explicitly.
    t.store.mark_lost_runs(now() + 120.0, 60.0).unwrap();
    let killed = t
        .store
        .update_run(
            &a.id,
            RunPatch {
                status: Some(RunStatus::Killed),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(killed.status, RunStatus::Killed);
    assert!(killed.end_time.is_some());
}

#[test]
fn delete_removes_the_run_its_summaries_tags_and_logs() {
    let t = open();
    let mut new = named_run("p", "doomed");
    new.tags = Some(vec!["x".into()]);
    t.store.create_or_resume_run(new).unwrap();
    let mut keep = named_run("p", "kept");
    keep.tags = Some(vec!["x".into()]);
    t.store.create_or_resume_run(keep).unwrap();
    let mut summary_map = BTreeMap::new();
    summary_map.insert("loss".to_string(), summary_of(1.0));
    for id in ["doomed", "kept"] {
        t.store
            .update_run(
                id,
                RunPatch {
                    summary: Some(summary_map.clone()),
                    ..Default::default()
                },
            )
            .unwrap();
        t.store
            .append_logs(id, &[info(1.0, "zebra crossing"), info(2.0, "plain")])
            .unwrap();
    }

    assert_eq!(t.store.runs_deleted(), 0);
    t.store.delete_run("doomed").unwrap();
    assert!(matches!(
        t.store.get_run("doomed").unwrap_err(),
        Error::NotFound { .. }
    ));
    assert_eq!(t.store.runs_deleted(), 1);
    assert!(t.store.delete_run("doomed").is_err());
    // Only a deletion that happened moves the count.
    assert_eq!(t.store.runs_deleted(), 1);

    // Look at the tables themselves: nothing of the run is left, and the
    // full-text index holds exactly the surviving run's line.
    let conn = rusqlite::Connection::open(t.path()).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM run"), 1);
    assert_eq!(count("SELECT count(*) FROM run_summary"), 1);
    assert_eq!(count("SELECT count(*) FROM run_tag"), 1);
    assert_eq!(count("SELECT count(*) FROM log"), 2);
    assert_eq!(count("SELECT count(*) FROM log_block"), 1);
    assert_eq!(
        count("SELECT count(*) FROM log_fts WHERE log_fts MATCH 'zebra'"),
        1
    );
    conn.execute_batch("INSERT INTO log_fts(log_fts, rank) VALUES ('integrity-check', 1)")
        .unwrap();

    let projects = t.store.list_projects().unwrap();
    assert_eq!((projects[0].runs, projects[0].running), (1, 1));
}

#[test]
fn projects_are_listed_with_run_counts() {
    let t = open();
    assert!(t.store.list_projects().unwrap().is_empty());
    for project in ["beta", "alpha", "alpha", "alpha"] {
        t.store.create_or_resume_run(new_run(project)).unwrap();
    }
    let (run, _) = t.store.create_or_resume_run(new_run("beta")).unwrap();
    t.store
        .update_run(
            &run.id,
            RunPatch {
                status: Some(RunStatus::Finished),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(t.store.ensure_project("empty").unwrap());
    assert!(!t.store.ensure_project("empty").unwrap());
    let projects = t.store.list_projects().unwrap();
    let got: Vec<_> = projects
        .iter()
        .map(|p| (p.name.as_str(), p.runs, p.running))
        .collect();
    assert_eq!(got, vec![("alpha", 3, 3), ("beta", 2, 1), ("empty", 0, 0)]);
    assert_eq!(projects[2].last_activity, None);
    assert!(projects[0].last_activity.is_some_and(|t| t > 0.0));
    assert_eq!(projects.iter().map(|p| p.failed).sum::<u64>(), 0);
}
