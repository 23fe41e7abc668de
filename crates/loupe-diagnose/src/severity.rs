//! Severity is part of Loupe's shared vocabulary; it lives in `loupe-model`
//! (so alerting needs no diagnosis) and is re-exported here under its old path.

pub use loupe_model::Severity;
