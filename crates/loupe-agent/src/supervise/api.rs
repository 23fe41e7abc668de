//! The calls the supervisor makes itself rather than through the
//! [`crate::Sender`], which gzips its bodies and only POSTs: the run's
//! creation (`POST /api/v1/runs`, whose endpoint reads plain JSON) and
//! `PATCH /api/v1/runs/{id}` for heartbeats and the final status. Each is
//! one attempt with a short timeout; what cannot be delivered is written to
//! the run directory (`pending_create.json`, `pending_patch.json`) for
//! `loupe sync` to send later.

use std::path::Path;
use std::time::Duration;

/// Name of the file a final PATCH waits in when the server was away.
pub const PENDING_PATCH_FILE: &str = "pending_patch.json";
/// Name of the file the run's creation waits in when the server was away.
pub const PENDING_CREATE_FILE: &str = "pending_create.json";

/// A blocking client for run updates.
pub struct RunApi {
    agent: ureq::Agent,
    server: String,
    auth: Option<String>,
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
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            PatchError::Unreachable(_) => true,
            PatchError::Status { status, .. } => {
                *status >= 500 || *status == 404 || *status == 408 || *status == 429
            }
        }
    }
}

impl RunApi {
    pub fn new(server: &str, token: Option<&str>, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Self {
            agent,
            server: server.trim_end_matches('/').to_owned(),
            auth: token.map(|t| format!("Bearer {t}")),
        }
    }

    /// `PATCH /api/v1/runs/{id}` with a JSON body.
    pub fn patch(&self, run_id: &str, body: &[u8]) -> Result<(), PatchError> {
        let mut req = self
            .agent
            .patch(format!("{}/api/v1/runs/{run_id}", self.server))
            .header("Content-Type", "application/json");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        Self::answer(req.send(body))
    }

    /// `POST /api/v1/runs` (create, or resume the run with this id).
    pub fn create(&self, body: &[u8]) -> Result<(), PatchError> {
        let mut req = self
            .agent
            .post(format!("{}/api/v1/runs", self.server))
            .header("Content-Type", "application/json");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        Self::answer(req.send(body))
    }

    fn answer(
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(), PatchError> {
        match sent {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(16 << 10)
                    .read_to_string()
                    .unwrap_or_default();
                if (200..300).contains(&status) {
                    Ok(())
                } else {
                    Err(PatchError::Status {
                        status,
                        body: text.trim().to_owned(),
                    })
                }
            }
            Err(e) => Err(PatchError::Unreachable(e.to_string())),
        }
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
