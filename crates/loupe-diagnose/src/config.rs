//! Settings of every detector and of the correlator, with the defaults a
//! training run needs. Every field has a default, so a settings file names
//! only what it changes (`{"spike": {"z": 8}}`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiagnoseConfig {
    pub spike: SpikeConfig,
    pub blowup: BlowUpConfig,
    pub shift: ShiftConfig,
    pub trend: TrendConfig,
    pub divergence: DivergenceConfig,
    pub plateau: PlateauConfig,
    pub stall: StallConfig,
    pub silence: SilenceConfig,
    pub cohort: CohortConfig,
    pub gpu: GpuConfig,
    pub incident: IncidentConfig,
    /// The general detector of series with no rule of their own (host,
    /// GPU, serving and external series outside runs, `loupe detect`).
    pub anomaly: crate::anomaly::AnomalyConfig,
    /// When an unusual episode of a series outside runs becomes a finding.
    pub unusual: crate::detect::UnusualConfig,
    pub baseline: crate::baseline::BaselineConfig,
    /// At most this many series are watched at once; the least recently
    /// updated are forgotten beyond it (their state, not their data).
    pub max_series: usize,
}

impl Default for DiagnoseConfig {
    fn default() -> Self {
        DiagnoseConfig {
            spike: SpikeConfig::default(),
            blowup: BlowUpConfig::default(),
            shift: ShiftConfig::default(),
            trend: TrendConfig::default(),
            divergence: DivergenceConfig::default(),
            plateau: PlateauConfig::default(),
            stall: StallConfig::default(),
            silence: SilenceConfig::default(),
            cohort: CohortConfig::default(),
            gpu: GpuConfig::default(),
            incident: IncidentConfig::default(),
            anomaly: crate::anomaly::AnomalyConfig::default(),
            unusual: crate::detect::UnusualConfig::default(),
            baseline: crate::baseline::BaselineConfig::default(),
            max_series: 200_000,
        }
    }
}

/// Spikes: a point whose robust z-score against the rolling median and MAD
/// of the last `window` points is at least `z`. Losses and gradient norms
/// must also be `relative` above the median (a statistically odd but tiny
/// blip on a very smooth loss is not a spike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpikeConfig {
    pub enabled: bool,
    pub window: usize,
    pub min_points: usize,
    pub z: f64,
    pub loss_relative: f64,
    pub grad_norm_relative: f64,
    /// Series of no known kind need a larger deviation.
    pub other_z: f64,
    /// A loss spike must also rise this fraction of the loss's range so far
    /// (highest minus lowest value seen): a converged loss near zero that
    /// doubles from 0.0001 is noise next to where it started.
    pub loss_range_fraction: f64,
    /// Points after a reported spike during which the series reports no other.
    pub cooldown_points: u32,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        SpikeConfig {
            enabled: true,
            window: 64,
            min_points: 30,
            z: 6.0,
            loss_relative: 0.15,
            grad_norm_relative: 1.0,
            other_z: 12.0,
            loss_range_fraction: 0.05,
            cooldown_points: 3,
        }
    }
}

/// Level shifts (two-sided CUSUM on robust z-scores, reported in the
/// direction that is bad for the series). `min_relative` is the smallest
/// shift worth reporting, as a fraction of the baseline level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShiftConfig {
    pub enabled: bool,
    pub window: usize,
    pub min_points: usize,
    pub k: f64,
    pub h: f64,
    pub min_relative: f64,
    /// After this many points away from the old level, the new level is
    /// accepted as normal.
    pub accept_after: u32,
    /// While shifted, the finding is repeated every this many points.
    pub repeat_points: u32,
}

impl Default for ShiftConfig {
    fn default() -> Self {
        ShiftConfig {
            enabled: true,
            window: 64,
            min_points: 30,
            k: 0.5,
            h: 20.0,
            min_relative: 0.15,
            accept_after: 600,
            repeat_points: 20,
        }
    }
}

