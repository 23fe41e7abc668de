//! Cohorts: one member of a group apart from the others at the same time —
//! a rank of a job, a replica of a service, a host of a project's pool.
//!
//! Members are compared per cohort series (`gpu/*/temperature`: the series
//! name with its numeric parts as `*`, see [`cohort_key`]), on the mean of
//! their last `recent_points` values, against the cohort's median. A member
//! is apart when it is `relative` worse than the median in the direction
//! that hurts its role and (unless the spread is zero) at least 3 robust
//! deviations (1.4826 × MAD) away. It is reported on the `persist`-th check
//! in a row that finds it apart, then every 30 checks while it stays apart;
//! a member back in the pack starts counting over.
//!
//! **Invariants:** only series that arrived in the last minute take part,
//! ended runs do not; a cohort needs `min_members`; the persistence counts
//! are kept only for members apart at the latest check (bounded by the
//! members); members are judged in (group, cohort series, member, series)
//! order and the findings emitted minor first, so the same input gives the
//! same findings in the same order.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use hashbrown::{HashMap, HashSet};
use loupe_model::units;

use crate::Severity;
use crate::config::CohortConfig;
use crate::diagnoser::state::{RunState, Sink, SourceState, Watched, scope_of};
use crate::finding::{Direction, Finding, FindingKind, SeriesRole};

/// A series takes part only if a point of it arrived this recently.
const FRESH_S: f64 = 60.0;
/// Robust deviations (1.4826 × MAD, a normal spread's σ) a member must be
/// from the median: the usual "3σ" of an outlier.
const MIN_ROBUST_Z: f64 = 3.0;
/// Scale of the MAD to a normal distribution's standard deviation.
const MAD_TO_SIGMA: f64 = 1.4826;
/// While a member stays apart it is reported again every this many checks.
const REPORT_EVERY: u32 = 30;

/// The persistence counts of members found apart.
#[derive(Debug, Default)]
pub(crate) struct CohortWatch {
    /// Consecutive checks each member was apart, per hash of (group,
    /// cohort series, member): no strings kept per member and check.
    counts: HashMap<u64, u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

/// One member's series in a cohort, borrowed from the diagnoser's state.
struct Member<'a> {
    /// The job, the service, or the project's hosts.
    group: &'a str,
    /// The cohort series (`gpu/*/temperature`).
    key: &'a str,
    /// The run or source id.
    id: &'a str,
    /// The member's own series name.
    name: &'a str,
    /// The mean of its recent values.
    value: f64,
    role: SeriesRole,
}

impl CohortWatch {
    /// Compares the members of every cohort and emits the outliers due.
    pub(crate) fn check(
        &mut self,
        runs: &mut BTreeMap<String, RunState>,
        sources: &BTreeMap<String, SourceState>,
        cfg: &CohortConfig,
        sink: &mut Sink,
        now: f64,
    ) {
        if !cfg.enabled {
            return;
        }
        let mut findings = self.outliers(runs, sources, cfg, now);
        // Minor findings first, so that they are in the lookback when the
        // outlier that opens the incident arrives in the same tick.
        findings.sort_by_key(|f| f.severity);
        for f in findings {
            note_signal_cohort(runs, &f);
            sink.emit(f, now);
        }
    }

    /// The findings of the members apart whose persistence count is due,
    /// updating the counts.
    fn outliers(
        &mut self,
        runs: &BTreeMap<String, RunState>,
        sources: &BTreeMap<String, SourceState>,
        cfg: &CohortConfig,
        now: f64,
    ) -> Vec<Finding> {
        let members = members(runs, sources, cfg, now);
        let mut findings = Vec::new();
        let mut seen = HashSet::new();
        let mut vals = Vec::new();
        for cohort in members.chunk_by(|a, b| a.group == b.group && a.key == b.key) {
            if cohort.len() < cfg.min_members {
                continue;
            }
            let (med, mad) = median_and_mad(cohort, &mut vals);
            for m in cohort {
                let Some((bad, rel)) = apart(m, med, mad, cfg) else {
                    continue;
                };
                let ck = self.hasher.hash_one((m.group, m.key, m.id));
                seen.insert(ck);
                let c = self.counts.entry(ck).or_insert(0);
                *c += 1;
                if !due(*c, cfg.persist) {
                    continue;
                }
                if let Some(f) = outlier_finding(m, med, bad, rel, runs, sources, cfg, now) {
                    findings.push(f);
                }
            }
        }
        // Counts of members that are no longer apart start over.
        self.counts.retain(|k, _| seen.contains(k));
        findings
    }
}

