//! The sampling interval of a series, learnt from its first time gaps, and
//! the seasons (a day, a week) it implies in points. Fixed once learnt:
//! a seasonal lag that moved with every late sample would compare a point
//! with the wrong phase.

/// Time gaps looked at before the interval is fixed.
const GAPS_TO_LEARN: usize = 31;
/// Points (with good times) seen before the interval, and so the
/// seasons, are known.
pub(crate) const POINTS_TO_LEARN: usize = GAPS_TO_LEARN + 1;
/// Seconds in the seasons that matter for machines and people.
pub(crate) const DAY_S: f64 = 86_400.0;
pub(crate) const WEEK_S: f64 = 7.0 * DAY_S;
/// A season needs at least this many points to be worth comparing with.
const MIN_SEASON_POINTS: usize = 4;

#[derive(Debug, Clone)]
pub(crate) struct Cadence {
    gaps: [f64; GAPS_TO_LEARN],
    n_gaps: usize,
    last_time: Option<f64>,
    interval: Option<f64>,
}

impl Cadence {
    pub(crate) fn new() -> Self {
        Cadence {
            gaps: [0.0; GAPS_TO_LEARN],
            n_gaps: 0,
            last_time: None,
            interval: None,
        }
    }

    /// Notes a sample time (seconds; non-finite or backward times teach
    /// nothing).
    pub(crate) fn observe(&mut self, t: f64) {
        if self.interval.is_some() || !t.is_finite() {
            return;
        }
        if let Some(prev) = self.last_time
            && t > prev
        {
            self.gaps[self.n_gaps] = t - prev;
            self.n_gaps += 1;
            if self.n_gaps == GAPS_TO_LEARN {
                let mut g = self.gaps;
                g.sort_by(f64::total_cmp);
                self.interval = Some(g[GAPS_TO_LEARN / 2]);
            }
        }
        self.last_time = Some(t);
    }

    /// Points per `season_s` seconds, when the interval is known and the
    /// season spans between [`MIN_SEASON_POINTS`] and `max_points` points.
    pub(crate) fn season_points(&self, season_s: f64, max_points: usize) -> Option<usize> {
        let dt = self.interval?;
        let p = (season_s / dt).round();
        (p >= MIN_SEASON_POINTS as f64 && p <= max_points as f64).then_some(p as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_minute_samples_make_a_288_point_day() {
        let mut c = Cadence::new();
        assert_eq!(c.season_points(DAY_S, 10_000), None);
        for i in 0..40 {
            // One late sample must not move the learnt interval.
            let jitter = if i == 7 { 100.0 } else { 0.0 };
            c.observe(1.4e9 + 300.0 * i as f64 + jitter);
        }
        assert_eq!(c.season_points(DAY_S, 10_000), Some(288));
        assert_eq!(c.season_points(WEEK_S, 10_000), Some(2016));
        assert_eq!(c.season_points(WEEK_S, 1_000), None);
    }

    #[test]
    fn bad_times_teach_nothing() {
        let mut c = Cadence::new();
        for t in [f64::NAN, 5.0, 4.0, f64::INFINITY, 3.0] {
            c.observe(t);
        }
        assert_eq!(c.season_points(DAY_S, 10_000), None);
    }
}
