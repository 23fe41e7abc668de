//! Stalls: a run whose step stopped advancing while the run still reports.
//!
//! A run is judged once it has advanced `min_steps` times, against its own
//! step interval (an EWMA of seconds per step): stalled when the step has
//! not moved for `factor` intervals (at least `min_seconds`) and something
//! arrived after the last advance, or recently (a heartbeat) — a run that
//! went quiet altogether is not "stalled", it is gone.
//!
//! **Invariants:** one finding when a stall starts, then at most one per
//! threshold while it lasts; ended runs are not judged; runs are walked in
//! id order, so a job whose ranks stall together gets its findings (and its
//! incident's evidence) in the same order for the same input.

use std::collections::BTreeMap;

use loupe_model::units;

use crate::Severity;
use crate::config::StallConfig;
use crate::diagnoser::state::{RunState, Sink, scope_of};
use crate::finding::{Finding, FindingKind, SeriesRole};

pub(crate) fn check(
    runs: &mut BTreeMap<String, RunState>,
    cfg: &StallConfig,
    sink: &mut Sink,
    now: f64,
) {
    if !cfg.enabled {
        return;
    }
    for st in runs.values_mut() {
        if st.ended.is_some() || st.steps.steps_seen < cfg.min_steps {
            continue;
        }
        let Some(interval) = st.steps.step_interval else {
            continue;
        };
        let threshold = (cfg.factor * interval).max(cfg.min_seconds);
        let since = now - st.steps.last_advance;
        // "The process lives on": something arrived after the last
        // step, or recently enough (a heartbeat).
        let alive = st.last_arrival > st.steps.last_advance || now - st.last_arrival < threshold;
        if since < threshold || !alive {
            continue;
        }
        if st.stalled && now - st.stall_reported < threshold {
            continue;
        }
        st.stalled = true;
        st.signals.stalled = true;
        st.stall_reported = now;
        let mut f = Finding::new(
            scope_of(&st.info),
            FindingKind::Stall,
            SeriesRole::Other,
            st.steps.last_advance_time + since,
        );
        f.step = st.steps.last_step;
        f.severity = Severity::Warning;
        f.score = (since / (2.0 * threshold)).clamp(0.5, 1.0);
        f.detail = format!(
            "the step has not advanced past {} for {} (usually {} per step)",
            st.steps.last_step.unwrap_or_default(),
            units::seconds(since.round()),
            units::seconds(interval)
        );
        f.attributes.last_step = Some(st.steps.last_step.unwrap_or_default());
        f.attributes.stalled_s = Some(since.round());
        sink.emit(f, now);
    }
}

#[cfg(test)]
mod tests {
    use crate::{DiagnoseConfig, Diagnoser, FindingKind};

    /// A run steps once a second for `steps`, then only sends heartbeats
    /// until `until`; returns its stall findings.
    fn stalls(steps: i64, until: i64) -> Vec<crate::Finding> {
        let mut d = Diagnoser::new(DiagnoseConfig::default(), "t");
        d.record_findings();
        for i in 0..until {
            let t = 1.7e9 + i as f64;
            if i < steps {
                d.observe_run_points("r", "train/loss", Some(&[i]), &[t], &[1.0], t);
            } else {
                d.heartbeat("r", t);
            }
            d.tick(t);
        }
        let mut f = d.take_findings();
        f.retain(|f| f.kind == FindingKind::Stall);
        f
    }

    #[test]
    fn a_run_that_stops_stepping_but_lives_on_stalls_once_per_threshold() {
        // Threshold: max(10 × 1 s, 30 s) = 30 s after the last step.
        let f = stalls(40, 100);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(f[0].step, Some(39));
        assert_eq!(f[0].attributes.last_step, Some(39));
    }

    #[test]
    fn a_run_too_young_to_know_its_pace_does_not_stall() {
        assert!(stalls(10, 100).is_empty());
    }
}
