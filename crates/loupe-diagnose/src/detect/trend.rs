//! Steady growth towards a limit (memory leaks, filling disks): a linear
//! regression of value on time over the last `window` points, kept as
//! running sums (O(1) per point; the sums are rebuilt from the ring once
//! per window so rounding cannot drift), with the time to reach the limit
//! extrapolated from its slope.

use std::collections::VecDeque;

use super::Raw;
use crate::Severity;
use crate::config::TrendConfig;
use crate::finding::FindingAttributes;
use crate::finding::{Direction, FindingKind};
use loupe_model::units::{self, Unit};

#[derive(Debug, Clone, Default)]
pub(crate) struct TrendDetector {
    t0: Option<f64>,
    ring: VecDeque<(f64, f64)>,
    st: f64,
    sx: f64,
    stt: f64,
    stx: f64,
    sxx: f64,
    pushes: usize,
    /// Point-to-point increases among the ring's changes.
    rises: usize,
    since_report: Option<u32>,
    /// What the series measures, for the explanation's numbers.
    unit: Unit,
}

impl TrendDetector {
    /// The detector of a series measured in `unit`.
    pub(crate) fn in_unit(unit: Unit) -> Self {
        TrendDetector {
            unit,
            ..TrendDetector::default()
        }
    }

    pub(crate) fn reset(&mut self) {
        *self = TrendDetector::in_unit(self.unit);
    }

    fn add(&mut self, t: f64, x: f64, sign: f64) {
        self.st += sign * t;
        self.sx += sign * x;
        self.stt += sign * t * t;
        self.stx += sign * t * x;
        self.sxx += sign * x * x;
    }

    fn rebuild(&mut self) {
        let ring = std::mem::take(&mut self.ring);
        (self.st, self.sx, self.stt, self.stx, self.sxx) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(t, x) in &ring {
            self.add(t, x, 1.0);
        }
        self.rises = ring
            .iter()
            .zip(ring.iter().skip(1))
            .filter(|(a, b)| b.1 > a.1)
            .count();
        self.ring = ring;
    }

    /// A leak grows as fast in the window's second half as over all of it;
    /// a warm-up ramp that is levelling off does not (checked only when the
    /// cheaper tests pass, so its O(window) cost is rare).
    fn halves_agree(&self, slope: f64) -> bool {
        let half = self.ring.len() / 2;
        let second = self.ring.iter().skip(half);
        let n = (self.ring.len() - half) as f64;
        let (mut st, mut sx, mut stt, mut stx) = (0.0, 0.0, 0.0, 0.0);
        for &(t, x) in second {
            st += t;
            sx += x;
            stt += t * t;
            stx += t * x;
        }
        let vt = stt / n - (st / n).powi(2);
        if vt <= 0.0 {
            return false;
        }
        let late = (stx / n - (st / n) * (sx / n)) / vt;
        late >= 0.5 * slope
    }

