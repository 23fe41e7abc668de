//! The calls the supervisor makes itself rather than through the
//! [`crate::Sender`], which gzips its bodies and only POSTs: the run's
//! creation (`POST /api/v1/runs`, whose endpoint reads plain JSON) and
//! `PATCH /api/v1/runs/{id}` for heartbeats and the final status. Each is
//! one attempt with a short timeout; what cannot be delivered is written to
//! the run directory (`pending_create.json`, `pending_patch.json`) for
//! `loupe sync` to send later.

use std::path::Path;
use std::time::Duration;

use loupe_client::{Client, ClientOptions, Encoding, Method, Raw, retryable_status};

/// Name of the file a final PATCH waits in when the server was away.
pub const PENDING_PATCH_FILE: &str = "pending_patch.json";
/// Name of the file the run's creation waits in when the server was away.
pub const PENDING_CREATE_FILE: &str = "pending_create.json";

/// The run's own calls, over the one HTTP client (`loupe-client`).
pub struct RunApi {
    client: Client,
}

/// Why a PATCH did not land.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// No answer (connection refused, timeout): worth retrying later.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The server answered with an error status.
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

impl PatchError {
    /// Whether a later attempt may succeed: what the client's rule says,
    /// and a 404 too (the run's creation may not have landed yet).
    pub fn is_transient(&self) -> bool {
        match self {
            PatchError::Unreachable(_) => true,
            PatchError::Status { status, .. } => *status == 404 || retryable_status(*status),
        }
    }
}

impl From<loupe_client::Error> for PatchError {
    fn from(e: loupe_client::Error) -> Self {
        match e {
            loupe_client::Error::Unreachable { why, .. } => PatchError::Unreachable(why),
            e @ (loupe_client::Error::Refused { .. } | loupe_client::Error::NotLoupe { .. }) => {
                PatchError::Status {
                    status: e.status().unwrap_or(0),
                    body: e.to_string(),
                }
            }
            loupe_client::Error::Request(m) => PatchError::Unreachable(m),
        }
    }
}

impl RunApi {
    pub fn new(server: &str, token: Option<&str>, timeout: Duration) -> Self {
        Self {
            client: Client::new(
                server,
                ClientOptions {
                    token: token.map(str::to_owned),
                    timeout: Some(timeout),
                    connect_timeout: None,
                },
            ),
        }
    }

    /// `PATCH /api/v1/runs/{id}` with a JSON body.
    pub fn patch(&self, run_id: &str, body: &[u8]) -> Result<(), PatchError> {
        self.send(Method::Patch, &format!("/api/v1/runs/{run_id}"), body)
    }

    /// `POST /api/v1/runs` (create, or resume the run with this id).
    pub fn create(&self, body: &[u8]) -> Result<(), PatchError> {
        self.send(Method::Post, "/api/v1/runs", body)
    }

    fn send(&self, method: Method, path: &str, body: &[u8]) -> Result<(), PatchError> {
        self.client
            .send(Raw {
                method,
                path,
                body,
                encoding: Encoding::Identity,
                idempotency_key: None,
            })
            .map(|_| ())
            .map_err(PatchError::from)
    }
}

/// Writes a PATCH that could not be sent as `{"run_id", "body"}`,
/// atomically, so `loupe sync` finds either the whole update or none.
pub fn save_pending_patch(
    run_dir: &Path,
    run_id: &str,
    body: &serde_json::Value,
) -> std::io::Result<()> {
    save_pending(run_dir, PENDING_PATCH_FILE, run_id, body)
}

/// A request `loupe run` could not deliver, as [`save_pending`] wrote it.
#[derive(Debug, serde::Deserialize)]
pub struct PendingRequest {
    pub run_id: String,
    /// The request body, as written.
    pub body: Box<serde_json::value::RawValue>,
}

/// Why a pending request's file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads `run_dir/name` ([`PENDING_CREATE_FILE`] or [`PENDING_PATCH_FILE`]);
/// `Ok(None)` when there is none.
pub fn load_pending(run_dir: &Path, name: &str) -> Result<Option<PendingRequest>, PendingError> {
    let path = run_dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PendingError::Io { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| PendingError::Json { path, source })
}

/// Writes `{"run_id", "body"}` to `run_dir/name`: write a temporary file,
/// fsync, rename.
pub fn save_pending(
    run_dir: &Path,
    name: &str,
    run_id: &str,
    body: &serde_json::Value,
) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(run_dir)?;
    let tmp = run_dir.join(format!("{name}.tmp"));
    let text = serde_json::to_vec(&serde_json::json!({ "run_id": run_id, "body": body }))?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&text)?;
    f.sync_all()?;
    std::fs::rename(&tmp, run_dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_pending_request_loads_back_and_a_damaged_one_says_where() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            load_pending(dir.path(), PENDING_PATCH_FILE)
                .unwrap()
                .is_none()
        );
        let body = serde_json::json!({"status": "finished", "exit_code": 0});
        save_pending_patch(dir.path(), "r1", &body).unwrap();
        let p = load_pending(dir.path(), PENDING_PATCH_FILE)
            .unwrap()
            .unwrap();
        assert_eq!(p.run_id, "r1");
        let back: serde_json::Value = serde_json::from_str(p.body.get()).unwrap();
        assert_eq!(back, body);
        std::fs::write(dir.path().join(PENDING_CREATE_FILE), "{\"body\": {}}").unwrap();
        let err = load_pending(dir.path(), PENDING_CREATE_FILE)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(PENDING_CREATE_FILE) && err.contains("missing field `run_id`"),
            "{err}"
        );
    }
}
