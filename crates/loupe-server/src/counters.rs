//! The server's own request counters: what the write path, the query routes
//! and the token check count, registered in `/metrics` by
//! [`ServerMetrics::register`].

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Request counters (cheap atomic clones of the registered counters).
#[derive(Debug, Default, Clone)]
pub struct ServerMetrics {
    pub points_ingested: Counter,
    pub log_records_ingested: Counter,
    pub ingest_requests: Counter,
    pub rejected_requests: Counter,
    pub auth_failures: Counter,
    pub query_requests: Counter,
}

impl ServerMetrics {
    pub fn add(counter: &Counter, n: u64) {
        counter.inc_by(n);
    }

    /// Registers the counters under their `/metrics` names (the encoder
    /// appends `_total`: `loupe_ingest_points` is `loupe_ingest_points_total`).
    pub fn register(&self, r: &mut Registry) {
        let counters = [
            (
                "loupe_ingest_points",
                "Points written durably",
                &self.points_ingested,
            ),
            (
                "loupe_ingest_log_records",
                "Log records written durably",
                &self.log_records_ingested,
            ),
            (
                "loupe_ingest_requests",
                "Accepted metric ingest requests",
                &self.ingest_requests,
            ),
            (
                "loupe_rejected_requests",
                "Ingest requests refused as malformed or too large",
                &self.rejected_requests,
            ),
            (
                "loupe_auth_failures",
                "Requests refused for a missing or bad token",
                &self.auth_failures,
            ),
            (
                "loupe_query_requests",
                "Series and log queries served",
                &self.query_requests,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
    }
}
