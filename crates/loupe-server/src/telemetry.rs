//! Loupe's own metrics (`GET /metrics`), kept with the `prometheus-client`
//! crate: one [`Telemetry`] is built at start-up and every subsystem
//! registers its own families in it, before the server answers anything.
//!
//! Two kinds of families:
//!
//! - **Service** families ([`Telemetry::registry`]) describe the server as a
//!   service: the engine, the stores' size, ingest and query totals, diagnosis'
//!   queue, refused requests and connections, the process. They name no
//!   project and hold no project's objects; a subsystem registers a
//!   [`Counter`](prometheus_client::metrics::counter::Counter) or a
//!   [`Family`](prometheus_client::metrics::family::Family) it keeps and
//!   updates, or a [`Collector`](prometheus_client::collector::Collector)
//!   that reads its state at scrape time.
//! - **Scoped** families ([`Telemetry::register_scoped`]) count objects that
//!   belong to projects (alerts, incidents) or to the operator's
//!   configuration across projects (notification channels). They are encoded
//!   for each caller through its [`Scope`]: a caller sees only what the API
//!   would show it (see [`scope`]).
//!
//! The answer's format is negotiated ([`format`]): OpenMetrics for a client
//! that asks for it (Prometheus does), else the Prometheus text format 0.0.4.

pub mod emit;
pub mod format;
pub mod process;
pub mod scope;

use std::sync::Arc;

use prometheus_client::registry::Registry;

pub use format::Format;
pub use scope::{Scope, ScopedMetrics};

/// Every family of `/metrics`, registered at start-up.
#[derive(Default)]
pub struct Telemetry {
    service: Registry,
    scoped: Vec<Arc<dyn ScopedMetrics>>,
}

impl Telemetry {
    /// Where a subsystem registers its service families.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.service
    }

    /// Registers families whose series depend on who asks.
    pub fn register_scoped(&mut self, metrics: Arc<dyn ScopedMetrics>) {
        self.scoped.push(metrics);
    }

    /// The exposition for a caller who sees `scope`, in `format`.
    pub fn encode(&self, scope: &Scope, format: Format) -> Result<String, std::fmt::Error> {
        // The caller's view is a registry of its own, holding the scoped
        // families bound to its scope; both are encoded into one answer.
        let mut view = Registry::default();
        for m in &self.scoped {
            view.register_collector(Box::new(scope::ScopedCollector::new(
                m.clone(),
                scope.clone(),
            )));
        }
        format.encode(&[&self.service, &view])
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::DescriptorEncoder;
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    /// Series per project, the way alerting and diagnosis scope theirs.
    struct PerProject;

    impl ScopedMetrics for PerProject {
        fn encode(&self, scope: &Scope, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let open: u64 = [(Some("a"), 2), (Some("b"), 3), (None, 1)]
                .into_iter()
                .filter(|(p, _)| scope.sees(*p))
                .map(|(_, n)| n)
                .sum();
            emit::gauge(&mut enc, "things_open", "Things.", open)
        }
    }

    fn telemetry() -> (Telemetry, Counter) {
        let mut t = Telemetry::default();
        let c = Counter::default();
        t.registry()
            .register("things_done", "Things done", c.clone());
        t.register_scoped(Arc::new(PerProject));
        (t, c)
    }

    #[test]
    fn each_scope_sees_its_own_series_and_the_service_ones() {
        let (t, c) = telemetry();
        c.inc_by(5);
        let all = t.encode(&Scope::All, Format::PrometheusText).unwrap();
        assert!(all.contains("\nthings_done_total 5\n"), "{all}");
        assert!(all.contains("\nthings_open 6\n"), "{all}");
        let a = t
            .encode(&Scope::Project("a".into()), Format::PrometheusText)
            .unwrap();
        assert!(a.contains("\nthings_done_total 5\n"), "{a}");
        assert!(a.contains("\nthings_open 2\n"), "{a}");
    }

    #[test]
    fn one_answer_per_format_from_both_registries() {
        let (t, _) = telemetry();
        let om = t.encode(&Scope::All, Format::OpenMetrics).unwrap();
        assert!(om.starts_with("# HELP things_done Things done.\n# TYPE things_done counter\n"));
        assert!(
            om.contains("# TYPE things_open gauge\nthings_open 6\n"),
            "{om}"
        );
        assert_eq!(om.matches("# EOF").count(), 1);
        assert!(om.ends_with("# EOF\n"));
        let text = t.encode(&Scope::All, Format::PrometheusText).unwrap();
        assert!(text.starts_with(
            "# HELP things_done_total Things done.\n# TYPE things_done_total counter\n"
        ));
        assert!(!text.contains("# EOF"));
    }
}