/// Every compared series of the live runs of a group and of the sources,
/// sorted by (group, cohort series, member, series).
fn members<'a>(
    runs: &'a BTreeMap<String, RunState>,
    sources: &'a BTreeMap<String, SourceState>,
    cfg: &CohortConfig,
    now: f64,
) -> Vec<Member<'a>> {
    // Members are the ranks of a job, and the sources outside runs: the
    // replicas of a service, the hosts of a project.
    let runs = runs.iter().filter_map(|(id, st)| {
        let group = st.info.group.as_deref()?;
        st.ended
            .is_none()
            .then_some((group, id.as_str(), &st.watched))
    });
    let sources = sources
        .iter()
        .map(|(id, src)| (src.cohort.as_str(), id.as_str(), &src.watched));
    let mut members = Vec::new();
    for (group, id, watched) in runs.chain(sources) {
        members.extend(fresh_series(group, id, watched, cfg.recent_points, now));
    }
    // The whole tuple's names, not only the cohort: the members' order is
    // the order of the findings.
    members.sort_unstable_by(|a, b| {
        (a.group, a.key, a.id, a.name).cmp(&(b.group, b.key, b.id, b.name))
    });
    members
}

/// A member's compared series that arrived recently, with their recent mean.
fn fresh_series<'a>(
    group: &'a str,
    id: &'a str,
    watched: &'a Watched,
    recent_points: usize,
    now: f64,
) -> impl Iterator<Item = Member<'a>> + 'a {
    watched.series.iter().filter_map(move |(name, ss)| {
        let key = ss.cohort.as_deref()?;
        if now - ss.last_arrival > FRESH_S {
            return None;
        }
        let take = recent_points.min(ss.recent.len());
        if take == 0 {
            return None;
        }
        let value = ss.recent.iter().rev().take(take).sum::<f64>() / take as f64;
        Some(Member {
            group,
            key,
            id,
            name,
            value,
            role: ss.det.role,
        })
    })
}

/// The cohort's median and median absolute deviation (`vals` is scratch).
fn median_and_mad(cohort: &[Member], vals: &mut Vec<f64>) -> (f64, f64) {
    vals.clear();
    vals.extend(cohort.iter().map(|m| m.value));
    vals.sort_unstable_by(|a, b| a.total_cmp(b));
    let med = median_sorted(vals);
    for v in vals.iter_mut() {
        *v = (*v - med).abs();
    }
    vals.sort_unstable_by(|a, b| a.total_cmp(b));
    (med, median_sorted(vals))
}

/// Whether a member is apart from the median the way that hurts: its bad
/// direction and its change relative to the median.
fn apart(m: &Member, med: f64, mad: f64, cfg: &CohortConfig) -> Option<(Direction, f64)> {
    let bad = m.role.bad_direction()?;
    let rel = if med.abs() > 0.0 {
        (m.value - med) / med.abs()
    } else {
        0.0
    };
    let worse = match bad {
        Direction::Up => rel >= cfg.relative,
        Direction::Down => -rel >= cfg.relative,
    };
    let z_ok = mad == 0.0 || (m.value - med).abs() / (MAD_TO_SIGMA * mad) >= MIN_ROBUST_Z;
    (worse && z_ok).then_some((bad, rel))
}

/// Whether the `count`-th check in a row that found a member apart reports
/// it: the `persist`-th, then every [`REPORT_EVERY`] after.
fn due(count: u32, persist: u32) -> bool {
    count == persist || (count > persist && (count - persist).is_multiple_of(REPORT_EVERY))
}

#[allow(clippy::too_many_arguments)]
fn outlier_finding(
    m: &Member,
    med: f64,
    bad: Direction,
    rel: f64,
    runs: &BTreeMap<String, RunState>,
    sources: &BTreeMap<String, SourceState>,
    cfg: &CohortConfig,
    now: f64,
) -> Option<Finding> {
    let (scope, watched, step, rank) = match (runs.get(m.id), sources.get(m.id)) {
        (Some(st), _) => (
            scope_of(&st.info),
            &st.watched,
            st.steps.last_step,
            st.info.rank,
        ),
        (None, Some(src)) => (src.scope.clone(), &src.watched, None, None),
        (None, None) => return None,
    };
    let (name, v) = (m.name, m.value);
    let mut f = Finding::new(scope, FindingKind::CohortOutlier, m.role, now);
    f.series = Some(name.to_string());
    f.step = step;
    f.value = Some(v);
    f.expected = Some(med);
    f.direction = Some(bad);
    f.score = (rel.abs() / (2.0 * cfg.relative)).clamp(0.4, 1.0);
    // Within a job the slow rank is the news and its GPU the evidence; a
    // host or replica apart from its pool is news.
    f.severity = match m.role {
        _ if rank.is_none() && sources.contains_key(m.id) => Severity::Warning,
        SeriesRole::StepTime
        | SeriesRole::Throughput
        | SeriesRole::Latency
        | SeriesRole::Errors => Severity::Warning,
        _ => Severity::Info,
    };
    f.time = watched.series.get(name).map_or(now, |s| s.last_time);
    f.detail = format!(
        "{name} is {} against the group's median {} ({})",
        units::series_value(v, name),
        units::series_value(med, name),
        units::percent_change(rel)
    );
    f.attributes.rank = rank;
    Some(f)
}
fn note_signal_cohort(runs: &mut BTreeMap<String, RunState>, f: &Finding) {
    if let Some(run) = &f.scope.run
        && let Some(st) = runs.get_mut(run)
    {
        st.signals.minor_findings += 1;
    }
}

