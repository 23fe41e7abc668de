//! Several writers and readers at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_meta::{LogQuery, MetaStore, NewRun, RunPatch, RunQuery};
use loupe_model::RunStatus;

use crate::support::{info, new_run, open};

#[test]
fn writers_and_readers_on_many_threads() {
    let t = open();
    let store = Arc::new(t.store);
    const WRITERS: usize = 4;
    const RUNS_EACH: usize = 10;
    const BATCHES: usize = 5;
    const LINES: usize = 20;

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for r in 0..RUNS_EACH {
                    let id = format!("w{w}-r{r}");
                    store
                        .create_or_resume_run(NewRun {
                            id: Some(id.clone()),
                            ..new_run(&format!("proj{}", w % 2))
                        })
                        .unwrap();
                    for b in 0..BATCHES {
                        let lines: Vec<_> = (0..LINES)
                            .map(|i| info((b * LINES + i) as f64, &format!("batch {b} line {i}")))
                            .collect();
                        let first = store.append_logs(&id, &lines).unwrap();
                        assert_eq!(first, (b * LINES + 1) as u64);
                    }
                    store
                        .update_run(
                            &id,
                            RunPatch {
                                status: Some(RunStatus::Finished),
                                ..Default::default()
                            },
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    // Logs of one run appended from several threads at once: seqs stay
    // unique and contiguous.
    store
        .create_or_resume_run(NewRun {
            id: Some("shared".into()),
            ..new_run("proj0")
        })
        .unwrap();
    let shared: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut firsts = Vec::new();
                for _ in 0..25 {
                    firsts.push(
                        store
                            .append_logs("shared", &[info(0.0, "a"), info(0.0, "b")])
                            .unwrap(),
                    );
                }
                firsts
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut reads = 0;
                let deadline = Instant::now() + Duration::from_millis(300);
                while Instant::now() < deadline {
                    store.list_runs(RunQuery::default()).unwrap();
                    store.list_projects().unwrap();
                    // The run may not exist yet; anything but NotFound is a bug.
                    match store.query_logs(
                        "w0-r0",
                        LogQuery {
                            q: Some("line".into()),
                            ..Default::default()
                        },
                    ) {
                        Ok(_) | Err(loupe_meta::Error::NotFound { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    for w in writers {
        w.join().unwrap();
    }
    let mut firsts: Vec<u64> = shared.into_iter().flat_map(|h| h.join().unwrap()).collect();
    firsts.sort();
    assert_eq!(firsts, (0..100).map(|i| 1 + 2 * i).collect::<Vec<u64>>());
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }

    let page = store
        .list_runs(RunQuery {
            status: Some(vec![RunStatus::Finished]),
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.runs.len(), WRITERS * RUNS_EACH);
    for run in &page.runs {
        let logs = store
            .query_logs(
                &run.id,
                LogQuery {
                    limit: Some(10_000),
                    ..Default::default()
                },
            )
            .unwrap();
        let seqs: Vec<u64> = logs.records.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=(BATCHES * LINES) as u64).collect::<Vec<_>>());
    }
    let projects = store.list_projects().unwrap();
    assert_eq!(projects.iter().map(|p| p.runs).sum::<u64>(), 41);
}

#[test]
fn readers_do_not_wait_for_a_writer() {
    let t = open();
    let path = t.path();
    let store: MetaStore = t.store;
    store.create_or_resume_run(new_run("p")).unwrap();
    // Another connection holds the write lock with uncommitted changes.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; UPDATE run SET name = 'uncommitted'; ")
        .unwrap();
    let started = Instant::now();
    let page = store.list_runs(RunQuery::default()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_ne!(
        page.runs[0].name, "uncommitted",
        "readers see committed data only"
    );
    other.execute_batch("ROLLBACK").unwrap();
}
