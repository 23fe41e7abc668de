//! Live updates: what `GET /api/v1/live` streams as Server-Sent Events
//! (the events' shapes are `loupe_api::LiveEvent`).

use loupe_api::{LiveEvent, LivePayload};
use tokio::sync::broadcast;

/// Fans events out to every connected client.
pub struct LiveHub {
    tx: broadcast::Sender<LiveEvent>,
}

impl Default for LiveHub {
    fn default() -> Self {
        // A slow client that falls this far behind is told so and skips ahead;
        // it never slows ingestion down.
        let (tx, _) = broadcast::channel(4096);
        Self { tx }
    }
}

impl LiveHub {
    pub fn publish(&self, run: &str, payload: LivePayload) {
        // No subscribers is fine.
        let _ = self.tx.send(LiveEvent {
            run: run.to_string(),
            payload,
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// `loupe_live_subscribers` in `/metrics`, read at scrape time.
pub struct SubscriberGauge(pub std::sync::Arc<LiveHub>);

impl std::fmt::Debug for SubscriberGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("live::SubscriberGauge")
    }
}

impl prometheus_client::collector::Collector for SubscriberGauge {
    fn encode(
        &self,
        mut enc: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        crate::telemetry::emit::gauge(
            &mut enc,
            "loupe_live_subscribers",
            "Connected live-update clients.",
            self.0.subscribers() as u64,
        )
    }
}
