//! Alerting inside the server: loads the rules file, evaluates rules over
//! the stores every few seconds, feeds incident rules from diagnosis, and
//! hands due notifications to `loupe-alert`'s persisted queue. The rules,
//! the lifecycle and delivery live in `loupe-alert`; this module only
//! reads the stores for it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use loupe_alert::channels::Channel;
use loupe_alert::dispatch::Dispatcher;
use loupe_alert::queue::{ChannelCounts, Delivery, Queue};
use loupe_alert::rules::{Check, EXCEPTION_STATE, RuleKind};
use loupe_alert::{
    Alert, Condition, Engine, IncidentSignal, Rule, RuleSpec, RulesConfig, RulesError, Silence,
};
use loupe_diagnose::Incident;
use loupe_meta::{MAX_RUN_LIMIT, RunQuery};
use loupe_model::alerting::RuleSource;
use loupe_model::clock::now_s;
use loupe_model::label;
use loupe_model::{LabelMatch, RunStatus, SeriesKey, SeriesMatcher};
use loupe_tsdb::XAxis;
use parking_lot::Mutex;

mod run_projects;
pub mod telemetry;

use crate::diagnosis::IncidentSink;
use crate::live::LiveHub;
use crate::stores::Stores;
use run_projects::RunProjects;

/// Run-state alerts look at runs that ended this recently (seconds), so a
/// first start does not page for every run that ever crashed.
const RUN_STATE_LOOKBACK_S: f64 = 24.0 * 3600.0;
/// The signal the kernel's OOM killer sends.
const SIGKILL: i32 = 9;
/// How much of a series a notification's chart shows (seconds).
const CHART_SPAN_S: f64 = 3600.0;

/// Recent notifications and per-channel counts.
pub type Deliveries = (Vec<Delivery>, Vec<(String, ChannelCounts)>);

pub struct Alerting {
    engine: Mutex<Engine>,
    queue: Arc<Queue>,
    dispatcher: Dispatcher,
    config: RulesConfig,
    api_rules: Mutex<Vec<Rule>>,
    /// Kept across evaluations ([`RunProjects`]).
    run_projects: Mutex<RunProjects>,
}

/// Why alerting could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error("reading rules file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("rules file {path}:\n{source}")]
    Rules {
        path: String,
        #[source]
        source: RulesError,
    },
    #[error("{0}")]
    Alert(#[from] loupe_alert::Error),
}

