//! Before evaluation: which time windows each selector reads, then one read
//! per selector through the [`SeriesSource`].
//!
//! A range query at a coarse step (24 h at 1 h) needs only a window before
//! each step, not the whole day: the windows are computed from the tree
//! (offsets, `@`, ranges, subqueries) and merged where they touch.

use std::collections::HashMap;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use crate::error::{Error, Result};
use crate::labels::METRIC_NAME;
use crate::source::{RawSeries, SeriesSource};

/// Inclusive time intervals (Unix ms).
pub(crate) type Windows = Vec<(i64, i64)>;

/// What the tree's `@ start()` / `@ end()` and lookback refer to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryTimes {
    pub start: i64,
    pub end: i64,
    pub lookback: i64,
}

/// A selector's identity in the parsed tree, which is not moved while a query runs.
pub(crate) fn selector_id(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

pub(crate) fn at_ms(at: &Option<AtModifier>, q: &QueryTimes) -> Option<i64> {
    match at {
        None => None,
        Some(AtModifier::Start) => Some(q.start),
        Some(AtModifier::End) => Some(q.end),
        Some(AtModifier::At(t)) => Some(match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }),
    }
}

/// The evaluation times of a node under `@` and `offset`.
fn shifted(times: &Windows, at: Option<i64>, offset: i64) -> Windows {
    match at {
        Some(t) => vec![(t - offset, t - offset)],
        None => times
            .iter()
            .map(|(a, b)| (a - offset, b - offset))
            .collect(),
    }
}

fn widened(times: &Windows, before: i64) -> Windows {
    times.iter().map(|(a, b)| (a - before, *b)).collect()
}

/// Sorts and merges intervals that overlap or touch.
pub(crate) fn merged(mut w: Windows) -> Windows {
    w.sort_unstable();
    let mut out: Windows = Vec::with_capacity(w.len());
    for (a, b) in w {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Collects, for every selector in `e`, the windows its samples must cover
/// when `e` is evaluated at `times`.
pub(crate) fn collect_windows<'e>(
    e: &'e Expr,
    times: &Windows,
    q: &QueryTimes,
    out: &mut HashMap<usize, (&'e VectorSelector, Windows)>,
) {
    match e {
        Expr::VectorSelector(vs) => {
            let w = widened(
                &shifted(times, at_ms(&vs.at, q), offset_ms(&vs.offset)),
                q.lookback,
            );
            add(out, vs, w);
        }
        Expr::MatrixSelector(ms) => {
            let vs = &ms.vs;
            let range = ms.range.as_millis() as i64;
            let w = widened(
                &shifted(times, at_ms(&vs.at, q), offset_ms(&vs.offset)),
                range,
            );
            add(out, vs, w);
        }
        Expr::Subquery(sq) => {
            let range = sq.range.as_millis() as i64;
            let inner = widened(
                &shifted(times, at_ms(&sq.at, q), offset_ms(&sq.offset)),
                range,
            );
            collect_windows(&sq.expr, &merged(inner), q, out);
        }
        Expr::Aggregate(a) => {
            collect_windows(&a.expr, times, q, out);
            if let Some(p) = &a.param {
                collect_windows(p, times, q, out);
            }
        }
        Expr::Unary(u) => collect_windows(&u.expr, times, q, out),
        Expr::Binary(b) => {
            collect_windows(&b.lhs, times, q, out);
            collect_windows(&b.rhs, times, q, out);
        }
        Expr::Paren(p) => collect_windows(&p.expr, times, q, out),
        Expr::Call(c) => {
            for a in &c.args.args {
                collect_windows(a, times, q, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn add<'e>(
    out: &mut HashMap<usize, (&'e VectorSelector, Windows)>,
    vs: &'e VectorSelector,
    w: Windows,
) {
    out.entry(selector_id(vs))
        .or_insert_with(|| (vs, Vec::new()))
        .1
        .extend(w);
}

/// The matcher groups a selector stands for: one, or one per `or` branch;
/// the metric name written before the braces is a `__name__` matcher.
pub(crate) fn matcher_groups(vs: &VectorSelector) -> Vec<Vec<Matcher>> {
    let name = vs
        .name
        .as_ref()
        .map(|n| Matcher::new(MatchOp::Equal, METRIC_NAME, n));
    let groups = if vs.matchers.or_matchers.is_empty() {
        vec![vs.matchers.matchers.clone()]
    } else {
        vs.matchers.or_matchers.clone()
    };
    groups
        .into_iter()
        .map(|mut g| {
            if let Some(n) = &name {
                g.push(n.clone());
            }
            g
        })
        .collect()
}

/// Reads every selector's series, keeping only samples inside its windows,
/// and counts them against `max_samples`.
pub(crate) fn load(
    source: &dyn SeriesSource,
    selectors: HashMap<usize, (&VectorSelector, Windows)>,
    max_samples: usize,
) -> Result<HashMap<usize, Vec<RawSeries>>> {
    let mut loaded = HashMap::with_capacity(selectors.len());
    let mut samples = 0usize;
    for (id, (vs, windows)) in selectors {
        let windows = merged(windows);
        let mut series: Vec<RawSeries> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let groups = matcher_groups(vs);
        let several = groups.len() > 1;
        for group in groups {
            for s in source.select(&group, &windows)? {
                if several && !seen.insert(s.labels.clone()) {
                    continue; // matched by two `or` branches
                }
                let kept = within(s, &windows);
                samples += kept.times.len();
                if samples > max_samples {
                    return Err(Error::TooManySamples);
                }
                if !kept.times.is_empty() {
                    series.push(kept);
                }
            }
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        loaded.insert(id, series);
    }
    Ok(loaded)
}

/// The samples of `s` inside `windows` (both sorted).
fn within(s: RawSeries, windows: &Windows) -> RawSeries {
    let mut times = Vec::new();
    let mut values = Vec::new();
    let mut w = 0;
    for (t, v) in s.times.iter().zip(&s.values) {
        while w < windows.len() && windows[w].1 < *t {
            w += 1;
        }
        if w == windows.len() {
            break;
        }
        if *t >= windows[w].0 {
            times.push(*t);
            values.push(*v);
        }
    }
    RawSeries {
        labels: s.labels,
        times,
        values,
    }
}
