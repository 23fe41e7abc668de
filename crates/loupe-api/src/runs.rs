//! Runs and projects: `/api/v1/runs`, `/api/v1/projects`.

use std::collections::BTreeMap;

use loupe_model::nonfinite;
use loupe_model::{Run, RunFailure, RunStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Float;

/// `POST /api/v1/runs`: create a run, or resume the run with `id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateRun {
    /// Resume this run if it exists; create it with this id otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Defaults to the token's project, or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Resuming from a checkpoint at this step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_step: Option<i64>,
    /// When the run started (Unix seconds), for runs uploaded later from a
    /// client's spool; the server's clock otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<f64>,
    /// The working directory the command was started in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Whether the git work tree had uncommitted changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_dirty: Option<bool>,
}

/// One series' summary as a client sends it (`PATCH` `summary`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SummaryIn {
    #[serde(with = "nonfinite")]
    #[schema(value_type = Float)]
    pub last: f64,
    #[serde(with = "nonfinite")]
    #[schema(value_type = Float)]
    pub min: f64,
    #[serde(with = "nonfinite")]
    #[schema(value_type = Float)]
    pub max: f64,
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub last_step: Option<i64>,
}

impl From<SummaryIn> for loupe_model::SeriesSummary {
    fn from(s: SummaryIn) -> Self {
        let SummaryIn {
            last,
            min,
            max,
            count,
            last_step,
        } = s;
        loupe_model::SeriesSummary {
            last,
            min,
            max,
            count,
            last_step,
        }
    }
}

/// `PATCH /api/v1/runs/{id}`: what changes; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PatchRun {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// Merged into the run's config (objects deep-merged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Per series: last, min and max (numbers or "NaN", "Infinity",
    /// "-Infinity"), count, last step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<BTreeMap<String, SummaryIn>>,
    /// Rename the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Just say "still alive".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub heartbeat: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Why the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
}

/// `GET /api/v1/runs` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// One status, or several separated by commas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Substring of the name, id or group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// `start_time` (default), `name`, `status`, `heartbeat`, or
    /// `summary.<series>.<last|min|max>`; prefix `-` for descending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A page of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Pass as `cursor` for the next page; `null` on the last.
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// A project, how many runs it has, and what a person scanning the
/// projects page wants first: failures, incidents, when it last moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub name: String,
    pub runs: u64,
    /// Runs in status `running`.
    pub running: u64,
    /// Runs that ended `failed` or `crashed`.
    pub failed: u64,
    /// Incidents open now.
    pub open_incidents: u64,
    /// Every incident, open or resolved.
    pub incidents: u64,
    /// The latest heartbeat or end of any run; `null` without runs.
    #[schema(required)]
    pub last_activity: Option<f64>,
}

/// `GET /api/v1/projects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<Project>,
}
