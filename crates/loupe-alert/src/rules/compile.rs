//! [`RuleSpec::compile`]: the flat spec checked and turned into a [`Rule`],
//! one function per rule kind. Every problem is collected (not just the
//! first), each as `rule "NAME": field `F`: …`, in a fixed order: the
//! name, the fields every kind shares, the fields the kind does not read,
//! the kind's own fields, the channels.

use std::time::Duration;

use loupe_model::Severity;

use super::{RUN_STATES, Rule, RuleKind, RuleSpec, WindowSpec, parse_expr, parse_severity};
use crate::burn::{BurnWindow, default_windows};
use crate::duration;
use crate::error::RulesError;

/// The rule kinds and the fields each reads; anything else set is a
/// mistake worth naming.
fn fields_of(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "incident" => &["min_severity", "causes", "project", "run", "group"],
        "threshold" => &["expr", "labels", "project"],
        "absence" => &["project", "group"],
        "run_state" => &["states", "project", "group"],
        "burn_rate" => &[
            "project",
            "errors",
            "total",
            "labels",
            "objective",
            "windows",
            "counter",
        ],
        _ => return None,
    })
}

/// The problems found in one rule, each naming the rule and the field.
struct Problems {
    who: String,
    errors: Vec<String>,
}

impl Problems {
    fn new(name: &str) -> Self {
        let who = if name.is_empty() {
            "rule (unnamed)".to_string()
        } else {
            format!("rule {name:?}")
        };
        Problems {
            who,
            errors: Vec::new(),
        }
    }

    fn add(&mut self, field: &str, msg: String) {
        self.errors
            .push(format!("{}: field `{field}`: {msg}", self.who));
    }

    /// An optional duration; a malformed one is a problem (and `None`).
    fn duration(&mut self, field: &str, v: &Option<String>) -> Option<Duration> {
        v.as_deref().and_then(|t| match duration::parse(t) {
            Ok(d) => Some(d),
            Err(e) => {
                self.add(field, e);
                None
            }
        })
    }

    /// An optional severity; a malformed one is a problem, and `default`.
    fn severity(&mut self, field: &str, v: Option<&str>, default: Severity) -> Severity {
        match v.map(parse_severity) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                self.add(field, e);
                default
            }
            None => default,
        }
    }
}

impl Rule {
    /// Validates a spec and compiles it; every problem is reported, each
    /// as `rule "NAME": field `F`: …`.
    pub fn compile(spec: &RuleSpec) -> Result<Rule, RulesError> {
        Spec(spec).compile()
    }
}

/// A spec being compiled: the checks per kind read its fields through
/// `Deref` (the shape itself is `loupe-model`'s).
struct Spec<'a>(&'a RuleSpec);

impl std::ops::Deref for Spec<'_> {
    type Target = RuleSpec;
    fn deref(&self) -> &RuleSpec {
        self.0
    }
}