/// Reads and validates a rules file (what `loupe rules check` runs too).
pub fn load_rules_file(path: &Path) -> Result<RulesConfig, AlertingError> {
    let text = std::fs::read_to_string(path).map_err(|e| AlertingError::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    RulesConfig::parse(&text).map_err(|e| AlertingError::Rules {
        path: path.display().to_string(),
        source: e,
    })
}

/// What alerting needs of a diagnosis incident.
fn signal(inc: &Incident) -> IncidentSignal {
    IncidentSignal {
        id: inc.id.clone(),
        state: inc.state,
        severity: inc.severity,
        kind: inc.kind.clone(),
        title: inc.title.clone(),
        project: inc.project.clone(),
        // A job's incident names the rank behind it (the one that ran out
        // of memory), so its alert links there, not to rank 0.
        run: inc.culprit_run().map(str::to_string),
        group: inc.group.clone(),
        host: inc.host.clone(),
        nonfinite: inc
            .anomalies
            .iter()
            .filter(|a| a.detector == NONFINITE_DETECTOR)
            .filter_map(|a| Some((a.run.clone()?, a.series.clone()?)))
            .collect(),
    }
}

/// The detector name of a non-finite (NaN, ±Inf) anomaly in an incident.
const NONFINITE_DETECTOR: &str = "non_finite";

impl Alerting {
    /// Opens `DIR/alerts.sqlite`, loads the rules file (or the built-ins
    /// alone), restores the alerts, silences and API rules of the last run,
    /// and starts one delivery thread per channel.
    pub fn open(
        data_dir: &Path,
        rules_file: Option<&Path>,
        meta: &loupe_meta::MetaStore,
    ) -> Result<Self, AlertingError> {
        let config = match rules_file {
            Some(p) => load_rules_file(p)?,
            None => RulesConfig::default(),
        };
        let path = rules_file
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
        for c in &config.channels {
            let ch = loupe_alert::channels::build(c).map_err(|e| AlertingError::Rules {
                path: path.clone(),
                source: e,
            })?;
            channels.push(Arc::from(ch));
        }
        std::fs::create_dir_all(data_dir).map_err(loupe_alert::Error::from)?;
        let queue = Arc::new(Queue::open(&data_dir.join("alerts.sqlite"))?);
        let mut api_rules = Vec::new();
        let taken: Vec<String> = config.all_rules().into_iter().map(|r| r.name).collect();
        for spec in queue.load_rules()? {
            match Rule::compile(&spec) {
                Ok(r) if !taken.contains(&r.name) => api_rules.push(r),
                Ok(r) => {
                    tracing::warn!(rule = %r.name, "a rule added through the API has the name of a rules-file rule; the file's wins")
                }
                Err(e) => tracing::warn!("a stored API rule no longer validates, skipped: {e}"),
            }
        }
        let mut all = config.all_rules();
        all.extend(api_rules.iter().cloned());
        let names = config
            .channels
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let mut engine = Engine::new(config.settings.clone(), all, names);
        let (alerts, silences) = queue.load_state()?;
        engine.restore(alerts, silences);
        // Incident rules see incidents as diagnosis reports changes; the
        // ones already open come from the store, so a restart does not
        // resolve their alerts. (Diagnosis starts after this.)
        let q = loupe_meta::IncidentQuery {
            state: Some("open".into()),
            limit: loupe_meta::MAX_INCIDENT_LIMIT,
            ..Default::default()
        };
        match meta.list_incidents(&q) {
            Ok(rows) => {
                let open: Vec<IncidentSignal> = rows
                    .iter()
                    .filter_map(|(body, _)| serde_json::from_str::<Incident>(body).ok())
                    .map(|inc| signal(&inc))
                    .collect();
                engine.observe_incidents(&open);
            }
            Err(e) => tracing::warn!("alerting cannot read open incidents: {e}"),
        }
        let dispatcher = Dispatcher::new(
            queue.clone(),
            config.settings.max_backoff,
            config.settings.give_up_after,
        );
        dispatcher.start(channels);
        tracing::info!(
            rules = engine.rules().len(),
            channels = config.channels.len(),
            "alerting ready"
        );
        Ok(Self {
            engine: Mutex::new(engine),
            queue,
            dispatcher,
            config,
            api_rules: Mutex::new(api_rules),
            run_projects: Mutex::default(),
        })
    }

    pub fn evaluation_interval(&self) -> Duration {
        self.config.settings.evaluation_interval
    }

    /// Every rule with where it came from.
    pub fn rules(&self) -> Vec<(RuleSource, RuleSpec)> {
        let api = self.api_rules.lock();
        self.engine
            .lock()
            .rules()
            .iter()
            .map(|r| {
                let src = if r.builtin {
                    RuleSource::Builtin
                } else if api.iter().any(|a| a.name == r.name) {
                    RuleSource::Api
                } else {
                    RuleSource::File
                };
                (src, r.spec.clone())
            })
            .collect()
    }

    fn reconfigure(&self, api: &[Rule]) {
        let mut all = self.config.all_rules();
        all.extend(api.iter().cloned());
        let names = self
            .config
            .channels
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        self.engine
            .lock()
            .reconfigure(self.config.settings.clone(), all, names);
    }

    /// Adds or replaces a rule (kept across restarts).
    pub fn put_rule(&self, spec: RuleSpec) -> Result<RuleSpec, RulesError> {
        let rule = Rule::compile(&spec)?;
        if self.config.all_rules().iter().any(|r| r.name == rule.name) {
            return Err(RulesError::one(format!(
                "rule {:?}: field `name`: a built-in or rules-file rule has this name",
                rule.name
            )));
        }
        for c in &rule.channels {
            if !self.config.channels.iter().any(|x| x.name() == c) {
                return Err(RulesError::one(format!(
                    "rule {:?}: field `channels`: no channel named {c:?}",
                    rule.name
                )));
            }
        }
        self.queue
            .save_rule(&rule.spec)
            .map_err(|e| RulesError::one(format!("storing the rule: {e}")))?;
        let mut api = self.api_rules.lock();
        api.retain(|r| r.name != rule.name);
        api.push(rule.clone());
        self.reconfigure(&api);
        Ok(rule.spec)
    }

    /// Removes a rule added through the API; `Ok(false)` if there is none.
    pub fn delete_rule(&self, name: &str) -> loupe_alert::Result<bool> {
        let mut api = self.api_rules.lock();
        if !api.iter().any(|r| r.name == name) {
            return Ok(false);
        }
        self.queue.delete_rule(name)?;
        api.retain(|r| r.name != name);
        self.reconfigure(&api);
        Ok(true)
    }

    pub fn alerts(&self) -> Vec<Alert> {
        self.engine.lock().alerts().cloned().collect()
    }

    pub fn silences(&self) -> Vec<Silence> {
        self.engine.lock().silences().to_vec()
    }

    fn persist(&self, e: &mut Engine) -> loupe_alert::Result<()> {
        let alerts: Vec<&Alert> = e.alerts().collect();
        self.queue.save_state(&alerts, e.silences())
    }

    pub fn add_silence(&self, s: Silence) -> loupe_alert::Result<()> {
        let mut e = self.engine.lock();
        e.add_silence(s);
        self.persist(&mut e)
    }

    pub fn remove_silence(&self, id: &str) -> loupe_alert::Result<bool> {
        let mut e = self.engine.lock();
        let found = e.remove_silence(id);
        self.persist(&mut e)?;
        Ok(found)
    }

    /// Recent notifications and per-channel counts (the API's view of the
    /// delivery queue).
    pub fn deliveries(&self, limit: usize) -> loupe_alert::Result<Deliveries> {
        Ok((self.queue.recent(limit)?, self.queue.counts()?))
    }

    /// Stops the delivery threads; the queue stays on disk.
    pub fn shutdown(&self) {
        self.dispatcher.shutdown();
    }

    /// One evaluation: every rule over the stores, then what is due is
    /// queued (with the state that marks it sent, in one transaction).
    /// Returns the alerts whose state changed.
    pub fn evaluate(&self, st: &Stores) -> Vec<Alert> {
        let now = now_s();
        let (rules, settings) = {
            let e = self.engine.lock();
            (e.rules().to_vec(), e.settings().clone())
        };
        let mut changed = Vec::new();
        self.run_projects.lock().begin(&st.meta);
        for r in &rules {
            let project = &r.spec.project;
            let mut conds = match &r.kind {
                RuleKind::Incident { .. } => continue,
                RuleKind::Threshold {
                    series,
                    check,
                    labels,
                } => {
                    let mut conds =
                        threshold(st, series, *check, labels, settings.stale_after, now);
                    if matches!(check, Check::IsNan | Check::NotFinite) {
                        let diagnosed = self.engine.lock().nonfinite_conditions(series, labels);
                        for c in diagnosed {
                            if !conds.iter().any(|x| x.labels == c.labels) {
                                conds.push(c);
                            }
                        }
                    }
                    conds
                }
                RuleKind::Absence {
                    after,
                    project,
                    group,
                } => absence(st, *after, project, group, now),
                RuleKind::RunState {
                    states,
                    project,
                    group,
                } => run_state(st, states, project, group, now),
                RuleKind::BurnRate {
                    errors,
                    total,
                    labels,
                    objective,
                    windows,
                    counter,
                } => {
                    // Series outside runs carry their project as a label.
                    let mut labels = labels.clone();
                    if let Some(p) = project {
                        labels.insert(label::PROJECT.to_string(), p.clone());
                    }
                    burn_rate(
                        st, errors, total, &labels, *objective, windows, *counter, now,
                    )
                }
            };
            self.run_projects.lock().label(&st.meta, &mut conds);
            conds.retain(|c| glob_ok(project, c.labels.get(label::PROJECT).map(String::as_str)));
            changed.extend(self.engine.lock().apply(&r.name, conds, now));
        }
        let mut e = self.engine.lock();
        changed.extend(e.evaluate_incident_rules(now));
        let mut notes = e.notifications(now);
        if notes.is_empty() && !e.take_dirty() {
            return changed;
        }
        drop(e);
        for n in &mut notes {
            n.chart = chart_for(st, n, &rules, now);
        }
        let mut e = self.engine.lock();
        e.take_dirty();
        let alerts: Vec<&Alert> = e.alerts().collect();
        if let Err(err) = self.queue.commit(&notes, &alerts, e.silences()) {
            tracing::error!("cannot queue alert notifications: {err}");
        }
        drop(e);
        if !notes.is_empty() {
            self.dispatcher.wake();
        }
        if let Err(err) = self.queue.prune(now) {
            tracing::warn!("cannot prune the alert queue: {err}");
        }
        changed
    }
}

fn glob_ok(pat: &Option<String>, v: Option<&str>) -> bool {
    match pat {
        None => true,
        Some(p) => v.is_some_and(|v| loupe_alert::glob::matches(p, v)),
    }
}

/// A matcher narrowing by the literal parts of a name pattern and labels.
fn matcher(series: &str, labels: &BTreeMap<String, String>) -> SeriesMatcher {
    let mut m = SeriesMatcher::any();
    if !series.contains('*') {
        m = m.name_eq(series);
    } else if !loupe_alert::glob::prefix(series).is_empty() {
        m = m.name_prefix(loupe_alert::glob::prefix(series));
    }
    for (k, v) in labels {
        if !v.contains('*') {
            m = m.label_eq(k, v);
        } else {
            m.all.push(LabelMatch::Prefix {
                label: k.clone(),
                prefix: loupe_alert::glob::prefix(v).to_string(),
            });
        }
    }
    m
}

fn key_matches(key: &SeriesKey, series: &str, labels: &BTreeMap<String, String>) -> bool {
    loupe_alert::glob::matches(series, key.name())
        && labels.iter().all(|(k, v)| {
            key.label(k)
                .is_some_and(|x| loupe_alert::glob::matches(v, x))
        })
}

/// The series behind an alert, as `Condition::series` carries it.
fn series_ref(key: &SeriesKey) -> String {
    serde_json::json!([key.name(), key.labels()]).to_string()
}

fn series_from_ref(r: &str) -> Option<SeriesKey> {
    let (name, labels): (String, Vec<(String, String)>) = serde_json::from_str(r).ok()?;
    SeriesKey::new(name, labels).ok()
}

fn threshold(
    st: &Stores,
    series: &str,
    check: Check,
    labels: &BTreeMap<String, String>,
    stale_after: Duration,
    now: f64,
) -> Vec<Condition> {
    let mut out = Vec::new();
    let oldest = ((now - stale_after.as_secs_f64()) * 1e9) as i64;
    for info in st.tsdb.series(&matcher(series, labels)) {
        let key = info.key;
        if !key_matches(&key, series, labels) {
            continue;
        }
        let Ok(Some((_, t, v))) = st.tsdb.last(&key) else {
            continue;
        };
        if t < oldest || !check.trips(v) {
            continue;
        }
        let mut l: BTreeMap<String, String> = key.labels().iter().cloned().collect();
        l.insert("series".into(), key.name().to_string());
        let summary = match l.get(label::RUN) {
            Some(run) => format!("{} = {v} in run {run}", key.name()),
            None => format!("{} = {v}", key.name()),
        };
        out.push(Condition {
            labels: l,
            value: Some(v),
            summary,
            severity: None,
            series: Some(series_ref(&key)),
        });
    }
    out
}

fn runs_in(st: &Stores, statuses: Vec<RunStatus>) -> Vec<loupe_model::Run> {
    let q = RunQuery {
        status: Some(statuses),
        limit: Some(MAX_RUN_LIMIT),
        summary_series: Some(Vec::new()),
        ..Default::default()
    };
    match st.meta.list_runs(q) {
        Ok(p) => p.runs,
        Err(e) => {
            tracing::warn!("alerting cannot list runs: {e}");
            Vec::new()
        }
    }
}

fn run_labels(r: &loupe_model::Run) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (label::RUN.to_string(), r.id.clone()),
        ("project".to_string(), r.project.clone()),
    ]);
    if let Some(g) = &r.group {
        l.insert("group".into(), g.clone());
    }
    if let Some(h) = &r.host {
        l.insert("host".into(), h.clone());
    }
    l
}

