//! Diagnosis' figures in `/metrics`: its queue and throughput (service
//! families) and the incidents open now, counted over the caller's projects.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::Diagnosis;
use crate::telemetry::{Scope, ScopedMetrics, Telemetry, emit};

/// Registers diagnosis' families.
pub fn register(diagnosis: &Arc<Diagnosis>, t: &mut Telemetry) {
    t.registry()
        .register_collector(Box::new(QueueCollector(diagnosis.clone())));
    t.register_scoped(Arc::new(OpenIncidents(diagnosis.clone())));
}

struct QueueCollector(Arc<Diagnosis>);

impl std::fmt::Debug for QueueCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("diagnosis::telemetry::QueueCollector")
    }
}

impl Collector for QueueCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let d = self.0.counters();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let counters = [
            (
                "loupe_diagnosis_batches",
                "Batches handed to diagnosis.",
                load(&d.submitted),
            ),
            (
                "loupe_diagnosis_dropped_batches",
                "Batches that did not fit in diagnosis' queue (read back from the stores later).",
                load(&d.dropped),
            ),
            (
                "loupe_diagnosis_points",
                "Points diagnosed.",
                load(&d.points),
            ),
            (
                "loupe_diagnosis_caught_up_points",
                "Points diagnosis read back from the engine after falling behind.",
                load(&d.caught_up_points),
            ),
            (
                "loupe_diagnosis_findings",
                "Anomalies and log signatures found.",
                load(&d.findings),
            ),
        ];
        for (name, help, v) in counters {
            emit::counter(&mut enc, name, help, v)?;
        }
        emit::gauge(
            &mut enc,
            "loupe_diagnosis_lag_seconds",
            "How long the latest batch waited for diagnosis.",
            load(&d.lag_us) as f64 / 1e6,
        )?;
        let backlog = load(&d.submitted).saturating_sub(load(&d.processed) + load(&d.dropped));
        emit::gauge(
            &mut enc,
            "loupe_diagnosis_backlog_batches",
            "Batches waiting for diagnosis.",
            backlog,
        )
    }
}

/// `loupe_incidents_open`: the open incidents of the projects the caller
/// sees (every one, those of no project included, for [`Scope::All`]).
struct OpenIncidents(Arc<Diagnosis>);

impl ScopedMetrics for OpenIncidents {
    fn encode(&self, scope: &Scope, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let open: u64 = self
            .0
            .counters()
            .open_by_project
            .lock()
            .iter()
            .filter(|(p, _)| scope.sees(p.as_deref()))
            .map(|(_, n)| n)
            .sum();
        emit::gauge(
            &mut enc,
            "loupe_incidents_open",
            "Incidents open now (in the projects this caller sees).",
            open,
        )
    }
}
