//! How what the diagnoser is fed becomes findings: a detector's raw
//! result on a series, a log signature, a run's non-zero exit; and the
//! health signals a finding sets on its run.

use crate::Severity;
use crate::detect::Raw;
use crate::finding::{Finding, FindingKind, LogRef, Scope, SeriesRole};
use crate::health::HealthSignals;
use crate::logsig::LogSignatureKind;

pub(super) fn to_finding(
    scope: Scope,
    series: &str,
    role: SeriesRole,
    step: Option<i64>,
    time: f64,
    raw: Raw,
) -> Finding {
    let mut f = Finding::new(scope, raw.kind, role, time);
    f.series = Some(series.to_string());
    f.step = step;
    f.value = raw.value;
    f.expected = raw.expected;
    f.direction = raw.direction;
    f.score = raw.score;
    f.severity = raw.severity;
    f.detail = raw.detail;
    f.attributes = raw.attributes;
    f
}

pub(super) fn log_finding(
    scope: Scope,
    m: crate::logsig::LogMatch,
    time: f64,
    seq: u64,
    text: &str,
) -> Finding {
    let mut f = Finding::new(scope, FindingKind::Log(m.kind), SeriesRole::Other, time);
    f.severity = m.severity;
    f.score = match m.severity {
        Severity::Critical => 1.0,
        Severity::Warning => 0.7,
        Severity::Info => 0.3,
    };
    f.detail = m.title;
    if let Some(r) = m.attributes.rank {
        f.scope.rank = f.scope.rank.or(Some(r));
    }
    f.attributes = m.attributes;
    if !text.is_empty() {
        f.log = Some(LogRef {
            seq,
            text: truncate(text, 2000),
        });
    }
    f
}

/// When a run's end happened in data time: its newest data, or `now` for
/// a run that sent nothing (or only times that cannot be read).
pub(super) fn end_data_time(last_data_time: f64, now: f64) -> f64 {
    if last_data_time > 0.0 {
        last_data_time
    } else {
        now
    }
}

/// The finding of a non-zero exit: critical when nothing in the run's
/// output explained a failure (it opens "crashed, cause unknown"), minor
/// evidence otherwise. 128+N and negative codes name signal N.
pub(super) fn exit_finding(
    scope: Scope,
    code: i32,
    last: &[&str],
    explained: bool,
    now: f64,
) -> Finding {
    let kind = LogSignatureKind::ExitStatus;
    let mut f = Finding::new(scope, FindingKind::Log(kind), SeriesRole::Other, now);
    f.severity = if explained {
        Severity::Info
    } else {
        Severity::Critical
    };
    f.score = if explained { 0.3 } else { 1.0 };
    f.attributes.exit_code = Some(code);
    let signal = crate::logsig::signal_of_exit_code(code).and_then(crate::logsig::signal_name);
    f.detail = match signal {
        Some(sig) => {
            f.attributes.signal = Some(sig.into());
            format!("the process exited with code {code} ({sig})")
        }
        None => format!("the process exited with code {code}"),
    };
    if !last.is_empty() {
        let text = last.join("\n");
        f.attributes.last_errors = Some(text.clone());
        f.log = Some(LogRef {
            seq: 0,
            text: truncate(&text, 2000),
        });
    }
    f
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub(super) fn note_signal(s: &mut HealthSignals, f: &Finding) {
    match (f.kind, f.role) {
        (FindingKind::NonFinite, SeriesRole::Loss) => s.nonfinite_loss = true,
        (FindingKind::Log(LogSignatureKind::NanInLogs), _) => s.nonfinite_loss = true,
        (FindingKind::LevelShift, SeriesRole::Throughput | SeriesRole::StepTime) => {
            s.throughput_degraded = true
        }
        (FindingKind::Plateau, _) => s.plateau = true,
        _ => {}
    }
    if f.severity == Severity::Info {
        s.minor_findings = s.minor_findings.saturating_add(1);
    }
}