fn absence(
    st: &Stores,
    after: Duration,
    project: &Option<String>,
    group: &Option<String>,
    now: f64,
) -> Vec<Condition> {
    let mut out = Vec::new();
    for r in runs_in(st, vec![RunStatus::Running]) {
        if !glob_ok(project, Some(&r.project)) || !glob_ok(group, r.group.as_deref()) {
            continue;
        }
        // Stops at the first series with a recent point: a busy run costs
        // one summary read, only a quiet one is scanned whole.
        let recent_ns = ((now - after.as_secs_f64()) * 1e9) as i64;
        let mut last_ns: Option<i64> = None;
        for s in st
            .tsdb
            .series(&SeriesMatcher::any().label_eq(label::RUN, r.id.clone()))
        {
            if let Ok(Some((_, t, _))) = st.tsdb.last(&s.key) {
                last_ns = Some(last_ns.map_or(t, |l| l.max(t)));
                if t >= recent_ns {
                    break;
                }
            }
        }
        let last = last_ns.map_or(r.start_time, |t| t as f64 / 1e9);
        let quiet = now - last;
        if quiet >= after.as_secs_f64() {
            out.push(Condition {
                labels: run_labels(&r),
                value: Some(quiet.round()),
                summary: format!(
                    "no data from run {} ({}) for {}",
                    r.name,
                    r.id,
                    loupe_alert::duration::format(Duration::from_secs(quiet.max(0.0) as u64))
                ),
                severity: None,
                series: None,
            });
        }
    }
    out
}

