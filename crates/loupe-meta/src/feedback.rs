//! Users' verdicts on the causes and fixes of incidents: a cause marked
//! confirmed or wrong, a fix marked as the one that worked. Rows are only
//! added; diagnosis tallies a project's rows into the weights that rank its
//! next incidents.

use loupe_model::feedback::FeedbackEntry;
use rusqlite::params;

use crate::error::{Error, Result};
use crate::projects::ensure_project;
use crate::store::{MetaStore, now};
use crate::validate;

/// A verdict to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeedback {
    pub project: String,
    pub incident: String,
    /// The cause kind's API name (`learning_rate_too_high`).
    pub cause: String,
    /// The fix's text, for `worked`.
    pub fix: Option<String>,
    /// `confirmed`, `wrong` or `worked`.
    pub verdict: String,
    /// Who said so: a token's label, or `local` on an open server.
    pub who: String,
}

/// The most rows one listing returns.
pub const MAX_FEEDBACK_LIMIT: usize = 10_000;
const MAX_LABEL_BYTES: usize = 256;
const MAX_FIX_BYTES: usize = 4096;

impl MetaStore {
    /// Stores a verdict; returns it as stored.
    pub fn add_feedback(&self, f: &NewFeedback) -> Result<FeedbackEntry> {
        validate::project_name(&f.project)?;
        validate::label("incident", &f.incident, MAX_LABEL_BYTES)?;
        validate::label("cause", &f.cause, MAX_LABEL_BYTES)?;
        validate::label("who", &f.who, MAX_LABEL_BYTES)?;
        match (f.verdict.as_str(), &f.fix) {
            ("confirmed" | "wrong", None) => {}
            ("worked", Some(fix)) => validate::label("fix", fix, MAX_FIX_BYTES)?,
            ("confirmed" | "wrong", Some(_)) => {
                return Err(Error::invalid(format!(
                    "verdict {:?} is about a cause: no fix goes with it",
                    f.verdict
                )));
            }
            ("worked", None) => {
                return Err(Error::invalid(
                    "verdict \"worked\" needs the fix that worked",
                ));
            }
            (other, _) => {
                return Err(Error::invalid(format!(
                    "verdict must be \"confirmed\", \"wrong\" or \"worked\", not {other:?}"
                )));
            }
        }
        let time = now();
        self.write(|tx| {
            let project = ensure_project(tx, &f.project, time)?;
            let id: i64 = tx
                .prepare_cached(
                    "INSERT INTO feedback (project, incident, cause, fix, verdict, who, time)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                )?
                .query_row(
                    params![project, f.incident, f.cause, f.fix, f.verdict, f.who, time],
                    |r| r.get(0),
                )?;
            Ok(FeedbackEntry {
                id,
                project: f.project.clone(),
                incident: f.incident.clone(),
                cause: f.cause.clone(),
                fix: f.fix.clone(),
                verdict: f.verdict.clone(),
                who: f.who.clone(),
                time,
            })
        })
    }

    /// A project's verdicts, oldest first, at most `limit` (the newest).
    pub fn project_feedback(&self, project: &str, limit: usize) -> Result<Vec<FeedbackEntry>> {
        let limit = limit.clamp(1, MAX_FEEDBACK_LIMIT) as i64;
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT * FROM (
                     SELECT f.id, p.name, f.incident, f.cause, f.fix, f.verdict, f.who, f.time
                     FROM feedback f JOIN project p ON p.id = f.project
                     WHERE p.name = ?1 ORDER BY f.id DESC LIMIT ?2)
                 ORDER BY id",
            )?;
            let rows = stmt
                .query_map(params![project, limit], record)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// An incident's verdicts, oldest first.
    pub fn incident_feedback(&self, incident: &str) -> Result<Vec<FeedbackEntry>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT f.id, p.name, f.incident, f.cause, f.fix, f.verdict, f.who, f.time
                 FROM feedback f JOIN project p ON p.id = f.project
                 WHERE f.incident = ?1 ORDER BY f.id LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![incident, MAX_FEEDBACK_LIMIT as i64], record)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedbackEntry> {
    Ok(FeedbackEntry {
        id: r.get(0)?,
        project: r.get(1)?,
        incident: r.get(2)?,
        cause: r.get(3)?,
        fix: r.get(4)?,
        verdict: r.get(5)?,
        who: r.get(6)?,
        time: r.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetaOptions;

    fn store() -> (tempfile::TempDir, MetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(&dir.path().join("meta.db"), MetaOptions::default()).unwrap();
        (dir, m)
    }

    fn mark(project: &str, cause: &str, fix: Option<&str>, verdict: &str) -> NewFeedback {
        NewFeedback {
            project: project.into(),
            incident: "inc-1".into(),
            cause: cause.into(),
            fix: fix.map(String::from),
            verdict: verdict.into(),
            who: "alice".into(),
        }
    }

    #[test]
    fn verdicts_are_stored_per_project_and_listed_oldest_first() {
        let (_d, m) = store();
        let a = m
            .add_feedback(&mark("p", "divergence", None, "confirmed"))
            .unwrap();
        m.add_feedback(&mark("p", "divergence", Some("Lower the LR"), "worked"))
            .unwrap();
        m.add_feedback(&mark("q", "crash", None, "wrong")).unwrap();
        let p = m.project_feedback("p", 100).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0], a);
        assert_eq!(p[1].fix.as_deref(), Some("Lower the LR"));
        assert!(p[0].time > 0.0 && p[0].who == "alice");
        assert_eq!(m.project_feedback("q", 100).unwrap().len(), 1);
        assert_eq!(m.project_feedback("nobody", 100).unwrap().len(), 0);
        assert_eq!(m.incident_feedback("inc-1").unwrap().len(), 3);
        // The newest `limit`, still oldest first.
        let last = m.project_feedback("p", 1).unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].verdict, "worked");
    }

    #[test]
    fn malformed_verdicts_are_refused_and_nothing_is_stored() {
        let (_d, m) = store();
        for bad in [
            mark("p", "divergence", None, "maybe"),
            mark("p", "divergence", None, "worked"),
            mark("p", "divergence", Some("x"), "wrong"),
            mark("p", "", None, "wrong"),
            mark("bad/project", "divergence", None, "wrong"),
        ] {
            assert!(
                matches!(m.add_feedback(&bad), Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(m.project_feedback("p", 100).unwrap().is_empty());
    }
}