/// Steady growth of memory or disk towards its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrendConfig {
    pub enabled: bool,
    pub min_points: usize,
    /// Points the regression covers.
    pub window: usize,
    pub min_r2: f64,
    /// Growth over the regression's span, as a fraction of the level.
    pub min_growth: f64,
    /// Report only when the limit would be reached within this many seconds
    /// (when the limit is known).
    pub horizon_s: f64,
    /// Critical when the limit is this close.
    pub critical_eta_s: f64,
    pub repeat_points: u32,
}

impl Default for TrendConfig {
    fn default() -> Self {
        TrendConfig {
            enabled: true,
            min_points: 100,
            window: 100,
            min_r2: 0.85,
            min_growth: 0.05,
            horizon_s: 24.0 * 3600.0,
            critical_eta_s: 3600.0,
            repeat_points: 30,
        }
    }
}

/// A loss whose smoothed value climbs `rise` (relative) above its best,
/// and by more than its own noise (`noise_z` robust deviations of its
/// point-to-point differences) and `range_fraction` of its range so far
/// (highest smoothed value minus the best): relative rules alone call a
/// converged loss at 0.01 moving to 0.013 a 30% divergence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DivergenceConfig {
    pub enabled: bool,
    pub min_points: usize,
    pub alpha: f64,
    pub rise: f64,
    pub noise_z: f64,
    pub range_fraction: f64,
}

impl Default for DivergenceConfig {
    fn default() -> Self {
        DivergenceConfig {
            enabled: true,
            min_points: 50,
            alpha: 0.05,
            rise: 0.5,
            noise_z: 6.0,
            range_fraction: 0.25,
        }
    }
}

/// A loss that multiplies: `factor` times the median of its last `window`
/// points (or non-finite, reported by the non-finite check), judged from
/// the second point on, since a run logged every 100 steps may blow up in a
/// handful of points. The rise must also exceed `range_fraction` of the
/// loss's range so far and, once `noise_points` points are known,
/// `noise_z` robust deviations of its recent point-to-point differences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlowUpConfig {
    pub enabled: bool,
    pub factor: f64,
    pub window: usize,
    pub noise_points: usize,
    pub noise_z: f64,
    pub range_fraction: f64,
}

impl Default for BlowUpConfig {
    fn default() -> Self {
        BlowUpConfig {
            enabled: true,
            factor: 3.0,
            window: 16,
            noise_points: 8,
            noise_z: 6.0,
            range_fraction: 0.25,
        }
    }
}

/// A loss that improved less than `min_improvement` over `window` points
/// (information for the health score; never an incident by itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlateauConfig {
    pub enabled: bool,
    pub window: u32,
    pub min_improvement: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            enabled: true,
            window: 2000,
            min_improvement: 0.005,
        }
    }
}

/// A run whose step has not advanced for `factor` times its usual step
/// interval (and at least `min_seconds`) while it still reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StallConfig {
    pub enabled: bool,
    pub factor: f64,
    pub min_seconds: f64,
    /// Steps needed before the interval is trusted.
    pub min_steps: u32,
}

impl Default for StallConfig {
    fn default() -> Self {
        StallConfig {
            enabled: true,
            factor: 10.0,
            min_seconds: 30.0,
            min_steps: 20,
        }
    }
}

/// A series that stopped arriving for `factor` times its usual interval
/// (and at least `min_seconds`) while its run or host keeps reporting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceConfig {
    pub enabled: bool,
    pub factor: f64,
    pub min_seconds: f64,
    pub min_points: u32,
}

impl Default for SilenceConfig {
    fn default() -> Self {
        SilenceConfig {
            enabled: true,
            factor: 20.0,
            min_seconds: 60.0,
            min_points: 20,
        }
    }
}

/// Members of a group compared with each other at the same time: one that
/// stays `relative` worse than the group's median for `persist` checks in
/// a row (and is a robust outlier) is flagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CohortConfig {
    pub enabled: bool,
    pub relative: f64,
    pub min_members: usize,
    pub persist: u32,
    /// Points averaged per member for a comparison.
    pub recent_points: usize,
}

impl Default for CohortConfig {
    fn default() -> Self {
        CohortConfig {
            enabled: true,
            relative: 0.15,
            min_members: 3,
            persist: 3,
            recent_points: 8,
        }
    }
}

