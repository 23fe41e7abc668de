//! Scores the diagnoser on generated scenarios: precision, recall, the rank
//! of the true cause, and the detection delay, per fault kind.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Event, FaultKind, JobSpec, Scenario, generate};
use crate::config::DiagnoseConfig;
use crate::diagnoser::Diagnoser;
use crate::incident::Incident;

/// Feeds a scenario through a diagnoser in data time (ticks every second)
/// and returns every incident in its final state.
pub fn replay(sc: &Scenario, cfg: &DiagnoseConfig) -> Vec<Incident> {
    let mut d = Diagnoser::new(cfg.clone(), "replay");
    let mut latest: BTreeMap<String, Incident> = BTreeMap::new();
    let keep = |changes: Vec<Incident>, latest: &mut BTreeMap<String, Incident>| {
        for i in changes {
            latest.insert(i.id.clone(), i);
        }
    };
    let mut next_tick = f64::NAN;
    let mut seq: BTreeMap<String, u64> = BTreeMap::new();
    let mut now = 0.0;
    for e in &sc.events {
        let t = e.time();
        if t.is_finite() {
            if next_tick.is_nan() {
                next_tick = t.floor() + 1.0;
            }
            while next_tick <= t {
                keep(d.tick(next_tick), &mut latest);
                next_tick += 1.0;
            }
            now = t;
        }
        match e {
            Event::RunStarted { info, .. } => d.register_run(info.clone()),
            Event::Points {
                run,
                series,
                steps,
                times,
                values,
            } => d.observe_run_points(run, series, Some(steps), times, values, now),
            Event::SourcePoints {
                source,
                scope,
                series,
                times,
                values,
            } => d.observe_source_points(source, scope.clone(), series, times, values, now),
            Event::Log {
                run,
                time,
                stream,
                level,
                text,
            } => {
                let s = seq.entry(run.clone()).or_insert(0);
                *s += 1;
                d.observe_log(run, *s, *time, *stream, *level, text, now)
            }
            Event::RunEnded {
                run,
                status,
                exit_code,
                time,
            } => d.run_ended(run, status, *exit_code, *time),
        }
    }
    // Let stalls and resolutions play out, then close.
    for _ in 0..400 {
        keep(d.tick(next_tick), &mut latest);
        next_tick += 1.0;
    }
    keep(d.finish(next_tick), &mut latest);
    latest.into_values().collect()
}

/// Per fault kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindScore {
    pub injected: u32,
    pub detected: u32,
    pub top_cause_first: u32,
    /// Rank (1 = first) of the true cause in each detected fault's incident.
    pub ranks: Vec<u32>,
    /// Seconds from the fault's start to the incident's opening.
    pub delays: Vec<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct QualityReport {
    pub incidents: u32,
    /// Incidents that match an injected fault.
    pub true_incidents: u32,
    /// Incidents touching healthy runs.
    pub incidents_on_healthy: u32,
    pub by_kind: BTreeMap<String, KindScore>,
    pub points: u64,
}

impl QualityReport {
    pub fn precision(&self) -> f64 {
        if self.incidents == 0 {
            1.0
        } else {
            self.true_incidents as f64 / self.incidents as f64
        }
    }

    pub fn recall(&self) -> f64 {
        let (inj, det) = self
            .by_kind
            .values()
            .fold((0, 0), |(i, d), k| (i + k.injected, d + k.detected));
        if inj == 0 {
            1.0
        } else {
            det as f64 / inj as f64
        }
    }

    pub fn top_cause_rate(&self) -> f64 {
        let (det, first) = self
            .by_kind
            .values()
            .fold((0, 0), |(d, f), k| (d + k.detected, f + k.top_cause_first));
        if det == 0 {
            0.0
        } else {
            first as f64 / det as f64
        }
    }

    /// A markdown table, one row per fault kind.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| fault | injected | detected | recall | true cause first | mean rank | median delay (s) |\n|---|---|---|---|---|---|---|\n",
        );
        for (kind, k) in &self.by_kind {
            let mut d = k.delays.clone();
            d.sort_by(|a, b| a.total_cmp(b));
            let med = if d.is_empty() {
                f64::NAN
            } else {
                d[d.len() / 2]
            };
            let mean_rank = if k.ranks.is_empty() {
                f64::NAN
            } else {
                k.ranks.iter().sum::<u32>() as f64 / k.ranks.len() as f64
            };
            s.push_str(&format!(
                "| {kind} | {} | {} | {:.2} | {}/{} | {mean_rank:.2} | {med:.0} |\n",
                k.injected,
                k.detected,
                if k.injected == 0 {
                    1.0
                } else {
                    k.detected as f64 / k.injected as f64
                },
                k.top_cause_first,
                k.detected,
            ));
        }
        s.push_str(&format!(
            "\nprecision {:.3} ({} of {} incidents match a fault; {} on healthy runs), recall {:.3}, true cause first {:.3}\n",
            self.precision(),
            self.true_incidents,
            self.incidents,
            self.incidents_on_healthy,
            self.recall(),
            self.top_cause_rate()
        ));
        s
    }
}

/// How far after its fault an incident may open and still count.
const MATCH_WINDOW_S: f64 = 900.0;

