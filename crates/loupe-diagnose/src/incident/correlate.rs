//! Findings → incidents.

use std::collections::{BTreeMap, VecDeque};

use hashbrown::HashMap;

use super::causes::{RunContext, rank_causes};
use super::{Incident, IncidentState, anomalies_of};
use crate::Severity;
use crate::config::IncidentConfig;
use crate::finding::{Finding, FindingKind, Scope, SeriesRole};

/// What findings are correlated within: a job (all ranks of a group), a
/// run, or a source outside runs (a host or a service).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// The correlator's clock (arrival) at the latest major evidence: what
    /// resolution waits on.
    last_evidence: f64,
    /// Data times of the first and latest major evidence: what joining is
    /// judged on.
    first_data: f64,
    last_data: f64,
    /// Steps of the major evidence, lowest and highest.
    steps: Option<(i64, i64)>,
    dirty: bool,
}

impl Open {
    /// Whether `f` (at data time `t`) belongs to this incident: near its
    /// evidence in data time and in steps, or a repeat of what it already
    /// holds (a leak still growing) before it would have been resolved.
    fn accepts(&self, f: &Finding, t: f64, major: bool, cfg: &IncidentConfig) -> bool {
        let join = cfg.join_window_s;
        let near_time = t >= self.first_data - join && t <= self.last_data + join;
        let near_step = match (f.step, self.steps) {
            (Some(s), Some((lo, hi))) => {
                s >= lo.saturating_sub(cfg.join_steps) && s <= hi.saturating_add(cfg.join_steps)
            }
            _ => true,
        };
        if near_time && near_step {
            return true;
        }
        major
            && t >= self.first_data - join
            && t - self.last_data < cfg.repeat_window_s
            && self
                .findings
                .iter()
                .any(|g| g.kind == f.kind && g.series == f.series && g.scope.run == f.scope.run)
    }

    /// Notes major evidence at data time `t`, arriving at `now`.
    fn extend_span(&mut self, f: &Finding, t: f64, now: f64) {
        self.last_evidence = self.last_evidence.max(now);
        self.first_data = self.first_data.min(t);
        self.last_data = self.last_data.max(t);
        if let Some(s) = f.step {
            self.steps = Some(match self.steps {
                Some((lo, hi)) => (lo.min(s), hi.max(s)),
                None => (s, s),
            });
        }
    }
}

/// Keeps the open incidents and the recent minor findings; hands out what
/// changed.
pub struct Correlator {
    cfg: IncidentConfig,
    /// Open incidents per key: more than one when a bulk upload (or a
    /// replay) brings findings far apart in data time at once.
    /// Ordered by key: incidents published or resolved in the same tick
    /// with equal times come out in the same order for the same input.
    open: BTreeMap<Key, Vec<Open>>,
    /// Recent minor findings per key, by data time, for the lookback when
    /// an incident opens.
    minor: HashMap<Key, VecDeque<(f64, Finding)>>,
    changed: Vec<Incident>,
    next_id: u64,
    id_prefix: String,
    contexts: HashMap<String, RunContext>,
}

/// Minor findings kept per key for the lookback.
const MINOR_KEPT: usize = 64;

/// Open incidents kept per key; beyond it the one with the oldest evidence
/// is resolved.
const MAX_OPEN_PER_KEY: usize = 8;