fn run_state(
    st: &Stores,
    states: &[String],
    project: &Option<String>,
    group: &Option<String>,
    now: f64,
) -> Vec<Condition> {
    let exceptions = states.iter().any(|s| s == EXCEPTION_STATE);
    let named = |s: RunStatus| states.iter().any(|x| x == s.as_str());
    let wanted: Vec<RunStatus> = RunStatus::ALL
        .into_iter()
        .filter(|&s| named(s) || (exceptions && matches!(s, RunStatus::Failed | RunStatus::Killed)))
        .collect();
    let mut out = Vec::new();
    for r in runs_in(st, wanted) {
        let ended = r.end_time.unwrap_or(r.heartbeat_time);
        let died = died_of(&r);
        if now - ended > RUN_STATE_LOOKBACK_S
            || !glob_ok(project, Some(&r.project))
            || !glob_ok(group, r.group.as_deref())
            || !(named(r.status) || (exceptions && died.is_some()))
        {
            continue;
        }
        let mut labels = run_labels(&r);
        labels.insert("status".into(), r.status.as_str().into());
        labels.insert(
            "reason".into(),
            died.unwrap_or_else(|| r.status.as_str().to_string()),
        );
        let exit = r
            .exit_code
            .map(|c| format!(" (exit code {c})"))
            .unwrap_or_default();
        out.push(Condition {
            labels,
            value: r.exit_code.map(f64::from),
            summary: format!("run {} ({}) {}{exit}", r.name, r.id, r.status.as_str()),
            severity: None,
            series: None,
        });
    }
    out
}

