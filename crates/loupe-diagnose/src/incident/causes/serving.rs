//! Causes in a service: an error burst, a latency regression.

use super::{Cause, CauseKind, Facts, evidence, strings, where_};
use crate::finding::{FindingKind, SeriesRole};

/// Errors up; latency up with them makes it surer.
const SCORE_ERRORS: f64 = 0.65;
const PLUS_ERRORS_WITH_LATENCY: f64 = 0.15;

/// Latency up alone.
const SCORE_LATENCY: f64 = 0.55;

pub(super) fn errors(f: &Facts) -> Option<Cause> {
    let errors = f
        .all
        .iter()
        .filter(|x| {
            x.role == SeriesRole::Errors
                && matches!(
                    x.kind,
                    FindingKind::Spike | FindingKind::LevelShift | FindingKind::CohortOutlier
                )
        })
        .min_by(|a, b| a.time.total_cmp(&b.time))?;
    let latency = f.all.iter().find(|x| {
        x.role == SeriesRole::Latency
            && matches!(
                x.kind,
                FindingKind::Spike | FindingKind::LevelShift | FindingKind::CohortOutlier
            )
    });
    let mut score: f64 = SCORE_ERRORS;
    if latency.is_some() {
        score += PLUS_ERRORS_WITH_LATENCY;
    }
    Some(Cause {
        kind: CauseKind::ServingErrors,
        title: "Error burst in the service".into(),
        score,
        explanation: format!(
            "errors rose ({}: {}){}.",
            where_(errors),
            errors.detail,
            latency
                .map(|l| format!(", with latency up ({})", l.detail))
                .unwrap_or_default()
        ),
        fixes: strings(&[
            "Check what changed just before: a deploy, a model or config change; roll back if so",
            "Check upstream dependencies and rate limits",
            "Look at the error logs of the replicas for the first failing request",
        ]),
        evidence: evidence([errors].into_iter().chain(latency)),
    })
}

pub(super) fn latency(f: &Facts) -> Option<Cause> {
    let latency = f
        .all
        .iter()
        .filter(|x| {
            x.role == SeriesRole::Latency
                && matches!(
                    x.kind,
                    FindingKind::Spike | FindingKind::LevelShift | FindingKind::CohortOutlier
                )
        })
        .min_by(|a, b| a.time.total_cmp(&b.time))?;
    Some(Cause {
        kind: CauseKind::ServingLatency,
        title: "Latency regression".into(),
        score: SCORE_LATENCY,
        explanation: format!("latency rose ({}: {}).", where_(latency), latency.detail),
        fixes: strings(&[
            "Check queueing: requests waiting for a batch slot or KV-cache space",
            "Scale out replicas or lower the maximum batch size",
            "Compare prompt lengths before and after",
        ]),
        evidence: evidence([latency]),
    })
}
