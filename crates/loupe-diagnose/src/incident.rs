//! Incidents: findings close in time within one run, job (group) or
//! source, with their cause candidates ranked by score.
//!
//! A finding of severity warning or worse opens an incident, or joins the
//! open one of its run or job when it comes within `join_window_s` of that
//! incident's latest evidence. Minor (info) findings never open one; they
//! join an open incident, and the recent ones are pulled in when an
//! incident opens — a grad-norm spike just before a loss spike is evidence.
//! A repeat of evidence an incident already holds (the same kind on the
//! same series) joins it up to `repeat_window_s` after its latest evidence,
//! so one ongoing burst or leak stays one incident.
//! An incident with no new evidence for `resolve_after_s` is resolved; a
//! resolved incident never reopens (new trouble opens a new one).

pub mod causes;
mod correlate;
pub mod feedback;

pub use causes::{Cause, CauseKind, Evidence, RunContext};
pub use correlate::Correlator;
pub use feedback::{FeedbackRanking, FeedbackWeights, Verdict};

use serde::{Deserialize, Serialize};

use crate::Severity;
use crate::finding::{Finding, FindingKind};

/// Part of the shared vocabulary (`loupe-model`), re-exported under its old path.
pub use loupe_model::IncidentState;

/// A detector finding as an incident lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub run: Option<String>,
    pub series: Option<String>,
    pub detector: String,
    pub start_step: Option<i64>,
    pub end_step: Option<i64>,
    pub start_time: f64,
    pub end_time: f64,
    pub score: f64,
    pub severity: Severity,
    pub detail: String,
    /// How many findings of this kind on this series the incident holds.
    pub count: u32,
}

/// What went wrong, where, and the ranked causes, as served by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub project: Option<String>,
    pub run: Option<String>,
    pub group: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
    pub state: IncidentState,
    pub severity: Severity,
    /// The top cause's kind.
    pub kind: String,
    /// The top cause's title.
    pub title: String,
    /// Unix seconds (the diagnoser's clock: arrival time live, data time in replay).
    pub opened: f64,
    pub updated: f64,
    pub resolved: Option<f64>,
    /// The data time span the evidence covers.
    pub start_time: f64,
    pub end_time: Option<f64>,
    pub start_step: Option<i64>,
    pub end_step: Option<i64>,
    /// Ranked, best first; never empty.
    pub causes: Vec<Cause>,
    pub anomalies: Vec<Anomaly>,
    /// Runs the incident touches (a job's incident names its ranks).
    pub runs: Vec<String>,
    /// How the project's feedback re-ranked the causes; absent when none applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackRanking>,
}

impl Incident {
    /// The top cause.
    pub fn top_cause(&self) -> Option<&Cause> {
        self.causes.first()
    }

    /// The run a link to this incident should open: the incident's own run,
    /// else (a job's incident) the rank behind the top cause's first piece
    /// of evidence — the rank that ran out of memory, not rank 0 — else the
    /// rank of its strongest anomaly, else the first run it touches.
    pub fn culprit_run(&self) -> Option<&str> {
        if let Some(r) = &self.run {
            return Some(r);
        }
        let from_evidence = self.top_cause().and_then(|c| {
            c.evidence.iter().find_map(|e| match e {
                Evidence::Series { run, .. } | Evidence::Log { run, .. } => run.as_deref(),
            })
        });
        let from_anomaly = || {
            self.anomalies
                .iter()
                .filter(|a| a.run.is_some())
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .and_then(|a| a.run.as_deref())
        };
        from_evidence
            .or_else(from_anomaly)
            .or_else(|| self.runs.first().map(String::as_str))
    }
}

/// Groups findings into the anomaly list: one entry per (run, series,
/// detector), with the span and count.
pub(crate) fn anomalies_of(findings: &[Finding]) -> Vec<Anomaly> {
    let mut out: Vec<Anomaly> = Vec::new();
    for f in findings {
        if matches!(f.kind, FindingKind::Log(_)) {
            continue;
        }
        let detector = f.kind.name();
        if let Some(a) = out
            .iter_mut()
            .find(|a| a.run == f.scope.run && a.series == f.series && a.detector == detector)
        {
            a.count += 1;
            a.end_time = a.end_time.max(f.time);
            a.start_time = a.start_time.min(f.time);
            if let Some(s) = f.step {
                a.end_step = Some(a.end_step.map_or(s, |e| e.max(s)));
                a.start_step = Some(a.start_step.map_or(s, |e| e.min(s)));
            }
            if f.score > a.score {
                a.score = f.score;
            }
            a.severity = a.severity.max(f.severity);
            continue;
        }
        out.push(Anomaly {
            run: f.scope.run.clone(),
            series: f.series.clone(),
            detector,
            start_step: f.step,
            end_step: f.step,
            start_time: f.time,
            end_time: f.time,
            score: f.score,
            severity: f.severity,
            detail: f.detail.clone(),
            count: 1,
        });
    }
    out
}
