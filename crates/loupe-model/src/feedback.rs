//! A stored verdict on an incident's cause or fix. `loupe-meta` stores and
//! lists these rows and the server sends them as they are: one definition,
//! so the stored row and the API's entry cannot drift apart.

use serde::{Deserialize, Serialize};

/// A stored verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct FeedbackEntry {
    pub id: i64,
    pub project: String,
    pub incident: String,
    pub cause: String,
    #[cfg_attr(feature = "schema", schema(required))]
    pub fix: Option<String>,
    /// `confirmed`, `wrong` or `worked`.
    pub verdict: String,
    /// The token's label (`local` on a server without tokens).
    pub who: String,
    /// Unix seconds.
    pub time: f64,
}
