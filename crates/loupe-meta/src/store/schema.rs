//! The schema and its migrations, versioned by SQLite's `user_version`.
//!
//! Each entry of [`MIGRATIONS`] takes the schema from version `i` to `i + 1`
//! and runs in one transaction together with the version bump, so a crash
//! mid-migration leaves the previous version intact.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// Version 1.
///
/// Design notes:
/// - Runs have an integer `rid` (never reused: AUTOINCREMENT) next to their
///   public text `id`; summaries, tags and logs key on `rid`.
/// - A log line's rowid is `rid << 32 | seq`. The FTS index is keyed by the
///   same rowid, so a per-run search is an FTS5 rowid *range* and SQLite
///   seeks straight to that run's part of every doclist instead of
///   filtering all runs' matches. The `log` b-tree is clustered the same
///   way: a run's lines are contiguous, in seq order.
/// - Log time filters use `log_block`: the time range of every block of
///   4096 consecutive lines. A query reads only the seq range whose blocks
///   overlap its window. Lines are mostly in time order, so that range is
///   tight; out-of-order lines only widen it, never drop a line. A time
///   index proper would cost ~20 bytes a line and still need a sort.
/// - `run_summary` is separate from `run` with an index per statistic, so
///   "sort 10k runs by their last loss" walks an index instead of sorting.
/// - `run.search` holds the lowercased name, id and group: SQLite's `lower()`
///   and `LIKE` fold ASCII only, Rust folds all of Unicode.
const V1: &str = r#"
CREATE TABLE project (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    created  REAL NOT NULL
) STRICT;

CREATE TABLE run (
    rid             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    project         INTEGER NOT NULL REFERENCES project(id),
    name            TEXT NOT NULL,
    grp             TEXT,
    rank            INTEGER,
    world_size      INTEGER,
    tags            TEXT NOT NULL,            -- JSON array, in the caller's order
    config          TEXT NOT NULL,            -- JSON object
    status          TEXT NOT NULL,
    host            TEXT,
    command         TEXT,
    git_commit      TEXT,
    notes           TEXT,
    start_time      REAL NOT NULL,
    heartbeat_time  REAL NOT NULL,
    end_time        REAL,
    exit_code       INTEGER,
    resumes         INTEGER NOT NULL DEFAULT 0,
    resume_step     INTEGER,                  -- step the latest resume started from
    search          TEXT NOT NULL,            -- lowercased name \n id \n group
    log_seq         INTEGER NOT NULL DEFAULT 0 -- last log seq handed out
) STRICT;
CREATE INDEX run_start      ON run(start_time);
CREATE INDEX run_project    ON run(project, start_time);
CREATE INDEX run_name       ON run(name);
CREATE INDEX run_status     ON run(status, heartbeat_time);
CREATE INDEX run_heartbeat  ON run(heartbeat_time);

CREATE TABLE run_tag (
    tag  TEXT NOT NULL,
    run  INTEGER NOT NULL REFERENCES run(rid) ON DELETE CASCADE,
    PRIMARY KEY (tag, run)
) STRICT, WITHOUT ROWID;
CREATE INDEX run_tag_run ON run_tag(run);

CREATE TABLE run_summary (
    run        INTEGER NOT NULL REFERENCES run(rid) ON DELETE CASCADE,
    series     TEXT NOT NULL,
    last       REAL,                          -- NULL when NaN (SQLite stores NaN as NULL)
    min        REAL,
    max        REAL,
    count      INTEGER NOT NULL,
    last_step  INTEGER,
    PRIMARY KEY (run, series)
) STRICT, WITHOUT ROWID;
CREATE INDEX run_summary_last ON run_summary(series, last);
CREATE INDEX run_summary_min  ON run_summary(series, min);
CREATE INDEX run_summary_max  ON run_summary(series, max);

CREATE TABLE log (
    id      INTEGER PRIMARY KEY,              -- run.rid << 32 | seq
    time    REAL NOT NULL,
    stream  INTEGER NOT NULL,                 -- 0 stdout, 1 stderr, 2 app
    level   INTEGER NOT NULL,                 -- 0 debug .. 4 critical
    text    TEXT NOT NULL,
    attrs   TEXT                              -- JSON object, NULL when empty
) STRICT;

-- Warnings and worse, by level then line: "errors only" in a run of a
-- million lines reads a few index entries per level instead of every line.
-- Partial, so the common info/debug lines cost no index space.
CREATE INDEX log_level ON log(level, id) WHERE level >= 2;

