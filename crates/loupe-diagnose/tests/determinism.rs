//! The same input gives the same incidents: two fresh diagnosers fed one
//! multi-rank job — once with the ranks in order, once with them registered
//! and fed in another order — publish identical incidents, causes and
//! evidence. The time-driven checks (stalls, silences, cohorts) walk every
//! run at once, so their order must not come from hashing.

use loupe_diagnose::{DiagnoseConfig, Diagnoser, Incident, RunInfo};

const RANKS: u32 = 6;
const T0: f64 = 1.7e9;
/// Steps every rank takes before all of them stop (a hung collective).
const STEPS: i64 = 40;
/// Seconds the ranks keep sending heartbeats after the last step.
const HUNG_FOR: i64 = 200;

fn run_id(rank: u32) -> String {
    format!("job-r{rank}")
}

/// Rank 3 runs slow (a cohort outlier in step time and throughput); then
/// every rank stops advancing while its heartbeats go on (a group stall).
fn replay(order: &[u32]) -> Vec<Incident> {
    let mut d = Diagnoser::new(DiagnoseConfig::default(), "t");
    for &rank in order {
        d.register_run(RunInfo {
            id: run_id(rank),
            project: Some("p".into()),
            group: Some("job".into()),
            rank: Some(rank),
            host: Some(format!("node{}", rank / 2)),
            fp16: false,
        });
    }
    let mut out = Vec::new();
    for step in 0..STEPS {
        let t = T0 + step as f64;
        for &rank in order {
            let slow = if rank == 3 { 1.6 } else { 1.0 };
            let run = run_id(rank);
            let steps = [step];
            d.observe_run_points(&run, "perf/step_time", Some(&steps), &[t], &[slow], t);
            d.observe_run_points(
                &run,
                "train/tokens_per_s",
                Some(&steps),
                &[t],
                &[1000.0 / slow],
                t,
            );
        }
        out.extend(d.tick(t));
    }
    for s in 0..HUNG_FOR {
        let t = T0 + (STEPS + s) as f64;
        for &rank in order {
            d.heartbeat(&run_id(rank), t);
        }
        out.extend(d.tick(t));
    }
    out.extend(d.finish(T0 + (STEPS + HUNG_FOR + 1) as f64));
    out
}

#[test]
fn the_same_job_gives_the_same_incidents_whatever_the_order() {
    let ordered: Vec<u32> = (0..RANKS).collect();
    let reversed: Vec<u32> = (0..RANKS).rev().collect();
    let shuffled = [4, 1, 5, 0, 3, 2];
    let a = replay(&ordered);
    assert!(
        a.iter().any(|i| i.kind == "collective_hang"),
        "the stall of every rank is one incident: {a:#?}"
    );
    let stall_evidence = a
        .iter()
        .filter(|i| i.kind == "collective_hang")
        .map(|i| i.causes[0].evidence.len())
        .max();
    assert!(stall_evidence > Some(1), "{a:#?}");
    for other in [replay(&ordered), replay(&reversed), replay(&shuffled)] {
        assert_eq!(
            serde_json::to_string_pretty(&a).unwrap(),
            serde_json::to_string_pretty(&other).unwrap()
        );
    }
}
