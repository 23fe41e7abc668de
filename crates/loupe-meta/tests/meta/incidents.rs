//! Incidents: stored by id (updates replace), linked to their runs, listed
//! by filters newest first, and counted on each run while open.

use loupe_meta::{IncidentQuery, IncidentRecord, NewRun};

use crate::support::open;

fn record(id: &str, state: &str, opened: f64, runs: &[&str]) -> IncidentRecord {
    IncidentRecord {
        id: id.into(),
        project: "p".into(),
        group: Some("job".into()),
        host: Some("node-1".into()),
        state: state.into(),
        severity: "warning".into(),
        kind: "learning_rate_too_high".into(),
        opened,
        updated: opened,
        runs: runs.iter().map(|r| r.to_string()).collect(),
        body: format!(r#"{{"id":"{id}","state":"{state}"}}"#),
    }
}

#[test]
fn incidents_are_stored_listed_and_counted_on_runs() {
    let t = open();
    for id in ["r0", "r1"] {
        t.store
            .create_or_resume_run(NewRun {
                id: Some(id.into()),
                project: "p".into(),
                ..Default::default()
            })
            .unwrap();
    }
    t.store
        .store_incidents(&[
            record("a", "open", 10.0, &["r0", "r1", "gone"]),
            record("b", "open", 20.0, &["r1"]),
        ])
        .unwrap();
    assert_eq!(t.store.get_run("r0").unwrap().open_incidents, 1);
    assert_eq!(t.store.get_run("r1").unwrap().open_incidents, 2);
    // An update replaces the body and the state; the count follows.
    t.store
        .store_incidents(&[record("a", "resolved", 10.0, &["r0", "r1"])])
        .unwrap();
    assert_eq!(t.store.get_run("r0").unwrap().open_incidents, 0);
    assert_eq!(t.store.get_run("r1").unwrap().open_incidents, 1);
    // Resolved incidents still count in the totals, on runs and projects.
    assert_eq!(t.store.get_run("r0").unwrap().total_incidents, 1);
    assert_eq!(t.store.get_run("r1").unwrap().total_incidents, 2);
    let listed = t
        .store
        .list_runs(loupe_meta::RunQuery {
            project: Some("p".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(listed.runs.iter().all(|r| r.total_incidents >= 1));
    let project = &t.store.list_projects().unwrap()[0];
    assert_eq!((project.open_incidents, project.incidents), (1, 2));
    let (body, project) = t.store.get_incident("a").unwrap();
    assert!(body.contains("resolved"), "{body}");
    assert_eq!(project, "p");
    let list = |q: IncidentQuery| -> Vec<String> {
        t.store
            .list_incidents(&IncidentQuery { limit: 100, ..q })
            .unwrap()
            .into_iter()
            .map(|(b, _)| b)
            .collect()
    };
    assert_eq!(list(IncidentQuery::default()).len(), 2);
    let r0 = list(IncidentQuery {
        run: Some("r0".into()),
        ..Default::default()
    });
    assert_eq!(r0.len(), 1);
    let open_only = list(IncidentQuery {
        state: Some("open".into()),
        ..Default::default()
    });
    assert_eq!(open_only.len(), 1);
    assert!(open_only[0].contains(r#""id":"b""#));
    // Newest first, and `before` pages.
    let all = list(IncidentQuery {
        project: Some("p".into()),
        ..Default::default()
    });
    assert!(all[0].contains(r#""id":"b""#));
    let older = list(IncidentQuery {
        before: Some(20.0),
        ..Default::default()
    });
    assert_eq!(older.len(), 1);
    assert!(
        list(IncidentQuery {
            project: Some("other".into()),
            ..Default::default()
        })
        .is_empty()
    );
    assert!(
        t.store
            .store_incidents(&[record("c", "weird", 1.0, &[])])
            .is_err()
    );
    // Health.
    assert_eq!(t.store.run_health("r0").unwrap(), None);
    t.store
        .store_health(&[("r0".into(), 72.5, "[]".into())])
        .unwrap();
    assert_eq!(t.store.run_health("r0").unwrap(), Some((72.5, "[]".into())));
    assert_eq!(t.store.get_run("r0").unwrap().health, Some(72.5));
    // Deleting a run drops its links.
    t.store.delete_run("r1").unwrap();
    assert_eq!(
        list(IncidentQuery {
            run: Some("r1".into()),
            ..Default::default()
        })
        .len(),
        0
    );
}