/// How a run that ended `failed` or `killed` died, when it died of an
/// exception (`failed with torch.OutOfMemoryError`) or of SIGKILL, which is
/// how the kernel's OOM killer ends a process; `None` for an ordinary
/// non-zero exit or a stop the user asked for (Ctrl-C, SIGTERM).
fn died_of(r: &loupe_model::Run) -> Option<String> {
    if !matches!(r.status, RunStatus::Failed | RunStatus::Killed) {
        return None;
    }
    let f = r.failure.as_ref()?;
    if let Some(e) = &f.exception_type {
        return Some(format!("failed with {e}"));
    }
    (f.signal == Some(SIGKILL)).then(|| "was killed by SIGKILL (out of memory?)".to_string())
}

#[allow(clippy::too_many_arguments)]
fn burn_rate(
    st: &Stores,
    errors: &str,
    total: &str,
    labels: &BTreeMap<String, String>,
    objective: f64,
    windows: &[loupe_alert::burn::BurnWindow],
    counter: bool,
    now: f64,
) -> Vec<Condition> {
    let sum = |name: &str, w: Duration| -> f64 {
        let from = ((now - w.as_secs_f64()) * 1e9) as i64;
        let to = (now * 1e9) as i64;
        st.tsdb
            .series(&matcher(name, labels))
            .into_iter()
            .filter(|s| key_matches(&s.key, name, labels))
            .filter_map(|s| st.tsdb.read_range(&s.key, XAxis::Time, from, to, None).ok())
            .map(|p| loupe_alert::burn::increase(&p.values, counter))
            .sum()
    };
    let Some(b) =
        loupe_alert::burn::evaluate(windows, objective, |w| (sum(errors, w), sum(total, w)))
    else {
        return Vec::new();
    };
    let fmt = loupe_alert::duration::format;
    vec![Condition {
        labels: labels.clone(),
        value: Some(b.long_rate),
        summary: format!(
            "error budget burning {:.1}× over {} and {:.1}× over {} (limit {}×, objective {})",
            b.long_rate,
            fmt(b.window.long),
            b.short_rate,
            fmt(b.window.short),
            b.window.factor,
            objective
        ),
        severity: Some(b.window.severity),
        series: None,
    }]
}

