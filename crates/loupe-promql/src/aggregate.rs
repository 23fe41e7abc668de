//! Aggregation operators (`sum by (…)`, `topk`, …) and `histogram_quantile`'s
//! grouping of classic buckets.

use std::collections::HashMap;

use promql_parser::label::Labels as LabelList;
use promql_parser::parser::token;
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::error::{Error, Result};
use crate::eval::Ctx;
use crate::functions::quantile;
use crate::labels::METRIC_NAME;
use crate::{Labels, Sample, Value};

/// One output group's running state.
struct Group {
    labels: Labels,
    count: f64,
    value: f64,
    mean: f64,
    values: Vec<f64>,
    /// `topk`/`bottomk`: the kept samples.
    kept: Vec<Sample>,
}

pub(crate) fn eval(ctx: &Ctx, a: &AggregateExpr, t: i64) -> Result<Value> {
    let op = a.op.id();
    let mut param = None;
    let mut value_label = None;
    if let Some(p) = &a.param {
        if op == token::T_COUNT_VALUES {
            let l = ctx.string(p, t)?;
            if !valid_label_name(&l) {
                return Err(Error::Eval(format!("invalid label name {l:?}")));
            }
            value_label = Some(l);
        } else {
            param = Some(ctx.scalar(p, t)?);
        }
    }
    let mut input = ctx.vector(&a.expr, t)?;
    if let Some(l) = &value_label {
        for s in &mut input {
            s.labels = s.labels.with(l, &go_format(s.v));
        }
    }
    let (by, names): (bool, Vec<String>) = match &a.modifier {
        None => (true, value_label.iter().cloned().collect()),
        Some(LabelModifier::Include(l)) => (true, with_value_label(l, &value_label, true)),
        Some(LabelModifier::Exclude(l)) => (false, with_value_label(l, &value_label, false)),
    };
    let included = |n: &str| {
        if by {
            names.iter().any(|x| x == n)
        } else {
            n != METRIC_NAME && !names.iter().any(|x| x == n)
        }
    };
    let k = match op {
        token::T_TOPK | token::T_BOTTOMK => {
            let k = param.unwrap_or(0.0);
            if k.is_nan() || k >= 9.2e18 {
                return Err(Error::Eval(format!("scalar value {k} overflows int64")));
            }
            if k < 1.0 {
                return Ok(Value::Vector(Vec::new()));
            }
            k as usize
        }
        _ => 0,
    };
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut groups: HashMap<Vec<u8>, Group> = HashMap::new();
    for s in input {
        let sig = s.labels.signature(included);
        let g = groups.entry(sig.clone()).or_insert_with(|| {
            order.push(sig);
            Group {
                labels: s.labels.filtered(included),
                count: 0.0,
                value: s.v,
                mean: s.v,
                values: Vec::new(),
                kept: Vec::new(),
            }
        });
        add(op, g, s, k);
    }
    let mut out = Vec::with_capacity(order.len());
    for sig in order {
        let g = groups.remove(&sig).expect("every ordered group exists");
        let v = match op {
            token::T_SUM => g.value,
            token::T_AVG => g.mean,
            token::T_COUNT | token::T_COUNT_VALUES => g.count,
            token::T_MIN | token::T_MAX => g.value,
            token::T_GROUP => 1.0,
            token::T_STDVAR => g.value / g.count,
            token::T_STDDEV => (g.value / g.count).sqrt(),
            token::T_QUANTILE => {
                let mut vs = g.values;
                quantile(param.unwrap_or(f64::NAN), &mut vs)
            }
            token::T_TOPK | token::T_BOTTOMK => {
                let mut kept = g.kept;
                let top = op == token::T_TOPK;
                kept.sort_by(|a, b| {
                    let o = nan_low(a.v, b.v);
                    if top { o.reverse() } else { o }
                });
                out.extend(kept);
                continue;
            }
            _ => {
                return Err(Error::Eval(format!(
                    "aggregation {} is not supported by Loupe",
                    a.op
                )));
            }
        };
        out.push(Sample {
            labels: g.labels,
            t,
            v,
        });
    }
    Ok(Value::Vector(out))
}

fn with_value_label(l: &LabelList, value_label: &Option<String>, by: bool) -> Vec<String> {
    let mut names = l.labels.clone();
    if by && let Some(v) = value_label {
        names.push(v.clone());
    }
    names
}

