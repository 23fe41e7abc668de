//! The alert lifecycle: conditions in, alerts and due notifications out.
//!
//! Each evaluation hands [`Engine::apply`] the conditions one rule found
//! true now. A new condition is `pending`; one held for the rule's `for`
//! duration is `firing`; a firing alert whose condition is gone is
//! `resolved`. [`Engine::notifications`] then says what to send: a firing
//! alert once per repeat interval, a resolve once, grouped by the
//! configured labels into one message per channel, minus what a silence or
//! a greater alert on the same run mutes.

use std::collections::{BTreeMap, BTreeSet};

pub use loupe_model::alerting::{Alert, AlertState};
use loupe_model::{IncidentState, RunTab, Severity, label, project_url, run_tab_url, run_url};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::glob;
use crate::rules::{Rule, RuleKind, Settings};
use crate::silence::{Silence, SilenceRules};

/// Something a rule found true now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Condition {
    /// What identifies it (`run`, `series`, `host`, `incident`, …); the
    /// same labels at the next evaluation are the same alert.
    pub labels: BTreeMap<String, String>,
    pub value: Option<f64>,
    pub summary: String,
    /// Overrides the rule's severity (burn-rate tiers, incidents).
    pub severity: Option<Severity>,
    /// The series behind it, for a chart.
    pub series: Option<String>,
}

/// A link to the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    pub url: String,
}

/// An alert as a notification carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: String,
    pub alert: String,
    pub state: AlertState,
    pub severity: Severity,
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    #[serde(with = "loupe_model::nonfinite::opt", default)]
    pub value: Option<f64>,
    pub started: f64,
    pub resolved: Option<f64>,
    pub links: Vec<Link>,
    pub series: Option<String>,
}

/// A series to draw in a notification (e-mail renders it as a PNG).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub title: String,
    /// Unix seconds.
    pub times: Vec<f64>,
    #[serde(with = "loupe_model::nonfinite::vec")]
    pub values: Vec<f64>,
    pub threshold: Option<f64>,
}

/// One message for one channel: a group of alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub channel: String,
    /// The labels the alerts were grouped by.
    pub group: BTreeMap<String, String>,
    /// `firing` when any alert in it fires, else `resolved`.
    pub status: String,
    pub title: String,
    pub alerts: Vec<AlertView>,
    pub created: f64,
    #[serde(default)]
    pub chart: Option<Chart>,
}

impl Notification {
    /// Plain text: the title and one line per alert.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.title);
        for a in &self.alerts {
            out.push_str(&format!(
                "\n[{}] {} ({}): {}",
                a.state.as_str().to_uppercase(),
                a.alert,
                a.severity.as_str(),
                a.summary
            ));
            for l in &a.links {
                out.push_str(&format!("\n  {}: {}", l.name, l.url));
            }
        }
        out.push('\n');
        out
    }
}

/// What alerting knows of an incident diagnosis reported: enough to match
/// incident rules and label their alerts, and no more (alerting does not
/// depend on the diagnoser).
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentSignal {
    pub id: String,
    pub state: IncidentState,
    pub severity: Severity,
    /// The leading cause's kind (`learning_rate_too_high`, …).
    pub kind: String,
    pub title: String,
    pub project: Option<String>,
    /// The incident's run, or the rank behind a job's incident.
    pub run: Option<String>,
    pub group: Option<String>,
    pub host: Option<String>,
    /// `(run, series)` pairs diagnosis found NaN or ±Inf in (its
    /// non-finite anomalies), for rules that look for NaN.
    pub nonfinite: Vec<(String, String)>,
}

/// Holds the rules, the alerts and the silences; never does IO.
#[derive(Debug, Default)]
pub struct Engine {
    settings: Settings,
    rules: Vec<Rule>,
    channels: Vec<String>,
    alerts: BTreeMap<String, Alert>,
    silences: Vec<Silence>,
    /// Open incidents by id, as diagnosis reported them.
    incidents: BTreeMap<String, IncidentSignal>,
    dirty: bool,
    seq: u64,
}

/// A channel and the grouping labels' values: one notification each.
type GroupKey = (String, Vec<(String, String)>);

/// Resolved alerts stay listed this long (seconds).
const RESOLVED_KEPT_S: f64 = 3600.0;

