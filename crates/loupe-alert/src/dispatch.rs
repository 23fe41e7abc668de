//! Delivery: one thread per channel takes that channel's oldest due
//! notification from the [`Queue`], tries it, and records the outcome. A
//! failure backs off exponentially (1 s, 2 s, 4 s, … up to `max_backoff`);
//! because each channel has its own thread and its own queue order, one
//! that keeps failing never holds up the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::channels::Channel;
use crate::queue::Queue;

/// How notifications fared, per channel: `delivered`, `retry` (an attempt
/// failed and will be retried), `failed` (given up).
pub type Outcomes = BTreeMap<(String, String), u64>;

struct Inner {
    queue: Arc<Queue>,
    stop: AtomicBool,
    wake: Mutex<u64>,
    cv: Condvar,
    outcomes: Mutex<Outcomes>,
    max_backoff: Duration,
    give_up_after: Duration,
}

pub struct Dispatcher {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The wait before attempt `attempts + 1`: 1 s doubled per failure, capped.
pub fn backoff(attempts: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1).min(max);
    base.saturating_mul(1u32 << attempts.min(20)).min(max)
}

impl Dispatcher {
    pub fn new(queue: Arc<Queue>, max_backoff: Duration, give_up_after: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                queue,
                stop: AtomicBool::new(false),
                wake: Mutex::new(0),
                cv: Condvar::new(),
                outcomes: Mutex::new(BTreeMap::new()),
                max_backoff,
                give_up_after,
            }),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Starts a delivery thread for each channel.
    pub fn start(&self, channels: Vec<Arc<dyn Channel>>) {
        let mut threads = self.threads.lock();
        for ch in channels {
            let inner = self.inner.clone();
            let name = format!("loupe-alert-{}", ch.name());
            let spawned = std::thread::Builder::new()
                .name(name.chars().take(15).collect())
                .spawn(move || run(inner, ch));
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => tracing::error!("cannot start a delivery thread: {e}"),
            }
        }
    }

    /// Tells the delivery threads that something was queued.
    pub fn wake(&self) {
        *self.inner.wake.lock() += 1;
        self.inner.cv.notify_all();
    }

    pub fn outcomes(&self) -> Outcomes {
        self.inner.outcomes.lock().clone()
    }

    /// Stops the threads after their current attempt (what is still
    /// queued stays on disk for the next start).
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.wake();
        for h in self.threads.lock().drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.cv.notify_all();
    }
}

fn count(inner: &Inner, channel: &str, outcome: &str) {
    *inner
        .outcomes
        .lock()
        .entry((channel.to_string(), outcome.to_string()))
        .or_default() += 1;
}

fn run(inner: Arc<Inner>, ch: Arc<dyn Channel>) {
    let name = ch.name().to_string();
    while !inner.stop.load(Ordering::SeqCst) {
        let now = crate::now_s();
        match inner.queue.next_due(&name, now) {
            Ok(Some((seq, attempts, n))) => {
                let result = ch.deliver(&n);
                let now = crate::now_s();
                let recorded = match result {
                    Ok(()) => {
                        count(&inner, &name, "delivered");
                        tracing::info!(channel = %name, notification = %n.id, "alert notification delivered");
                        inner.queue.mark_delivered(seq, now)
                    }
                    Err(e) => {
                        let too_old = now - n.created > inner.give_up_after.as_secs_f64();
                        if e.permanent || too_old {
                            count(&inner, &name, "failed");
                            tracing::warn!(channel = %name, notification = %n.id, attempts = attempts + 1, "giving up on an alert notification: {e}");
                            inner.queue.mark_failed(seq, &e.message, None)
                        } else {
                            count(&inner, &name, "retry");
                            let wait = backoff(attempts, inner.max_backoff);
                            tracing::warn!(channel = %name, notification = %n.id, attempts = attempts + 1, retry_in = ?wait, "alert notification not delivered: {e}");
                            inner
                                .queue
                                .mark_failed(seq, &e.message, Some(now + wait.as_secs_f64()))
                        }
                    }
                };
                if let Err(e) = recorded {
                    tracing::error!(channel = %name, "cannot record a delivery outcome: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            Ok(None) => {
                // Woken by new work, or polls for a backoff that ran out.
                let mut w = inner.wake.lock();
                if !inner.stop.load(Ordering::SeqCst) {
                    inner.cv.wait_for(&mut w, Duration::from_millis(200));
                }
            }
            Err(e) => {
                tracing::error!(channel = %name, "reading the alert queue: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::channels::DeliveryError;
    use crate::engine::Notification;

    struct Flaky {
        name: String,
        fail_first: u32,
        calls: AtomicU32,
        delivered: Mutex<Vec<String>>,
    }

    impl Channel for Flaky {
        fn name(&self) -> &str {
            &self.name
        }
        fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
            let k = self.calls.fetch_add(1, Ordering::SeqCst);
            if k < self.fail_first {
                return Err(DeliveryError::retry("receiver down"));
            }
            self.delivered.lock().push(n.id.clone());
            Ok(())
        }
    }

    fn note(id: &str, ch: &str) -> Notification {
        Notification {
            id: id.into(),
            channel: ch.into(),
            group: BTreeMap::new(),
            status: "firing".into(),
            title: id.into(),
            alerts: vec![],
            created: crate::now_s(),
            chart: None,
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let max = Duration::from_secs(60);
        assert_eq!(backoff(0, max), Duration::from_secs(1));
        assert_eq!(backoff(3, max), Duration::from_secs(8));
        assert_eq!(backoff(30, max), max);
        assert_eq!(
            backoff(2, Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn a_failing_channel_does_not_hold_up_another_and_retries_deliver_once() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(Queue::open(&dir.path().join("q.sqlite")).unwrap());
        let down = Arc::new(Flaky {
            name: "down".into(),
            fail_first: u32::MAX,
            calls: AtomicU32::new(0),
            delivered: Mutex::new(vec![]),
        });
        let flaky = Arc::new(Flaky {
            name: "flaky".into(),
            fail_first: 3,
            calls: AtomicU32::new(0),
            delivered: Mutex::new(vec![]),
        });
        q.enqueue(&[note("d1", "down"), note("f1", "flaky"), note("f2", "flaky")])
            .unwrap();
        let d = Dispatcher::new(
            q.clone(),
            Duration::from_millis(50),
            Duration::from_secs(3600),
        );
        d.start(vec![down.clone(), flaky.clone()]);
        d.wake();
        let t0 = std::time::Instant::now();
        while flaky.delivered.lock().len() < 2 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        d.shutdown();
        assert_eq!(
            *flaky.delivered.lock(),
            vec!["f1".to_string(), "f2".to_string()]
        );
        let o = d.outcomes();
        assert_eq!(o[&("flaky".to_string(), "delivered".to_string())], 2);
        assert_eq!(o[&("flaky".to_string(), "retry".to_string())], 3);
        assert!(o[&("down".to_string(), "retry".to_string())] >= 1);
        let counts = q.counts().unwrap();
        let down_counts = &counts.iter().find(|(c, _)| c == "down").unwrap().1;
        assert_eq!(down_counts.pending, 1, "still queued for later");
    }
}