-- Time range of each block of 4096 lines (seq >> 12) of a run.
CREATE TABLE log_block (
    run       INTEGER NOT NULL REFERENCES run(rid) ON DELETE CASCADE,
    block     INTEGER NOT NULL,
    min_time  REAL NOT NULL,
    max_time  REAL NOT NULL,
    PRIMARY KEY (run, block)
) STRICT, WITHOUT ROWID;

-- External content: the text is stored once, in `log`; the triggers keep
-- the index in step (log lines are never updated, only inserted and deleted).
CREATE VIRTUAL TABLE log_fts USING fts5(
    text,
    content = 'log',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER log_fts_insert AFTER INSERT ON log BEGIN
    INSERT INTO log_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER log_fts_delete AFTER DELETE ON log BEGIN
    INSERT INTO log_fts(log_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER log_fts_update AFTER UPDATE OF text ON log BEGIN
    INSERT INTO log_fts(log_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO log_fts(rowid, text) VALUES (new.id, new.text);
END;

CREATE TABLE token (
    id         TEXT PRIMARY KEY,              -- the non-secret prefix embedded in the token
    project    INTEGER NOT NULL REFERENCES project(id),
    role       TEXT NOT NULL,
    label      TEXT NOT NULL,
    hash       BLOB NOT NULL,                 -- SHA-256 of the whole token; never the token
    created    REAL NOT NULL,
    last_used  REAL
) STRICT, WITHOUT ROWID;
CREATE INDEX token_project ON token(project);
"#;

/// Version 2: what `loupe run` and diagnosis add to a run, log-batch
/// idempotency keys, and incidents.
///
/// - `run.failure` is the JSON of [`loupe_model::RunFailure`]; `health` the
///   latest score and `open_incidents` a counter kept by the incident
///   writes, so the runs table shows both without a join.
/// - `log_batch` remembers the `Idempotency-Key` of every stored log batch
///   of a run: a client that resends a batch whose answer it lost gets it
///   acknowledged, not stored twice. Keyed by `(run, key)`, no rowid.
/// - `incident` keeps the whole incident as JSON (`body`) beside the columns
///   that listings filter on; an incident's causes and evidence are only
///   ever read whole.
const V2: &str = r#"
ALTER TABLE run ADD COLUMN cwd TEXT;
ALTER TABLE run ADD COLUMN git_dirty INTEGER;
ALTER TABLE run ADD COLUMN failure TEXT;
ALTER TABLE run ADD COLUMN health REAL;
ALTER TABLE run ADD COLUMN health_detail TEXT;
ALTER TABLE run ADD COLUMN open_incidents INTEGER NOT NULL DEFAULT 0;

CREATE TABLE log_batch (
    run   INTEGER NOT NULL REFERENCES run(rid) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    PRIMARY KEY (run, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE incident (
    iid       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    project   INTEGER NOT NULL REFERENCES project(id),
    grp       TEXT,
    host      TEXT,
    state     TEXT NOT NULL,                  -- open | resolved
    severity  TEXT NOT NULL,
    kind      TEXT NOT NULL,
    opened    REAL NOT NULL,
    updated   REAL NOT NULL,
    body      TEXT NOT NULL                   -- the incident as JSON
) STRICT;
CREATE INDEX incident_project ON incident(project, state, opened);
CREATE INDEX incident_host    ON incident(host, state) WHERE host IS NOT NULL;

-- The runs an incident touches (a job's incident touches its ranks).
CREATE TABLE incident_run (
    run       INTEGER NOT NULL REFERENCES run(rid) ON DELETE CASCADE,
    incident  INTEGER NOT NULL REFERENCES incident(iid) ON DELETE CASCADE,
    PRIMARY KEY (run, incident)
) STRICT, WITHOUT ROWID;
CREATE INDEX incident_run_incident ON incident_run(incident);
"#;

/// Version 3: users' verdicts on incident causes and fixes. Rows keep the
/// incident's id as text (not a reference), so feedback outlives a pruned
/// incident and keeps weighing in its project.
const V3: &str = r#"
CREATE TABLE feedback (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    project   INTEGER NOT NULL REFERENCES project(id),
    incident  TEXT NOT NULL,
    cause     TEXT NOT NULL,                  -- the cause kind's API name
    fix       TEXT,                           -- for verdict = worked
    verdict   TEXT NOT NULL,                  -- confirmed | wrong | worked
    who       TEXT NOT NULL,
    time      REAL NOT NULL
) STRICT;
CREATE INDEX feedback_project  ON feedback(project, id);
CREATE INDEX feedback_incident ON feedback(incident, id);
"#;

/// Version 4: log search by substrings. `log_fts` is rebuilt with FTS5's
/// `trigram` tokenizer (case- and diacritic-insensitive), so a search finds
/// text inside words (`OutOfMemory` in `torch.OutOfMemoryError`) and across
/// punctuation (`loss 4.8` in `loss 4.81`), and still seeks each run's rowid
/// range. The index is rebuilt from `log` here, so existing lines are found
/// the new way; it is ~3× the size of the word index it replaces.
const V4: &str = r#"
DROP TRIGGER log_fts_insert;
DROP TRIGGER log_fts_delete;
DROP TRIGGER log_fts_update;
DROP TABLE log_fts;
CREATE VIRTUAL TABLE log_fts USING fts5(
    text,
    content = 'log',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 0 remove_diacritics 1'
);
CREATE TRIGGER log_fts_insert AFTER INSERT ON log BEGIN
    INSERT INTO log_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER log_fts_delete AFTER DELETE ON log BEGIN
    INSERT INTO log_fts(log_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER log_fts_update AFTER UPDATE OF text ON log BEGIN
    INSERT INTO log_fts(log_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO log_fts(rowid, text) VALUES (new.id, new.text);
END;
INSERT INTO log_fts(log_fts) VALUES ('rebuild');
"#;

/// Version 5: the trigram index is written once per batch, not per line.
/// The insert trigger indexed each line as it was inserted; the store now
/// indexes a batch's rowid range with one `INSERT … SELECT` after its lines
/// (`logs::index_lines`), in the same transaction. Same index, same
/// searches, less CPU per line (`bench/log_index_write.py`, and
/// `loupe-bench log-search`). Deletes and updates keep their
/// triggers: they are rare and per line anyway.
const V5: &str = r#"
DROP TRIGGER log_fts_insert;
"#;

const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        // The version is read inside the exclusive transaction, so two
        // processes opening a new file at once cannot both apply a step.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < 0 {
            return Err(Error::Corrupt(format!("negative schema version {found}")));
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        tx.execute_batch(MIGRATIONS[found as usize])?;
        // PRAGMA takes no parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", found + 1))?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file written by version 1 opens under the current version with its
    /// runs intact and the new columns at their defaults.
    #[test]
    fn version_1_files_migrate_in_place() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        conn.execute_batch(
            "INSERT INTO project (id, name, created) VALUES (1, 'p', 0);
             INSERT INTO run (id, project, name, tags, config, status, start_time,
                              heartbeat_time, search)
             VALUES ('r1', 1, 'old run', '[]', '{}', 'finished', 1, 2, 'old run');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let (name, open, failure): (String, i64, Option<String>) = conn
            .query_row(
                "SELECT name, open_incidents, failure FROM run WHERE id = 'r1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((name.as_str(), open, failure), ("old run", 0, None));
        conn.execute("INSERT INTO log_batch (run, key) VALUES (1, 'k')", [])
            .unwrap();
    }

    /// Lines written under the word index (version 2) are found by
    /// substring once the file is opened by this version.
    #[test]
    fn version_2_logs_are_found_by_substring_after_the_migration() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(V2).unwrap();
        conn.execute_batch("PRAGMA user_version = 2").unwrap();
        conn.execute_batch(
            "INSERT INTO project (id, name, created) VALUES (1, 'p', 0);
             INSERT INTO run (id, project, name, tags, config, status, start_time,
                              heartbeat_time, search)
             VALUES ('r1', 1, 'old run', '[]', '{}', 'finished', 1, 2, 'old run');
             INSERT INTO log (id, time, stream, level, text)
             VALUES (4294967297, 1, 1, 3, 'torch.OutOfMemoryError: CUDA out of memory'),
                    (4294967298, 2, 0, 1, 'step 10 loss 4.81');",
        )
        .unwrap();
        let hits = |conn: &Connection, q: &str| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM log_fts WHERE log_fts MATCH ?1",
                [q],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(hits(&conn, "\"OutOfMemory\""), 0, "words only before");
        migrate(&mut conn).unwrap();
        assert_eq!(hits(&conn, "\"OutOfMemory\""), 1);
        assert_eq!(hits(&conn, "\"outofmemory\""), 1);
        assert_eq!(hits(&conn, "\"loss 4.8\""), 1);
        // New lines are indexed the way the store indexes a batch.
        conn.execute(
            "INSERT INTO log (id, time, stream, level, text) VALUES (4294967299, 3, 0, 1, 'loss 4.79')",
            [],
        )
        .unwrap();
        crate::logs::index_lines(&conn, 4294967299, 4294967299).unwrap();
        // Indexed once: no trigger indexes it a second time, and the index
        // agrees with its content table.
        let triggers: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'log_fts_insert'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(triggers, 0);
        conn.execute(
            "INSERT INTO log_fts(log_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap();
        assert_eq!(hits(&conn, "\"loss 4.\""), 2);
    }
}
