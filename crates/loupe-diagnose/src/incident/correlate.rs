//! Findings → incidents.

use std::collections::VecDeque;

use hashbrown::HashMap;

use super::causes::{RunContext, rank_causes};
use super::{Incident, IncidentState, anomalies_of};
use crate::Severity;
use crate::config::IncidentConfig;
use crate::finding::{Finding, Scope};

/// What findings are correlated within: a job (all ranks of a group), a
/// run, or a source outside runs (a host or a service).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Group(Option<String>, String),
    Run(String),
    Source(Option<String>, Option<String>),
}

impl Key {
    fn of(scope: &Scope) -> Key {
        match (&scope.group, &scope.run) {
            (Some(g), _) => Key::Group(scope.project.clone(), g.clone()),
            (None, Some(r)) => Key::Run(r.clone()),
            (None, None) => Key::Source(scope.host.clone(), scope.service.clone()),
        }
    }
}

struct Open {
    incident: Incident,
    findings: Vec<Finding>,
    /// Findings beyond `max_evidence` that were only counted.
    dropped: u64,
    /// The correlator's clock at the latest evidence.
    last_evidence: f64,
    dirty: bool,
}

/// Keeps the open incidents and the recent minor findings; hands out what
/// changed.
pub struct Correlator {
    cfg: IncidentConfig,
    open: HashMap<Key, Open>,
    /// Recent minor findings per key, for the lookback when an incident opens.
    minor: HashMap<Key, VecDeque<(f64, Finding)>>,
    changed: Vec<Incident>,
    next_id: u64,
    id_prefix: String,
    contexts: HashMap<String, RunContext>,
}

/// Minor findings kept per key for the lookback.
const MINOR_KEPT: usize = 64;

impl Correlator {
    /// `id_prefix` makes incident ids unique across restarts (the server
    /// passes its start time).
    pub fn new(cfg: IncidentConfig, id_prefix: &str) -> Self {
        Correlator {
            cfg,
            open: HashMap::new(),
            minor: HashMap::new(),
            changed: Vec::new(),
            next_id: 1,
            id_prefix: id_prefix.to_string(),
            contexts: HashMap::new(),
        }
    }

    pub fn set_context(&mut self, run: &str, ctx: RunContext) {
        self.contexts.insert(run.to_string(), ctx);
    }

    pub fn forget_run(&mut self, run: &str) {
        self.contexts.remove(run);
        self.minor.remove(&Key::Run(run.to_string()));
    }

    /// Takes a finding seen at `now` (the diagnoser's clock).
    pub fn add(&mut self, finding: Finding, now: f64) {
        let key = Key::of(&finding.scope);
        let join_window = self.cfg.join_window_s;
        // A repeat of something the open incident already holds (a leak
        // still growing, a straggler still slow) belongs to it however long
        // it has lasted; anything else joins only within the window.
        let major = finding.severity >= Severity::Warning;
        if let Some(open) = self.open.get_mut(&key)
            && (now - open.last_evidence <= join_window
                || major
                    && open.findings.iter().any(|g| {
                        g.kind == finding.kind
                            && g.series == finding.series
                            && g.scope.run == finding.scope.run
                    }))
        {
            // Minor findings are evidence, not activity: they never keep an
            // incident open on their own.
            if major {
                open.last_evidence = now;
            }
            push_bounded(open, finding, self.cfg.max_evidence);
            open.dirty = true;
            return;
        }
        if finding.severity < Severity::Warning {
            let q = self.minor.entry(key).or_default();
            q.push_back((now, finding));
            while q.len() > MINOR_KEPT {
                q.pop_front();
            }
            return;
        }
        // A new incident (an old one past the join window is resolved first).
        if let Some(old) = self.open.remove(&key) {
            self.resolve(old, now);
        }
        let mut findings = Vec::new();
        if let Some(q) = self.minor.get_mut(&key) {
            let since = now - self.cfg.lookback_s;
            findings.extend(q.drain(..).filter(|(t, _)| *t >= since).map(|(_, f)| f));
        }
        findings.push(finding);
        let id = format!("inc-{}-{}", self.id_prefix, self.next_id);
        self.next_id += 1;
        let scope = findings.last().map(|f| f.scope.clone()).unwrap_or_default();
        let incident = Incident {
            id,
            project: scope.project.clone(),
            run: match &key {
                Key::Run(r) => Some(r.clone()),
                _ => None,
            },
            group: scope.group.clone(),
            host: scope.host.clone(),
            service: scope.service.clone(),
            state: IncidentState::Open,
            severity: Severity::Warning,
            kind: String::new(),
            title: String::new(),
            opened: now,
            updated: now,
            resolved: None,
            start_time: 0.0,
            end_time: None,
            start_step: None,
            end_step: None,
            causes: Vec::new(),
            anomalies: Vec::new(),
            runs: Vec::new(),
            feedback: None,
        };
        let mut open = Open {
            incident,
            findings: Vec::new(),
            dropped: 0,
            last_evidence: now,
            dirty: true,
        };
        for f in findings {
            push_bounded(&mut open, f, self.cfg.max_evidence);
        }
        self.open.insert(key, open);
    }

