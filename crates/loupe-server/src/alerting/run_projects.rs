//! Runs' projects for alert conditions: a run's series carry only the run,
//! and an alert belongs to a project (its `project` label).
//!
//! Rules are evaluated every few seconds over the same runs, so answers are
//! kept across evaluations. That is safe because a run's project never
//! changes while the run exists (resuming under another project is a
//! conflict, and no statement updates it); only a deletion can free an id
//! for another project, so the cache starts over whenever the store's
//! deletion count ([`MetaStore::runs_deleted`]) has moved. Runs not found
//! are remembered for one evaluation only: the run may be created next.

use std::collections::{HashMap, HashSet};

use loupe_alert::Condition;
use loupe_meta::MetaStore;
use loupe_model::label;

/// Runs whose project is kept at most; past it the cache starts over, which
/// costs one lookup per run again, as without a cache.
const KEPT: usize = 16_384;

#[derive(Default)]
pub(crate) struct RunProjects {
    known: HashMap<String, String>,
    /// Runs looked up and not found in the current evaluation.
    missing: HashSet<String>,
    /// The store's deletion count `known` was filled under.
    deletions: u64,
}

impl RunProjects {
    /// Starts an evaluation: forgets the runs not found in the last one,
    /// and everything if a run was deleted since. Read before any lookup,
    /// so a deletion racing this evaluation clears the next one's cache.
    pub(crate) fn begin(&mut self, meta: &MetaStore) {
        self.missing.clear();
        let deletions = meta.runs_deleted();
        if deletions != self.deletions {
            self.known.clear();
            self.deletions = deletions;
        }
    }

    /// Gives every condition on a run's series its run's `project` label.
    pub(crate) fn label(&mut self, meta: &MetaStore, conds: &mut [Condition]) {
        for c in conds {
            if c.labels.contains_key(label::PROJECT) {
                continue;
            }
            let Some(run) = c.labels.get(label::RUN) else {
                continue;
            };
            if let Some(p) = self.project(meta, run) {
                c.labels.insert(label::PROJECT.to_string(), p);
            }
        }
    }

    fn project(&mut self, meta: &MetaStore, run: &str) -> Option<String> {
        if let Some(p) = self.known.get(run) {
            return Some(p.clone());
        }
        if self.missing.contains(run) {
            return None;
        }
        match meta.get_run(run) {
            Ok(r) => {
                if self.known.len() >= KEPT {
                    self.known.clear();
                }
                self.known.insert(run.to_string(), r.project.clone());
                Some(r.project)
            }
            // Not found, or the store failed: unlabelled this time, as before
            // there was a cache.
            Err(_) => {
                self.missing.insert(run.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use loupe_alert::Condition;
    use loupe_meta::{MetaOptions, MetaStore, NewRun};
    use loupe_model::label;

    use super::RunProjects;

    fn on_run(run: &str) -> Condition {
        let mut labels = BTreeMap::new();
        labels.insert(label::RUN.to_string(), run.to_string());
        Condition {
            labels,
            ..Condition::default()
        }
    }

    fn create(meta: &MetaStore, id: &str, project: &str) {
        meta.create_or_resume_run(NewRun {
            id: Some(id.into()),
            project: project.into(),
            ..Default::default()
        })
        .unwrap();
    }

    /// One evaluation over one condition on `run`; its `project` label.
    fn evaluate(cache: &mut RunProjects, meta: &MetaStore, run: &str) -> Option<String> {
        cache.begin(meta);
        let mut conds = [on_run(run)];
        cache.label(meta, &mut conds);
        conds[0].labels.get(label::PROJECT).cloned()
    }

    #[test]
    fn a_runs_project_is_kept_until_a_run_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("meta.db"), MetaOptions::default()).unwrap();
        let mut cache = RunProjects::default();

        // Unknown: unlabelled, and looked up again next time.
        assert_eq!(evaluate(&mut cache, &meta, "r1"), None);
        create(&meta, "r1", "alpha");
        assert_eq!(evaluate(&mut cache, &meta, "r1").as_deref(), Some("alpha"));
        assert_eq!(cache.known.len(), 1);

        // A label the series already carries is left alone.
        let mut conds = [on_run("r1")];
        conds[0]
            .labels
            .insert(label::PROJECT.to_string(), "own".into());
        cache.label(&meta, &mut conds);
        assert_eq!(conds[0].labels[label::PROJECT], "own");

        // Deleted and created again in another project: the next
        // evaluation sees the new project, not the cached one.
        meta.delete_run("r1").unwrap();
        create(&meta, "r1", "beta");
        assert_eq!(evaluate(&mut cache, &meta, "r1").as_deref(), Some("beta"));
    }

    #[test]
    fn the_cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("meta.db"), MetaOptions::default()).unwrap();
        let mut cache = RunProjects::default();
        create(&meta, "r1", "alpha");
        for i in 0..super::KEPT {
            cache.known.insert(format!("filler{i}"), "x".into());
        }
        assert_eq!(evaluate(&mut cache, &meta, "r1").as_deref(), Some("alpha"));
        assert_eq!(cache.known.len(), 1, "a full cache starts over");
    }
}
