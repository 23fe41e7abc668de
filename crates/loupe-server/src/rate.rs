//! Per-token rate limits (`loupe serve --rate-limit N`): a token bucket per
//! token, refilled continuously at N requests a second, holding up to the
//! burst. A request that finds its bucket empty is answered 429 with how
//! long to wait; it costs nothing else (no store read, no decode).
//!
//! Only verified tokens get a bucket (a bad token is refused before), so
//! the table is bounded by the tokens that exist.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The limit: `per_s` requests a second on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_s: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every token's bucket.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit: RateLimit {
                per_s: limit.per_s.max(f64::MIN_POSITIVE),
                burst: limit.burst.max(1.0),
            },
            buckets: Mutex::default(),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one request from `key`'s bucket at `now`; when it is empty,
    /// how long until it holds one again.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let RateLimit { per_s, burst } = self.limit;
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_s).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let r = RateLimiter::new(RateLimit {
            per_s: 10.0,
            burst: 5.0,
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            r.take("a", t0).unwrap();
        }
        let wait = r.take("a", t0).unwrap_err();
        assert!(
            (wait.as_secs_f64() - 0.1).abs() < 1e-6,
            "one request comes back after 1/10 s: {wait:?}"
        );
        // Another token has its own bucket.
        r.take("b", t0).unwrap();
        // A tenth of a second later, one more; a second later, a burst again
        // (never more than the burst).
        r.take("a", t0 + Duration::from_millis(100)).unwrap();
        assert!(r.take("a", t0 + Duration::from_millis(100)).is_err());
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            r.take("a", later).unwrap();
        }
        assert!(r.take("a", later).is_err());
    }

    #[test]
    fn over_a_long_run_the_average_is_the_rate() {
        let r = RateLimiter::new(RateLimit {
            per_s: 50.0,
            burst: 10.0,
        });
        let t0 = Instant::now();
        let mut passed = 0;
        // 1000 requests a second for 10 s.
        for i in 0..10_000u64 {
            if r.take("a", t0 + Duration::from_millis(i)).is_ok() {
                passed += 1;
            }
        }
        assert!((500..=511).contains(&passed), "{passed}");
    }
}
