//! The server's own request counters: what the write path, the query routes
//! and the token check count, registered in `/metrics` by
//! [`ServerMetrics::register`].

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
    /// Line-protocol string fields, which are not numbers and not stored.
    pub skipped_string_fields: Counter,
    /// Requests refused by a server-wide limit, by reason.
    pub limit_refusals: LimitRefusals,
    /// Parts of accepted writes Loupe reads and does not store, by what.
    pub not_stored: NotStored,
}

/// `loupe_ingest_not_stored_total{what}`.
pub type NotStored = Family<[(&'static str, &'static str); 1], Counter>;

/// What an accepted write may carry that is not stored: Prometheus
/// remote write's exemplars and native histograms' buckets (their count
/// and sum are stored).
pub const NOT_STORED: [&str; 2] = ["exemplars", "native_histogram_buckets"];

/// `loupe_limit_refused_requests_total{reason}`.
pub type LimitRefusals = Family<[(&'static str, &'static str); 1], Counter>;

/// Every reason a limit refuses a request for: the series limits (422)
/// the in-flight body budget (503 after waiting, 413 for a body larger
/// than the whole budget), a token's request rate (429) and a handler
/// that ran past `--request-timeout` (503).
pub const LIMIT_REASONS: [&str; 6] = [
    "series_per_run",
    "series_per_project",
    "body_budget_timeout",
    "body_over_budget",
    "rate_per_token",
    "request_timeout",
];

impl ServerMetrics {
    pub fn add(counter: &Counter, n: u64) {
        counter.inc_by(n);
    }

    /// Counts string fields a line-protocol write carried and Loupe did
    /// not store.
    pub fn string_fields_skipped(&self, n: u64) {
        self.skipped_string_fields.inc_by(n);
    }

    /// Counts what an accepted write carried and Loupe did not store
    /// (`what` from [`NOT_STORED`]).
    pub fn not_stored(&self, what: &'static str, n: u64) {
        if n > 0 {
            self.not_stored.get_or_create(&[("what", what)]).inc_by(n);
        }
    }

    /// Counts a request a limit refused (`reason` from [`LIMIT_REASONS`]).
    pub fn limit_refused(&self, reason: &'static str) {
        self.limit_refusals
            .get_or_create(&[("reason", reason)])
            .inc();
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
            (
                "loupe_ingest_skipped_string_fields",
                "InfluxDB line-protocol string fields received and not stored (they are not numbers)",
                &self.skipped_string_fields,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        // Every reason has a series from the start, so a rate over it is
        // defined before the first refusal.
        for reason in LIMIT_REASONS {
            let _ = self.limit_refusals.get_or_create(&[("reason", reason)]);
        }
        for what in NOT_STORED {
            let _ = self.not_stored.get_or_create(&[("what", what)]);
        }
        r.register(
            "loupe_ingest_not_stored",
            "Parts of accepted writes read and not stored (remote write's exemplars, native histograms' buckets), by what",
            self.not_stored.clone(),
        );
        r.register(
            "loupe_limit_refused_requests",
            "Requests refused by a server-wide limit (series per run or project, in-flight body budget, a token's request rate, the request timeout), by reason",
            self.limit_refusals.clone(),
        );
    }
}
