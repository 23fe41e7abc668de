//! Incidents found by diagnosis, and health scores (`/api/v1/incidents…`,
//! `/api/v1/runs/{id}/incidents`, `…/health`, `/api/v1/groups/{group}/health`).
//!
//! The diagnoser's own types live in `loupe-diagnose`; these are what the
//! API serves. The server reads stored incidents straight into [`Incident`]
//! and a test there checks that every incident the diagnoser can write
//! reads back unchanged.

use loupe_model::nonfinite;
use loupe_model::{IncidentState, Severity};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Float;

/// What went wrong, where, and the ranked causes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    pub id: String,
    #[schema(required)]
    pub project: Option<String>,
    /// The run it happened in; `null` for a job's or a host's incident.
    #[schema(required)]
    pub run: Option<String>,
    /// The job (a run group) it happened in.
    #[schema(required)]
    pub group: Option<String>,
    #[schema(required)]
    pub host: Option<String>,
    #[schema(required)]
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
    #[schema(required)]
    pub resolved: Option<f64>,
    /// The data time span the evidence covers.
    pub start_time: f64,
    #[schema(required)]
    pub end_time: Option<f64>,
    #[schema(required)]
    pub start_step: Option<i64>,
    #[schema(required)]
    pub end_step: Option<i64>,
    /// Ranked, best first; never empty.
    pub causes: Vec<Cause>,
    pub anomalies: Vec<Anomaly>,
    /// Runs the incident touches (a job's incident names its ranks).
    #[serde(default)]
    #[schema(required)]
    pub runs: Vec<String>,
    /// How the project's feedback re-ranked the causes; left out when none applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackRanking>,
}

/// A cause candidate: why, with the evidence behind it and what to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cause {
    /// `learning_rate_too_high`, `cuda_out_of_memory`, … (the set grows).
    pub kind: String,
    pub title: String,
    #[serde(deserialize_with = "nonfinite::deserialize")]
    pub score: f64,
    pub explanation: String,
    /// Changes to try, best first.
    pub fixes: Vec<String>,
    pub evidence: Vec<Evidence>,
}

/// A point of a series or a log line behind a cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Evidence {
    Series {
        #[schema(required)]
        run: Option<String>,
        #[schema(required)]
        series: Option<String>,
        #[schema(required)]
        step: Option<i64>,
        time: f64,
        #[serde(with = "nonfinite::opt", default)]
        #[schema(value_type = Option<Float>, required)]
        value: Option<f64>,
        detail: String,
    },
    Log {
        #[schema(required)]
        run: Option<String>,
        seq: u64,
        time: f64,
        text: String,
    },
}

/// A detector finding as an incident lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Anomaly {
    #[schema(required)]
    pub run: Option<String>,
    #[schema(required)]
    pub series: Option<String>,
    pub detector: String,
    #[schema(required)]
    pub start_step: Option<i64>,
    #[schema(required)]
    pub end_step: Option<i64>,
    pub start_time: f64,
    pub end_time: f64,
    #[serde(deserialize_with = "nonfinite::deserialize")]
    pub score: f64,
    pub severity: Severity,
    pub detail: String,
    /// How many findings of this kind on this series the incident holds.
    pub count: u32,
}

/// Each cause's rule score and feedback weight, in the ranked order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeedbackRanking {
    pub causes: Vec<WeightedCause>,
    /// Causes whose fixes feedback put in another order.
    pub fixes_reordered: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WeightedCause {
    pub kind: String,
    #[serde(deserialize_with = "nonfinite::deserialize")]
    pub rule_score: f64,
    #[serde(deserialize_with = "nonfinite::deserialize")]
    pub weight: f64,
    /// `rule_score × weight`: what the causes are ranked by.
    #[serde(deserialize_with = "nonfinite::deserialize")]
    pub ranked_score: f64,
}

/// `GET /api/v1/incidents` and `GET /api/v1/runs/{id}/incidents` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// `open` or `resolved`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Incidents opened before this time (Unix seconds): the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<f64>,
    /// Default 100, at most 1000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A page of incidents, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentPage {
    pub incidents: Vec<Incident>,
    /// Pass as `before` for the next page; `null` on the last.
    #[schema(required)]
    pub next_before: Option<f64>,
}

/// One indicator's share of a health score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthItem {
    pub indicator: String,
    #[serde(deserialize_with = "nonfinite::deserialize")]
    pub penalty: f64,
    pub detail: String,
}

/// `GET /api/v1/runs/{id}/health`: 0–100 and its breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunHealth {
    /// `null` until diagnosis has judged the run.
    #[schema(required)]
    pub score: Option<f64>,
    pub breakdown: Vec<HealthItem>,
}

/// `GET /api/v1/groups/{group}/health` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupHealthQuery {
    /// Defaults to the token's project, or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// A job's health: the mean and the worst of its ranks' scores, and each
/// rank's, worst first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupHealth {
    /// The mean; `null` while no rank is judged.
    #[schema(required)]
    pub score: Option<f64>,
    #[schema(required)]
    pub worst: Option<f64>,
    pub members: Vec<GroupMember>,
    /// Ranks not judged yet.
    pub unjudged: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupMember {
    pub run: String,
    #[schema(required)]
    pub rank: Option<u32>,
    pub score: f64,
}
