//! The real-world log corpus (`corpus/logs/`, see `corpus/README.md`):
//! loading its cases, replaying one through a [`Diagnoser`] as `loupe run`
//! would feed it, and judging what came out against the expected cause.
//!
//! Behind the `corpus` feature: the diagnoser itself never needs it (no file
//! IO in the library proper), while the corpus test, `loupe-bench
//! diagnose-real` and the end-to-end test in `crates/loupe` share one
//! definition of "detected" and "right cause first".

mod judge;
pub(crate) mod load;

pub use judge::{Outcome, Report, Seen, Targets, judge, pick};
pub use load::{Case, CorpusError, default_dir, load};

use hashbrown::HashMap;
use loupe_model::{LogLevel, LogStream};

use crate::config::DiagnoseConfig;
use crate::diagnoser::{Diagnoser, RunInfo};
use crate::incident::Incident;

/// The data time of a replay's first line (Unix seconds); lines come one a
/// second after it.
pub const REPLAY_START: f64 = 1.7e9;

/// The run id a replay uses.
const RUN: &str = "corpus";

/// Replays `case` through a fresh diagnoser: every excerpt line as a stderr
/// line of one run (level `info`, so the scanner's own reading of the line
/// decides), one line a second, then the run's end with the case's exit
/// code (status `failed` when it is non-zero), then the end of the replay.
/// Returns the final state of every incident it opened.
pub fn replay(case: &Case, cfg: &DiagnoseConfig) -> Vec<Incident> {
    let mut d = Diagnoser::new(cfg.clone(), RUN);
    d.register_run(RunInfo {
        id: RUN.into(),
        ..Default::default()
    });
    let mut seen: HashMap<String, Incident> = HashMap::new();
    let mut keep = |list: Vec<Incident>| {
        for i in list {
            seen.insert(i.id.clone(), i);
        }
    };
    let mut t = REPLAY_START;
    for (i, line) in case.lines.iter().enumerate() {
        t = REPLAY_START + i as f64;
        d.observe_log(
            RUN,
            i as u64 + 1,
            t,
            LogStream::Stderr,
            LogLevel::Info,
            line,
            t,
        );
        keep(d.tick(t));
    }
    let end = t + 1.0;
    d.run_ended(RUN, case.status(), Some(case.exit_code), end);
    keep(d.tick(end));
    keep(d.finish(end + 1.0));
    let mut out: Vec<Incident> = seen.into_values().collect();
    out.sort_by(|a, b| a.opened.total_cmp(&b.opened).then(a.id.cmp(&b.id)));
    out
}

/// Replays and judges every case.
pub fn evaluate(cases: &[Case], cfg: &DiagnoseConfig) -> Report {
    let outcomes = cases
        .iter()
        .map(|c| {
            let seen: Vec<Seen> = replay(c, cfg).iter().map(Seen::from).collect();
            judge(c, &seen)
        })
        .collect();
    Report { outcomes }
}
