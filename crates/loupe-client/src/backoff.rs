//! The wait between attempts: exponential, capped, optionally jittered.

use std::time::Duration;

use rand::Rng;

/// Doubles from `min` to `max` with each failure; [`Backoff::reset`] after a
/// success. With jitter, each wait is drawn from 50–150% of the nominal one
/// so that a fleet of agents does not come back in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: bool,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            jitter: false,
            next: min,
        }
    }

    /// With ±50% jitter.
    pub fn jittered(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// How long to wait after a failure; the next one waits twice as long.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        if self.jitter {
            nominal.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
        } else {
            nominal
        }
    }

    /// The longest wait, for failures that are not the server's (a local
    /// read error).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Back to `min`, after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(500), ms(3000));
        let waits: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(waits, [ms(500), ms(1000), ms(2000), ms(3000), ms(3000)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(500));
    }

    #[test]
    fn jitter_stays_within_half_either_side() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(200), ms(200)).jittered();
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(d >= ms(100) && d <= ms(300), "{d:?}");
        }
    }
}