/// Orders NaN below every number (how `topk` and `bottomk` rank it).
fn nan_low(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(&b),
    }
}

/// Adds one sample to a group, as Prometheus' aggregation does (the first
/// sample initialised `value` and `mean`).
fn add(op: u16, g: &mut Group, s: Sample, k: usize) {
    let first = g.count == 0.0;
    g.count += 1.0;
    match op {
        token::T_SUM if !first => g.value += s.v,
        token::T_AVG if !first => {
            if g.mean.is_infinite() {
                if s.v.is_infinite() && (g.mean > 0.0) == (s.v > 0.0) {
                    return;
                }
                if !s.v.is_infinite() && !s.v.is_nan() {
                    return;
                }
            }
            g.mean += s.v / g.count - g.mean / g.count;
        }
        token::T_MIN if !first && (g.value > s.v || g.value.is_nan()) => {
            g.value = s.v;
        }
        token::T_MAX if !first && (g.value < s.v || g.value.is_nan()) => {
            g.value = s.v;
        }
        token::T_STDVAR | token::T_STDDEV => {
            if first {
                g.value = 0.0;
            } else {
                let delta = s.v - g.mean;
                g.mean += delta / g.count;
                g.value += delta * (s.v - g.mean);
            }
        }
        token::T_QUANTILE => g.values.push(s.v),
        token::T_TOPK | token::T_BOTTOMK => {
            let top = op == token::T_TOPK;
            if g.kept.len() < k {
                g.kept.push(s);
                return;
            }
            // Replace the weakest kept sample when this one beats it.
            let weakest = (0..g.kept.len())
                .min_by(|&i, &j| {
                    let o = nan_low(g.kept[i].v, g.kept[j].v);
                    if top { o } else { o.reverse() }
                })
                .expect("k >= 1");
            let w = g.kept[weakest].v;
            let beats = if top {
                w < s.v || (w.is_nan() && !s.v.is_nan())
            } else {
                w > s.v || (w.is_nan() && !s.v.is_nan())
            };
            if beats {
                g.kept[weakest] = s;
            }
        }
        _ => {}
    }
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A float as Go's `strconv.FormatFloat(v, 'f', -1, 64)` writes it
/// (`count_values`' label values).
pub(crate) fn go_format(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// One histogram's labels and its (upper bound, cumulative count) buckets.
type BucketGroup = (Labels, Vec<(f64, f64)>);

/// `histogram_quantile(q, buckets)` over classic `_bucket{le}` series:
/// grouped by every label but `le` (and the name), one answer per group.
pub(crate) fn histogram_quantile(q: f64, v: Vec<Sample>, t: i64) -> Vec<Sample> {
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut groups: HashMap<Vec<u8>, BucketGroup> = HashMap::new();
    let keep = |n: &str| n != "le" && n != METRIC_NAME;
    for s in v {
        let Some(upper) = s.labels.get("le").and_then(parse_go_float) else {
            continue;
        };
        let sig = s.labels.signature(keep);
        groups
            .entry(sig.clone())
            .or_insert_with(|| {
                order.push(sig);
                (s.labels.filtered(keep), Vec::new())
            })
            .1
            .push((upper, s.v));
    }
    order
        .into_iter()
        .filter_map(|sig| groups.remove(&sig))
        .map(|(labels, buckets)| Sample {
            labels,
            t,
            v: bucket_quantile(q, buckets),
        })
        .collect()
}

/// A float as Go's `strconv.ParseFloat` reads a bucket bound (`+Inf`, `1e3`).
fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}

/// Prometheus' `bucketQuantile` over `(upper bound, cumulative count)`.
fn bucket_quantile(q: f64, mut b: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b.last().is_none_or(|l| l.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Buckets with the same bound (from differently spelled `le`) are one.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (ub, c) in b {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // Counts read at slightly different times can dip; make them monotonic.
    let mut max = f64::NEG_INFINITY;
    for x in &mut merged {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let n = merged.len();
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let i = merged[..n - 1].partition_point(|x| x.1 < rank);
    if i == n - 1 {
        return merged[n - 2].0;
    }
    if i == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[i].0, merged[i].1);
    if i > 0 {
        start = merged[i - 1].0;
        count -= merged[i - 1].1;
        rank -= merged[i - 1].1;
    }
    start + (end - start) * (rank / count)
}
