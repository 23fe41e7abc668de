//! The rules file: settings, built-in defaults, channels and rules, in TOML.
//!
//! TOML because the `toml` crate is maintained alongside Cargo itself, and
//! a rules file is hand-written configuration much like `Cargo.toml`;
//! `serde_yaml`, the usual YAML choice, is unmaintained. Every problem is
//! reported (not just the first), each naming the rule or channel and the
//! field.

use std::collections::BTreeMap;
use std::time::Duration;

use loupe_model::Severity;
pub use loupe_model::alerting::{RuleSpec, WindowSpec};
use serde::{Deserialize, Serialize};

use crate::burn::BurnWindow;
use crate::duration;
use crate::error::RulesError;

mod compile;

/// Engine-wide settings (`[settings]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How often threshold, absence, run-state and burn-rate rules run.
    pub evaluation_interval: Duration,
    /// A firing alert is re-sent once per this interval.
    pub repeat_interval: Duration,
    /// Labels that put alerts into one message (`run`, `group`, `project`).
    pub group_by: Vec<String>,
    /// Where links in notifications point (`{base_url}/r/{id}`, see `loupe_model::run_url`).
    pub base_url: String,
    /// Longest wait between two delivery attempts.
    pub max_backoff: Duration,
    /// A notification still undelivered after this long is given up.
    pub give_up_after: Duration,
    /// Series whose last point is older than this are not checked by
    /// threshold rules (old runs do not alert on their last value forever).
    pub stale_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            evaluation_interval: Duration::from_secs(5),
            repeat_interval: Duration::from_secs(4 * 3600),
            group_by: vec!["run".into()],
            base_url: "http://127.0.0.1:7070".into(),
            max_backoff: Duration::from_secs(60),
            give_up_after: Duration::from_secs(24 * 3600),
            stale_after: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsSpec {
    evaluation_interval: Option<String>,
    repeat_interval: Option<String>,
    group_by: Option<Vec<String>>,
    base_url: Option<String>,
    max_backoff: Option<String>,
    give_up_after: Option<String>,
    stale_after: Option<String>,
}

/// A password or key from the rules file: its `Debug` never shows it, so
/// logging a configuration cannot leak it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Which built-in rules are on (`[defaults]`); all are, unless switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// A run's loss (`*loss`) is NaN.
    pub nan_loss: bool,
    /// A run crashed, or ended failed with an exception or out of memory.
    pub crashed_run: bool,
    /// A run stalls: an open soft or collective hang incident.
    pub stalled_run: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            nan_loss: true,
            crashed_run: true,
            stalled_run: true,
        }
    }
}

/// How an e-mail channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); the default.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine or in tests.
    None,
}

/// A webhook's body shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Loupe's JSON payload.
    Json,
    /// `{"text": …}` with Slack's `blocks`, which Slack, Mattermost and
    /// most chat incoming-webhooks accept.
    Slack,
}

/// One notification channel (`[[channels]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelConfig {
    Webhook(WebhookConfig),
    Email(EmailConfig),
}

impl ChannelConfig {
    pub fn name(&self) -> &str {
        match self {
            ChannelConfig::Webhook(w) => &w.name,
            ChannelConfig::Email(e) => &e.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The environment variable holding the URL, for chat webhooks whose
    /// URL is itself the credential.
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default = "default_format")]
    pub format: WebhookFormat,
    /// HMAC-SHA256 key, inline. Prefer `secret_env`.
    #[serde(default, skip_serializing)]
    pub secret: Option<Secret>,
    /// The environment variable holding the HMAC-SHA256 key.
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub name: String,
    pub host: String,
    pub port: Option<u16>,
    #[serde(default = "default_tls")]
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// Inline password. Prefer `password_env`.
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// The environment variable holding the SMTP password.
    pub password_env: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

fn default_format() -> WebhookFormat {
    WebhookFormat::Json
}
fn default_tls() -> SmtpTls {
    SmtpTls::Starttls
}
fn default_timeout() -> String {
    "10s".into()
}

/// A comparison a threshold rule makes on a series' last value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    Eq(f64),
    Ne(f64),
    IsNan,
    NotFinite,
}

