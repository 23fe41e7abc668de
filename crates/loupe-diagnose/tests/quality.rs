//! The fault-injection suite: every fault kind, single runs and groups of
//! 8–64 ranks, next to healthy jobs with realistic noise. Asserts the
//! issue's targets: precision and recall ≥ 0.95, the true cause first in
//! ≥ 90% of incidents, and no incident on a healthy run.
//!
//! `loupe-bench diagnose` prints the same report with more seeds.

use loupe_diagnose::DiagnoseConfig;
use loupe_diagnose::scenario::quality::{run_suite, shortfalls, standard_suite};

#[test]
fn the_fault_injection_suite_meets_its_targets() {
    let specs = standard_suite(7, 1);
    let (report, incidents) = run_suite(&specs, &DiagnoseConfig::default());
    println!("{}", report.table());
    if std::env::var_os("LOUPE_QUALITY_VERBOSE").is_some() {
        for i in &incidents {
            println!(
                "{} {:?} runs={:?} group={:?} t={:.0}..{:.0} causes={:?}",
                i.id,
                i.state,
                i.runs.len(),
                i.group,
                i.start_time,
                i.end_time.unwrap_or(0.0),
                i.causes
                    .iter()
                    .map(|c| (c.kind.as_str(), (c.score * 100.0).round() / 100.0))
                    .collect::<Vec<_>>()
            );
            if i.kind == "unexplained" || i.kind.starts_with("serving") {
                for a in &i.anomalies {
                    println!("    {} {:?} {}", a.detector, a.series, a.detail);
                }
            }
        }
    }
    let short = shortfalls(&report);
    assert!(short.is_empty(), "{short:?}\n{}", report.table());
}
