//! The connection loop's figures in `/metrics`: connections open now, and
//! those refused by the cap on connections (`--max-connections`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Shared handles the loop updates; registered once at start-up.
#[derive(Debug, Clone, Default)]
pub struct ConnMetrics {
    pub open: Gauge,
    pub refused: Counter,
}

impl ConnMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "loupe_http_connections",
            "HTTP connections open now",
            self.open.clone(),
        );
        r.register(
            "loupe_http_refused_connections",
            "Connections refused because as many as --max-connections were open (answered 503, or closed unanswered when too many refusals were in flight)",
            self.refused.clone(),
        );
    }

    /// Counts a connection as open until the returned guard drops (also
    /// when its task is aborted at shutdown).
    pub(super) fn opened(&self) -> OpenConnection {
        self.open.inc();
        OpenConnection(self.open.clone())
    }
}

pub(super) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