impl Check {
    /// Whether `v` trips the check. NaN trips only the NaN/finite checks.
    pub fn trips(self, v: f64) -> bool {
        match self {
            Check::Gt(t) => v > t,
            Check::Ge(t) => v >= t,
            Check::Lt(t) => v < t,
            Check::Le(t) => v <= t,
            Check::Eq(t) => v == t,
            Check::Ne(t) => !v.is_nan() && v != t,
            Check::IsNan => v.is_nan(),
            Check::NotFinite => !v.is_finite(),
        }
    }

    /// The threshold, for charts.
    pub fn threshold(self) -> Option<f64> {
        match self {
            Check::Gt(t) | Check::Ge(t) | Check::Lt(t) | Check::Le(t) | Check::Eq(t) => Some(t),
            _ => None,
        }
    }
}

/// `SERIES OP NUMBER`, `SERIES is NaN` or `SERIES is not finite`.
pub fn parse_expr(expr: &str) -> Result<(String, Check), String> {
    let e = expr.trim();
    for (suffix, check) in [
        (" is not finite", Check::NotFinite),
        (" is NaN", Check::IsNan),
        (" is nan", Check::IsNan),
    ] {
        if let Some(series) = e.strip_suffix(suffix) {
            return series_name(series).map(|s| (s, check));
        }
    }
    for op in [">=", "<=", "==", "!=", ">", "<"] {
        if let Some((lhs, rhs)) = e.split_once(op) {
            let series = series_name(lhs)?;
            let rhs = rhs.trim();
            let t: f64 = rhs
                .parse()
                .map_err(|_| format!("{rhs:?} is not a number (in {expr:?})"))?;
            if !t.is_finite() {
                return Err(format!(
                    "the threshold must be finite (in {expr:?}); use `is NaN`"
                ));
            }
            let check = match op {
                ">=" => Check::Ge(t),
                "<=" => Check::Le(t),
                "==" => Check::Eq(t),
                "!=" => Check::Ne(t),
                ">" => Check::Gt(t),
                _ => Check::Lt(t),
            };
            return Ok((series, check));
        }
    }
    Err(format!(
        "{expr:?} is not `SERIES > NUMBER` (or >=, <, <=, ==, !=), `SERIES is NaN` or `SERIES is not finite`"
    ))
}

fn series_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(format!("{s:?} is not a series name"));
    }
    Ok(s.to_string())
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Incident {
        min_severity: Severity,
        causes: Vec<String>,
        project: Option<String>,
        run: Option<String>,
        group: Option<String>,
    },
    Threshold {
        series: String,
        check: Check,
        labels: BTreeMap<String, String>,
    },
    Absence {
        after: Duration,
        project: Option<String>,
        group: Option<String>,
    },
    RunState {
        states: Vec<String>,
        project: Option<String>,
        group: Option<String>,
    },
    BurnRate {
        errors: String,
        total: String,
        labels: BTreeMap<String, String>,
        objective: f64,
        windows: Vec<BurnWindow>,
        counter: bool,
    },
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub kind: RuleKind,
    /// Incident rules without one take the incident's.
    pub severity: Option<Severity>,
    pub for_: Duration,
    pub channels: Vec<String>,
    pub repeat_interval: Option<Duration>,
    pub summary: Option<String>,
    /// The spec it came from (what the API shows).
    pub spec: RuleSpec,
    pub builtin: bool,
}

impl Rule {
    /// Run-state alerts describe something that happened; they do not
    /// resolve because a run ages out of the look-back window.
    pub fn sticky(&self) -> bool {
        matches!(self.kind, RuleKind::RunState { .. })
    }
}

