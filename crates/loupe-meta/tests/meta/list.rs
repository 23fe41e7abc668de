//! Listing runs: filters, sorts, cursor pagination.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use loupe_meta::{Error, MetaStore, NewRun, RunPatch, RunQuery, RunSort};
use loupe_model::{RunStatus, SeriesSummary};

use crate::support::{new_run, open};

fn ids(store: &MetaStore, query: &RunQuery) -> Vec<String> {
    store
        .list_runs(query.clone())
        .unwrap()
        .runs
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Every page of `query`, concatenated.
fn all_pages(store: &MetaStore, query: &RunQuery) -> Vec<String> {
    let mut out = Vec::new();
    let mut query = query.clone();
    loop {
        let page = store.list_runs(query.clone()).unwrap();
        assert!(page.runs.len() <= query.limit.unwrap_or(50));
        out.extend(page.runs.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return out,
        }
    }
}

fn sort(s: &str) -> RunSort {
    s.parse().unwrap()
}

fn set_summary(store: &MetaStore, id: &str, series: &str, last: f64) {
    let mut summary = BTreeMap::new();
    summary.insert(
        series.to_string(),
        SeriesSummary {
            last,
            min: last - 1.0,
            max: last + 1.0,
            count: 1,
            last_step: Some(1),
        },
    );
    store
        .update_run(
            id,
            RunPatch {
                summary: Some(summary),
                ..Default::default()
            },
        )
        .unwrap();
}

fn create(store: &MetaStore, id: &str, project: &str, name: &str, start: f64) {
    store
        .create_or_resume_run(NewRun {
            id: Some(id.into()),
            name: Some(name.into()),
            start_time: Some(start),
            ..new_run(project)
        })
        .unwrap();
}

fn set_status(store: &MetaStore, id: &str, status: RunStatus) {
    store
        .update_run(
            id,
            RunPatch {
                status: Some(status),
                ..Default::default()
            },
        )
        .unwrap();
}

#[test]
fn filters_by_project_status_tag_and_text() {
    let t = open();
    let s = &t.store;
    s.create_or_resume_run(NewRun {
        id: Some("r1".into()),
        name: Some("Ünïcode Baseline".into()),
        group: Some("Sweep-A".into()),
        tags: Some(vec!["baseline".into(), "gpu".into()]),
        start_time: Some(1.0),
        ..new_run("vision")
    })
    .unwrap();
    s.create_or_resume_run(NewRun {
        id: Some("r2".into()),
        name: Some("ablation".into()),
        group: Some("sweep-a".into()),
        tags: Some(vec!["gpu".into()]),
        start_time: Some(2.0),
        ..new_run("vision")
    })
    .unwrap();
    s.create_or_resume_run(NewRun {
        id: Some("r3".into()),
        name: Some("other".into()),
        tags: Some(vec!["baseline".into()]),
        start_time: Some(3.0),
        ..new_run("nlp")
    })
    .unwrap();
    set_status(s, "r2", RunStatus::Failed);
    set_status(s, "r3", RunStatus::Finished);

    let q = |f: &dyn Fn(&mut RunQuery)| {
        let mut query = RunQuery::default();
        f(&mut query);
        ids(s, &query)
    };
    assert_eq!(q(&|_| {}), vec!["r3", "r2", "r1"]);
    assert_eq!(q(&|q| q.project = Some("vision".into())), vec!["r2", "r1"]);
    assert!(q(&|q| q.project = Some("nope".into())).is_empty());
    assert_eq!(
        q(&|q| q.status = Some(vec![RunStatus::Failed, RunStatus::Finished])),
        vec!["r3", "r2"]
    );
    assert_eq!(q(&|q| q.status = Some(vec![])), vec!["r3", "r2", "r1"]);
    assert_eq!(q(&|q| q.tag = Some("baseline".into())), vec!["r3", "r1"]);
    assert!(q(&|q| q.tag = Some("base".into())).is_empty());
    // Case-insensitive substrings of name, group and id, beyond ASCII.
    assert_eq!(q(&|q| q.q = Some("ÜNÏCODE".into())), vec!["r1"]);
    assert_eq!(q(&|q| q.q = Some("SWEEP-a".into())), vec!["r2", "r1"]);
    assert_eq!(q(&|q| q.q = Some("r3".into())), vec!["r3"]);
    assert_eq!(q(&|q| q.q = Some("%".into())), Vec::<String>::new());
    // Filters combine.
    assert_eq!(
        q(&|q| {
            q.project = Some("vision".into());
            q.tag = Some("gpu".into());
            q.status = Some(vec![RunStatus::Running]);
        }),
        vec!["r1"]
    );
}

#[test]
fn sorts_by_columns() {
    let t = open();
    let s = &t.store;
    create(s, "a", "p", "charlie", 30.0);
    create(s, "b", "p", "alpha", 10.0);
    create(s, "c", "p", "bravo", 20.0);
    set_status(s, "a", RunStatus::Finished);
    set_status(s, "c", RunStatus::Failed);
    let by = |spec: &str| {
        ids(
            s,
            &RunQuery {
                sort: sort(spec),
                ..Default::default()
            },
        )
    };
    assert_eq!(by("-start_time"), vec!["a", "c", "b"]);
    assert_eq!(by("start_time"), vec!["b", "c", "a"]);
    assert_eq!(by("name"), vec!["b", "c", "a"]);
    assert_eq!(by("-name"), vec!["a", "c", "b"]);
    // failed < finished < running, alphabetically.
    assert_eq!(by("status"), vec!["c", "a", "b"]);
    // Heartbeats follow creation/updates: b was created after a, c was
    // updated last.
    assert_eq!(by("-heartbeat").len(), 3);
    assert_eq!(
        ids(s, &RunQuery::default()),
        by("-start_time"),
        "the default is newest first"
    );
}

#[test]
fn sorts_by_a_summary_metric_with_missing_ones_last() {
    let t = open();
    let s = &t.store;
    for (i, id) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        create(s, id, "p", id, i as f64);
    }
    set_summary(s, "a", "train/loss", 0.5);
    set_summary(s, "b", "train/loss", 2.0);
    set_summary(s, "c", "train/loss", f64::INFINITY);
    set_summary(s, "d", "train/loss", f64::NAN); // no usable value: with the missing
    set_summary(s, "e", "eval/acc", 0.9); // another metric only
    // f has no summary at all.
    let by = |spec: &str| {
        ids(
            s,
            &RunQuery {
                sort: sort(spec),
                ..Default::default()
            },
        )
    };
    // Missing (d, e, f) come last in both directions, newest first.
    assert_eq!(
        by("summary.train/loss.last"),
        vec!["a", "b", "c", "f", "e", "d"]
    );
    assert_eq!(
        by("-summary.train/loss.last"),
        vec!["c", "b", "a", "f", "e", "d"]
    );
    // min = last - 1 and max = last + 1 here: same order.
    assert_eq!(
        by("summary.train/loss.min"),
        vec!["a", "b", "c", "f", "e", "d"]
    );
    assert_eq!(
        by("-summary.train/loss.max"),
        vec!["c", "b", "a", "f", "e", "d"]
    );
    assert_eq!(
        by("summary.eval/acc.last"),
        vec!["e", "f", "d", "c", "b", "a"]
    );
    assert_eq!(
        by("summary.unknown.last"),
        vec!["f", "e", "d", "c", "b", "a"]
    );

    // Filters apply to both parts.
    set_status(s, "b", RunStatus::Finished);
    set_status(s, "f", RunStatus::Finished);
    assert_eq!(
        ids(
            s,
            &RunQuery {
                sort: sort("summary.train/loss.last"),
                status: Some(vec![RunStatus::Finished]),
                ..Default::default()
            }
        ),
        vec!["b", "f"]
    );

    // Only the summaries asked for.
    let page = s
        .list_runs(RunQuery {
            sort: sort("summary.train/loss.last"),
            summary_series: Some(vec!["eval/acc".into()]),
            ..Default::default()
        })
        .unwrap();
    assert!(page.runs[0].summary.is_empty());
    let e = page.runs.iter().find(|r| r.id == "e").unwrap();
    assert_eq!(e.summary.keys().collect::<Vec<_>>(), vec!["eval/acc"]);
}

