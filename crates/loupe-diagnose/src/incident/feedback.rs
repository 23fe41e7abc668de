//! Users' verdicts on causes and fixes, as per-project weights that re-rank
//! the next incidents (the weighted Σcᵢ·Error and Σdᵢ·Fix of the design).
//!
//! A cause kind marked *confirmed* in a project gains weight there, one
//! marked *wrong* loses it; a fix marked as *the one that worked* rises
//! among its cause's fixes. Each mark counts less than the one before,
//! and the weights are bounded:
//!
//! ```text
//! cause weight c = 1 + CAUSE_GAIN·(1 − 2^(−confirmed/HALF_COUNT))
//!                    − CAUSE_LOSS·(1 − 2^(−wrong/HALF_COUNT))        ∈ [0.5, 1.5]
//! fix weight   d = 1 + FIX_GAIN·(1 − 2^(−worked/HALF_COUNT))          ∈ [1, 2]
//! ```
//!
//! With `HALF_COUNT` = 1 the first mark moves a weight half of the way to
//! its bound, the second half of what is left, and so on. Causes are then
//! ranked by rule score × c (the rule's own score is kept as it is: it
//! says how well the rule fits this incident); a cause's fixes by d, the
//! rules' order breaking ties. The rules themselves are not changed.
//!
//! Fixes are matched by their text with digits masked (`#`), so "roll
//! back to before step 1200" and "… step 5400" are one fix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Incident;
use super::causes::CauseKind;

const CAUSE_GAIN: f64 = 0.5;
const CAUSE_LOSS: f64 = 0.5;
const FIX_GAIN: f64 = 1.0;
/// Marks that move a weight half of the way to its bound.
const HALF_COUNT: f64 = 1.0;

/// What a user said about a cause or a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The cause was the right one.
    Confirmed,
    /// The cause was wrong.
    Wrong,
    /// This fix is the one that worked.
    Worked,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Wrong => "wrong",
            Verdict::Worked => "worked",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "confirmed" => Some(Verdict::Confirmed),
            "wrong" => Some(Verdict::Wrong),
            "worked" => Some(Verdict::Worked),
            _ => None,
        }
    }
}

/// Marks on one cause kind in one project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CauseTally {
    pub confirmed: u32,
    pub wrong: u32,
}

/// One project's feedback, tallied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedbackWeights {
    /// By cause kind (its API name, `learning_rate_too_high`).
    causes: BTreeMap<String, CauseTally>,
    /// "Worked" marks by (cause kind, masked fix text).
    fixes: BTreeMap<(String, String), u32>,
}

/// How an incident was re-ranked: each cause's rule score and weight, in
/// the new order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRanking {
    pub causes: Vec<WeightedCause>,
    /// Causes whose fixes feedback put in another order.
    pub fixes_reordered: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedCause {
    pub kind: CauseKind,
    pub rule_score: f64,
    pub weight: f64,
    /// rule_score × weight: what the causes are ranked by.
    pub ranked_score: f64,
}

impl FeedbackWeights {
    /// Adds one mark. `fix` matters only for [`Verdict::Worked`].
    pub fn record(&mut self, cause: &str, fix: Option<&str>, verdict: Verdict) {
        match (verdict, fix) {
            (Verdict::Confirmed, _) => self.tally(cause).confirmed += 1,
            (Verdict::Wrong, _) => self.tally(cause).wrong += 1,
            (Verdict::Worked, Some(fix)) => {
                *self
                    .fixes
                    .entry((cause.to_string(), fix_key(fix)))
                    .or_default() += 1
            }
            (Verdict::Worked, None) => {}
        }
    }

    fn tally(&mut self, cause: &str) -> &mut CauseTally {
        self.causes.entry(cause.to_string()).or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.causes.is_empty() && self.fixes.is_empty()
    }

    /// The weight c of a cause kind (1 without feedback).
    pub fn cause_weight(&self, cause: &str) -> f64 {
        let t = self.causes.get(cause).copied().unwrap_or_default();
        1.0 + CAUSE_GAIN * saturation(t.confirmed) - CAUSE_LOSS * saturation(t.wrong)
    }

