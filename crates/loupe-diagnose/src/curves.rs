//! The real training-curve corpus (`corpus/curves/`, see
//! `corpus/README.md`): loading its curves, feeding one through a
//! [`Diagnoser`] as a run's points with steps (streamed point by point, sent
//! as one batch, or replayed as `loupe diagnose --replay` does), and judging
//! the incidents: a marked failure must be found, a healthy curve must open
//! nothing.
//!
//! Behind the `corpus` feature, beside the log corpus: `tests/curves.rs` and
//! `loupe-bench diagnose-real` share this one definition of "found".

mod judge;
mod load;

pub use judge::{CurveOutcome, CurveReport, judge};
pub use load::{Curve, default_dir, load};

use std::collections::BTreeMap;

use crate::config::DiagnoseConfig;
use crate::diagnoser::{Diagnoser, RunInfo};
use crate::incident::Incident;
use crate::scenario::quality::replay as replay_scenario;
use crate::scenario::{Event, Scenario};

/// The data time (Unix seconds) of step 0 of every curve.
pub const CURVE_START: f64 = 1.7e9;

/// Data seconds per training step: the published curves carry steps, not
/// times, so a step takes one second (a small fine-tuning step).
pub const SECONDS_PER_STEP: f64 = 1.0;

/// Points per event when a curve is replayed, as `loupe diagnose --replay`
/// chunks what it reads back.
const REPLAY_CHUNK: usize = 16;

/// The run id every curve is fed under.
const RUN: &str = "curve";

/// How a curve's points reach the diagnoser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// One point per call, the clock at the point's time (live streaming).
    Stream,
    /// Every point in one call, arriving long after the data (a bulk upload
    /// of a finished run).
    Batch,
    /// Through the replay `loupe diagnose --replay` uses.
    Replay,
}

impl Feed {
    pub const ALL: [Feed; 3] = [Feed::Stream, Feed::Batch, Feed::Replay];

    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Stream => "stream",
            Feed::Batch => "batch",
            Feed::Replay => "replay",
        }
    }
}

/// The data time of a step.
pub fn time_of(step: i64) -> f64 {
    CURVE_START + step as f64 * SECONDS_PER_STEP
}

/// Feeds `curve` to a fresh diagnoser as `feed` says and returns the final
/// state of every incident it opened, in the order they were opened.
pub fn replay(curve: &Curve, cfg: &DiagnoseConfig, feed: Feed) -> Vec<Incident> {
    let times: Vec<f64> = curve.steps.iter().map(|s| time_of(*s)).collect();
    if feed == Feed::Replay {
        let mut events = vec![Event::RunStarted {
            info: run_info(),
            config: serde_json::Value::Null,
        }];
        for (i, chunk) in curve.steps.chunks(REPLAY_CHUNK).enumerate() {
            let at = i * REPLAY_CHUNK;
            events.push(Event::Points {
                run: RUN.into(),
                series: curve.series.clone(),
                steps: chunk.to_vec(),
                times: times[at..at + chunk.len()].to_vec(),
                values: curve.values[at..at + chunk.len()].to_vec(),
            });
        }
        let sc = Scenario {
            events,
            faults: Vec::new(),
            healthy_runs: Vec::new(),
        };
        return in_opening_order(replay_scenario(&sc, cfg));
    }
    let mut d = Diagnoser::new(cfg.clone(), RUN);
    d.register_run(run_info());
    let mut seen: BTreeMap<String, Incident> = BTreeMap::new();
    let mut keep = |list: Vec<Incident>| {
        for i in list {
            seen.insert(i.id.clone(), i);
        }
    };
    let end = times.last().copied().unwrap_or(CURVE_START);
    match feed {
        Feed::Stream => {
            for (i, t) in times.iter().enumerate() {
                let step = [curve.steps[i]];
                d.observe_run_points(
                    RUN,
                    &curve.series,
                    Some(&step),
                    &[*t],
                    &[curve.values[i]],
                    *t,
                );
                keep(d.tick(*t));
            }
        }
        _ => {
            // A day after the run: arrival time says nothing about the data.
            let arrival = end + 86_400.0;
            d.observe_run_points(
                RUN,
                &curve.series,
                Some(&curve.steps),
                &times,
                &curve.values,
                arrival,
            );
            keep(d.tick(arrival));
        }
    }
    keep(d.finish(end + 2.0 * 86_400.0));
    in_opening_order(seen.into_values().collect())
}

fn run_info() -> RunInfo {
    RunInfo {
        id: RUN.into(),
        ..Default::default()
    }
}

fn in_opening_order(mut list: Vec<Incident>) -> Vec<Incident> {
    list.sort_by(|a, b| {
        a.start_step
            .cmp(&b.start_step)
            .then(a.start_time.total_cmp(&b.start_time))
    });
    list
}

/// Replays every curve (streamed) and judges it.
pub fn evaluate(curves: &[Curve], cfg: &DiagnoseConfig) -> CurveReport {
    let outcomes = curves
        .iter()
        .map(|c| judge(c, &replay(c, cfg, Feed::Stream)))
        .collect();
    CurveReport { outcomes }
}
