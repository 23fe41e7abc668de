//! Alerting's shapes: a rule as written, an alert through its life, a
//! silence, a queued notification. `loupe-alert` evaluates and stores
//! them, the server serves them, the CLI and the UI read them: one
//! definition, so the stored form, the API and the rules file cannot drift
//! apart (the OpenAPI document, checked against a committed copy, shows any
//! change on the wire).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Severity, nonfinite};

/// A rule as written: the flat form of a `[[rules]]` entry of the rules
/// file, in JSON. Which fields apply depends on `kind`; fields left out
/// here are left out of answers too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// `incident`, `threshold`, `absence`, `run_state` or `burn_rate`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// How long the condition must hold before the alert fires (`5m`).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// Channel names; none: every channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<String>,
    /// Text for the notification; `{value}`, `{series}`, `{run}` are filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// `incident` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causes: Option<Vec<String>>,
    /// Matchers shared by several kinds (`*` wildcards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `threshold` rules: `gpu/0/temperature > 85`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `run_state` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states: Option<Vec<String>>,
    /// `burn_rate` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<WindowSpec>>,
    /// The series are cumulative counters (default: per-interval counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<bool>,
}

/// A burn-rate window pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub long: String,
    pub short: String,
    pub factor: f64,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(required))]
    pub severity: Option<String>,
}

/// Where a rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RuleSource {
    /// Loupe's defaults.
    Builtin,
    /// The rules file (`--rules`).
    File,
    /// Added through the API.
    Api,
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert: a rule and a label set, through its life (times in Unix
/// seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Alert {
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub state: AlertState,
    /// The condition's labels plus `alertname` and `severity`.
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    #[serde(with = "nonfinite::opt", default)]
    #[cfg_attr(feature = "schema", schema(value_type = Option<crate::nonfinite::Float>, required))]
    pub value: Option<f64>,
    #[cfg_attr(feature = "schema", schema(required))]
    pub series: Option<String>,
    pub active_since: f64,
    #[cfg_attr(feature = "schema", schema(required))]
    pub fired_at: Option<f64>,
    #[cfg_attr(feature = "schema", schema(required))]
    pub resolved_at: Option<f64>,
    pub updated: f64,
    #[cfg_attr(feature = "schema", schema(required))]
    pub last_sent: Option<f64>,
    pub sent_firing: bool,
    pub sent_resolved: bool,
    /// The silence muting it now.
    #[cfg_attr(feature = "schema", schema(required))]
    pub silenced_by: Option<String>,
    /// The greater alert on the same run muting it now.
    #[cfg_attr(feature = "schema", schema(required))]
    pub inhibited_by: Option<String>,
    pub sticky: bool,
}

/// A queued notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Delivery {
    pub seq: i64,
    pub id: String,
    pub channel: String,
    /// `pending` (retrying), `delivered` or `failed` (given up).
    pub state: String,
    pub attempts: u32,
    pub created: f64,
    pub next_attempt: f64,
    #[cfg_attr(feature = "schema", schema(required))]
    pub delivered: Option<f64>,
    #[cfg_attr(feature = "schema", schema(required))]
    pub last_error: Option<String>,
    pub title: String,
}

/// Per channel: how many notifications wait, were delivered, were given up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ChannelCounts {
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
}

/// A silence: matching alerts keep their record but are not sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Silence {
    pub id: String,
    /// Label → value (`*` wildcards); `alertname` is the rule's name. Every
    /// entry must match.
    pub matchers: BTreeMap<String, String>,
    /// Unix seconds.
    pub starts: f64,
    pub ends: f64,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(required))]
    pub comment: String,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(required))]
    pub created_by: Option<String>,
}