#[test]
fn pages_cover_every_run_exactly_once_in_every_sort() {
    let t = open();
    let s = &t.store;
    let names = ["kilo", "alpha", "alpha", "echo", "delta", "bravo"];
    for i in 0..37 {
        // Repeated start times and names exercise the tie breaker.
        create(
            s,
            &format!("run{i:02}"),
            "p",
            names[i % names.len()],
            (i / 3) as f64,
        );
        if i % 4 != 0 {
            // Repeated values too; every fourth run lacks the metric.
            set_summary(s, &format!("run{i:02}"), "loss", (i % 5) as f64);
        }
        if i % 7 == 0 {
            set_status(s, &format!("run{i:02}"), RunStatus::Finished);
        }
    }
    for spec in [
        "-start_time",
        "start_time",
        "name",
        "-name",
        "status",
        "-heartbeat",
        "summary.loss.last",
        "-summary.loss.last",
        "-summary.loss.min",
    ] {
        let whole = ids(
            s,
            &RunQuery {
                sort: sort(spec),
                limit: Some(1000),
                ..Default::default()
            },
        );
        assert_eq!(whole.len(), 37, "{spec}");
        for limit in [1, 5, 9, 36, 37] {
            let paged = all_pages(
                s,
                &RunQuery {
                    sort: sort(spec),
                    limit: Some(limit),
                    ..Default::default()
                },
            );
            assert_eq!(paged, whole, "{spec} in pages of {limit}");
        }
    }
}

