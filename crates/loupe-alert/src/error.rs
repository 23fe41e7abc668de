//! The crate's errors.

/// Everything that can go wrong in alerting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Rules(#[from] RulesError),
    #[error("alert store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("alert store: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("channel {channel}: {message}")]
    Delivery { channel: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A rules file (or rule) that does not validate: every problem found,
/// each naming the rule or channel and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.join("\n"))]
pub struct RulesError {
    pub errors: Vec<String>,
}

impl RulesError {
    pub fn one(msg: impl Into<String>) -> Self {
        Self {
            errors: vec![msg.into()],
        }
    }
}
