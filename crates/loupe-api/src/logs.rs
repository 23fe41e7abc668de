//! A run's log lines (`/api/v1/runs/{id}/logs`) and the live event stream
//! (`/api/v1/live`).

use std::collections::BTreeMap;

use loupe_model::{LogLevel, LogStream};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /api/v1/runs/{id}/logs`. With an `Idempotency-Key` header (1–128
/// characters of `[A-Za-z0-9_.:-]`) a batch is stored once per run and key.
/// Unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogBatch {
    pub records: Vec<LogLine>,
}

/// One line of a [`LogBatch`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Unix seconds; absent: the server's "now".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// Default `app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<LogStream>,
    /// Default `info`; any case, and `trace`, `warn`, `fatal` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    pub text: String,
    /// Strings (numbers and booleans are taken as their JSON text).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// `GET /api/v1/runs/{id}/logs` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Search by substrings: every word must occur, inside words too; quotes for text with spaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Minimum level: debug, info, warning, error, critical.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    /// The line's number in its run: pass the last one shown as `cursor`.
    pub seq: u64,
    /// Unix seconds.
    pub time: f64,
    pub stream: LogStream,
    pub level: LogLevel,
    pub text: String,
    pub attributes: BTreeMap<String, String>,
}

/// A page of log lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogPage {
    pub records: Vec<LogEntry>,
    /// Pass as `cursor` for the next page; `null` on the last.
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/live` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    /// Only events of this run (all visible runs when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}
