//! Streaming detectors of one series. [`SeriesDetector`] picks the
//! detectors a series gets from its [`SeriesRole`] and feeds them each
//! point: O(1) or O(log window) work per point, bounded state.
//!
//! Run-level detectors that need a clock (stalls, silences) and group-level
//! ones (cohort outliers) live in [`crate::diagnoser`], which owns the
//! runs and groups.

mod blowup;
mod divergence;
pub(crate) mod rolling;
mod shift;
mod spike;
mod trend;
mod unusual;

pub use unusual::UnusualConfig;
use unusual::UnusualDetector;

use crate::Severity;
use crate::config::DiagnoseConfig;
use crate::finding::FindingAttributes;
use crate::finding::{Direction, FindingKind, SeriesRole};
use loupe_model::units::{self, Unit};

/// A detector's output before the caller adds scope, series, time and step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Raw {
    pub kind: FindingKind,
    pub value: Option<f64>,
    pub expected: Option<f64>,
    pub direction: Option<Direction>,
    pub score: f64,
    pub severity: Severity,
    pub detail: String,
    pub attributes: FindingAttributes,
}

/// NVML clock-throttle reasons that mean "slowed down by heat or
/// hardware": SW/HW thermal slowdown, HW slowdown, power brake.
const THERMAL_THROTTLE_MASK: u64 = 0x08 | 0x20 | 0x40 | 0x80;

/// Every detector one series has.
#[derive(Debug, Clone)]
pub(crate) struct SeriesDetector {
    pub role: SeriesRole,
    /// What the series measures, for the explanations' numbers.
    unit: Unit,
    spike: Option<spike::SpikeDetector>,
    shift: Option<shift::ShiftDetector>,
    trend: Option<trend::TrendDetector>,
    loss: Option<divergence::LossTrendDetector>,
    blowup: Option<blowup::BlowUpDetector>,
    /// The general detector, for series outside runs (see
    /// [`SeriesDetector::watch_unusual`]); boxed, as most series have none.
    unusual: Option<Box<UnusualDetector>>,
    nonfinite_cooldown: u32,
    /// Non-finite values in a row.
    nonfinite_run: u32,
    over_limit_points: u32,
    last_counter: Option<f64>,
    pub last_step: Option<i64>,
    pub points: u64,
}

/// Points between two reports of non-finite values in one series.
const NONFINITE_REPEAT: u32 = 200;

/// Non-finite gradient norms in a row that make a warning. A loss scaler
/// (fp16, and bf16 setups that keep one) skips the step and halves its
/// scale on an overflow, so an infinite or NaN norm now and then, and a
/// few at start-up while the scale is searched, are routine; gradients
/// that stay non-finite point after point are not.
const GRAD_NORM_NONFINITE_RUN: u32 = 3;

impl SeriesDetector {
    pub(crate) fn new(role: SeriesRole, unit: Unit, cfg: &DiagnoseConfig) -> Self {
        use SeriesRole::*;
        let spike = (cfg.spike.enabled
            && matches!(role, Loss | GradNorm | Latency | Errors | Other))
        .then(|| spike::SpikeDetector::new(&cfg.spike).in_unit(unit));
        let shift = (cfg.shift.enabled
            && matches!(
                role,
                Throughput | StepTime | GpuUtilization | CpuPercent | Latency | Errors | GpuClock
            ))
        .then(|| shift::ShiftDetector::new(&cfg.shift).in_unit(unit));
        let trend = (cfg.trend.enabled
            && matches!(role, GpuMemory | HostMemory | ProcessMemory | DiskUsage))
        .then(|| trend::TrendDetector::in_unit(unit));
        let loss = (matches!(role, Loss)).then(divergence::LossTrendDetector::default);
        let blowup =
            (cfg.blowup.enabled && matches!(role, Loss)).then(blowup::BlowUpDetector::default);
        SeriesDetector {
            role,
            unit,
            spike,
            shift,
            trend,
            loss,
            blowup,
            unusual: None,
            nonfinite_cooldown: 0,
            nonfinite_run: 0,
            over_limit_points: 0,
            last_counter: None,
            last_step: None,
            points: 0,
        }
    }

