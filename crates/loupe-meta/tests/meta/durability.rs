//! Reopening, schema versions, pragmas.

use std::collections::BTreeMap;

use loupe_meta::{Error, LogQuery, MetaOptions, MetaStore, RunPatch, RunQuery};
use loupe_model::{Role, RunStatus, SeriesSummary};
use serde_json::json;

use crate::support::{db_path, info, named_run, open, reopen};

#[test]
fn everything_written_is_there_after_reopening() {
    let t = open();
    let dir = t.dir;
    let store = t.store;
    let mut new = named_run("p", "r1");
    new.config = Some(json!({"lr": 0.1}));
    new.tags = Some(vec!["t".into()]);
    store.create_or_resume_run(new).unwrap();
    let mut summary = BTreeMap::new();
    summary.insert(
        "loss".to_string(),
        SeriesSummary {
            last: 0.5,
            min: 0.4,
            max: 3.0,
            count: 100,
            last_step: Some(99),
        },
    );
    let before = store
        .update_run(
            "r1",
            RunPatch {
                summary: Some(summary),
                status: Some(RunStatus::Finished),
                ..Default::default()
            },
        )
        .unwrap();
    store
        .append_logs("r1", &[info(1.0, "hello durable world"), info(2.0, "bye")])
        .unwrap();
    let (_, secret) = store.create_token("p", Role::Admin, "").unwrap();
    drop(store);

    let store = reopen(dir.path());
    assert_eq!(store.get_run("r1").unwrap(), before);
    let page = store
        .query_logs(
            "r1",
            LogQuery {
                q: Some("durable".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(store.verify_token(&secret).unwrap().unwrap().project, "p");
    // Seqs continue where they were.
    assert_eq!(store.append_logs("r1", &[info(3.0, "again")]).unwrap(), 3);
    let listed = store
        .list_runs(RunQuery {
            tag: Some("t".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.runs.len(), 1);
}

#[test]
fn acknowledged_writes_survive_an_unclean_exit() {
    let t = open();
    t.store.create_or_resume_run(named_run("p", "r")).unwrap();
    t.store
        .append_logs("r", &[info(1.0, "acknowledged line")])
        .unwrap();
    // No destructor, no close, no checkpoint: what a crash leaves behind is
    // the database file and its WAL, which a second store must read.
    let path = t.path();
    std::mem::forget(t.store);
    let second = MetaStore::open(&path, MetaOptions::default()).unwrap();
    assert_eq!(second.get_run("r").unwrap().id, "r");
    let page = second.query_logs("r", LogQuery::default()).unwrap();
    assert_eq!(page.records[0].1.text, "acknowledged line");
}

#[test]
fn the_file_is_in_wal_mode_with_the_current_schema() {
    let t = open();
    let conn = rusqlite::Connection::open(t.path()).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    drop(conn);
    // Opening again is a no-op for the schema.
    drop(t.store);
    reopen(t.dir.path());
}

#[test]
fn a_newer_schema_is_refused() {
    let t = open();
    drop(t.store);
    let conn = rusqlite::Connection::open(db_path(t.dir.path())).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = MetaStore::open(&db_path(t.dir.path()), MetaOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaTooNew {
                found: 99,
                supported: 5
            }
        ),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    std::fs::write(
        &path,
        b"this is not sqlite, just some text long enough to look like a header",
    )
    .unwrap();
    assert!(MetaStore::open(&path, MetaOptions::default()).is_err());
}
