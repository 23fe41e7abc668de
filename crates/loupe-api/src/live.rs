//! The live stream (`GET /api/v1/live`): Server-Sent Events about runs.
//!
//! Each event's SSE name is its `kind`, and its data is a [`LiveEvent`]
//! in JSON (which carries the `kind` again, so a client reading the data
//! alone knows what it holds). A client that falls behind gets a `lagged`
//! event and skips ahead; it never slows ingestion down.

use std::collections::BTreeMap;

use loupe_model::RunStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Alert, Float, Incident, LogEntry};

/// One event of the live stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveEvent {
    /// The run it is about (`""` for `lagged`).
    pub run: String,
    #[serde(flatten)]
    pub payload: LivePayload,
}

/// What happened, by kind (the SSE event name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "data", rename_all = "lowercase")]
pub enum LivePayload {
    /// Points were written: per series, its newest point.
    Points(BTreeMap<String, LivePoint>),
    /// Log lines were written: how many, and the last few.
    Logs(LiveLogs),
    /// The run was created, resumed, or changed status.
    Status(LiveStatus),
    /// One of the run's incidents opened, changed or resolved.
    Incident(Box<Incident>),
    /// An alert about the run changed state.
    Alert(Box<Alert>),
    /// This client fell behind and missed events.
    Lagged(LiveLagged),
}

impl LivePayload {
    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            LivePayload::Points(_) => "points",
            LivePayload::Logs(_) => "logs",
            LivePayload::Status(_) => "status",
            LivePayload::Incident(_) => "incident",
            LivePayload::Alert(_) => "alert",
            LivePayload::Lagged(_) => "lagged",
        }
    }
}

/// A series' newest point in a `points` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LivePoint {
    /// Points in this write.
    pub count: u64,
    #[schema(required)]
    pub last_step: Option<i64>,
    #[serde(with = "loupe_model::nonfinite")]
    #[schema(value_type = Float)]
    pub last: f64,
}

/// A `logs` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveLogs {
    /// Lines in this write.
    pub count: u64,
    /// The last of them (at most a screenful).
    pub records: Vec<LogEntry>,
}

/// A `status` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveStatus {
    pub status: RunStatus,
    /// On a run's creation: true when it was new, false when resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

/// A `lagged` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveLagged {
    /// Events this client missed.
    pub skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_as_the_stream_sends_it() {
        let ev = LiveEvent {
            run: "r1".into(),
            payload: LivePayload::Points(BTreeMap::from([(
                "loss".to_string(),
                LivePoint {
                    count: 2,
                    last_step: Some(7),
                    last: f64::NAN,
                },
            )])),
        };
        let text = serde_json::to_string(&ev).unwrap();
        assert_eq!(
            text,
            r#"{"run":"r1","kind":"points","data":{"loss":{"count":2,"last_step":7,"last":"NaN"}}}"#
        );
        let back: LiveEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.payload.kind(), "points");
        let status: LiveEvent =
            serde_json::from_str(r#"{"run":"r","kind":"status","data":{"status":"failed"}}"#)
                .unwrap();
        assert_eq!(
            status.payload,
            LivePayload::Status(LiveStatus {
                status: RunStatus::Failed,
                created: None
            })
        );
    }
}