    /// Adds the general detector (series outside runs whose role it
    /// applies to; once).
    pub(crate) fn watch_unusual(&mut self, cfg: &DiagnoseConfig) {
        if self.unusual.is_none() && cfg.unusual.enabled && UnusualDetector::applies(self.role) {
            self.unusual = Some(Box::new(UnusualDetector::new(&cfg.anomaly, self.unit)));
        }
    }

    /// Forgets what was learnt: the run went back to an earlier step (a
    /// restart from a checkpoint), so the old window would call the
    /// replayed values spikes.
    pub(crate) fn reset(&mut self) {
        if let Some(d) = &mut self.spike {
            d.reset();
        }
        if let Some(d) = &mut self.shift {
            d.reset();
        }
        if let Some(d) = &mut self.trend {
            d.reset();
        }
        if let Some(d) = &mut self.loss {
            d.reset();
        }
        if let Some(d) = &mut self.blowup {
            d.reset();
        }
        self.over_limit_points = 0;
    }

    /// Feeds one point; findings go to `out`. `limit` is the ceiling of a
    /// memory or disk series when known (its total).
    pub(crate) fn observe(
        &mut self,
        step: Option<i64>,
        time: f64,
        x: f64,
        limit: Option<f64>,
        cfg: &DiagnoseConfig,
        out: &mut Vec<Raw>,
    ) {
        if let (Some(s), Some(prev)) = (step, self.last_step)
            && s < prev
        {
            self.reset();
        }
        if step.is_some() {
            self.last_step = step;
        }
        self.points += 1;
        if !x.is_finite() {
            self.nonfinite_run = self.nonfinite_run.saturating_add(1);
            self.non_finite(x, out);
            return;
        }
        self.nonfinite_run = 0;
        self.nonfinite_cooldown = self.nonfinite_cooldown.saturating_sub(1);
        if let Some(d) = &mut self.blowup
            && let Some(r) = d.observe(x, &cfg.blowup)
        {
            out.push(r);
        }
        if let Some(d) = &mut self.spike
            && let Some(r) = d.observe(self.role, x, &cfg.spike)
        {
            out.push(r);
        }
        if let Some(d) = &mut self.shift
            && let Some(bad) = self.role.bad_direction()
            && let Some(mut r) = d.observe(x, bad, &cfg.shift)
        {
            // Utilisation, clocks and CPU move for many healthy reasons
            // (eval, checkpointing): evidence for a cause, never an
            // incident alone.
            if matches!(
                self.role,
                SeriesRole::CpuPercent | SeriesRole::GpuUtilization | SeriesRole::GpuClock
            ) {
                r.severity = Severity::Info;
            }
            out.push(r);
        }
        if let Some(d) = &mut self.trend
            && let Some(r) = d.observe(time, x, limit, &cfg.trend)
        {
            out.push(r);
        }
        if let Some(d) = &mut self.loss
            && let Some(r) = d.observe(x, &cfg.divergence, &cfg.plateau)
        {
            out.push(r);
        }
        if let Some(d) = &mut self.unusual
            && let Some(r) = d.observe(self.role, time, x, &cfg.unusual)
        {
            out.push(r);
        }
        self.physical_limits(x, cfg, out);
    }

    /// Reports a NaN or ±Inf: at once (then every `NONFINITE_REPEAT`
    /// points) and, for a gradient norm, as a warning only once it has
    /// lasted `GRAD_NORM_NONFINITE_RUN` points.
    fn non_finite(&mut self, x: f64, out: &mut Vec<Raw>) {
        let persisting =
            self.role == SeriesRole::GradNorm && self.nonfinite_run == GRAD_NORM_NONFINITE_RUN;
        if self.nonfinite_cooldown > 0 && !persisting {
            self.nonfinite_cooldown -= 1;
            return;
        }
        let severity = match self.role {
            SeriesRole::Loss => Severity::Critical,
            SeriesRole::GradNorm if persisting => Severity::Warning,
            SeriesRole::Throughput | SeriesRole::StepTime => Severity::Warning,
            _ => Severity::Info,
        };
        let detail = if persisting {
            format!(
                "the value is {} for {} points in a row",
                fmt_nonfinite(x),
                self.nonfinite_run
            )
        } else {
            format!("the value is {}", fmt_nonfinite(x))
        };
        out.push(Raw {
            kind: FindingKind::NonFinite,
            value: Some(x),
            expected: None,
            direction: None,
            score: 1.0,
            severity,
            detail,
            attributes: FindingAttributes::default(),
        });
        self.nonfinite_cooldown = NONFINITE_REPEAT;
    }

