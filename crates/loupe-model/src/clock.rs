//! The wall clock, in the units Loupe stores. Libraries that must be
//! replayable (ingest decoders, diagnosis, alerting's engine) take "now" as an
//! argument instead; these are for the edges that read the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time now, in seconds (0 if the clock is before 1970).
pub fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Unix time now, in nanoseconds (0 if the clock is before 1970; saturates
/// in the year 2262).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_and_nanoseconds_agree() {
        let s = super::now_s();
        let ns = super::now_ns();
        assert!(s > 1.7e9, "{s}");
        assert!((ns as f64 / 1e9 - s).abs() < 5.0, "{s} {ns}");
    }
}