impl Correlator {
    /// `id_prefix` makes incident ids unique across restarts (the server
    /// passes its start time).
    pub fn new(cfg: IncidentConfig, id_prefix: &str) -> Self {
        Correlator {
            cfg,
            open: BTreeMap::new(),
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

    /// Takes a finding that arrived at `now` (the diagnoser's clock).
    /// Whether it joins an incident is judged on its data time and step;
    /// `now` only decides when a quiet incident is resolved (see
    /// [`tick`](Self::tick)).
    pub fn add(&mut self, finding: Finding, now: f64) {
        let key = Key::of(&finding.scope);
        let t = if finding.time.is_finite() {
            finding.time
        } else {
            now
        };
        // Minor findings are evidence, not activity: they never open an
        // incident or keep one open on their own.
        let major = finding.severity >= Severity::Warning;
        let list = self.open.entry(key.clone()).or_default();
        if let Some(open) = list
            .iter_mut()
            .find(|o| o.accepts(&finding, t, major, &self.cfg))
        {
            if major {
                open.extend_span(&finding, t, now);
            }
            push_bounded(open, finding, self.cfg.max_evidence);
            open.dirty = true;
            return;
        }
        if !major {
            let q = self.minor.entry(key).or_default();
            q.push_back((t, finding));
            while q.len() > MINOR_KEPT {
                q.pop_front();
            }
            return;
        }
        self.open_new(key, finding, t, now);
    }

    fn open_new(&mut self, key: Key, finding: Finding, t: f64, now: f64) {
        if let Some(list) = self.open.get_mut(&key)
            && list.len() >= MAX_OPEN_PER_KEY
            && let Some(pos) = list
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.last_data.total_cmp(&b.1.last_data))
                .map(|(i, _)| i)
        {
            let old = list.swap_remove(pos);
            self.resolve(old, now);
        }
        let mut findings = Vec::new();
        if let Some(q) = self.minor.get_mut(&key) {
            let (since, until) = (t - self.cfg.lookback_s, t);
            let (pulled, kept): (Vec<_>, Vec<_>) =
                q.drain(..).partition(|(m, _)| *m >= since && *m <= until);
            q.extend(kept);
            findings.extend(pulled.into_iter().map(|(_, f)| f));
        }
        let mut open = Open {
            incident: self.new_incident(&key, &finding, now),
            findings: Vec::new(),
            dropped: 0,
            last_evidence: now,
            first_data: t,
            last_data: t,
            steps: None,
            dirty: true,
        };
        open.extend_span(&finding, t, now);
        findings.push(finding);
        for f in findings {
            push_bounded(&mut open, f, self.cfg.max_evidence);
        }
        self.open.entry(key).or_default().push(open);
    }

    fn new_incident(&mut self, key: &Key, finding: &Finding, now: f64) -> Incident {
        let id = format!("inc-{}-{}", self.id_prefix, self.next_id);
        self.next_id += 1;
        let scope = finding.scope.clone();
        Incident {
            id,
            project: scope.project.clone(),
            run: match key {
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
        }
    }

    /// Resolves incidents quiet for `resolve_after_s` (by the arrival
    /// clock: nothing new came for them), and publishes every incident that
    /// changed since the last call, in the order they were opened.
    pub fn tick(&mut self, now: f64) -> Vec<Incident> {
        let resolve_after = self.cfg.resolve_after_s;
        let mut quiet = Vec::new();
        for list in self.open.values_mut() {
            let (gone, kept): (Vec<Open>, Vec<Open>) = list
                .drain(..)
                .partition(|o| now - o.last_evidence >= resolve_after);
            *list = kept;
            quiet.extend(gone);
        }
        self.open.retain(|_, list| !list.is_empty());
        quiet.sort_by(|a, b| a.first_data.total_cmp(&b.first_data));
        for o in quiet {
            self.resolve(o, now);
        }
        let mut dirty: Vec<&mut Open> = self
            .open
            .values_mut()
            .flat_map(|list| list.iter_mut())
            .filter(|o| o.dirty)
            .collect();
        dirty.sort_by(|a, b| {
            a.incident
                .opened
                .total_cmp(&b.incident.opened)
                .then(a.first_data.total_cmp(&b.first_data))
        });
        for o in dirty {
            o.dirty = false;
            o.incident.updated = now;
            refresh(o, &self.contexts);
            self.changed.push(o.incident.clone());
        }
        std::mem::take(&mut self.changed)
    }

    /// Resolves everything (end of a replay).
    pub fn close_all(&mut self, now: f64) -> Vec<Incident> {
        let mut all: Vec<Open> = std::mem::take(&mut self.open)
            .into_values()
            .flatten()
            .collect();
        all.sort_by(|a, b| a.first_data.total_cmp(&b.first_data));
        for o in all {
            self.resolve(o, now);
        }
        std::mem::take(&mut self.changed)
    }

    /// Open incidents now (refreshed).
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.open.values().flatten().map(|o| &o.incident)
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
    // Families in order of first appearance (a few at most): among equally
    // large families the earliest loses a member, whatever the hashing.
    let mut counts: Vec<((FindingKind, SeriesRole), usize)> = Vec::new();
    for g in &open.findings {
        match counts.iter_mut().find(|(k, _)| *k == family(g)) {
            Some((_, n)) => *n += 1,
            None => counts.push((family(g), 1)),
        }
    }
    let largest = counts
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.1.cmp(&b.1).then(j.cmp(i)))
        .map(|(_, (k, _))| *k);
    if !counts.iter().any(|(k, _)| *k == family(&f))
        && let Some(largest) = largest
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
