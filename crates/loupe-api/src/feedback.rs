//! Users' verdicts on incidents (`/api/v1/incidents/{id}/feedback`,
//! `/api/v1/projects/{project}/feedback`).
//!
//! A stored verdict is `loupe-model`'s [`FeedbackEntry`] (the row
//! `loupe-meta` stores), re-exported here.

pub use loupe_model::feedback::FeedbackEntry;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a user says about a cause or a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackVerdict {
    /// The cause was the right one.
    Confirmed,
    /// The cause was wrong.
    Wrong,
    /// The fix (`fix`) is the one that worked.
    Worked,
}

impl FeedbackVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackVerdict::Confirmed => "confirmed",
            FeedbackVerdict::Wrong => "wrong",
            FeedbackVerdict::Worked => "worked",
        }
    }
}

/// A verdict on one of the incident's causes, or on one of its fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The cause's kind as the incident lists it (`causes[].kind`).
    pub cause: String,
    pub verdict: FeedbackVerdict,
    /// With `worked`: the fix's text as the cause lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// An incident's verdicts, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentFeedback {
    pub feedback: Vec<FeedbackEntry>,
}

/// A cause kind's marks in a project and the weight they give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CauseWeight {
    pub cause: String,
    pub confirmed: u32,
    pub wrong: u32,
    /// Multiplies the cause's score when incidents are ranked (0.5–1.5).
    pub weight: f64,
}

/// A fix marked as worked, and the weight that moves it up its cause's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FixWeight {
    pub cause: String,
    /// The fix's text, numbers masked as `#` (one fix whatever the step).
    pub fix: String,
    pub worked: u32,
    /// 1–2; a cause's fixes are listed by it.
    pub weight: f64,
}

/// A project's feedback: the weights diagnosis ranks with, and the verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectFeedback {
    pub project: String,
    pub causes: Vec<CauseWeight>,
    pub fixes: Vec<FixWeight>,
    /// The newest verdicts (at most 1000), oldest first.
    pub feedback: Vec<FeedbackEntry>,
}