    /// The weight d of a cause's fix (1 without feedback).
    pub fn fix_weight(&self, cause: &str, fix: &str) -> f64 {
        let n = self
            .fixes
            .get(&(cause.to_string(), fix_key(fix)))
            .copied()
            .unwrap_or(0);
        1.0 + FIX_GAIN * saturation(n)
    }

    /// Every cause kind with marks, its tally and weight.
    pub fn cause_weights(&self) -> impl Iterator<Item = (&str, CauseTally, f64)> {
        self.causes
            .iter()
            .map(|(k, t)| (k.as_str(), *t, self.cause_weight(k)))
    }

    /// Every fix marked as worked: (cause kind, masked fix text, marks, weight).
    pub fn fix_weights(&self) -> impl Iterator<Item = (&str, &str, u32, f64)> {
        self.fixes
            .iter()
            .map(|((c, f), n)| (c.as_str(), f.as_str(), *n, 1.0 + FIX_GAIN * saturation(*n)))
    }
}

/// 1 − 2^(−n / HALF_COUNT): 0 for no marks, towards 1 with many.
fn saturation(n: u32) -> f64 {
    1.0 - (-(f64::from(n)) / HALF_COUNT).exp2()
}

/// The API name of a cause kind (`fp_overflow`, `learning_rate_too_high`).
pub fn cause_key(kind: CauseKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => kind.as_str().to_string(),
    }
}

/// A fix's text with every run of digits replaced by `#`.
pub fn fix_key(fix: &str) -> String {
    let mut out = String::with_capacity(fix.len());
    let mut in_digits = false;
    for ch in fix.trim().chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(ch);
            in_digits = false;
        }
    }
    out
}

