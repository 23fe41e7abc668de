//! A project's stored verdicts, tallied into the weights diagnosis ranks
//! its next incidents with (the formula is in
//! `loupe_diagnose::incident::feedback`).

use loupe_diagnose::incident::{FeedbackWeights, Verdict};
use loupe_meta::{FeedbackEntry, MAX_FEEDBACK_LIMIT, MetaStore};

/// Tallies verdicts (rows with an unknown verdict are skipped).
pub(crate) fn weights_of(records: &[FeedbackEntry]) -> FeedbackWeights {
    let mut w = FeedbackWeights::default();
    for r in records {
        if let Some(v) = Verdict::parse(&r.verdict) {
            w.record(&r.cause, r.fix.as_deref(), v);
        }
    }
    w
}

/// A project's weights from the store (the newest `MAX_FEEDBACK_LIMIT`
/// verdicts).
pub(crate) fn load_weights(meta: &MetaStore, project: &str) -> loupe_meta::Result<FeedbackWeights> {
    Ok(weights_of(
        &meta.project_feedback(project, MAX_FEEDBACK_LIMIT)?,
    ))
}
