//! When to sample fast: [`IntervalPolicy`] and [`LocalRules`].
//!
//! The agent samples at a base interval (1 s by default) and tightens to a
//! fast one (100 ms) while something needs attention, so the seconds around
//! an incident are seen in detail without paying for that detail all day.
//! Attention comes from two places:
//!
//! - the server: an open incident on this host (`GET
//!   /api/v1/incidents?host=HOST&state=open`, polled every 5 s by the agent;
//!   any failure means "none known"), so detectors that see more than one
//!   host can ask for detail;
//! - the agent itself: one of its own series crossing a simple local rule
//!   ([`LocalRules`]: a hot GPU, memory nearly exhausted, an Xid event), so
//!   the tightening starts at once even when the server is unreachable.
//!
//! The policy relaxes once attention has been clear for `relax_after`
//! (60 s by default), so a flapping condition does not make the interval
//! flap too. Everything here is pure: times are passed in, nothing sleeps
//! or does IO.

use std::time::{Duration, Instant};

use crate::sample::Sample;

/// Base and fast intervals and the relaxing delay; see the module docs.
#[derive(Debug, Clone)]
pub struct IntervalPolicy {
    base: Duration,
    fast: Duration,
    relax_after: Duration,
    last_attention: Option<Instant>,
}

impl IntervalPolicy {
    pub fn new(base: Duration, fast: Duration, relax_after: Duration) -> IntervalPolicy {
        IntervalPolicy {
            base,
            // Fast never means slower than the base.
            fast: fast.min(base),
            relax_after,
            last_attention: None,
        }
    }

    /// Records whether anything needs attention at `now`.
    pub fn observe(&mut self, now: Instant, attention: bool) {
        if attention {
            self.last_attention = Some(now);
        }
    }

    /// Whether the fast interval applies at `now`.
    pub fn is_fast(&self, now: Instant) -> bool {
        self.last_attention
            .is_some_and(|t| now.saturating_duration_since(t) < self.relax_after)
    }

    /// The interval to wait before the next sample.
    pub fn interval(&self, now: Instant) -> Duration {
        if self.is_fast(now) {
            self.fast
        } else {
            self.base
        }
    }

    pub fn base(&self) -> Duration {
        self.base
    }

    pub fn fast(&self) -> Duration {
        self.fast
    }
}

/// Thresholds on the agent's own series that call for attention.
#[derive(Debug, Clone)]
pub struct LocalRules {
    /// `gpu.temperature_celsius` at or above this.
    pub gpu_temperature_c: f64,
    /// `host.memory.available_percent` below this.
    pub memory_available_min_percent: f64,
    /// Any `gpu.xid` sample.
    pub on_xid: bool,
    /// `gpu.ecc.uncorrected_errors` above zero.
    pub on_uncorrected_ecc: bool,
}

impl Default for LocalRules {
    fn default() -> Self {
        LocalRules {
            gpu_temperature_c: 85.0,
            memory_available_min_percent: 5.0,
            on_xid: true,
            on_uncorrected_ecc: true,
        }
    }
}

impl LocalRules {
    /// The first rule one of `samples` breaks, described for a log line.
    pub fn check(&self, samples: &[Sample]) -> Option<String> {
        samples.iter().find_map(|s| {
            let who = || {
                s.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            match s.name.as_str() {
                "gpu.temperature_celsius" if s.value >= self.gpu_temperature_c => Some(format!(
                    "GPU temperature {} °C ≥ {} °C ({})",
                    s.value,
                    self.gpu_temperature_c,
                    who()
                )),
                "host.memory.available_percent" if s.value < self.memory_available_min_percent => {
                    Some(format!(
                        "memory available {:.1}% < {}%",
                        s.value, self.memory_available_min_percent
                    ))
                }
                "gpu.xid" if self.on_xid => Some(format!("Xid {} ({})", s.value, who())),
                "gpu.ecc.uncorrected_errors" if self.on_uncorrected_ecc && s.value > 0.0 => {
                    Some(format!("{} uncorrected ECC errors ({})", s.value, who()))
                }
                _ => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn tightens_while_attention_is_needed_and_relaxes_after_a_clear_minute() {
        let t0 = Instant::now();
        let mut p = IntervalPolicy::new(S, Duration::from_millis(100), 60 * S);
        assert_eq!(p.interval(t0), S);
        p.observe(t0, false);
        assert_eq!(p.interval(t0), S);
        // Attention at t0+10 s and again at t0+40 s.
        p.observe(t0 + 10 * S, true);
        assert_eq!(p.interval(t0 + 10 * S), Duration::from_millis(100));
        p.observe(t0 + 20 * S, false);
        p.observe(t0 + 40 * S, true);
        // Clear since 40 s: still fast at 99 s, relaxed at 100 s.
        for t in [41, 70, 99] {
            p.observe(t0 + t * S, false);
            assert!(p.is_fast(t0 + t * S), "{t}");
        }
        p.observe(t0 + 100 * S, false);
        assert_eq!(p.interval(t0 + 100 * S), S);
    }

    #[test]
    fn fast_is_never_slower_than_base() {
        let p = IntervalPolicy::new(Duration::from_millis(50), S, 60 * S);
        assert_eq!(p.fast(), Duration::from_millis(50));
    }

    #[test]
    fn local_rules() {
        let r = LocalRules::default();
        let ok = [
            Sample::new("gpu.temperature_celsius", &[("gpu", "0")], 84.0),
            Sample::new("host.memory.available_percent", &[], 5.0),
            Sample::new("gpu.ecc.uncorrected_errors", &[("gpu", "0")], 0.0),
        ];
        assert_eq!(r.check(&ok), None);
        let hot = Sample::new("gpu.temperature_celsius", &[("gpu", "1")], 85.0);
        assert!(r.check(&[hot]).expect("hot").contains("gpu=1"));
        let low = Sample::new("host.memory.available_percent", &[], 4.9);
        assert!(r.check(&[low]).is_some());
        let xid = Sample::new("gpu.xid", &[("gpu", "0"), ("xid", "79")], 79.0);
        assert!(r.check(&[xid]).expect("xid").contains("Xid 79"));
    }
}