/// The states a `run_state` rule may name. `exception` is not a status: it
/// is a run that ended `failed` with an uncaught exception (an
/// out-of-memory error included) or `killed` by SIGKILL, as the kernel's
/// OOM killer does — what a user calls a crash.
pub const RUN_STATES: [&str; 4] = ["failed", "crashed", "lost", "exception"];

/// The pseudo-state of [`RUN_STATES`] for runs that died of an exception.
pub const EXCEPTION_STATE: &str = "exception";

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
        .map_err(|e: loupe_model::UnknownSeverity| e.to_string())
}

/// The built-in rules that `defaults` leaves on.
pub fn builtin_rules(d: Defaults) -> Vec<Rule> {
    let mut out = Vec::new();
    let mk = |name: &str, kind: RuleKind, sev: Severity, summary: &str, spec_kind: &str| Rule {
        name: name.into(),
        kind,
        severity: Some(sev),
        for_: Duration::ZERO,
        channels: vec![],
        repeat_interval: None,
        summary: Some(summary.into()),
        spec: RuleSpec {
            name: name.into(),
            kind: spec_kind.into(),
            severity: Some(sev.as_str().into()),
            summary: Some(summary.into()),
            ..Default::default()
        },
        builtin: true,
    };
    if d.nan_loss {
        let mut r = mk(
            "builtin:nan_loss",
            RuleKind::Threshold {
                series: "*loss".into(),
                check: Check::IsNan,
                labels: BTreeMap::from([("run".into(), "*".into())]),
            },
            Severity::Critical,
            "{series} is NaN in run {run}",
            "threshold",
        );
        r.spec.expr = Some("*loss is NaN".into());
        out.push(r);
    }
    if d.crashed_run {
        let mut r = mk(
            "builtin:crashed_run",
            RuleKind::RunState {
                states: vec!["crashed".into(), EXCEPTION_STATE.into()],
                project: None,
                group: None,
            },
            Severity::Critical,
            "run {run} {reason}",
            "run_state",
        );
        r.spec.states = Some(vec!["crashed".into(), EXCEPTION_STATE.into()]);
        out.push(r);
    }
    if d.stalled_run {
        let causes = vec!["soft_hang".to_string(), "collective_hang".to_string()];
        let mut r = mk(
            "builtin:stalled_run",
            RuleKind::Incident {
                min_severity: Severity::Info,
                causes: causes.clone(),
                project: None,
                run: None,
                group: None,
            },
            Severity::Warning,
            "run {run} stalled: {title}",
            "incident",
        );
        r.spec.causes = Some(causes);
        out.push(r);
    }
    out
}

/// A whole rules file, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RulesConfig {
    pub settings: Settings,
    pub defaults: Defaults,
    pub channels: Vec<ChannelConfig>,
    /// The file's own rules (built-ins are added by [`RulesConfig::all_rules`]).
    pub rules: Vec<Rule>,
}

impl RulesConfig {
    /// Built-ins first, then the file's rules.
    pub fn all_rules(&self) -> Vec<Rule> {
        let mut out = builtin_rules(self.defaults);
        out.extend(self.rules.iter().cloned());
        out
    }

