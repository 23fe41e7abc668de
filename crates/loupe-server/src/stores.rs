//! The two halves of the embedded store, as the services share them, and
//! their figures in `/metrics` ([`telemetry`]).

pub mod telemetry;

use std::sync::Arc;

use loupe_meta::MetaStore;
use loupe_tsdb::Tsdb;

/// The time-series engine and the SQLite store; cheap to clone (both are
/// shared handles).
#[derive(Clone)]
pub struct Stores {
    pub tsdb: Tsdb,
    pub meta: Arc<MetaStore>,
}
