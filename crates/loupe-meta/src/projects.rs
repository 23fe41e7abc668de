//! Projects: the unit of ownership for runs and tokens. Created on demand.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::Result;
use crate::store::{MetaStore, now};
use crate::validate;

/// A project and how many runs it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectInfo {
    pub name: String,
    pub runs: u64,
    /// Runs in status `running`.
    pub running: u64,
}

impl MetaStore {
    /// Every project, by name, with its run counts.
    pub fn list_projects(&self) -> Result<Vec<ProjectInfo>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT p.name, count(r.rid), coalesce(sum(r.status = 'running'), 0)
                 FROM project p LEFT JOIN run r ON r.project = p.id
                 GROUP BY p.id ORDER BY p.name",
            )?;
            let projects = stmt
                .query_map([], |r| {
                    Ok(ProjectInfo {
                        name: r.get(0)?,
                        runs: r.get::<_, i64>(1)? as u64,
                        running: r.get::<_, i64>(2)? as u64,
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
