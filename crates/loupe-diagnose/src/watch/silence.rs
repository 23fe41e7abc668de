//! Silences: a series of a live run that stopped arriving.
//!
//! A series is judged once it has `min_points`, against its own arrival
//! interval (an EWMA of data-time gaps): silent when nothing came for
//! `factor` intervals (at least `min_seconds`) while its run still reports
//! (something arrived within half that). A loss or throughput that goes
//! quiet is a warning; any other series is minor evidence.
//!
//! **Invariants:** one finding per silence (the next point clears it);
//! ended runs are not judged; runs and their series are walked in name
//! order, so the findings come in the same order for the same input.

use std::collections::BTreeMap;

use loupe_model::units;

use crate::Severity;
use crate::config::SilenceConfig;
use crate::diagnoser::state::{RunState, Sink, scope_of};
use crate::finding::{Finding, FindingKind, SeriesRole};

pub(crate) fn check(
    runs: &mut BTreeMap<String, RunState>,
    cfg: &SilenceConfig,
    sink: &mut Sink,
    now: f64,
) {
    if !cfg.enabled {
        return;
    }
    for st in runs.values_mut() {
        if st.ended.is_some() {
            continue;
        }
        let scope = scope_of(&st.info);
        for (name, ss) in st.watched.series.iter_mut() {
            let Some(interval) = ss.interval else {
                continue;
            };
            if ss.n < cfg.min_points || ss.silent {
                continue;
            }
            let threshold = (cfg.factor * interval).max(cfg.min_seconds);
            let quiet = now - ss.last_arrival;
            // Only while the run itself still reports.
            if quiet < threshold || now - st.last_arrival > threshold / 2.0 {
                continue;
            }
            ss.silent = true;
            let role = ss.det.role;
            let mut f = Finding::new(scope.clone(), FindingKind::Silence, role, ss.last_time);
            f.series = Some(name.to_string());
            f.severity = if matches!(role, SeriesRole::Loss | SeriesRole::Throughput) {
                Severity::Warning
            } else {
                Severity::Info
            };
            f.detail = format!(
                "no points for {} (usually every {})",
                units::seconds(quiet.round()),
                units::seconds(interval)
            );
            sink.emit(f, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{DiagnoseConfig, Diagnoser, FindingKind};

    #[test]
    fn a_series_that_stops_while_its_run_goes_on_is_silent_once() {
        let mut d = Diagnoser::new(DiagnoseConfig::default(), "t");
        d.record_findings();
        for i in 0..300 {
            let t = 1.7e9 + i as f64;
            d.observe_run_points("r", "train/loss", Some(&[i]), &[t], &[1.0], t);
            if i < 50 {
                d.observe_run_points("r", "train/tokens_per_s", Some(&[i]), &[t], &[9.0], t);
            }
            d.tick(t);
        }
        let silent: Vec<_> = d
            .take_findings()
            .into_iter()
            .filter(|f| f.kind == FindingKind::Silence)
            .collect();
        assert_eq!(silent.len(), 1, "{silent:#?}");
        assert_eq!(silent[0].series.as_deref(), Some("train/tokens_per_s"));
    }
}
