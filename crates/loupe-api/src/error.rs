//! The one error shape: `{"error":{"code":"…","message":"…"}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `invalid_batch`, `payload_too_large`, …
    pub code: String,
    /// What went wrong and where, for people.
    pub message: String,
}