    /// Reads and validates a rules file's text.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| RulesError::one(e.to_string()))?;
        let mut errs = Vec::new();
        let mut cfg = RulesConfig::default();
        for key in table.keys() {
            if !["settings", "defaults", "channels", "rules"].contains(&key.as_str()) {
                errs.push(format!(
                    "unknown section `{key}` (expected settings, defaults, channels, rules)"
                ));
            }
        }
        if let Some(v) = table.get("settings") {
            match v.clone().try_into::<SettingsSpec>() {
                Ok(s) => cfg.settings = compile_settings(s, &mut errs),
                Err(e) => errs.push(format!("[settings]: {}", one_line(&e.to_string()))),
            }
        }
        if let Some(v) = table.get("defaults") {
            match v.clone().try_into::<Defaults>() {
                Ok(d) => cfg.defaults = d,
                Err(e) => errs.push(format!("[defaults]: {}", one_line(&e.to_string()))),
            }
        }
        if let Some(v) = table.get("channels") {
            let Some(list) = v.as_array() else {
                return Err(RulesError::one(
                    "`channels` must be a list: write [[channels]]",
                ));
            };
            for (i, c) in list.iter().enumerate() {
                let name = c.get("name").and_then(|n| n.as_str()).unwrap_or("");
                let who = format!("channel {name:?} (channels[{i}])");
                match c.clone().try_into::<ChannelConfig>() {
                    Ok(ch) => {
                        if let Err(e) = check_channel(&ch) {
                            errs.push(format!("{who}: {e}"));
                        } else if cfg.channels.iter().any(|o| o.name() == ch.name()) {
                            errs.push(format!("{who}: field `name`: used twice"));
                        } else {
                            cfg.channels.push(ch);
                        }
                    }
                    Err(e) => errs.push(format!("{who}: {}", one_line(&e.to_string()))),
                }
            }
        }
        if let Some(v) = table.get("rules") {
            let Some(list) = v.as_array() else {
                return Err(RulesError::one("`rules` must be a list: write [[rules]]"));
            };
            for (i, r) in list.iter().enumerate() {
                let name = r.get("name").and_then(|n| n.as_str()).unwrap_or("");
                match r.clone().try_into::<RuleSpec>() {
                    Ok(spec) => match Rule::compile(&spec) {
                        Ok(rule) => {
                            if cfg.rules.iter().any(|o| o.name == rule.name) {
                                errs.push(format!(
                                    "rule {name:?} (rules[{i}]): field `name`: used twice"
                                ));
                            } else {
                                cfg.rules.push(rule);
                            }
                        }
                        Err(e) => {
                            errs.extend(e.errors.into_iter().map(|m| format!("{m} (rules[{i}])")))
                        }
                    },
                    Err(e) => errs.push(format!(
                        "rule {name:?} (rules[{i}]): {}",
                        one_line(&e.to_string())
                    )),
                }
            }
        }
        let names: Vec<&str> = cfg.channels.iter().map(|c| c.name()).collect();
        for r in &cfg.rules {
            for c in &r.channels {
                if !names.contains(&c.as_str()) {
                    errs.push(format!(
                        "rule {:?}: field `channels`: no channel named {c:?}",
                        r.name
                    ));
                }
            }
        }
        if errs.is_empty() {
            Ok(cfg)
        } else {
            Err(RulesError { errors: errs })
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn compile_settings(s: SettingsSpec, errs: &mut Vec<String>) -> Settings {
    let mut out = Settings::default();
    let mut d = |field: &str, v: Option<String>, slot: &mut Duration| {
        if let Some(t) = v {
            match duration::parse(&t) {
                Ok(x) => *slot = x,
                Err(e) => errs.push(format!("[settings]: field `{field}`: {e}")),
            }
        }
    };
    d(
        "evaluation_interval",
        s.evaluation_interval,
        &mut out.evaluation_interval,
    );
    d(
        "repeat_interval",
        s.repeat_interval,
        &mut out.repeat_interval,
    );
    d("max_backoff", s.max_backoff, &mut out.max_backoff);
    d("give_up_after", s.give_up_after, &mut out.give_up_after);
    d("stale_after", s.stale_after, &mut out.stale_after);
    if out.evaluation_interval < Duration::from_millis(100) {
        errs.push("[settings]: field `evaluation_interval`: must be at least 100ms".into());
    }
    if let Some(g) = s.group_by {
        for l in &g {
            if !["run", "group", "project", "alertname", "host"].contains(&l.as_str()) {
                errs.push(format!(
                    "[settings]: field `group_by`: {l:?} is not run, group, project, host or alertname"
                ));
            }
        }
        out.group_by = g;
    }
    if let Some(b) = s.base_url {
        out.base_url = b.trim_end_matches('/').to_string();
    }
    out
}

fn check_channel(c: &ChannelConfig) -> Result<(), String> {
    if c.name().trim().is_empty() {
        return Err("field `name`: is required".into());
    }
    match c {
        ChannelConfig::Webhook(w) => {
            match (&w.url_env, w.url.is_empty()) {
                (Some(_), false) => {
                    return Err("fields `url` and `url_env`: give one, not both".into());
                }
                (None, true) => return Err("field `url`: is required (or `url_env`)".into()),
                (None, false)
                    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) =>
                {
                    return Err(format!("field `url`: {:?} is not an http(s) URL", w.url));
                }
                _ => {}
            }
            duration::parse(&w.timeout).map_err(|e| format!("field `timeout`: {e}"))?;
            if w.secret.is_some() && w.secret_env.is_some() {
                return Err("fields `secret` and `secret_env`: give one, not both".into());
            }
        }
        ChannelConfig::Email(e) => {
            if e.host.trim().is_empty() {
                return Err("field `host`: is required".into());
            }
            if e.to.is_empty() {
                return Err("field `to`: needs at least one address".into());
            }
            for a in std::iter::once(&e.from).chain(&e.to) {
                if a.parse::<lettre::Address>().is_err()
                    && a.parse::<lettre::message::Mailbox>().is_err()
                {
                    return Err(format!("{a:?} is not an e-mail address"));
                }
            }
            duration::parse(&e.timeout).map_err(|x| format!("field `timeout`: {x}"))?;
            if e.password.is_some() && e.password_env.is_some() {
                return Err("fields `password` and `password_env`: give one, not both".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[settings]
evaluation_interval = "2s"
repeat_interval = "1h"
group_by = ["run"]
base_url = "http://loupe.example:7070/"

[defaults]
stalled_run = false

[[channels]]
name = "ops"
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret_env = "HOOK_KEY"
format = "slack"

[[channels]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = 2525
tls = "none"
from = "loupe@example.com"
to = ["oncall@example.com"]

[[rules]]
name = "gpu-hot"
kind = "threshold"
expr = "gpu/0/temperature > 85"
for = "5m"
severity = "warning"
labels = { host = "node-*" }
channels = ["ops"]

[[rules]]
name = "loss-nan"
kind = "threshold"
expr = "train/loss is NaN"

[[rules]]
name = "quiet"
kind = "absence"
for = "10m"

[[rules]]
name = "dead"
kind = "run_state"
states = ["failed", "lost"]

[[rules]]
name = "lr"
kind = "incident"
min_severity = "warning"
causes = ["learning_rate_too_high"]
project = "llm-*"

[[rules]]
name = "slo"
kind = "burn_rate"
errors = "serve/errors"
total = "serve/requests"
objective = 0.99
windows = [{ long = "1h", short = "5m", factor = 14.4 }]
"#;

    #[test]
    fn parses_every_kind() {
        let c = RulesConfig::parse(GOOD).unwrap();
        assert_eq!(c.settings.evaluation_interval, Duration::from_secs(2));
        assert_eq!(c.settings.base_url, "http://loupe.example:7070");
        assert_eq!(c.channels.len(), 2);
        assert_eq!(c.rules.len(), 6);
        assert_eq!(c.rules[0].for_, Duration::from_secs(300));
        assert!(matches!(
            c.rules[0].kind,
            RuleKind::Threshold {
                check: Check::Gt(85.0),
                ..
            }
        ));
        assert!(matches!(
            c.rules[1].kind,
            RuleKind::Threshold {
                check: Check::IsNan,
                ..
            }
        ));
        assert!(
            matches!(c.rules[2].kind, RuleKind::Absence { after, .. } if after == Duration::from_secs(600))
        );
        match &c.rules[5].kind {
            RuleKind::BurnRate {
                objective, windows, ..
            } => {
                assert_eq!(*objective, 0.99);
                assert_eq!(windows.len(), 1);
            }
            k => panic!("{k:?}"),
        }
        // Stalled-run switched off; the other two built-ins stay.
        let names: Vec<String> = c.all_rules().into_iter().map(|r| r.name).collect();
        assert!(names.contains(&"builtin:nan_loss".to_string()));
        assert!(names.contains(&"builtin:crashed_run".to_string()));
        assert!(!names.contains(&"builtin:stalled_run".to_string()));
    }

    #[test]
    fn errors_name_rule_and_field() {
        let bad = r#"
[[rules]]
name = "hot"
kind = "threshold"
expr = "gpu/0/temperature >> 85"
for = "5x"

[[rules]]
name = "typo"
kind = "threshold"
exrp = "a > 1"

[[rules]]
name = "wrong-field"
kind = "absence"
for = "10m"
expr = "a > 1"

[[rules]]
name = "slo"
kind = "burn_rate"
objective = 1.5

[[rules]]
name = "r"
kind = "run_state"
states = ["exploded"]

[[rules]]
name = "n"
kind = "run_state"
channels = ["nowhere"]
"#;
        let e = RulesConfig::parse(bad).unwrap_err();
        let all = e.to_string();
        assert!(all.contains(r#"rule "hot": field `expr`"#), "{all}");
        assert!(
            all.contains(r#"rule "hot": field `for`: "5x": unknown unit"#),
            "{all}"
        );
        assert!(
            all.contains(r#"rule "typo" (rules[1]): unknown field `exrp`"#),
            "{all}"
        );
        assert!(
            all.contains(r#"rule "wrong-field": field `expr`: is not used by kind "absence""#),
            "{all}"
        );
        assert!(all.contains(r#"rule "slo": field `objective`"#), "{all}");
        assert!(
            all.contains(r#"rule "slo": field `errors`: is required"#),
            "{all}"
        );
        assert!(
            all.contains(r#"rule "r": field `states`: "exploded""#),
            "{all}"
        );
        assert!(all.contains(r#"no channel named "nowhere""#), "{all}");
    }

    #[test]
    fn syntax_errors_and_channels() {
        assert!(RulesConfig::parse("[[rules]\n").is_err());
        let e = RulesConfig::parse(
            "[[channels]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"ftp://x\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains(r#"channel "x" (channels[0]): field `url`"#),
            "{e}"
        );
        let e = RulesConfig::parse("[[channels]]\nname = \"m\"\ntype = \"email\"\nhost = \"h\"\nfrom = \"not an address\"\nto = [\"a@b.c\"]\n")
            .unwrap_err();
        assert!(e.to_string().contains("not an e-mail address"), "{e}");
        let e = RulesConfig::parse("[alerts]\n").unwrap_err();
        assert!(e.to_string().contains("unknown section `alerts`"));
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = RulesConfig::parse(
            "[[channels]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"http://x/\"\nsecret = \"hunter2\"\n",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        match &c.channels[0] {
            ChannelConfig::Webhook(w) => assert_eq!(w.secret.as_ref().unwrap().0, "hunter2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expressions() {
        assert_eq!(
            parse_expr("a/b >= 2.5").unwrap(),
            ("a/b".into(), Check::Ge(2.5))
        );
        assert_eq!(
            parse_expr("x is not finite").unwrap(),
            ("x".into(), Check::NotFinite)
        );
        assert!(parse_expr("x > NaN").is_err());
        assert!(parse_expr("> 3").is_err());
        assert!(Check::Gt(1.0).trips(2.0) && !Check::Gt(1.0).trips(f64::NAN));
        assert!(Check::IsNan.trips(f64::NAN) && Check::NotFinite.trips(f64::INFINITY));
    }
}
