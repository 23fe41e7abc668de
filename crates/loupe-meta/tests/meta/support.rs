//! Helpers shared by the tests.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use loupe_meta::{MetaOptions, MetaStore, NewRun};
use loupe_model::{LogLevel, LogRecord, LogStream};
use tempfile::TempDir;

pub struct TestStore {
    pub dir: TempDir,
    pub store: MetaStore,
}

impl TestStore {
    pub fn path(&self) -> PathBuf {
        db_path(self.dir.path())
    }
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("meta.db")
}

pub fn open() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(&db_path(dir.path()), MetaOptions::default()).unwrap();
    TestStore { dir, store }
}

pub fn reopen(dir: &Path) -> MetaStore {
    MetaStore::open(&db_path(dir), MetaOptions::default()).unwrap()
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub fn new_run(project: &str) -> NewRun {
    NewRun {
        project: project.to_string(),
        ..NewRun::default()
    }
}

pub fn named_run(project: &str, id: &str) -> NewRun {
    NewRun {
        id: Some(id.to_string()),
        project: project.to_string(),
        ..NewRun::default()
    }
}

pub fn line(time: f64, stream: LogStream, level: LogLevel, text: &str) -> LogRecord {
    LogRecord {
        time,
        stream,
        level,
        text: text.to_string(),
        attributes: Default::default(),
    }
}

pub fn info(time: f64, text: &str) -> LogRecord {
    line(time, LogStream::Stdout, LogLevel::Info, text)
}
