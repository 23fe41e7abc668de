//! The cause rule "worse than this project's previous runs": a run's curve
//! left the envelope of the healthy runs of its config family. It scores
//! below the rules that name a mechanism (a learning-rate spike, a NaN, a
//! slow rank), so it leads only when nothing more specific fits; its fixes
//! point at what changed against the closest baseline run.

use super::ConfigChange;
use crate::finding::{Finding, FindingKind};
use crate::incident::{Cause, CauseKind, Evidence};

/// The rule's score with one deviating series, and per further series.
const BASE_SCORE: f64 = 0.4;
const PER_EXTRA_SERIES: f64 = 0.05;
const MAX_SCORE: f64 = 0.55;
/// Config changes offered as separate fixes.
const CHANGES_AS_FIXES: usize = 3;

pub(crate) fn regression_cause(findings: &[Finding]) -> Option<Cause> {
    let mut devs: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::BaselineDeviation)
        .collect();
    devs.sort_by(|a, b| a.time.total_cmp(&b.time));
    let first = *devs.first()?;
    let mut series: Vec<&str> = devs.iter().filter_map(|f| f.series.as_deref()).collect();
    series.sort_unstable();
    series.dedup();
    let a = &first.attributes;
    let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let runs = Some(a.baseline_runs.join(", "))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "the previous runs".into());
    let mut explanation = format!("{}. Baseline runs: {runs}.", first.detail);
    if series.len() > 1 {
        explanation.push_str(&format!(" Also apart: {}.", series[1..].join(", ")));
    }
    Some(Cause {
        kind: CauseKind::BaselineRegression,
        title: format!(
            "{} worse than this project's previous runs",
            first.series.as_deref().unwrap_or("A metric")
        ),
        score: (BASE_SCORE + PER_EXTRA_SERIES * (series.len() - 1) as f64).min(MAX_SCORE),
        explanation,
        fixes: fixes(given(&a.closest_run), &a.config_changes),
        evidence: devs
            .iter()
            .take(6)
            .map(|f| Evidence::Series {
                run: f.scope.run.clone(),
                series: f.series.clone(),
                step: f.step,
                time: f.time,
                value: f.value,
                detail: f.detail.clone(),
            })
            .collect(),
    })
}

fn fixes(closest: Option<String>, changes: &[ConfigChange]) -> Vec<String> {
    let mut out = Vec::new();
    match closest {
        Some(run) if !changes.is_empty() => {
            let listed: Vec<String> = changes.iter().map(ToString::to_string).collect();
            out.push(format!(
                "Compare the config with run {run}, the closest healthy one: {}",
                listed.join("; ")
            ));
            for ch in changes.iter().take(CHANGES_AS_FIXES) {
                out.push(format!("Set {} back as in run {run}: {}", ch.key, ch.values()));
            }
        }
        Some(run) => out.push(format!(
            "The config matches run {run} on every compared key: compare the code version, the data and the environment with it"
        )),
        _ => {}
    }
    out.push(
        "Overlay this run on the baseline runs in the compare view to see where the curves part"
            .into(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use crate::finding::{Scope, SeriesRole};

    fn dev(series: &str, time: f64, changes: Option<(&str, &str, &str)>) -> Finding {
        let mut f = Finding::new(
            Scope::default(),
            FindingKind::BaselineDeviation,
            SeriesRole::Loss,
            time,
        );
        f.series = Some(series.into());
        f.severity = Severity::Warning;
        f.detail = format!("{series} is 4.1 at step 300, 9.0σ above the median");
        f.attributes.baseline_runs = vec!["a".into(), "b".into(), "c".into()];
        f.attributes.closest_run = Some("c".into());
        if let Some((key, this, other)) = changes {
            f.attributes.config_changes = vec![ConfigChange {
                key: key.into(),
                this: Some(this.into()),
                other: Some(other.into()),
            }];
        }
        f
    }

    #[test]
    fn names_the_baseline_and_the_config_diff_as_fixes() {
        let c =
            regression_cause(&[dev("train/loss", 2.0, Some(("lr", "0.003", "0.0003")))]).unwrap();
        assert_eq!(c.kind, CauseKind::BaselineRegression);
        assert!(
            c.explanation.contains("Baseline runs: a, b, c."),
            "{}",
            c.explanation
        );
        assert_eq!(c.fixes[1], "Set lr back as in run c: 0.003 (was 0.0003)");
        assert_eq!(c.score, BASE_SCORE);
        assert_eq!(c.evidence.len(), 1);
    }

    #[test]
    fn same_config_points_elsewhere_and_more_series_score_higher() {
        let c = regression_cause(&[dev("train/loss", 2.0, None), dev("tokens_per_s", 1.0, None)])
            .unwrap();
        assert!(c.fixes[0].contains("matches run c"), "{:?}", c.fixes);
        assert!(
            c.title.starts_with("tokens_per_s"),
            "the first deviation leads"
        );
        assert!(c.score > BASE_SCORE);
        assert!(regression_cause(&[]).is_none());
    }
}