/// The last hour of the first alerted series in a notification, with the
/// rule's threshold drawn across.
fn chart_for(
    st: &Stores,
    n: &loupe_alert::Notification,
    rules: &[Rule],
    now: f64,
) -> Option<loupe_alert::engine::Chart> {
    let a = n.alerts.iter().find(|a| a.series.is_some())?;
    let key = series_from_ref(a.series.as_deref()?)?;
    let from = ((now - CHART_SPAN_S) * 1e9) as i64;
    let p = st
        .tsdb
        .read_range(&key, XAxis::Time, from, (now * 1e9) as i64 + 1, Some(2000))
        .ok()?;
    if p.values.is_empty() {
        return None;
    }
    let threshold = rules
        .iter()
        .find(|r| r.name == a.alert)
        .and_then(|r| match &r.kind {
            RuleKind::Threshold { check, .. } => check.threshold(),
            _ => None,
        });
    Some(loupe_alert::engine::Chart {
        title: key.name().to_string(),
        times: p.times.iter().map(|t| *t as f64 / 1e9).collect(),
        values: p.values,
        threshold,
    })
}

/// The evaluation loop: every `evaluation_interval`, on a blocking thread;
/// state changes go out as `alert` live events.
pub async fn run(alerts: Arc<Alerting>, stores: Stores, live: Arc<LiveHub>) {
    let mut tick = tokio::time::interval(alerts.evaluation_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (a, s) = (alerts.clone(), stores.clone());
        let changed = tokio::task::spawn_blocking(move || a.evaluate(&s))
            .await
            .unwrap_or_default();
        for a in changed {
            let run = a.labels.get(label::RUN).cloned().unwrap_or_default();
            if a.state != loupe_alert::AlertState::Pending {
                tracing::info!(alert = %a.rule, state = a.state.as_str(), "{}", a.summary);
            }
            live.publish(&run, loupe_api::LivePayload::Alert(Box::new(a)));
        }
    }
}

/// Diagnosis's hook: incidents that opened, changed or resolved.
impl IncidentSink for Alerting {
    fn on_incidents(&self, changed: &[Incident]) {
        let signals: Vec<IncidentSignal> = changed.iter().map(signal).collect();
        self.engine.lock().observe_incidents(&signals);
    }
}
