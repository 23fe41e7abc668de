//! SLO burn rate, the multi-window, multi-burn-rate way: an alert fires when
//! the error budget burns faster than `factor` both over a long window (it
//! is real) and over a short one (it is still happening, so the alert
//! resolves soon after the problem stops).

use std::time::Duration;

use loupe_model::Severity;
use serde::{Deserialize, Serialize};

/// One long/short window pair and the burn rate that trips it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurnWindow {
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
    pub severity: Severity,
}

/// The usual pairs for a 30-day budget: 14.4× over 1 h and 5 m (2% of the
/// budget gone in an hour), 6× over 6 h and 30 m (5% in six hours), 1× over
/// 3 d and 6 h (10% in three days).
pub fn default_windows() -> Vec<BurnWindow> {
    let h = |n: u64| Duration::from_secs(n * 3600);
    let m = |n: u64| Duration::from_secs(n * 60);
    vec![
        BurnWindow {
            long: h(1),
            short: m(5),
            factor: 14.4,
            severity: Severity::Critical,
        },
        BurnWindow {
            long: h(6),
            short: m(30),
            factor: 6.0,
            severity: Severity::Critical,
        },
        BurnWindow {
            long: h(72),
            short: h(6),
            factor: 1.0,
            severity: Severity::Warning,
        },
    ]
}

/// How fast the budget burns: the error ratio over the allowed ratio
/// (`1 - objective`). `None` without traffic (no requests, no burn).
pub fn burn_rate(errors: f64, total: f64, objective: f64) -> Option<f64> {
    let budget = 1.0 - objective;
    if !errors.is_finite() || !total.is_finite() || total <= 0.0 || budget.is_nan() || budget <= 0.0
    {
        return None;
    }
    Some((errors / total) / budget)
}

/// How much a series grew over a window. Per-interval counts (`counter:
/// false`) are summed; a cumulative counter's increase is the sum of its
/// rises, where a drop is a reset and the value after it counts whole.
pub fn increase(values: &[f64], counter: bool) -> f64 {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    if !counter {
        return finite.sum();
    }
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for v in finite {
        if let Some(p) = prev {
            total += if v >= p { v - p } else { v };
        }
        prev = Some(v);
    }
    total
}

/// What an evaluation found: the first window pair (most severe first)
/// whose long and short burn rates both exceed its factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Burning {
    pub window: BurnWindow,
    pub long_rate: f64,
    pub short_rate: f64,
}

/// Checks each pair; `counts(window)` returns `(errors, total)` over the
/// last `window`.
pub fn evaluate(
    windows: &[BurnWindow],
    objective: f64,
    mut counts: impl FnMut(Duration) -> (f64, f64),
) -> Option<Burning> {
    for w in windows {
        let (le, lt) = counts(w.long);
        let Some(long_rate) = burn_rate(le, lt, objective) else {
            continue;
        };
        if long_rate <= w.factor {
            continue;
        }
        let (se, st) = counts(w.short);
        let Some(short_rate) = burn_rate(se, st, objective) else {
            continue;
        };
        if short_rate > w.factor {
            return Some(Burning {
                window: w.clone(),
                long_rate,
                short_rate,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn burn_rate_by_hand() {
        // 99.9%: the budget is 0.1%. 15 errors in 1000 requests is 1.5%,
        // fifteen times the budget.
        assert!(close(burn_rate(15.0, 1000.0, 0.999).unwrap(), 15.0));
        // 99%: budget 1%; 3 in 600 is 0.5%: half the budget rate.
        assert!(close(burn_rate(3.0, 600.0, 0.99).unwrap(), 0.5));
        // No traffic, no burn.
        assert_eq!(burn_rate(0.0, 0.0, 0.999), None);
        // A 100% objective has no budget to burn.
        assert_eq!(burn_rate(1.0, 10.0, 1.0), None);
    }

    #[test]
    fn counters_and_resets() {
        assert!(close(increase(&[1.0, 2.0, 3.0], false), 6.0));
        // 10 → 15 (+5), reset to 2 (+2), → 4 (+2) = 9.
        assert!(close(increase(&[10.0, 15.0, 2.0, 4.0], true), 9.0));
        assert!(close(increase(&[f64::NAN, 1.0], false), 1.0));
    }

    /// Fixed counts per window, as a hand-made table.
    fn table(rows: &[(u64, f64, f64)]) -> impl FnMut(Duration) -> (f64, f64) + '_ {
        move |w| {
            rows.iter()
                .find(|r| r.0 == w.as_secs())
                .map(|r| (r.1, r.2))
                .unwrap_or((0.0, 0.0))
        }
    }

    #[test]
    fn fast_burn_needs_both_windows() {
        let w = default_windows();
        // 1 h: 15/1000 → 15× > 14.4; 5 m: 2/100 → 20× > 14.4: fires critical.
        let rows = [(3600, 15.0, 1000.0), (300, 2.0, 100.0)];
        let b = evaluate(&w, 0.999, table(&rows)).unwrap();
        assert_eq!(b.window.factor, 14.4);
        assert!(close(b.long_rate, 15.0) && close(b.short_rate, 20.0));
        assert_eq!(b.window.severity, Severity::Critical);
        // Same hour, but the last 5 m are clean (1/100 → 10×): it stopped.
        let rows = [(3600, 15.0, 1000.0), (300, 1.0, 100.0)];
        assert_eq!(evaluate(&w, 0.999, table(&rows)), None);
        // 14/1000 → 14× is under 14.4 even with a hot 5 m.
        let rows = [(3600, 14.0, 1000.0), (300, 5.0, 100.0)];
        assert_eq!(evaluate(&w, 0.999, table(&rows)), None);
    }

    #[test]
    fn slow_burn_pairs() {
        let w = default_windows();
        // 6 h: 70/10000 → 7× > 6; 30 m: 8/1000 → 8× > 6. 1 h: 7/1000 → 7×
        // is under 14.4, so the second pair is the one that fires.
        let rows = [
            (3600, 7.0, 1000.0),
            (21600, 70.0, 10000.0),
            (1800, 8.0, 1000.0),
        ];
        let b = evaluate(&w, 0.999, table(&rows)).unwrap();
        assert_eq!(b.window.factor, 6.0);
        assert!(close(b.long_rate, 7.0) && close(b.short_rate, 8.0));
        // 3 d: 150/100000 → 1.5× > 1; 6 h: 30/20000 → 1.5×: the ticket tier.
        let rows = [(259200, 150.0, 100000.0), (21600, 30.0, 20000.0)];
        let b = evaluate(&w, 0.999, table(&rows)).unwrap();
        assert_eq!(b.window.factor, 1.0);
        assert_eq!(b.window.severity, Severity::Warning);
        // A 99% objective: 3 d 0.5% errors is half the budget: nothing.
        let rows = [(259200, 500.0, 100000.0), (21600, 100.0, 20000.0)];
        assert_eq!(evaluate(&w, 0.99, table(&rows)), None);
    }
}
