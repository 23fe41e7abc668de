//! Notification channels: where a [`Notification`] goes.

pub mod chart;
pub mod email;
pub mod webhook;

use crate::engine::Notification;
use crate::error::RulesError;
use crate::rules::ChannelConfig;

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub message: String,
    /// The receiver refused the message itself (a 4xx, a rejected
    /// address): retrying cannot help, so it is given up at once.
    pub permanent: bool,
}

impl DeliveryError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

/// Something that can deliver a notification. Implementations block (the
/// dispatcher gives each channel its own thread) and bound their own time.
pub trait Channel: Send + Sync {
    fn name(&self) -> &str;
    fn deliver(&self, n: &Notification) -> Result<(), DeliveryError>;
}

/// Reads a secret from the config or its environment variable. The value
/// is never logged; a missing variable is an error naming the variable.
pub(crate) fn secret(
    inline: &Option<crate::rules::Secret>,
    env: &Option<String>,
    what: &str,
) -> Result<Option<String>, RulesError> {
    if let Some(v) = inline {
        return Ok(Some(v.0.clone()));
    }
    match env {
        None => Ok(None),
        Some(var) => std::env::var(var)
            .map(Some)
            .map_err(|_| RulesError::one(format!("{what}: environment variable {var} is not set"))),
    }
}

/// Builds a channel from its configuration (reading secrets from the
/// environment now, so a missing one is reported at start, not at 3 a.m.).
pub fn build(cfg: &ChannelConfig) -> Result<Box<dyn Channel>, RulesError> {
    Ok(match cfg {
        ChannelConfig::Webhook(w) => Box::new(webhook::Webhook::new(w)?),
        ChannelConfig::Email(e) => Box::new(email::Email::new(e)?),
    })
}