    /// Fixed limits of hardware: temperature, ECC counters, Xid codes,
    /// thermal throttling.
    fn physical_limits(&mut self, x: f64, cfg: &DiagnoseConfig, out: &mut Vec<Raw>) {
        match self.role {
            SeriesRole::GpuTemperature => {
                if x >= cfg.gpu.max_temperature_c {
                    self.over_limit_points += 1;
                    if self.over_limit_points == cfg.gpu.temperature_points.max(1) {
                        out.push(threshold(
                            x,
                            cfg.gpu.max_temperature_c,
                            Severity::Warning,
                            format!(
                                "{}, at or above {}",
                                units::value(x, Unit::Celsius),
                                units::value(cfg.gpu.max_temperature_c, Unit::Celsius)
                            ),
                        ));
                    }
                } else {
                    self.over_limit_points = 0;
                }
            }
            SeriesRole::GpuEccErrors => {
                // A counter: any increase is news (the first value is a baseline).
                if let Some(prev) = self.last_counter
                    && x > prev
                {
                    out.push(threshold(
                        x,
                        prev,
                        Severity::Critical,
                        format!("ECC error count rose from {prev:.0} to {x:.0}"),
                    ));
                }
                self.last_counter = Some(x);
            }
            SeriesRole::GpuXid if x > 0.0 => {
                let mut r = threshold(x, 0.0, Severity::Critical, format!("Xid {x:.0} reported"));
                // The series carries the code as its value; one out of
                // range for a code is no code.
                r.attributes.code = (x <= u32::MAX as f64).then(|| x.round() as u32);
                out.push(r);
            }
            SeriesRole::GpuThrottle => {
                let bits = if x >= 0.0 && x < u64::MAX as f64 {
                    x as u64
                } else {
                    0
                };
                // A bitmask series or one 0/1 series per reason.
                if bits & THERMAL_THROTTLE_MASK != 0 || (x == 1.0 && self.points > 0) {
                    if self.over_limit_points == 0 {
                        let mut r = threshold(
                            x,
                            0.0,
                            Severity::Info,
                            format!("clocks throttled (reasons 0x{bits:x})"),
                        );
                        r.kind = FindingKind::Threshold;
                        out.push(r);
                    }
                    self.over_limit_points = (self.over_limit_points + 1) % 30;
                } else {
                    self.over_limit_points = 0;
                }
            }
            _ => {}
        }
    }
}

fn threshold(x: f64, limit: f64, severity: Severity, detail: String) -> Raw {
    Raw {
        kind: FindingKind::Threshold,
        value: Some(x),
        expected: Some(limit),
        direction: Some(Direction::Up),
        score: 0.8,
        severity,
        detail,
        attributes: FindingAttributes::default(),
    }
}

fn fmt_nonfinite(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "+Infinity"
    } else {
        "-Infinity"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(role: SeriesRole, values: &[f64]) -> Vec<Severity> {
        let cfg = DiagnoseConfig::default();
        let mut d = SeriesDetector::new(role, Unit::None, &cfg);
        let mut out = Vec::new();
        for (i, x) in values.iter().enumerate() {
            d.observe(Some(i as i64), i as f64, *x, None, &cfg, &mut out);
        }
        out.iter()
            .filter(|r| r.kind == FindingKind::NonFinite)
            .map(|r| r.severity)
            .collect()
    }

    #[test]
    fn a_grad_norm_overflow_now_and_then_is_minor_and_a_lasting_one_is_not() {
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        // Start-up scale search and a skipped step later: evidence only.
        let found = feed(SeriesRole::GradNorm, &[nan, nan, 8.0, 8.1, 5.7, inf, 9.2]);
        assert!(found.iter().all(|s| *s == Severity::Info), "{found:?}");
        // Non-finite three points in a row: a warning.
        let found = feed(SeriesRole::GradNorm, &[2.0, 1.9, nan, nan, nan, nan]);
        assert_eq!(found, vec![Severity::Info, Severity::Warning]);
        // A loss is critical at once.
        assert_eq!(
            feed(SeriesRole::Loss, &[2.0, nan]),
            vec![Severity::Critical]
        );
    }
}