/// `gpu/3/temperature` and `gpu/0/temperature` compare as one cohort series.
pub(crate) fn cohort_key(name: &str) -> String {
    name.split('/')
        .map(|part| {
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Scope;
    use crate::{DiagnoseConfig, Diagnoser, Incident};

    fn source_scope(host: &str, service: Option<&str>) -> Scope {
        Scope {
            project: Some("p".into()),
            host: Some(host.into()),
            service: service.map(String::from),
            ..Default::default()
        }
    }

    /// Feeds `members` sources one point a second for a minute, with
    /// `value(member, i)`; returns the incidents.
    fn feed(
        d: &mut Diagnoser,
        members: &[(&str, Option<&str>)],
        series: &str,
        value: impl Fn(usize, usize) -> f64,
    ) -> Vec<Incident> {
        let mut out = Vec::new();
        for i in 0..60 {
            let t = 1.7e9 + i as f64;
            for (m, (host, svc)) in members.iter().enumerate() {
                let source = format!("host={host}");
                d.observe_source_points(
                    &source,
                    source_scope(host, *svc),
                    series,
                    &[t],
                    &[value(m, i)],
                    t,
                );
            }
            out.extend(d.tick(t));
        }
        out
    }

    #[test]
    fn a_host_apart_from_its_pool_is_flagged_and_the_others_are_not() {
        let mut d = Diagnoser::new(DiagnoseConfig::default(), "t");
        let hosts: Vec<(&str, Option<&str>)> = vec![
            ("n1", None),
            ("n2", None),
            ("n3", None),
            ("n4", None),
            ("n5", None),
        ];
        // n3's GPU clock is throttled to 1400 MHz, the others run at ~1980.
        let incidents = feed(&mut d, &hosts, "gpu.clock.sm_mhz", |m, i| {
            if m == 2 {
                1400.0
            } else {
                1980.0 + ((m * 7 + i) % 5) as f64
            }
        });
        assert!(!incidents.is_empty());
        for inc in &incidents {
            assert_eq!(inc.host.as_deref(), Some("n3"), "{inc:?}");
        }
    }

    #[test]
    fn a_slow_replica_of_a_service_is_flagged() {
        let mut d = Diagnoser::new(DiagnoseConfig::default(), "t");
        let replicas: Vec<(&str, Option<&str>)> = vec![
            ("r1", Some("chat")),
            ("r2", Some("chat")),
            ("r3", Some("chat")),
            ("r4", Some("chat")),
        ];
        let incidents = feed(&mut d, &replicas, "llm.latency_p95_seconds", |m, i| {
            if m == 3 {
                2.0
            } else {
                0.9 + 0.01 * ((m + i) % 3) as f64
            }
        });
        let top: Vec<(&str, Option<&str>)> = incidents
            .iter()
            .map(|i| (i.kind.as_str(), i.host.as_deref()))
            .collect();
        assert!(top.contains(&("serving_latency", Some("r4"))), "{top:?}");
        assert!(
            incidents.iter().all(|i| i.host.as_deref() == Some("r4")),
            "{top:?}"
        );
    }

    #[test]
    fn numbered_parts_of_a_name_make_one_cohort_series() {
        assert_eq!(cohort_key("gpu/3/temperature"), "gpu/*/temperature");
        assert_eq!(cohort_key("gpu/0/temperature"), "gpu/*/temperature");
        assert_eq!(cohort_key("perf/step_time"), "perf/step_time");
    }

    #[test]
    fn a_member_apart_is_reported_on_the_persist_th_check_then_every_30() {
        let reported: Vec<u32> = (1..=70).filter(|&c| due(c, 3)).collect();
        assert_eq!(reported, [3, 33, 63]);
    }
}
