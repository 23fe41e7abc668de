//! Judging replays: detected, right cause first, clean healthy logs; the
//! per-family × split tables and the targets of issue 12.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Case;
use crate::Severity;
use crate::incident::Incident;

/// What a judge needs of an incident (the API's JSON gives the same).
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The top cause's id (`collective_hang`, …).
    pub kind: String,
    pub title: String,
    pub severity: Severity,
    pub opened: f64,
}

impl From<&Incident> for Seen {
    fn from(i: &Incident) -> Self {
        Seen {
            kind: i.kind.clone(),
            title: i.title.clone(),
            severity: i.severity,
            opened: i.opened,
        }
    }
}

/// "The incident" of a replay, whose top cause is judged: the most severe
/// one, and of those the earliest opened — what a person opening the run
/// sees at the top of its incident list, and the one that ended the run
/// rather than a warning on the way there.
pub fn pick(incidents: &[Seen]) -> Option<&Seen> {
    incidents.iter().min_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.opened.total_cmp(&b.opened))
    })
}

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub family: String,
    pub file: String,
    pub split: String,
    /// The expected cause (`none` for healthy logs).
    pub expected: String,
    pub healthy: bool,
    pub incidents: usize,
    /// The top cause of the picked incident, and its title.
    pub top: Option<(String, String)>,
    /// A failure case with at least one incident.
    pub detected: bool,
    /// A failure case whose picked incident's top cause is accepted.
    pub right: bool,
}

impl Outcome {
    /// A healthy log that stayed clean, or a failure diagnosed right.
    pub fn passed(&self) -> bool {
        if self.healthy {
            self.incidents == 0
        } else {
            self.right
        }
    }
}

pub fn judge(case: &Case, incidents: &[Seen]) -> Outcome {
    let top = pick(incidents).map(|s| (s.kind.clone(), s.title.clone()));
    let healthy = case.healthy();
    let detected = !healthy && !incidents.is_empty();
    let right = detected
        && top
            .as_ref()
            .is_some_and(|(k, _)| case.accepted().any(|a| a == k));
    Outcome {
        family: case.family.clone(),
        file: case.file.clone(),
        split: case.split.clone(),
        expected: case.cause.clone(),
        healthy,
        incidents: incidents.len(),
        top,
        detected,
        right,
    }
}

/// The figures the targets are about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Targets {
    /// Failure cases with at least one incident.
    pub detection: f64,
    /// Failure cases whose top cause is an accepted one.
    pub right_first: f64,
    /// Healthy logs without any incident.
    pub healthy_clean: f64,
}

impl Default for Targets {
    /// Issue 12's: detection ≥ 95%, right cause first ≥ 90%, zero
    /// incidents on healthy logs.
    fn default() -> Self {
        Targets {
            detection: 0.95,
            right_first: 0.90,
            healthy_clean: 1.0,
        }
    }
}

/// Counts over some outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub failures: usize,
    pub detected: usize,
    pub right: usize,
    pub healthy: usize,
    pub clean: usize,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        if o.healthy {
            self.healthy += 1;
            self.clean += usize::from(o.incidents == 0);
        } else {
            self.failures += 1;
            self.detected += usize::from(o.detected);
            self.right += usize::from(o.right);
        }
    }

    pub fn detection(&self) -> Option<f64> {
        ratio(self.detected, self.failures)
    }
    pub fn right_first(&self) -> Option<f64> {
        ratio(self.right, self.failures)
    }
    pub fn healthy_clean(&self) -> Option<f64> {
        ratio(self.clean, self.healthy)
    }
}

fn ratio(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn pct(n: usize, d: usize) -> String {
    match ratio(n, d) {
        Some(r) => format!("{n}/{d} ({:.1}%)", r * 100.0),
        None => "–".into(),
    }
}

pub const SPLITS: [&str; 2] = ["dev", "heldout"];

/// Every outcome of an evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn tally(&self, split: &str) -> Tally {
        let mut t = Tally::default();
        for o in self.outcomes.iter().filter(|o| o.split == split) {
            t.add(o);
        }
        t
    }

    /// The figures under target, one line each (empty when all hold). A
    /// half without failure (or healthy) cases has nothing to fall short.
    pub fn below(&self, targets: &Targets) -> Vec<String> {
        let mut out = Vec::new();
        for split in SPLITS {
            let t = self.tally(split);
            let checks = [
                ("detection", t.detection(), targets.detection),
                ("right cause first", t.right_first(), targets.right_first),
                (
                    "healthy logs without incidents",
                    t.healthy_clean(),
                    targets.healthy_clean,
                ),
            ];
            for (what, got, want) in checks {
                if let Some(g) = got
                    && g < want
                {
                    out.push(format!(
                        "{split}: {what} {:.1}% < {:.1}%",
                        g * 100.0,
                        want * 100.0
                    ));
                }
            }
        }
        out
    }

    /// The per-family × split table, the totals and the misses, in markdown.
    pub fn markdown(&self) -> String {
        let mut fam: BTreeMap<&str, [Tally; 2]> = BTreeMap::new();
        for o in &self.outcomes {
            let i = usize::from(o.split != "dev");
            fam.entry(o.family.as_str()).or_default()[i].add(o);
        }
        let mut s = String::new();
        s.push_str("| family | dev: detected | dev: right cause first | held-out: detected | held-out: right cause first |\n");
        s.push_str("|---|---|---|---|---|\n");
        for (name, t) in fam.iter().filter(|(_, t)| t[0].healthy + t[1].healthy == 0) {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} |",
                pct(t[0].detected, t[0].failures),
                pct(t[0].right, t[0].failures),
                pct(t[1].detected, t[1].failures),
                pct(t[1].right, t[1].failures),
            );
        }
        let (d, h) = (self.tally("dev"), self.tally("heldout"));
        let _ = writeln!(
            s,
            "| **all failures** | **{}** | **{}** | **{}** | **{}** |",
            pct(d.detected, d.failures),
            pct(d.right, d.failures),
            pct(h.detected, h.failures),
            pct(h.right, h.failures),
        );
        s.push_str("\n| healthy family | dev: without incidents | held-out: without incidents |\n");
        s.push_str("|---|---|---|\n");
        for (name, t) in fam.iter().filter(|(_, t)| t[0].healthy + t[1].healthy > 0) {
            let _ = writeln!(
                s,
                "| {name} | {} | {} |",
                pct(t[0].clean, t[0].healthy),
                pct(t[1].clean, t[1].healthy),
            );
        }
        let _ = writeln!(
            s,
            "| **all healthy** | **{}** | **{}** |",
            pct(d.clean, d.healthy),
            pct(h.clean, h.healthy),
        );
        s.push_str(&self.misses_markdown());
        s
    }

    fn misses_markdown(&self) -> String {
        let misses: Vec<&Outcome> = self.outcomes.iter().filter(|o| !o.passed()).collect();
        if misses.is_empty() {
            return "\nNo misses.\n".into();
        }
        let mut s =
            String::from("\n| split | case | expected | first cause found |\n|---|---|---|---|\n");
        for o in misses {
            let got = match (&o.top, o.healthy) {
                (Some((k, t)), true) => format!("{} incident(s), first `{k}`: {t}", o.incidents),
                (Some((k, t)), false) => format!("`{k}`: {t}"),
                (None, _) => "no incident".into(),
            };
            let got = got.replace('|', "\\|");
            let _ = writeln!(
                s,
                "| {} | {}/{} | `{}` | {} |",
                o.split, o.family, o.file, o.expected, got
            );
        }
        s
    }
}