#[test]
fn paging_is_stable_while_runs_are_created() {
    let t = open();
    let store = Arc::new(t.store);
    let mut original = HashSet::new();
    for i in 0..300 {
        let id = format!("old{i:03}");
        store
            .create_or_resume_run(NewRun {
                id: Some(id.clone()),
                ..new_run("p")
            })
            .unwrap();
        set_summary(&store, &id, "loss", (i % 17) as f64);
        original.insert(id);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("new{n:05}");
                store
                    .create_or_resume_run(NewRun {
                        id: Some(id.clone()),
                        ..new_run("p")
                    })
                    .unwrap();
                if n % 2 == 0 {
                    set_summary(&store, &id, "loss", (n % 13) as f64);
                }
                n += 1;
            }
            n
        })
    };
    for spec in [
        "-start_time",
        "name",
        "-summary.loss.last",
        "summary.loss.last",
    ] {
        let seen = all_pages(
            &store,
            &RunQuery {
                sort: sort(spec),
                limit: Some(7),
                ..Default::default()
            },
        );
        let unique: HashSet<_> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{spec}: a run was listed twice");
        let missing: Vec<_> = original.difference(&unique).collect();
        assert!(missing.is_empty(), "{spec}: never listed: {missing:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let created = writer.join().unwrap();
    assert!(created > 0);
}

#[test]
fn limits_are_clamped_and_bad_cursors_rejected() {
    let t = open();
    let s = &t.store;
    for _ in 0..60 {
        s.create_or_resume_run(new_run("p")).unwrap();
    }
    let page = s.list_runs(RunQuery::default()).unwrap();
    assert_eq!(page.runs.len(), 50);
    assert!(page.next_cursor.is_some());
    let zero = s
        .list_runs(RunQuery {
            limit: Some(0),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(zero.runs.len(), 1);
    let huge = s
        .list_runs(RunQuery {
            limit: Some(1_000_000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(huge.runs.len(), 60);
    assert_eq!(huge.next_cursor, None);

    let other_sort = s.list_runs(RunQuery {
        sort: sort("name"),
        cursor: page.next_cursor.clone(),
        ..Default::default()
    });
    assert!(matches!(other_sort, Err(Error::Invalid(_))));
    for garbage in ["", "!!!", "e30", "bm90IGpzb24"] {
        let r = s.list_runs(RunQuery {
            cursor: Some(garbage.into()),
            ..Default::default()
        });
        assert!(matches!(r, Err(Error::Invalid(_))), "{garbage:?}");
    }
}
