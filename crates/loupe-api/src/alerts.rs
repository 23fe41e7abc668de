//! Alerts, alert rules and silences (`/api/v1/alerts…`, `/api/v1/silences…`).
//!
//! The shapes alerting stores (a rule as written, an alert, a silence, a
//! queued notification) are `loupe-model`'s ([`loupe_model::alerting`]),
//! re-exported here; what only the API speaks (listings, a new silence) is
//! defined here.

use std::collections::BTreeMap;

pub use loupe_model::alerting::{
    Alert, AlertState, ChannelCounts, Delivery, RuleSource, RuleSpec, Silence, WindowSpec,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A rule and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleEntry {
    pub source: RuleSource,
    pub rule: RuleSpec,
}

/// `GET /api/v1/alerts/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleList {
    pub rules: Vec<RuleEntry>,
}

/// `GET /api/v1/alerts`: current alerts (pending, firing, recently
/// resolved) and the delivery queue. A project-scoped token sees only its
/// alerts, and no deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertsView {
    pub alerts: Vec<Alert>,
    pub notifications: Vec<Delivery>,
    pub channels: BTreeMap<String, ChannelCounts>,
}

/// `POST /api/v1/silences`: label matchers and a window (`ends`, or
/// `duration` like "2h" from `starts`, which defaults to now).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub matchers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default)]
    pub comment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// `GET /api/v1/silences`: active and scheduled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SilenceList {
    pub silences: Vec<Silence>,
}
