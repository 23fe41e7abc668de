//! Live updates: what `GET /api/v1/live` streams as Server-Sent Events
//! (the events' shapes are `loupe_api::LiveEvent`).
//!
//! An event is encoded once, when it is published, and the same frame goes
//! to every subscriber: the cost of an event does not grow with the number
//! of open browser tabs, and with none open nothing is encoded at all.

use std::sync::Arc;

use loupe_api::{LiveEvent, LivePayload};
use tokio::sync::broadcast;

/// One event, with its JSON as every subscriber sends it.
#[derive(Debug)]
pub struct LiveFrame {
    pub event: LiveEvent,
    pub json: String,
}

impl LiveFrame {
    pub fn new(event: LiveEvent) -> LiveFrame {
        let json = serde_json::to_string(&event).expect("live events encode");
        LiveFrame { event, json }
    }
}

/// Fans events out to every connected client.
pub struct LiveHub {
    tx: broadcast::Sender<Arc<LiveFrame>>,
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
        if self.tx.receiver_count() == 0 {
            return;
        }
        let frame = LiveFrame::new(LiveEvent {
            run: run.to_string(),
            payload,
        });
        // A subscriber that left meanwhile is fine.
        let _ = self.tx.send(Arc::new(frame));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveFrame>> {
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
