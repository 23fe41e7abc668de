//! Projects: the unit of ownership for runs and tokens. Created on demand.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::Result;
use crate::store::{MetaStore, now};
use crate::validate;

/// A project, how many runs it has, and what a person scanning the
/// projects page wants first: failures, incidents, when it last moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectInfo {
    pub name: String,
    pub runs: u64,
    /// Runs in status `running`.
    pub running: u64,
    /// Runs that ended `failed` or `crashed`.
    pub failed: u64,
    /// Incidents open now.
    pub open_incidents: u64,
    /// Every incident, open or resolved: resolved ones still happened.
    pub incidents: u64,
    /// The latest heartbeat or end of any run (Unix seconds); `None` without runs.
    pub last_activity: Option<f64>,
}

impl MetaStore {
    /// Every project, by name, with its run counts.
    pub fn list_projects(&self) -> Result<Vec<ProjectInfo>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT p.name, count(r.rid), coalesce(sum(r.status = 'running'), 0),
                        coalesce(sum(r.status IN ('failed', 'crashed')), 0),
                        (SELECT count(*) FROM incident i WHERE i.project = p.id AND i.state = 'open'),
                        (SELECT count(*) FROM incident i WHERE i.project = p.id),
                        max(max(r.heartbeat_time, coalesce(r.end_time, r.heartbeat_time)))
                 FROM project p LEFT JOIN run r ON r.project = p.id
                 GROUP BY p.id ORDER BY p.name",
            )?;
            let count = |r: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<u64> {
                Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
            };
            let projects = stmt
                .query_map([], |r| {
                    Ok(ProjectInfo {
                        name: r.get(0)?,
                        runs: count(r, 1)?,
                        running: count(r, 2)?,
                        failed: count(r, 3)?,
                        open_incidents: count(r, 4)?,
                        incidents: count(r, 5)?,
                        last_activity: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(projects)
        })
    }

    /// Creates the project if it does not exist; returns whether it was created.
    pub fn ensure_project(&self, name: &str) -> Result<bool> {
        validate::project_name(name)?;
        self.write(|tx| {
            let created = tx.execute(
                "INSERT INTO project (name, created) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, now()],
            )?;
            Ok(created == 1)
        })
    }
}

/// The project's id, creating it if needed. The caller validated the name.
pub(crate) fn ensure_project(tx: &Connection, name: &str, now: f64) -> Result<i64> {
    // Look first: an upsert would rewrite the row (and its page) every time.
    let found = tx
        .prepare_cached("SELECT id FROM project WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO project (name, created) VALUES (?1, ?2)")?
        .execute(params![name, now])?;
    Ok(tx.last_insert_rowid())
}