/// Re-ranks an incident's causes and their fixes by a project's weights,
/// and notes how in `incident.feedback` (left `None` when no weight
/// applies). The top cause's kind and title follow the new order.
pub fn rerank(inc: &mut Incident, w: &FeedbackWeights) {
    inc.feedback = None;
    if w.is_empty() || inc.causes.is_empty() {
        return;
    }
    let mut weighted: Vec<WeightedCause> = Vec::with_capacity(inc.causes.len());
    let mut fixes_reordered = 0;
    for c in &mut inc.causes {
        let key = cause_key(c.kind);
        let weight = w.cause_weight(&key);
        weighted.push(WeightedCause {
            kind: c.kind,
            rule_score: c.score,
            weight,
            ranked_score: c.score * weight,
        });
        let before = c.fixes.clone();
        // Stable: equal weights keep the rule's order.
        c.fixes
            .sort_by(|a, b| w.fix_weight(&key, b).total_cmp(&w.fix_weight(&key, a)));
        fixes_reordered += u32::from(c.fixes != before);
    }
    let touched = fixes_reordered > 0 || weighted.iter().any(|c| c.weight != 1.0);
    if !touched {
        return;
    }
    let mut order: Vec<usize> = (0..inc.causes.len()).collect();
    order.sort_by(|&a, &b| {
        weighted[b]
            .ranked_score
            .total_cmp(&weighted[a].ranked_score)
    });
    let mut causes = std::mem::take(&mut inc.causes);
    let mut slots: Vec<Option<_>> = causes.drain(..).map(Some).collect();
    inc.causes = order.iter().filter_map(|&i| slots[i].take()).collect();
    let ranked: Vec<WeightedCause> = order.iter().map(|&i| weighted[i].clone()).collect();
    if let Some(top) = inc.causes.first() {
        inc.kind = top.kind.as_str().to_string();
        inc.title = top.title.clone();
    }
    inc.feedback = Some(FeedbackRanking {
        causes: ranked,
        fixes_reordered,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use crate::incident::{Cause, IncidentState};

    fn cause(kind: CauseKind, score: f64, fixes: &[&str]) -> Cause {
        Cause {
            kind,
            title: kind.as_str().into(),
            score,
            explanation: String::new(),
            fixes: fixes.iter().map(|f| f.to_string()).collect(),
            evidence: Vec::new(),
        }
    }

    fn incident() -> Incident {
        Incident {
            id: "i".into(),
            project: Some("p".into()),
            run: None,
            group: None,
            host: None,
            service: None,
            state: IncidentState::Open,
            severity: Severity::Warning,
            kind: "collective_hang".into(),
            title: "collective_hang".into(),
            opened: 0.0,
            updated: 0.0,
            resolved: None,
            start_time: 0.0,
            end_time: None,
            start_step: None,
            end_step: None,
            causes: vec![
                cause(CauseKind::CollectiveHang, 0.6, &["a", "b"]),
                cause(
                    CauseKind::NetworkFault,
                    0.5,
                    &["x", "roll back to step 120", "z"],
                ),
            ],
            anomalies: Vec::new(),
            runs: Vec::new(),
            feedback: None,
        }
    }

    #[test]
    fn weights_are_bounded_and_each_mark_counts_less() {
        let mut w = FeedbackWeights::default();
        assert_eq!(w.cause_weight("divergence"), 1.0);
        let mut last = 1.0;
        let mut gains = Vec::new();
        for _ in 0..40 {
            w.record("divergence", None, Verdict::Confirmed);
            let now = w.cause_weight("divergence");
            gains.push(now - last);
            last = now;
        }
        assert!(last <= 1.5 && last > 1.49, "{last}");
        assert!(gains.windows(2).all(|g| g[1] < g[0]), "{gains:?}");
        for _ in 0..40 {
            w.record("crash", None, Verdict::Wrong);
        }
        assert!(w.cause_weight("crash") >= 0.5 && w.cause_weight("crash") < 0.51);
        w.record("crash", None, Verdict::Worked);
        assert_eq!(w.fix_weight("crash", "anything"), 1.0);
    }

    #[test]
    fn a_cause_marked_wrong_falls_below_a_close_second() {
        let mut w = FeedbackWeights::default();
        w.record("collective_hang", None, Verdict::Wrong);
        let mut inc = incident();
        rerank(&mut inc, &w);
        assert_eq!(inc.causes[0].kind, CauseKind::NetworkFault);
        assert_eq!(inc.kind, "network_fault");
        let fb = inc.feedback.as_ref().unwrap();
        assert_eq!(fb.causes[1].kind, CauseKind::CollectiveHang);
        assert_eq!(fb.causes[1].weight, 0.75);
        assert_eq!(fb.causes[1].rule_score, 0.6, "the rule's score is kept");
        assert_eq!(inc.causes[1].score, 0.6);
    }

    #[test]
    fn a_confirmed_cause_rises_and_a_fix_that_worked_comes_first() {
        let mut w = FeedbackWeights::default();
        w.record("network_fault", None, Verdict::Confirmed);
        w.record(
            "network_fault",
            Some("roll back to step 9999"),
            Verdict::Worked,
        );
        let mut inc = incident();
        rerank(&mut inc, &w);
        assert_eq!(inc.causes[0].kind, CauseKind::NetworkFault);
        assert_eq!(inc.causes[0].fixes, ["roll back to step 120", "x", "z"]);
        assert_eq!(inc.causes[1].fixes, ["a", "b"]);
        assert_eq!(inc.feedback.as_ref().unwrap().fixes_reordered, 1);
    }

    #[test]
    fn feedback_on_other_causes_leaves_an_incident_as_it_was() {
        let mut w = FeedbackWeights::default();
        w.record("disk_full", None, Verdict::Confirmed);
        let mut inc = incident();
        let before = inc.clone();
        rerank(&mut inc, &w);
        assert_eq!(inc, before);
        rerank(&mut inc, &FeedbackWeights::default());
        assert_eq!(inc, before);
    }

    #[test]
    fn fix_keys_mask_numbers_and_cause_keys_are_the_api_names() {
        assert_eq!(
            fix_key(" Roll back 100 steps to 12,345 "),
            "Roll back # steps to #,#"
        );
        assert_eq!(cause_key(CauseKind::FpOverflow), "fp_overflow");
        assert_eq!(Verdict::parse("worked"), Some(Verdict::Worked));
        assert_eq!(Verdict::parse("nope"), None);
    }
}
