//! The one way the engine reads data: series matching label matchers,
//! restricted to time windows.

use promql_parser::label::Matcher;

use crate::Labels;

/// Prometheus' staleness marker: a NaN with this exact bit pattern ends a
/// series (a scraper writes it when a target or series disappears). Any
/// other NaN is an ordinary value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True for the staleness marker (and only for it, not for other NaNs).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A series and its samples inside the windows asked for, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawSeries {
    /// Every label, the metric name as `__name__`.
    pub labels: Labels,
    /// Unix milliseconds, ascending, no repeats.
    pub times: Vec<i64>,
    pub values: Vec<f64>,
}

/// A store's failure, as text (the engine does not know the store's types).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Where series come from. Implementations must apply every matcher
/// (a `__name__` matcher selects on the metric name) and may return samples
/// outside the windows (the engine ignores them), but must return every
/// sample inside them.
pub trait SeriesSource {
    /// Series matching all `matchers`, with their samples in the inclusive
    /// windows `[from, to]` (Unix ms; sorted, disjoint). A series with no
    /// sample in any window may be left out.
    fn select(
        &self,
        matchers: &[Matcher],
        windows: &[(i64, i64)],
    ) -> Result<Vec<RawSeries>, SourceError>;
}
