//! Alerting's figures in `/metrics`: alerts by state, counted over the
//! caller's projects; notification deliveries and queues by channel, which
//! span every project and name the operator's channels, only for the
//! unscoped caller (as `GET /api/v1/alerts` shows them).

use std::collections::BTreeMap;
use std::sync::Arc;

use loupe_model::label;
use prometheus_client::encoding::DescriptorEncoder;

use super::Alerting;
use crate::telemetry::{Scope, ScopedMetrics, Telemetry, emit};

/// The states `loupe_alerts` always has a series for.
const STATES: [&str; 3] = ["pending", "firing", "resolved"];

/// Registers alerting's families.
pub fn register(alerting: &Arc<Alerting>, t: &mut Telemetry) {
    t.register_scoped(Arc::new(AlertMetrics(alerting.clone())));
}

struct AlertMetrics(Arc<Alerting>);

impl ScopedMetrics for AlertMetrics {
    fn encode(&self, scope: &Scope, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let a = &self.0;
        if scope.is_all() {
            emit::counters(
                &mut enc,
                "loupe_alert_notifications",
                "Notification delivery attempts by outcome (delivered, retry, failed = given up).",
                a.dispatcher
                    .outcomes()
                    .into_iter()
                    .map(|((ch, outcome), n)| ([("channel", ch), ("outcome", outcome)], n)),
            )?;
            emit::gauges(
                &mut enc,
                "loupe_alert_queue_pending",
                "Notifications waiting for delivery.",
                a.queue
                    .counts()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(ch, c)| ([("channel", ch)], c.pending)),
            )?;
        }
        let mut by_state: BTreeMap<&str, u64> = STATES.iter().map(|s| (*s, 0)).collect();
        for alert in a.engine.lock().alerts() {
            let project = alert.labels.get(label::PROJECT).map(String::as_str);
            if scope.sees(project) {
                *by_state.entry(alert.state.as_str()).or_default() += 1;
            }
        }
        emit::gauges(
            &mut enc,
            "loupe_alerts",
            "Alerts by state (in the projects this caller sees).",
            by_state.into_iter().map(|(s, n)| ([("state", s)], n)),
        )
    }
}