pub fn evaluate(sc: &Scenario, incidents: &[Incident]) -> QualityReport {
    let mut r = QualityReport {
        incidents: incidents.len() as u32,
        points: sc.points() as u64,
        ..Default::default()
    };
    let mut matched = vec![false; incidents.len()];
    for fault in &sc.faults {
        let k = r
            .by_kind
            .entry(fault.kind.as_str().to_string())
            .or_default();
        k.injected += 1;
        let candidates: Vec<(usize, &Incident)> = incidents
            .iter()
            .enumerate()
            .filter(|(_, i)| touches(i, fault))
            .filter(|(_, i)| {
                i.end_time.unwrap_or(i.start_time) >= fault.start_time - 60.0
                    && i.start_time <= fault.start_time + MATCH_WINDOW_S
            })
            .collect();
        for (idx, _) in &candidates {
            matched[*idx] = true;
        }
        let expected = fault.kind.expected_cause();
        // The fault's incident: the one that ranks the true cause best.
        let best = candidates
            .iter()
            .map(|(_, i)| {
                let rank = i
                    .causes
                    .iter()
                    .position(|c| c.kind == expected)
                    .map(|p| p as u32 + 1);
                (rank.unwrap_or(u32::MAX), *i)
            })
            .min_by_key(|(rank, _)| *rank);
        if let Some((rank, inc)) = best {
            k.detected += 1;
            if rank == 1 {
                k.top_cause_first += 1;
            }
            if rank != u32::MAX {
                k.ranks.push(rank);
            }
            k.delays
                .push(inc.start_time.max(inc.opened) - fault.start_time);
        }
    }
    r.true_incidents = matched.iter().filter(|m| **m).count() as u32;
    r.incidents_on_healthy = incidents
        .iter()
        .filter(|i| i.runs.iter().any(|run| sc.healthy_runs.contains(run)))
        .count() as u32;
    r
}

/// Whether an incident is about a fault: its job, its run or its service.
pub fn touches(i: &Incident, f: &super::Fault) -> bool {
    if let Some(g) = &f.group
        && i.group.as_deref() == Some(g)
    {
        return true;
    }
    if let Some(run) = &f.run
        && (i.run.as_deref() == Some(run) || i.runs.iter().any(|r| r == run))
    {
        return true;
    }
    if let Some(s) = &f.service {
        return i.service.as_deref() == Some(s);
    }
    false
}

/// The standard suite: every fault kind in single runs and in groups of
/// 8–64 ranks (where it applies), and healthy jobs with the noise real runs
/// have. `scale` multiplies the number of jobs per kind.
pub fn standard_suite(seed: u64, scale: u32) -> Vec<JobSpec> {
    let mut specs = Vec::new();
    let mut n = 0u64;
    let mut next = |name: String, ranks: u32, steps: i64| {
        n += 1;
        let mut s = JobSpec::new(
            &name,
            ranks,
            steps,
            seed.wrapping_mul(1_000_003).wrapping_add(n),
        );
        // Jobs do not overlap in time: each starts a day after the last.
        s.start_time += n as f64 * 86_400.0;
        s
    };
    for rep in 0..scale.max(1) {
        for kind in FaultKind::ALL {
            let sizes: &[u32] = match kind {
                FaultKind::ServingErrors => &[1],
                k if k.needs_group() => &[8, 16, 64],
                FaultKind::InputBound => &[1, 8],
                _ => &[1, 8],
            };
            for &ranks in sizes {
                let mut s = next(format!("{}-{ranks}-{rep}", kind.as_str()), ranks, 1600);
                s.fault = Some(kind);
                s.fault_rank = (rep * 3 + ranks) % ranks;
                s.fault_step = match kind {
                    FaultKind::LossSpike => s.warmup_steps + (rep as i64 % 3) * 5,
                    FaultKind::GpuMemoryLeak => 700,
                    _ => 900 + (rep as i64 % 5) * 37,
                };
                if kind == FaultKind::ServingErrors {
                    s.service = true;
                    s.steps = 1800;
                }
                specs.push(s);
            }
        }
        for (i, ranks) in [1u32, 1, 1, 1, 8, 8, 16, 64].into_iter().enumerate() {
            let mut s = next(format!("healthy-{ranks}-{rep}-{i}"), ranks, 2400);
            if i % 2 == 0 {
                s.restart_at = Some(1300);
            }
            specs.push(s);
        }
        let mut svc = next(format!("healthy-service-{rep}"), 1, 1800);
        svc.service = true;
        specs.push(svc);
    }
    specs
}

/// Generates, replays and scores a suite.
pub fn run_suite(specs: &[JobSpec], cfg: &DiagnoseConfig) -> (QualityReport, Vec<Incident>) {
    let mut all = Vec::new();
    let mut total = QualityReport::default();
    for spec in specs {
        // Jobs are independent: replay each alone (their times do not overlap).
        let sc = generate(spec);
        let incidents = replay(&sc, cfg);
        let r = evaluate(&sc, &incidents);
        total.incidents += r.incidents;
        total.true_incidents += r.true_incidents;
        total.incidents_on_healthy += r.incidents_on_healthy;
        total.points += r.points;
        for (k, v) in r.by_kind {
            let t = total.by_kind.entry(k).or_default();
            t.injected += v.injected;
            t.detected += v.detected;
            t.top_cause_first += v.top_cause_first;
            t.ranks.extend(v.ranks);
            t.delays.extend(v.delays);
        }
        all.extend(incidents);
    }
    (total, all)
}

/// Kinds in the report that fall short, for tests.
pub fn shortfalls(r: &QualityReport) -> Vec<String> {
    let mut out = Vec::new();
    if r.precision() < 0.95 {
        out.push(format!("precision {:.3}", r.precision()));
    }
    if r.recall() < 0.95 {
        out.push(format!("recall {:.3}", r.recall()));
    }
    if r.top_cause_rate() < 0.9 {
        out.push(format!("true cause first {:.3}", r.top_cause_rate()));
    }
    if r.incidents_on_healthy > 0 {
        out.push(format!(
            "{} incidents on healthy runs",
            r.incidents_on_healthy
        ));
    }
    let _ = FaultKind::ALL;
    out
}
