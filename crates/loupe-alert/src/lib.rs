//! Loupe's alerting, as pure logic over data the caller reads: the rules
//! file and its validation ([`rules`]), the alert lifecycle with dedup,
//! grouping, silences and inhibition ([`engine`]), burn-rate arithmetic
//! ([`burn`]), notification channels ([`channels`]) and the persisted
//! delivery queue ([`queue`], [`dispatch`]).
//!
//! Nothing here knows HTTP servers or the stores: the server reads series
//! and runs, hands the engine [`engine::Condition`]s, and queues what the
//! engine says is due.

pub mod burn;
pub mod channels;
pub mod dispatch;
pub mod duration;
pub mod engine;
pub mod error;
pub mod glob;
pub mod queue;
pub mod rules;
pub mod silence;

pub use engine::IncidentSignal;
pub use engine::{Alert, AlertState, Condition, Engine, Notification};
pub use error::{Error, Result, RulesError};
pub use loupe_model::Severity;
pub use rules::{ChannelConfig, Rule, RuleKind, RuleSpec, RulesConfig, Settings};
pub use silence::{Silence, SilenceRules};

pub use loupe_model::clock::now_s;