impl Spec<'_> {
    fn compile(&self) -> Result<Rule, RulesError> {
        let mut p = Problems::new(&self.name);
        if self.name.trim().is_empty() {
            p.add("name", "is required".into());
        } else if self.name.starts_with("builtin:") {
            p.add("name", "names starting with `builtin:` are reserved".into());
        }
        let severity = match self.severity.as_deref().map(parse_severity) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                p.add("severity", e);
                None
            }
            None => None,
        };
        let for_ = p.duration("for", &self.for_);
        let repeat_interval = p.duration("repeat_interval", &self.repeat_interval);
        self.check_fields_used(&mut p);
        let kind = match self.kind.as_str() {
            "incident" => Some(self.incident(&mut p)),
            "threshold" => self.threshold(&mut p),
            "absence" => self.absence(for_, &mut p),
            "run_state" => Some(self.run_state(&mut p)),
            "burn_rate" => Some(self.burn_rate(&mut p)),
            _ => None,
        };
        if let Some(chs) = &self.channels
            && chs.iter().any(|c| c.trim().is_empty())
        {
            p.add("channels", "contains an empty name".into());
        }
        match kind {
            Some(kind) if p.errors.is_empty() => Ok(Rule {
                name: self.name.clone(),
                kind,
                severity,
                for_: if self.kind == "absence" {
                    Duration::ZERO
                } else {
                    for_.unwrap_or_default()
                },
                channels: self.channels.clone().unwrap_or_default(),
                repeat_interval,
                summary: self.summary.clone(),
                spec: self.0.clone(),
                builtin: false,
            }),
            _ => Err(RulesError { errors: p.errors }),
        }
    }

    /// An unknown kind, or a field set that the kind does not read.
    fn check_fields_used(&self, p: &mut Problems) {
        let Some(allowed) = fields_of(&self.kind) else {
            p.add(
                "kind",
                format!(
                    "{:?} is not one of incident, threshold, absence, run_state, burn_rate",
                    self.kind
                ),
            );
            return;
        };
        let set = [
            ("min_severity", self.min_severity.is_some()),
            ("causes", self.causes.is_some()),
            ("project", self.project.is_some()),
            ("run", self.run.is_some()),
            ("group", self.group.is_some()),
            ("expr", self.expr.is_some()),
            ("labels", self.labels.is_some()),
            ("states", self.states.is_some()),
            ("errors", self.errors.is_some()),
            ("total", self.total.is_some()),
            ("objective", self.objective.is_some()),
            ("windows", self.windows.is_some()),
            ("counter", self.counter.is_some()),
        ];
        for (field, present) in set {
            if present && !allowed.contains(&field) {
                p.add(field, format!("is not used by kind {:?}", self.kind));
            }
        }
    }

    fn incident(&self, p: &mut Problems) -> RuleKind {
        let min_severity = p.severity("min_severity", self.min_severity.as_deref(), Severity::Info);
        RuleKind::Incident {
            min_severity,
            causes: self.causes.clone().unwrap_or_default(),
            project: self.project.clone(),
            run: self.run.clone(),
            group: self.group.clone(),
        }
    }

    fn threshold(&self, p: &mut Problems) -> Option<RuleKind> {
        match self.expr.as_deref().map(parse_expr) {
            None => {
                p.add(
                    "expr",
                    "is required (e.g. \"gpu/0/temperature > 85\")".into(),
                );
                None
            }
            Some(Err(e)) => {
                p.add("expr", e);
                None
            }
            Some(Ok((series, check))) => Some(RuleKind::Threshold {
                series,
                check,
                labels: self.labels.clone().unwrap_or_default(),
            }),
        }
    }

    /// `for` is what an absence rule waits for, so it is required here (a
    /// malformed one was reported already).
    fn absence(&self, for_: Option<Duration>, p: &mut Problems) -> Option<RuleKind> {
        match for_ {
            Some(after) if !after.is_zero() => Some(RuleKind::Absence {
                after,
                project: self.project.clone(),
                group: self.group.clone(),
            }),
            Some(_) => {
                p.add("for", "must be longer than 0s for an absence rule".into());
                None
            }
            None => {
                if self.for_.is_none() {
                    p.add(
                        "for",
                        "is required: how long without data (e.g. \"10m\")".into(),
                    );
                }
                None
            }
        }
    }

    fn run_state(&self, p: &mut Problems) -> RuleKind {
        let states = self
            .states
            .clone()
            .unwrap_or_else(|| vec!["failed".into(), "crashed".into(), "lost".into()]);
        for s in &states {
            if !RUN_STATES.contains(&s.as_str()) {
                p.add(
                    "states",
                    format!("{s:?} is not failed, crashed, lost or exception"),
                );
            }
        }
        if states.is_empty() {
            p.add("states", "is empty".into());
        }
        RuleKind::RunState {
            states,
            project: self.project.clone(),
            group: self.group.clone(),
        }
    }

    fn burn_rate(&self, p: &mut Problems) -> RuleKind {
        let objective = self.objective.unwrap_or(0.999);
        if !(objective > 0.0 && objective < 1.0) {
            p.add(
                "objective",
                format!("{objective} must be between 0 and 1 (e.g. 0.999)"),
            );
        }
        let windows = match &self.windows {
            None => default_windows(),
            Some(ws) if ws.is_empty() => {
                p.add("windows", "is empty".into());
                Vec::new()
            }
            Some(ws) => ws
                .iter()
                .enumerate()
                .filter_map(|(i, w)| burn_window(i, w, p))
                .collect(),
        };
        let errors = self.errors.clone().unwrap_or_default();
        let total = self.total.clone().unwrap_or_default();
        if errors.is_empty() {
            p.add(
                "errors",
                "is required: the series counting failed requests".into(),
            );
        }
        if total.is_empty() {
            p.add(
                "total",
                "is required: the series counting all requests".into(),
            );
        }
        RuleKind::BurnRate {
            errors,
            total,
            labels: self.labels.clone().unwrap_or_default(),
            objective,
            windows,
            counter: self.counter.unwrap_or(false),
        }
    }
}

/// One window of a burn-rate rule (`windows[i]`); `None` when a duration
/// does not parse (the other problems are reported and the window kept).
fn burn_window(i: usize, w: &WindowSpec, p: &mut Problems) -> Option<BurnWindow> {
    let f = format!("windows[{i}]");
    let long = duration::parse(&w.long)
        .map_err(|e| p.add(&format!("{f}.long"), e))
        .ok();
    let short = duration::parse(&w.short)
        .map_err(|e| p.add(&format!("{f}.short"), e))
        .ok();
    if !(w.factor > 0.0 && w.factor.is_finite()) {
        p.add(&format!("{f}.factor"), "must be a positive number".into());
    }
    let severity = p.severity(
        &format!("{f}.severity"),
        w.severity.as_deref(),
        Severity::Critical,
    );
    let (long, short) = (long?, short?);
    if short.is_zero() || short > long {
        p.add(
            &f,
            "`short` must be non-zero and no longer than `long`".into(),
        );
    }
    Some(BurnWindow {
        long,
        short,
        factor: w.factor,
        severity,
    })
}
