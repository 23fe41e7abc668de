//! Prometheus' staleness marker: the one NaN whose bit pattern says "this
//! series stopped here" (a target went away, or a series left its scrape).
//!
//! It is a value like any other to the store, which keeps NaN payload bits
//! end to end; readers that know about staleness (PromQL's lookback, the
//! diagnosis) compare the **bits**, never `is_nan()`: an ordinary NaN is a
//! value a client sent, a stale marker is the absence of one.

/// Prometheus' `value.StaleNaN` (`0x7ff0000000000002`, a signalling NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a value.
pub fn stale_marker() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (bit for bit; other NaNs are not).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bits_are_stale() {
        assert!(is_stale_marker(stale_marker()));
        assert!(stale_marker().is_nan());
        assert!(!is_stale_marker(f64::NAN));
        assert!(!is_stale_marker(f64::from_bits(0x7ff8_0000_0000_0002)));
    }
}
