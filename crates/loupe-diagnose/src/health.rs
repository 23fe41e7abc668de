//! The health score of a run (0–100) and its breakdown: 100 minus a
//! penalty per indicator, each capped so that no single noisy indicator
//! can sink a run alone.

use serde::{Deserialize, Serialize};

use crate::Severity;
use crate::incident::{Incident, IncidentState};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub score: f64,
    pub breakdown: Vec<HealthItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthItem {
    pub indicator: String,
    pub penalty: f64,
    pub detail: String,
}

/// What the diagnoser knows about a run beyond its incidents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthSignals {
    pub nonfinite_loss: bool,
    pub stalled: bool,
    pub throughput_degraded: bool,
    pub plateau: bool,
    /// Minor findings (spikes of secondary series, throttling…) so far.
    pub minor_findings: u32,
    /// The run ended failed, crashed or killed.
    pub ended_badly: Option<String>,
}

pub fn score(incidents: &[&Incident], s: &HealthSignals) -> Health {
    let mut items = Vec::new();
    let mut add = |indicator: &str, penalty: f64, detail: String| {
        if penalty > 0.0 {
            items.push(HealthItem {
                indicator: indicator.to_string(),
                penalty,
                detail,
            });
        }
    };
    let open: Vec<&&Incident> = incidents
        .iter()
        .filter(|i| i.state == IncidentState::Open)
        .collect();
    let open_penalty: f64 = open
        .iter()
        .map(|i| match i.severity {
            Severity::Critical => 35.0,
            Severity::Warning => 15.0,
            Severity::Info => 5.0,
        })
        .sum::<f64>()
        .min(60.0);
    add(
        "open_incidents",
        open_penalty,
        open.iter()
            .map(|i| i.title.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    );
    let resolved = incidents.len() - open.len();
    add(
        "past_incidents",
        (resolved as f64 * 5.0).min(15.0),
        format!("{resolved} resolved incident(s)"),
    );
    if s.nonfinite_loss {
        add(
            "nonfinite_loss",
            25.0,
            "the loss was NaN or infinite".into(),
        );
    }
    if s.stalled {
        add("stalled", 20.0, "the step is not advancing".into());
    }
    if s.throughput_degraded {
        add(
            "throughput",
            10.0,
            "throughput is below its usual level".into(),
        );
    }
    if s.plateau {
        add("plateau", 5.0, "the loss stopped improving".into());
    }
    add(
        "minor_anomalies",
        (s.minor_findings as f64).min(10.0),
        format!("{} minor anomalies", s.minor_findings),
    );
    if let Some(status) = &s.ended_badly {
        add("ended", 30.0, format!("the run ended {status}"));
    }
    let total: f64 = items.iter().map(|i| i.penalty).sum();
    Health {
        score: (100.0 - total).clamp(0.0, 100.0),
        breakdown: items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_scores_100_and_penalties_add_up() {
        assert_eq!(score(&[], &HealthSignals::default()).score, 100.0);
        let h = score(
            &[],
            &HealthSignals {
                nonfinite_loss: true,
                stalled: true,
                minor_findings: 50,
                ..Default::default()
            },
        );
        assert_eq!(h.score, 100.0 - 25.0 - 20.0 - 10.0);
        assert_eq!(h.breakdown.len(), 3);
    }
}