fn fingerprint(rule: &str, labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    for (k, v) in labels {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Fills `{label}` and `{value}` in a rule's summary template.
fn render(template: &str, labels: &BTreeMap<String, String>, value: Option<f64>) -> String {
    let mut out = template.to_string();
    if let Some(v) = value {
        out = out.replace("{value}", &format!("{v}"));
    }
    for (k, v) in labels {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

impl Engine {
    pub fn new(settings: Settings, rules: Vec<Rule>, channels: Vec<String>) -> Self {
        Self {
            settings,
            rules,
            channels,
            ..Default::default()
        }
    }

    /// Takes a new configuration; alerts of rules that are gone are dropped.
    pub fn reconfigure(&mut self, settings: Settings, rules: Vec<Rule>, channels: Vec<String>) {
        let names: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        self.alerts.retain(|_, a| names.contains(a.rule.as_str()));
        self.settings = settings;
        self.rules = rules;
        self.channels = channels;
        self.dirty = true;
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    /// Alerts and silences from the last run (the persisted state).
    pub fn restore(&mut self, alerts: Vec<Alert>, silences: Vec<Silence>) {
        let names: BTreeSet<&str> = self.rules.iter().map(|r| r.name.as_str()).collect();
        for a in alerts {
            if names.contains(a.rule.as_str()) {
                self.alerts.insert(a.id.clone(), a);
            }
        }
        self.silences = silences;
    }

    pub fn add_silence(&mut self, s: Silence) {
        self.silences.retain(|o| o.id != s.id);
        self.silences.push(s);
        self.dirty = true;
    }

    pub fn remove_silence(&mut self, id: &str) -> bool {
        let before = self.silences.len();
        self.silences.retain(|s| s.id != id);
        self.dirty = true;
        self.silences.len() != before
    }

    /// Whether alerts changed since the last call (time to persist them).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Diagnosis's changed incidents: open ones are kept, resolved ones
    /// dropped; incident rules see them at the next evaluation.
    pub fn observe_incidents(&mut self, changed: &[IncidentSignal]) {
        for inc in changed {
            if inc.state == IncidentState::Open {
                self.incidents.insert(inc.id.clone(), inc.clone());
            } else {
                self.incidents.remove(&inc.id);
            }
        }
    }

    /// The conditions an incident rule finds among the open incidents.
    pub fn incident_conditions(&self, rule: &Rule) -> Vec<Condition> {
        let RuleKind::Incident {
            min_severity,
            causes,
            project,
            run,
            group,
        } = &rule.kind
        else {
            return Vec::new();
        };
        let m = |pat: &Option<String>, v: &Option<String>| match pat {
            None => true,
            Some(p) => v.as_deref().is_some_and(|v| glob::matches(p, v)),
        };
        let mut out = Vec::new();
        for inc in self.incidents.values() {
            if inc.severity < *min_severity
                || (!causes.is_empty() && !causes.contains(&inc.kind))
                || !m(project, &inc.project)
                || !m(run, &inc.run)
                || !m(group, &inc.group)
            {
                continue;
            }
            let mut labels = BTreeMap::from([
                ("incident".to_string(), inc.id.clone()),
                ("kind".to_string(), inc.kind.clone()),
            ]);
            for (k, v) in [
                (label::RUN, &inc.run),
                (label::PROJECT, &inc.project),
                (label::GROUP, &inc.group),
                (label::HOST, &inc.host),
            ] {
                if let Some(v) = v {
                    labels.insert(k.into(), v.clone());
                }
            }
            labels.insert("title".into(), inc.title.clone());
            out.push(Condition {
                labels,
                value: None,
                summary: inc.title.clone(),
                severity: rule.severity.or(Some(inc.severity)),
                series: None,
            });
        }
        out
    }

    /// What diagnosis adds to a rule that looks for NaN (or ±Inf) in
    /// `series`: an open incident with a non-finite anomaly on a matching
    /// series of a run. A loss that went NaN once and then came back to
    /// numbers (or whose NaN points were never the last) still fires while
    /// diagnosis keeps the incident open.
    pub fn nonfinite_conditions(
        &self,
        series: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Condition> {
        let mut out: Vec<Condition> = Vec::new();
        for inc in self.incidents.values() {
            for (run, name) in &inc.nonfinite {
                let wanted = glob::matches(series, name)
                    && labels.iter().all(|(k, pat)| {
                        let v = match k.as_str() {
                            label::RUN => Some(run),
                            label::PROJECT => inc.project.as_ref(),
                            label::GROUP => inc.group.as_ref(),
                            _ => None,
                        };
                        v.is_some_and(|v| glob::matches(pat, v))
                    });
                let labels = BTreeMap::from([
                    (label::RUN.to_string(), run.clone()),
                    ("series".to_string(), name.clone()),
                ]);
                if wanted && !out.iter().any(|c| c.labels == labels) {
                    out.push(Condition {
                        labels,
                        value: None,
                        summary: format!("{name} is NaN in run {run} (diagnosis: {})", inc.title),
                        severity: None,
                        series: None,
                    });
                }
            }
        }
        out
    }

    /// Takes the conditions `rule` found true at `now` and moves its
    /// alerts along; returns the alerts whose state changed.
    pub fn apply(&mut self, rule: &str, conditions: Vec<Condition>, now: f64) -> Vec<Alert> {
        let Some(rule) = self.rules.iter().find(|r| r.name == rule).cloned() else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        let mut seen = BTreeSet::new();
        let hold = rule.for_.as_secs_f64();
        for c in conditions {
            // The title label only fills summaries; it is not identity.
            let mut ident = c.labels.clone();
            ident.remove("title");
            let id = fingerprint(&rule.name, &ident);
            seen.insert(id.clone());
            let severity = c.severity.or(rule.severity).unwrap_or(Severity::Warning);
            let summary = match &rule.summary {
                Some(t) => render(t, &c.labels, c.value),
                None => c.summary.clone(),
            };
            let mut labels = ident;
            labels.insert("alertname".into(), rule.name.clone());
            labels.insert("severity".into(), severity.as_str().into());
            match self.alerts.get_mut(&id) {
                Some(a) if a.state != AlertState::Resolved => {
                    a.value = c.value;
                    a.summary = summary;
                    a.severity = severity;
                    a.labels = labels;
                    a.updated = now;
                    if a.state == AlertState::Pending && now - a.active_since >= hold {
                        a.state = AlertState::Firing;
                        a.fired_at = Some(now);
                        self.dirty = true;
                        changed.push(a.clone());
                    }
                }
                _ => {
                    let firing = hold <= 0.0;
                    let a = Alert {
                        id: id.clone(),
                        rule: rule.name.clone(),
                        severity,
                        state: if firing {
                            AlertState::Firing
                        } else {
                            AlertState::Pending
                        },
                        labels,
                        summary,
                        value: c.value,
                        series: c.series.clone(),
                        active_since: now,
                        fired_at: firing.then_some(now),
                        resolved_at: None,
                        updated: now,
                        last_sent: None,
                        sent_firing: false,
                        sent_resolved: false,
                        silenced_by: None,
                        inhibited_by: None,
                        sticky: rule.sticky(),
                    };
                    self.dirty = true;
                    changed.push(a.clone());
                    self.alerts.insert(id, a);
                }
            }
        }
        let gone: Vec<String> = self
            .alerts
            .values()
            .filter(|a| {
                a.rule == rule.name && a.state != AlertState::Resolved && !seen.contains(&a.id)
            })
            .map(|a| a.id.clone())
            .collect();
        for id in gone {
            let Some(a) = self.alerts.get_mut(&id) else {
                continue;
            };
            self.dirty = true;
            if a.state == AlertState::Pending || a.sticky {
                // A pending alert never fired: nothing to resolve. A
                // run-state alert aged out of the look-back window.
                self.alerts.remove(&id);
                continue;
            }
            a.state = AlertState::Resolved;
            a.resolved_at = Some(now);
            a.updated = now;
            a.summary = format!("resolved: {}", a.summary.trim_start_matches("resolved: "));
            changed.push(a.clone());
        }
        changed
    }

    /// Runs every incident rule over the open incidents.
    pub fn evaluate_incident_rules(&mut self, now: f64) -> Vec<Alert> {
        let rules: Vec<Rule> = self
            .rules
            .iter()
            .filter(|r| matches!(r.kind, RuleKind::Incident { .. }))
            .cloned()
            .collect();
        let mut changed = Vec::new();
        for r in rules {
            let conds = self.incident_conditions(&r);
            changed.extend(self.apply(&r.name, conds, now));
        }
        changed
    }

    /// Marks silenced and inhibited alerts for `now`.
    fn mute(&mut self, now: f64) {
        let firing: Vec<(String, Severity, Option<String>)> = self
            .alerts
            .values()
            .filter(|a| a.state == AlertState::Firing)
            .map(|a| (a.id.clone(), a.severity, a.labels.get(label::RUN).cloned()))
            .collect();
        for a in self.alerts.values_mut() {
            let silenced = self
                .silences
                .iter()
                .find(|s| s.active(now) && s.matches(&a.labels))
                .map(|s| s.id.clone());
            let run = a.labels.get(label::RUN);
            let inhibited = run.and_then(|run| {
                firing
                    .iter()
                    .filter(|(id, sev, r)| {
                        *id != a.id && r.as_ref() == Some(run) && *sev > a.severity
                    })
                    .max_by_key(|(_, sev, _)| *sev)
                    .map(|(id, _, _)| id.clone())
            });
            if a.silenced_by != silenced || a.inhibited_by != inhibited {
                a.silenced_by = silenced;
                a.inhibited_by = inhibited;
                self.dirty = true;
            }
        }
    }

    fn repeat_for(&self, rule: &str) -> f64 {
        self.rules
            .iter()
            .find(|r| r.name == rule)
            .and_then(|r| r.repeat_interval)
            .unwrap_or(self.settings.repeat_interval)
            .as_secs_f64()
    }

    fn channels_for(&self, rule: &str) -> Vec<String> {
        match self.rules.iter().find(|r| r.name == rule) {
            Some(r) if !r.channels.is_empty() => r.channels.clone(),
            _ => self.channels.clone(),
        }
    }

    /// Links into the UI (built by `loupe_model`'s one URL rule): the run,
    /// its diagnosis tab for an incident, and the project's runs table.
    fn links(&self, a: &Alert) -> Vec<Link> {
        let base = &self.settings.base_url;
        let mut out = Vec::new();
        let run = a.labels.get(label::RUN);
        if let Some(run) = run {
            out.push(Link {
                name: label::RUN.into(),
                url: run_url(base, run),
            });
        }
        if let (Some(run), Some(_)) = (run, a.labels.get("incident")) {
            out.push(Link {
                name: "incident".into(),
                url: run_tab_url(base, run, RunTab::Diagnosis),
            });
        }
        if let Some(p) = a.labels.get(label::PROJECT) {
            out.push(Link {
                name: label::PROJECT.into(),
                url: project_url(base, p),
            });
        }
        out
    }

    /// What is due to be sent at `now`, grouped into one notification per
    /// channel and group; marks it sent (the caller queues it durably
    /// before anything else happens). Also forgets long-resolved alerts.
    pub fn notifications(&mut self, now: f64) -> Vec<Notification> {
        self.mute(now);
        let mut due: Vec<String> = Vec::new();
        for a in self.alerts.values() {
            let muted = a.silenced_by.is_some() || a.inhibited_by.is_some();
            let is_due = match a.state {
                AlertState::Firing => {
                    !muted
                        && match a.last_sent {
                            None => true,
                            Some(t) => !a.sticky && now - t >= self.repeat_for(&a.rule),
                        }
                }
                // A resolve goes to whoever heard the alert, muted or not.
                AlertState::Resolved => a.sent_firing && !a.sent_resolved,
                AlertState::Pending => false,
            };
            if is_due {
                due.push(a.id.clone());
            }
        }
        let mut groups: BTreeMap<GroupKey, Vec<AlertView>> = BTreeMap::new();
        for id in &due {
            let Some(a) = self.alerts.get(id) else {
                continue;
            };
            let key: Vec<(String, String)> = self
                .settings
                .group_by
                .iter()
                .filter_map(|l| a.labels.get(l).map(|v| (l.clone(), v.clone())))
                .collect();
            let view = AlertView {
                id: a.id.clone(),
                alert: a.rule.clone(),
                state: a.state,
                severity: a.severity,
                labels: a.labels.clone(),
                summary: a.summary.clone(),
                value: a.value,
                started: a.active_since,
                resolved: a.resolved_at,
                links: self.links(a),
                series: a.series.clone(),
            };
            for ch in self.channels_for(&a.rule) {
                groups
                    .entry((ch, key.clone()))
                    .or_default()
                    .push(view.clone());
            }
        }
        for id in &due {
            if let Some(a) = self.alerts.get_mut(id) {
                match a.state {
                    AlertState::Firing => {
                        a.sent_firing = true;
                        a.last_sent = Some(now);
                    }
                    _ => a.sent_resolved = true,
                }
                self.dirty = true;
            }
        }
        let before = self.alerts.len();
        self.alerts.retain(|_, a| {
            !(a.state == AlertState::Resolved
                && a.resolved_at.is_some_and(|t| now - t > RESOLVED_KEPT_S))
        });
        if self.alerts.len() != before {
            self.dirty = true;
        }
        let mut out = Vec::new();
        for ((channel, key), alerts) in groups {
            self.seq += 1;
            let firing = alerts
                .iter()
                .filter(|a| a.state == AlertState::Firing)
                .count();
            let status = if firing > 0 { "firing" } else { "resolved" };
            let scope: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let scope = if scope.is_empty() {
                String::new()
            } else {
                format!(" [{}]", scope.join(", "))
            };
            let title = if alerts.len() == 1 {
                format!(
                    "[{}] {}{scope}: {}",
                    status.to_uppercase(),
                    alerts[0].alert,
                    alerts[0].summary
                )
            } else {
                format!(
                    "[{}] {} alerts{scope} ({firing} firing, {} resolved)",
                    status.to_uppercase(),
                    alerts.len(),
                    alerts.len() - firing
                )
            };
            out.push(Notification {
                id: format!("{:x}-{:x}", (now * 1e6) as u64, self.seq),
                channel,
                group: key.into_iter().collect(),
                status: status.into(),
                title,
                alerts,
                created: now,
                chart: None,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rules::RuleSpec;

    fn rule(name: &str, kind: &str, extra: impl FnOnce(&mut RuleSpec)) -> Rule {
        let mut s = RuleSpec {
            name: name.into(),
            kind: kind.into(),
            ..Default::default()
        };
        extra(&mut s);
        Rule::compile(&s).unwrap()
    }

    fn cond(run: &str, v: f64) -> Condition {
        Condition {
            labels: BTreeMap::from([
                ("run".into(), run.into()),
                ("series".into(), "gpu/temp".into()),
            ]),
            value: Some(v),
            summary: format!("temp {v}"),
            ..Default::default()
        }
    }

    fn engine(rules: Vec<Rule>) -> Engine {
        Engine::new(Settings::default(), rules, vec!["hook".into()])
    }

    fn hot() -> Rule {
        rule("hot", "threshold", |s| {
            s.expr = Some("gpu/temp > 85".into());
            s.for_ = Some("5m".into());
            s.severity = Some("warning".into());
        })
    }

    #[test]
    fn pending_then_firing_then_resolved_with_one_message_each() {
        let mut e = engine(vec![hot()]);
        let ch = e.apply("hot", vec![cond("r1", 90.0)], 0.0);
        assert_eq!(ch[0].state, AlertState::Pending);
        assert!(e.notifications(0.0).is_empty());
        e.apply("hot", vec![cond("r1", 91.0)], 200.0);
        assert!(e.notifications(200.0).is_empty(), "not yet 5 minutes");
        let ch = e.apply("hot", vec![cond("r1", 92.0)], 300.0);
        assert_eq!(ch[0].state, AlertState::Firing);
        let n = e.notifications(300.0);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status, "firing");
        assert_eq!(n[0].alerts[0].value, Some(92.0));
        assert_eq!(n[0].alerts[0].links[0].url, "http://127.0.0.1:7070/r/r1");
        // Dedup: still firing, nothing new until the repeat interval.
        e.apply("hot", vec![cond("r1", 93.0)], 310.0);
        assert!(e.notifications(310.0).is_empty());
        e.apply("hot", vec![cond("r1", 93.0)], 300.0 + 4.0 * 3600.0);
        assert_eq!(
            e.notifications(300.0 + 4.0 * 3600.0).len(),
            1,
            "re-sent after 4 h"
        );
        // Back to normal: one resolve.
        let t = 300.0 + 4.0 * 3600.0 + 5.0;
        let ch = e.apply("hot", vec![], t);
        assert_eq!(ch[0].state, AlertState::Resolved);
        let n = e.notifications(t);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status, "resolved");
        assert!(n[0].alerts[0].summary.starts_with("resolved: "));
        assert!(e.notifications(t + 1.0).is_empty());
        // Forgotten an hour later.
        e.notifications(t + 3601.0);
        assert_eq!(e.alerts().count(), 0);
    }

    #[test]
    fn a_pending_alert_that_clears_sends_nothing() {
        let mut e = engine(vec![hot()]);
        e.apply("hot", vec![cond("r1", 90.0)], 0.0);
        e.apply("hot", vec![], 10.0);
        assert!(e.notifications(10.0).is_empty());
        assert_eq!(e.alerts().count(), 0);
    }

    #[test]
    fn groups_by_run_into_one_message() {
        let r = rule("nan", "threshold", |s| s.expr = Some("*loss is NaN".into()));
        let mut e = engine(vec![r]);
        let c = |run: &str, series: &str| Condition {
            labels: BTreeMap::from([("run".into(), run.into()), ("series".into(), series.into())]),
            value: Some(f64::NAN),
            summary: format!("{series} is NaN"),
            ..Default::default()
        };
        e.apply(
            "nan",
            vec![
                c("a", "train/loss"),
                c("a", "val/loss"),
                c("b", "train/loss"),
            ],
            0.0,
        );
        let n = e.notifications(0.0);
        assert_eq!(n.len(), 2, "{n:#?}");
        let a = n
            .iter()
            .find(|n| n.group.get("run").map(String::as_str) == Some("a"))
            .unwrap();
        assert_eq!(a.alerts.len(), 2);
        assert!(a.title.contains("2 alerts [run=a]"), "{}", a.title);
    }

    #[test]
    fn silences_hold_back_delivery_but_keep_the_record() {
        let mut e = engine(vec![hot()]);
        e.add_silence(Silence {
            id: "s1".into(),
            matchers: BTreeMap::from([("run".into(), "r1".into())]),
            starts: 0.0,
            ends: 1000.0,
            comment: "maintenance".into(),
            created_by: None,
        });
        e.apply("hot", vec![cond("r1", 90.0), cond("r2", 95.0)], 0.0);
        e.apply("hot", vec![cond("r1", 90.0), cond("r2", 95.0)], 300.0);
        let n = e.notifications(300.0);
        assert_eq!(n.len(), 1, "only r2 is sent");
        assert_eq!(n[0].group["run"], "r2");
        let r1 = e.alerts().find(|a| a.labels["run"] == "r1").unwrap();
        assert_eq!(r1.state, AlertState::Firing);
        assert_eq!(r1.silenced_by.as_deref(), Some("s1"));
        // The silence ends: r1 is sent then.
        e.apply("hot", vec![cond("r1", 90.0), cond("r2", 95.0)], 1000.0);
        let n = e.notifications(1000.0);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].group["run"], "r1");
        assert!(e.remove_silence("s1") && !e.remove_silence("s1"));
    }

    fn incident(id: &str, kind: &str, run: &str, sev: Severity, open: bool) -> IncidentSignal {
        IncidentSignal {
            id: id.into(),
            state: if open {
                IncidentState::Open
            } else {
                IncidentState::Resolved
            },
            severity: sev,
            kind: kind.into(),
            title: format!("{kind} in {run}"),
            project: Some("p".into()),
            run: Some(run.into()),
            group: None,
            host: None,
            nonfinite: Vec::new(),
        }
    }

    #[test]
    fn a_crashed_run_inhibits_its_stall_alert() {
        let rules = crate::rules::builtin_rules(Default::default());
        let mut e = engine(rules);
        e.observe_incidents(&[incident("i1", "soft_hang", "r1", Severity::Warning, true)]);
        e.evaluate_incident_rules(0.0);
        let crashed = Condition {
            labels: BTreeMap::from([("run".into(), "r1".into())]),
            summary: "run r1 crashed".into(),
            ..Default::default()
        };
        e.apply("builtin:crashed_run", vec![crashed], 0.0);
        let n = e.notifications(0.0);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].alerts.len(), 1);
        assert_eq!(n[0].alerts[0].alert, "builtin:crashed_run");
        let stall = e
            .alerts()
            .find(|a| a.rule == "builtin:stalled_run")
            .unwrap();
        assert!(stall.inhibited_by.is_some());
        assert_eq!(stall.state, AlertState::Firing, "the record is kept");
        // Run-state alerts do not repeat, and age out silently.
        assert!(e.notifications(5.0 * 3600.0).is_empty());
        e.apply("builtin:crashed_run", vec![], 90000.0);
        assert!(
            e.notifications(90000.0)
                .iter()
                .all(|n| n.alerts.iter().all(|a| a.alert != "builtin:crashed_run"))
        );
    }

    #[test]
    fn a_nan_loss_that_diagnosis_reports_fires_the_nan_rule() {
        let rules = crate::rules::builtin_rules(Default::default());
        let nan = rules
            .iter()
            .find(|r| r.name == "builtin:nan_loss")
            .unwrap()
            .clone();
        let RuleKind::Threshold { series, labels, .. } = &nan.kind else {
            panic!("{nan:?}");
        };
        let mut e = engine(rules.clone());
        let mut inc = incident("i1", "divergence", "r3", Severity::Critical, true);
        inc.nonfinite = vec![
            ("r3".into(), "train/loss".into()),
            ("r3".into(), "grad_norm".into()),
        ];
        e.observe_incidents(&[inc.clone()]);
        let conds = e.nonfinite_conditions(series, labels);
        assert_eq!(conds.len(), 1, "only the loss: {conds:?}");
        assert_eq!(conds[0].labels["run"], "r3");
        assert_eq!(conds[0].labels["series"], "train/loss");
        e.apply("builtin:nan_loss", conds, 0.0);
        let n = e.notifications(0.0);
        assert_eq!(n[0].alerts[0].alert, "builtin:nan_loss");
        // Resolved incidents report nothing.
        inc.state = IncidentState::Resolved;
        e.observe_incidents(&[inc]);
        assert!(e.nonfinite_conditions(series, labels).is_empty());
    }

    #[test]
    fn an_incident_alert_links_to_its_run_diagnosis_and_project() {
        let r = rule("any", "incident", |_| {});
        let mut e = engine(vec![r]);
        e.observe_incidents(&[incident(
            "i9",
            "cuda_out_of_memory",
            "job.r5",
            Severity::Critical,
            true,
        )]);
        e.evaluate_incident_rules(0.0);
        let n = e.notifications(0.0);
        let urls: Vec<&str> = n[0].alerts[0]
            .links
            .iter()
            .map(|l| l.url.as_str())
            .collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:7070/r/job.r5",
                "http://127.0.0.1:7070/r/job.r5?tab=diagnosis",
                "http://127.0.0.1:7070/p/p"
            ]
        );
    }

    #[test]
    fn incident_rules_match_severity_cause_and_project() {
        let r = rule("lr", "incident", |s| {
            s.min_severity = Some("warning".into());
            s.causes = Some(vec!["learning_rate_too_high".into()]);
            s.project = Some("p*".into());
        });
        let mut e = engine(vec![r]);
        e.observe_incidents(&[
            incident(
                "i1",
                "learning_rate_too_high",
                "r1",
                Severity::Critical,
                true,
            ),
            incident("i2", "learning_rate_too_high", "r2", Severity::Info, true),
            incident("i3", "data_stall", "r3", Severity::Critical, true),
        ]);
        let ch = e.evaluate_incident_rules(0.0);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].labels["incident"], "i1");
        assert_eq!(
            ch[0].severity,
            Severity::Critical,
            "the incident's severity"
        );
        assert_eq!(e.notifications(0.0).len(), 1);
        e.observe_incidents(&[incident(
            "i1",
            "learning_rate_too_high",
            "r1",
            Severity::Critical,
            false,
        )]);
        let ch = e.evaluate_incident_rules(10.0);
        assert_eq!(ch[0].state, AlertState::Resolved);
        assert_eq!(e.notifications(10.0)[0].status, "resolved");
    }

    #[test]
    fn rules_pick_their_channels_and_summaries() {
        let mut r = hot();
        r.channels = vec!["mail".into()];
        r.for_ = Duration::ZERO;
        r.summary = Some("{series} at {value} on {run}".into());
        let mut e = Engine::new(
            Settings::default(),
            vec![r],
            vec!["hook".into(), "mail".into()],
        );
        e.apply("hot", vec![cond("r9", 99.0)], 0.0);
        let n = e.notifications(0.0);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].channel, "mail");
        assert_eq!(n[0].alerts[0].summary, "gpu/temp at 99 on r9");
        assert!(
            n[0].text()
                .contains("[FIRING] hot (warning): gpu/temp at 99 on r9")
        );
    }
}
