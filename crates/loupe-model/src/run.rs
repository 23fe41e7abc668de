//! Runs, log records and access roles: the shapes the API, store and SDK share.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::nonfinite;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Finished,
    Failed,
    Crashed,
    Killed,
    /// Stopped sending heartbeats for longer than the server's lost timeout.
    Lost,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Finished,
        RunStatus::Failed,
        RunStatus::Crashed,
        RunStatus::Killed,
        RunStatus::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Crashed => "crashed",
            RunStatus::Killed => "killed",
            RunStatus::Lost => "lost",
        }
    }

    /// True for states a run does not leave by itself.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Running | RunStatus::Lost)
    }

    /// True when the run ended badly: it failed, crashed or was killed (a
    /// lost run may still come back, so it is not one of them).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RunStatus::Failed | RunStatus::Crashed | RunStatus::Killed
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status {0:?}: expected running, finished, failed, crashed, killed or lost")]
pub struct UnknownStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// Last, smallest and largest value of one series of a run. In JSON,
/// non-finite values are the strings "NaN", "Infinity" and "-Infinity", as
/// everywhere in the API.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesSummary {
    #[serde(with = "nonfinite")]
    #[cfg_attr(feature = "schema", schema(value_type = crate::nonfinite::Float))]
    pub last: f64,
    #[serde(with = "nonfinite")]
    #[cfg_attr(feature = "schema", schema(value_type = crate::nonfinite::Float))]
    pub min: f64,
    #[serde(with = "nonfinite")]
    #[cfg_attr(feature = "schema", schema(value_type = crate::nonfinite::Float))]
    pub max: f64,
    pub count: u64,
    #[cfg_attr(feature = "schema", schema(required))]
    pub last_step: Option<i64>,
}

/// A training or evaluation run.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub project: String,
    pub name: String,
    /// The distributed job this run is one rank of.
    #[cfg_attr(feature = "schema", schema(required))]
    pub group: Option<String>,
    #[cfg_attr(feature = "schema", schema(required))]
    pub rank: Option<u32>,
    #[cfg_attr(feature = "schema", schema(required))]
    pub world_size: Option<u32>,
    pub tags: Vec<String>,
    pub config: serde_json::Value,
    pub status: RunStatus,
    #[cfg_attr(feature = "schema", schema(required))]
    pub host: Option<String>,
    #[cfg_attr(feature = "schema", schema(required))]
    pub command: Option<String>,
    #[cfg_attr(feature = "schema", schema(required))]
    pub git_commit: Option<String>,
    #[cfg_attr(feature = "schema", schema(required))]
    pub notes: Option<String>,
    /// Unix seconds.
    pub start_time: f64,
    pub heartbeat_time: f64,
    #[cfg_attr(feature = "schema", schema(required))]
    pub end_time: Option<f64>,
    #[cfg_attr(feature = "schema", schema(required))]
    pub exit_code: Option<i32>,
    /// Per series name: last/min/max.
    pub summary: BTreeMap<String, SeriesSummary>,
    /// How many times the run was resumed under the same id.
    pub resumes: u32,
    /// The working directory the run was started in (`loupe run`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(required))]
    pub cwd: Option<String>,
    /// Whether the git work tree had uncommitted changes at start.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(required))]
    pub git_dirty: Option<bool>,
    /// Why the run ended badly, when it did and the client could tell.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(required))]
    pub failure: Option<RunFailure>,
    /// The latest health score (0–100), once diagnosis has judged the run.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(required))]
    pub health: Option<f64>,
    /// Incidents of this run that are open now.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(required))]
    pub open_incidents: u32,
    /// Every incident that touched this run, open or resolved: a run whose
    /// five incidents all resolved still shows them.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(required))]
    pub total_incidents: u32,
}

/// What a client saw when its run failed: the exception of the last
/// traceback, the signal that killed the process, the end of its stderr.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFailure {
    #[serde(default)]
    pub exception_type: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub signal: Option<i32>,
    #[serde(default)]
    pub stderr_tail: Vec<String>,
    #[serde(default)]
    pub traceback: Option<String>,
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    App,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::App => "app",
        }
    }
}

impl FromStr for LogStream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stdout" => Ok(LogStream::Stdout),
            "stderr" => Ok(LogStream::Stderr),
            "app" => Ok(LogStream::App),
            other => Err(format!(
                "unknown stream {other:?}: expected stdout, stderr or app"
            )),
        }
    }
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warning" | "warn" => Ok(LogLevel::Warning),
            "error" => Ok(LogLevel::Error),
            "critical" | "fatal" => Ok(LogLevel::Critical),
            other => Err(format!(
                "unknown level {other:?}: expected debug, info, warning, error or critical"
            )),
        }
    }
}

/// One log line of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Unix seconds.
    pub time: f64,
    pub stream: LogStream,
    pub level: LogLevel,
    pub text: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// What a token may do, within its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Write metrics, logs and run updates.
    Ingest,
    /// Read everything in the project.
    Read,
    /// Everything, including deletion and tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    /// True when this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        match needed {
            Role::Admin => self == Role::Admin,
            Role::Read => matches!(self, Role::Read | Role::Admin),
            Role::Ingest => matches!(self, Role::Ingest | Role::Admin),
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingest" => Ok(Role::Ingest),
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: expected ingest, read or admin"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("bogus".parse::<RunStatus>().is_err());
        let failures: Vec<_> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_failure())
            .collect();
        assert_eq!(
            failures,
            [RunStatus::Failed, RunStatus::Crashed, RunStatus::Killed]
        );
        assert!(failures.iter().all(|s| s.is_terminal()));
        assert_eq!("WARN".parse::<LogLevel>().unwrap(), LogLevel::Warning);
        assert!("x".parse::<LogStream>().is_err());
    }

    #[test]
    fn summaries_write_non_finite_values_as_strings() {
        let s = SeriesSummary {
            last: f64::NAN,
            min: f64::NEG_INFINITY,
            max: 2.5,
            count: 3,
            last_step: Some(7),
        };
        let j = serde_json::to_string(&s).unwrap();
        assert!(
            j.contains(r#""last":"NaN""#) && j.contains(r#""min":"-Infinity""#),
            "{j}"
        );
        let back: SeriesSummary = serde_json::from_str(&j).unwrap();
        assert!(back.last.is_nan());
        assert_eq!(
            (back.min, back.max, back.count),
            (f64::NEG_INFINITY, 2.5, 3)
        );
        assert!(
            serde_json::from_str::<SeriesSummary>(
                r#"{"last":"nan","min":1,"max":1,"count":1,"last_step":null}"#
            )
            .is_err()
        );
    }

    #[test]
    fn roles_nest() {
        assert!(Role::Admin.allows(Role::Read));
        assert!(Role::Admin.allows(Role::Ingest));
        assert!(!Role::Read.allows(Role::Ingest));
        assert!(!Role::Ingest.allows(Role::Read));
        assert!(!Role::Read.allows(Role::Admin));
    }
}
