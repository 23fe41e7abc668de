//! The server itself.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /healthz`: the server answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServerHealth {
    /// Always `ok`.
    pub status: String,
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// The server's version.
    pub version: String,
}