/// Physical limits of GPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuConfig {
    pub max_temperature_c: f64,
    pub temperature_points: u32,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            max_temperature_c: 85.0,
            temperature_points: 3,
        }
    }
}

/// How findings become incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// A finding joins an open incident of the same run or job when its
    /// data time is at most this far from the incident's evidence (data
    /// time, not arrival: a whole run uploaded at once correlates as it
    /// did live).
    pub join_window_s: f64,
    /// ... and its step at most this far from the evidence's steps, when
    /// both have steps (data clocks can lie; steps do not).
    pub join_steps: i64,
    /// An incident with no new evidence for this long (arrival time) is
    /// resolved.
    pub resolve_after_s: f64,
    /// A repeat of evidence an open incident already holds (the same kind
    /// on the same series of the same run: a leak still growing, errors
    /// still bursting) joins it when its data time is at most this far
    /// after the incident's latest evidence, even beyond `join_window_s`.
    pub repeat_window_s: f64,
    /// When an incident opens, minor findings of this recent past join it
    /// as evidence (a grad-norm spike just before a loss spike).
    pub lookback_s: f64,
    /// Evidence items kept per incident.
    pub max_evidence: usize,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            join_window_s: 120.0,
            join_steps: 2000,
            resolve_after_s: 180.0,
            repeat_window_s: 180.0,
            lookback_s: 120.0,
            max_evidence: 40,
        }
    }
}

/// A settings file or override that does not fit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error("override {0:?}: expected KEY=VALUE, e.g. spike.z=8")]
    BadOverride(String),
}

impl DiagnoseConfig {
    /// Reads settings from JSON text; fields not named keep their defaults.
    /// `source_name` (a file name) goes into the error.
    pub fn from_json(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Invalid {
            source_name: source_name.to_string(),
            message: format!("{}: {}", e.path(), e.inner()),
        })
    }

    /// Applies `section.field=value` overrides (`spike.z=8`,
    /// `stall.enabled=false`); the value is JSON, or a string when it is
    /// not JSON.
    pub fn with_overrides(self, overrides: &[String]) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Ok(self);
        }
        let mut v = serde_json::to_value(&self).expect("settings encode");
        for o in overrides {
            let (path, value) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOverride(o.clone()))?;
            let value: serde_json::Value = serde_json::from_str(value.trim())
                .unwrap_or_else(|_| serde_json::Value::String(value.trim().to_string()));
            let mut at = &mut v;
            let parts: Vec<&str> = path.trim().split('.').collect();
            for (i, p) in parts.iter().enumerate() {
                let Some(obj) = at.as_object_mut() else {
                    return Err(ConfigError::BadOverride(o.clone()));
                };
                if !obj.contains_key(*p) {
                    return Err(ConfigError::Invalid {
                        source_name: o.clone(),
                        message: format!("no setting {:?}", parts[..=i].join(".")),
                    });
                }
                at = obj.get_mut(*p).expect("checked");
            }
            *at = value;
        }
        Self::from_json(&v.to_string(), "overrides")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_overrides_change_only_what_they_name() {
        let c = DiagnoseConfig::from_json(r#"{"spike": {"z": 8}}"#, "f.json").unwrap();
        assert_eq!(c.spike.z, 8.0);
        assert_eq!(c.spike.window, SpikeConfig::default().window);
        let c = c
            .with_overrides(&["stall.min_seconds=12".into(), "shift.enabled=false".into()])
            .unwrap();
        assert_eq!(c.stall.min_seconds, 12.0);
        assert!(!c.shift.enabled);
        let e = DiagnoseConfig::from_json(r#"{"spike": {"zz": 8}}"#, "f.json").unwrap_err();
        assert!(
            e.to_string().contains("f.json") && e.to_string().contains("zz"),
            "{e}"
        );
        let e = DiagnoseConfig::default()
            .with_overrides(&["spike.nope=1".into()])
            .unwrap_err();
        assert!(e.to_string().contains("spike.nope"), "{e}");
        assert!(
            DiagnoseConfig::default()
                .with_overrides(&["spike.z".into()])
                .is_err()
        );
        assert!(
            DiagnoseConfig::default()
                .with_overrides(&["spike.z=\"high\"".into()])
                .is_err()
        );
    }
}