    /// Resolves incidents quiet for `resolve_after_s`, and publishes every
    /// incident that changed since the last call.
    pub fn tick(&mut self, now: f64) -> Vec<Incident> {
        let quiet: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, o)| now - o.last_evidence >= self.cfg.resolve_after_s)
            .map(|(k, _)| k.clone())
            .collect();
        for k in quiet {
            if let Some(o) = self.open.remove(&k) {
                self.resolve(o, now);
            }
        }
        let mut dirty: Vec<(f64, Key)> = self
            .open
            .iter()
            .filter(|(_, o)| o.dirty)
            .map(|(k, o)| (o.incident.opened, k.clone()))
            .collect();
        dirty.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, k) in dirty {
            if let Some(o) = self.open.get_mut(&k) {
                o.dirty = false;
                o.incident.updated = now;
                refresh(o, &self.contexts);
                self.changed.push(o.incident.clone());
            }
        }
        std::mem::take(&mut self.changed)
    }

    /// Resolves everything (end of a replay).
    pub fn close_all(&mut self, now: f64) -> Vec<Incident> {
        let keys: Vec<Key> = self.open.keys().cloned().collect();
        for k in keys {
            if let Some(o) = self.open.remove(&k) {
                self.resolve(o, now);
            }
        }
        std::mem::take(&mut self.changed)
    }

    /// Open incidents now (refreshed).
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.open.values().map(|o| &o.incident)
    }

    fn resolve(&mut self, mut o: Open, now: f64) {
        refresh(&mut o, &self.contexts);
        o.incident.state = IncidentState::Resolved;
        o.incident.resolved = Some(now);
        o.incident.updated = now;
        self.changed.push(o.incident);
    }
}

fn push_bounded(open: &mut Open, f: Finding, max: usize) {
    if open.findings.len() < max.max(4) {
        open.findings.push(f);
        return;
    }
    // Full: a finding of a kind the incident has no evidence of yet takes
    // the place of the latest member of the largest family (kind and
    // series role), so that 64 ranks' identical shifts cannot crowd out the
    // one outlier that explains them. Others are only counted.
    let family = |g: &Finding| (g.kind, g.role);
    let mut counts: HashMap<(crate::finding::FindingKind, crate::finding::SeriesRole), usize> =
        HashMap::new();
    for g in &open.findings {
        *counts.entry(family(g)).or_default() += 1;
    }
    if !counts.contains_key(&family(&f))
        && let Some((&largest, _)) = counts.iter().max_by_key(|(_, n)| **n)
        && let Some(pos) = open.findings.iter().rposition(|g| family(g) == largest)
    {
        open.findings[pos] = f;
        return;
    }
    open.dropped += 1;
}

/// Recomputes the incident's summary fields and causes from its findings.
fn refresh(o: &mut Open, contexts: &HashMap<String, RunContext>) {
    let inc = &mut o.incident;
    let fs = &o.findings;
    inc.severity = fs
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Warning);
    inc.start_time = fs.iter().map(|f| f.time).fold(f64::INFINITY, f64::min);
    inc.end_time = Some(fs.iter().map(|f| f.time).fold(f64::NEG_INFINITY, f64::max));
    inc.start_step = fs.iter().filter_map(|f| f.step).min();
    inc.end_step = fs.iter().filter_map(|f| f.step).max();
    let mut runs: Vec<String> = fs.iter().filter_map(|f| f.scope.run.clone()).collect();
    runs.sort();
    runs.dedup();
    let mut ctx = RunContext::default();
    for r in &runs {
        if let Some(c) = contexts.get(r) {
            ctx.fp16 |= c.fp16;
        }
    }
    if inc.host.is_none() {
        let mut hosts = fs.iter().filter_map(|f| f.scope.host.as_deref());
        if let Some(h) = hosts.next()
            && fs
                .iter()
                .filter_map(|f| f.scope.host.as_deref())
                .all(|x| x == h)
        {
            inc.host = Some(h.to_string());
        }
    }
    inc.runs = runs;
    inc.causes = rank_causes(fs, &ctx);
    if let Some(top) = inc.causes.first() {
        inc.kind = top.kind.as_str().to_string();
        inc.title = top.title.clone();
    }
    inc.anomalies = anomalies_of(fs);
}
