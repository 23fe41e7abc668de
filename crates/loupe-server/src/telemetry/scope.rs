//! Who a scrape is for, and the families whose series depend on it.
//!
//! `/metrics` follows the API's rule, "nobody sees what is not theirs":
//!
//! - every caller allowed to read (role `read` or `admin`) sees the service
//!   families: they name no project and count no project's objects;
//! - alerts and open incidents are counted over the projects the caller sees
//!   (`loupe_alerts{state}`, `loupe_incidents_open`): all of them for the
//!   unscoped caller (a server without tokens), one project for a token;
//! - figures that span every project and name the operator's configuration
//!   (notification deliveries and queues by channel) only for the unscoped
//!   caller, as in `GET /api/v1/alerts`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::auth::Principal;

/// The projects a scrape may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every project, and figures across them (no tokens: the operator).
    All,
    /// One project's (a token's).
    Project(String),
}

impl Scope {
    pub fn of(who: &Principal) -> Scope {
        match &who.project {
            None => Scope::All,
            Some(p) => Scope::Project(p.clone()),
        }
    }

    /// True when the scope covers `project` (`None`: an object of no
    /// project, seen only by [`Scope::All`]).
    pub fn sees(&self, project: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Project(mine) => project == Some(mine.as_str()),
        }
    }

    pub fn is_all(&self) -> bool {
        *self == Scope::All
    }
}

/// Families a subsystem encodes differently for each [`Scope`].
pub trait ScopedMetrics: Send + Sync + 'static {
    fn encode(&self, scope: &Scope, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error>;
}

/// A [`ScopedMetrics`] bound to one scrape's scope, as the registry's
/// [`Collector`].
pub(super) struct ScopedCollector {
    metrics: Arc<dyn ScopedMetrics>,
    scope: Scope,
}

impl ScopedCollector {
    pub(super) fn new(metrics: Arc<dyn ScopedMetrics>, scope: Scope) -> Self {
        ScopedCollector { metrics, scope }
    }
}

impl std::fmt::Debug for ScopedCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedCollector")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Collector for ScopedCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.metrics.encode(&self.scope, encoder)
    }
}