    pub(crate) fn observe(
        &mut self,
        time: f64,
        x: f64,
        limit: Option<f64>,
        cfg: &TrendConfig,
    ) -> Option<Raw> {
        let t0 = *self.t0.get_or_insert(time);
        let t = time - t0;
        let window = cfg.window.max(8);
        if let Some(&(_, prev)) = self.ring.back()
            && x > prev
        {
            self.rises += 1;
        }
        self.ring.push_back((t, x));
        self.add(t, x, 1.0);
        if self.ring.len() > window
            && let Some((ot, ox)) = self.ring.pop_front()
        {
            self.add(ot, ox, -1.0);
            if let Some(&(_, next)) = self.ring.front()
                && next > ox
            {
                self.rises = self.rises.saturating_sub(1);
            }
        }
        self.pushes += 1;
        if self.pushes.is_multiple_of(window) {
            self.rebuild();
        }
        if let Some(n) = self.since_report.as_mut() {
            *n += 1;
        }
        let n = self.ring.len() as f64;
        if self.ring.len() < cfg.min_points.max(8) {
            return None;
        }
        let mt = self.st / n;
        let mx = self.sx / n;
        let vt = self.stt / n - mt * mt;
        let vx = self.sxx / n - mx * mx;
        let cov = self.stx / n - mt * mx;
        if vt <= 0.0 || vx <= 0.0 {
            return None;
        }
        let slope = cov / vt;
        let r2 = (cov * cov) / (vt * vx);
        let (ft, _) = *self.ring.front()?;
        let growth = slope * (t - ft) / x.abs().max(1e-12);
        let rising = self.rises as f64 / (n - 1.0);
        let leaking = slope > 0.0
            && r2 >= cfg.min_r2
            && growth >= cfg.min_growth
            && rising >= 0.55
            && self.halves_agree(slope);
        if !leaking {
            if self.since_report.is_some_and(|n| n > cfg.repeat_points) {
                self.since_report = None;
            }
            return None;
        }
        if self.since_report.is_some_and(|n| n < cfg.repeat_points) {
            return None;
        }
        let eta = limit.filter(|l| *l > x).map(|l| (l - x) / slope);
        if let Some(eta) = eta
            && eta > cfg.horizon_s
        {
            return None;
        }
        self.since_report = Some(0);
        let severity = match eta {
            Some(e) if e <= cfg.critical_eta_s => Severity::Critical,
            _ => Severity::Warning,
        };
        let mut attributes = FindingAttributes::extras([
            ("slope_per_s", format!("{slope:.6e}")),
            ("r2", format!("{r2:.3}")),
        ]);
        let eta_text = match eta {
            Some(e) => {
                let limit = format!("{:.0}", limit.unwrap_or_default());
                attributes.extra.insert("eta_s".into(), format!("{e:.0}"));
                attributes.extra.insert("limit".into(), limit);
                format!(
                    ", reaching its limit in about {}",
                    units::seconds(e.round())
                )
            }
            None => String::new(),
        };
        Some(Raw {
            kind: FindingKind::TrendToLimit,
            value: Some(x),
            expected: None,
            direction: Some(Direction::Up),
            score: (r2 * (0.5 + growth).min(1.0)).clamp(0.3, 1.0),
            severity,
            detail: format!(
                "growing steadily ({}{}/s, R² {})",
                if slope >= 0.0 { "+" } else { "" },
                units::value(slope, self.unit),
                units::sig(r2, 2),
            ) + &eta_text,
            attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leak_is_found_with_its_time_to_the_limit() {
        let cfg = TrendConfig::default();
        let mut d = TrendDetector::default();
        let limit = 80e9;
        let mut found = None;
        for i in 0..600 {
            let t = i as f64;
            // 20 GB + 50 MB/s with allocator sawtooth.
            let x = 20e9 + 50e6 * t + if i % 4 == 0 { 2e8 } else { 0.0 };
            if let Some(r) = d.observe(t, x, Some(limit), &cfg) {
                found = Some((i, r));
                break;
            }
        }
        let (i, r) = found.expect("leak found");
        assert!(i < 200, "found at {i}");
        let eta: f64 = r.attributes.extra["eta_s"].parse().unwrap();
        let truth = (limit - (20e9 + 50e6 * i as f64)) / 50e6;
        assert!((eta - truth).abs() / truth < 0.1, "eta {eta} vs {truth}");
    }

    #[test]
    fn warm_up_growth_then_flat_is_not_a_leak() {
        let cfg = TrendConfig::default();
        let mut d = TrendDetector::default();
        for i in 0..3000 {
            let t = i as f64;
            let x = 30e9 * (1.0 - (-t / 20.0).exp()) + if i % 7 == 0 { 1e8 } else { 0.0 };
            assert!(d.observe(t, x, Some(80e9), &cfg).is_none(), "at {i}");
        }
    }
}

#[cfg(test)]
mod leak_after_flat {
    use super::*;

    /// A leak that starts after a long flat stretch with allocator sawtooth
    /// (the shape of the fault-injection suite) is found well before the
    /// memory is full.
    #[test]
    fn found_before_the_limit() {
        let cfg = TrendConfig::default();
        let mut d = TrendDetector::default();
        let mut leak = 0.0;
        let mut found = None;
        for i in 0..1100 {
            let t = i as f64;
            let mut x = 60e9 * (1.0 - (-t / 15.0f64).exp())
                + if i % 5 == 0 { 6e8 } else { 0.0 }
                + 1e8 * ((i * 37 % 11) as f64 / 11.0);
            if i >= 700 {
                leak += 5.5e7;
                x += leak;
            }
            if let Some(r) = d.observe(t, x, Some(80e9), &cfg) {
                found = Some((i, r));
                break;
            }
        }
        let (i, _) = found.expect("leak found");
        assert!((700..850).contains(&i), "found at {i}");
    }
}
