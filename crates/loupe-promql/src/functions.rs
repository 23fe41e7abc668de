//! PromQL's functions, each with Prometheus' definition (extrapolation,
//! counter resets, NaN handling).

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};

use crate::error::{Error, Result};
use crate::eval::{Ctx, RangeArg, check_unique};
use crate::labels::METRIC_NAME;
use crate::{Labels, Sample, Value};

/// Go's `math.Max`: NaN wins (Rust's `f64::max` ignores it).
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

pub(crate) fn call(ctx: &Ctx, c: &Call, t: i64) -> Result<Value> {
    let args = &c.args.args;
    let name = c.func.name;
    if let Some(f) = range_function(name) {
        let (range_at, extra) = match name {
            "quantile_over_time" => (1, Some(ctx.scalar(&args[0], t)?)),
            "predict_linear" => (0, Some(ctx.scalar(&args[1], t)?)),
            _ => (0, None),
        };
        let arg = ctx.range_arg(&args[range_at], t)?;
        let keep_name = name == "last_over_time";
        let mut out = Vec::with_capacity(arg.series.len());
        for s in &arg.series {
            if let Some(v) = f(&s.points, &arg, extra, t) {
                let labels = if keep_name {
                    s.labels.clone()
                } else {
                    s.labels.without_name()
                };
                out.push(Sample { labels, t, v });
            }
        }
        check_unique(&out)?;
        return Ok(Value::Vector(out));
    }
    if let Some(f) = math_function(name) {
        let v = ctx.vector(&args[0], t)?;
        return dropped_name(v, t, f);
    }
    match name {
        "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
        "vector" => Ok(Value::Vector(vec![Sample {
            labels: Labels::empty(),
            t,
            v: ctx.scalar(&args[0], t)?,
        }])),
        "scalar" => {
            let v = ctx.vector(&args[0], t)?;
            Ok(Value::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "round" => {
            let to = match args.get(1) {
                Some(a) => ctx.scalar(a, t)?,
                None => 1.0,
            };
            // Prometheus rounds half up, through the inverse for precision.
            let inv = 1.0 / to;
            dropped_name(ctx.vector(&args[0], t)?, t, |x| {
                (x * inv + 0.5).floor() / inv
            })
        }
        "clamp" => {
            let (lo, hi) = (ctx.scalar(&args[1], t)?, ctx.scalar(&args[2], t)?);
            let v = ctx.vector(&args[0], t)?;
            if hi < lo {
                return Ok(Value::Vector(Vec::new()));
            }
            dropped_name(v, t, |x| go_max(lo, go_min(hi, x)))
        }
        "clamp_min" => {
            let lo = ctx.scalar(&args[1], t)?;
            dropped_name(ctx.vector(&args[0], t)?, t, |x| go_max(x, lo))
        }
        "clamp_max" => {
            let hi = ctx.scalar(&args[1], t)?;
            dropped_name(ctx.vector(&args[0], t)?, t, |x| go_min(x, hi))
        }
        "timestamp" => {
            // A selector's samples keep their own times; anything else is "now".
            let from_selector = matches!(unparen(&args[0]), Expr::VectorSelector(_));
            let v = ctx.vector(&args[0], t)?;
            let out: Vec<Sample> = v
                .into_iter()
                .map(|s| Sample {
                    labels: s.labels.without_name(),
                    t,
                    v: if from_selector { s.t } else { t } as f64 / 1000.0,
                })
                .collect();
            check_unique(&out)?;
            Ok(Value::Vector(out))
        }
        "absent" => {
            if !ctx.vector(&args[0], t)?.is_empty() {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(Value::Vector(vec![Sample {
                labels: absent_labels(&args[0]),
                t,
                v: 1.0,
            }]))
        }
        "absent_over_time" => {
            if !ctx.range_arg(&args[0], t)?.series.is_empty() {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(Value::Vector(vec![Sample {
                labels: absent_labels(&args[0]),
                t,
                v: 1.0,
            }]))
        }
        "sort" | "sort_desc" => {
            let mut v = ctx.vector(&args[0], t)?;
            let desc = name == "sort_desc";
            // NaN last in both orders, as Prometheus sorts.
            v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if desc => b.v.total_cmp(&a.v),
                _ => a.v.total_cmp(&b.v),
            });
            Ok(Value::Vector(v))
        }
        "label_replace" => label_replace(ctx, args, t),
        "label_join" => label_join(ctx, args, t),
        "histogram_quantile" => {
            let q = ctx.scalar(&args[0], t)?;
            let v = ctx.vector(&args[1], t)?;
            Ok(Value::Vector(crate::aggregate::histogram_quantile(q, v, t)))
        }
        other => Err(Error::Eval(format!(
            "function {other:?} is not supported by Loupe"
        ))),
    }
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        e => e,
    }
}

fn dropped_name(v: Vec<Sample>, t: i64, f: impl Fn(f64) -> f64) -> Result<Value> {
    let out: Vec<Sample> = v
        .into_iter()
        .map(|s| Sample {
            labels: s.labels.without_name(),
            t,
            v: f(s.v),
        })
        .collect();
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

fn math_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        _ => return None,
    })
}

/// The labels `absent()` answers with: the selector's `=` matchers, except
/// a label matched more than once or by another operator.
fn absent_labels(arg: &Expr) -> Labels {
    let vs = match unparen(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut set: Vec<(String, String)> = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !set.iter().any(|(n, _)| *n == m.name) {
            set.push((m.name.clone(), m.value.clone()));
        } else {
            dropped.push(&m.name);
        }
    }
    set.retain(|(n, _)| !dropped.contains(&n.as_str()));
    Labels::new(set)
}

/// A label name as Prometheus allows it.
fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn label_replace(ctx: &Ctx, args: &[Box<Expr>], t: i64) -> Result<Value> {
    let v = ctx.vector(&args[0], t)?;
    let dst = ctx.string(&args[1], t)?;
    let repl = ctx.string(&args[2], t)?;
    let src = ctx.string(&args[3], t)?;
    let pattern = ctx.string(&args[4], t)?;
    let re = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|_| {
        Error::Eval(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    if !valid_label_name(&dst) {
        return Err(Error::Eval(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        let value = s.labels.get(&src).unwrap_or("").to_string();
        let labels = match re.captures(&value) {
            Some(caps) => {
                let mut res = String::new();
                caps.expand(&repl, &mut res);
                s.labels.with(&dst, &res)
            }
            None => s.labels,
        };
        out.push(Sample {
            labels,
            t: s.t,
            v: s.v,
        });
    }
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

fn label_join(ctx: &Ctx, args: &[Box<Expr>], t: i64) -> Result<Value> {
    let v = ctx.vector(&args[0], t)?;
    let dst = ctx.string(&args[1], t)?;
    let sep = ctx.string(&args[2], t)?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        srcs.push(ctx.string(a, t)?);
    }
    if !valid_label_name(&dst) {
        return Err(Error::Eval(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let labels = s.labels.with(&dst, &joined.join(&sep));
        out.push(Sample {
            labels,
            t: s.t,
            v: s.v,
        });
    }
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

/// A function of one series' points in a window; `None`: no output sample.
type RangeFn = fn(&[(i64, f64)], &RangeArg, Option<f64>, i64) -> Option<f64>;

fn range_function(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => |p, a, _, _| extrapolated(p, a, true, true),
        "increase" => |p, a, _, _| extrapolated(p, a, true, false),
        "delta" => |p, a, _, _| extrapolated(p, a, false, false),
        "irate" => |p, _, _, _| instant_delta(p, true),
        "idelta" => |p, _, _, _| instant_delta(p, false),
        "deriv" => |p, _, _, _| (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
        "predict_linear" => |p, _, d, t| {
            (p.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(p, t);
                slope * d.unwrap_or(0.0) + intercept
            })
        },
        "resets" => |p, _, _, _| Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
        "changes" => |p, _, _, _| {
            Some(
                p.windows(2)
                    .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                    .count() as f64,
            )
        },
        "avg_over_time" => |p, _, _, _| Some(mean(p)),
        "sum_over_time" => |p, _, _, _| Some(kahan_sum(p.iter().map(|x| x.1))),
        "count_over_time" => |p, _, _, _| Some(p.len() as f64),
        "min_over_time" => |p, _, _, _| {
            Some(
                p.iter()
                    .skip(1)
                    .fold(p[0].1, |m, x| if m > x.1 || m.is_nan() { x.1 } else { m }),
            )
        },
        "max_over_time" => |p, _, _, _| {
            Some(
                p.iter()
                    .skip(1)
                    .fold(p[0].1, |m, x| if m < x.1 || m.is_nan() { x.1 } else { m }),
            )
        },
        "last_over_time" => |p, _, _, _| p.last().map(|x| x.1),
        "present_over_time" => |_, _, _, _| Some(1.0),
        "stdvar_over_time" => |p, _, _, _| Some(variance(p)),
        "stddev_over_time" => |p, _, _, _| Some(variance(p).sqrt()),
        "quantile_over_time" => |p, _, q, _| {
            let mut vs: Vec<f64> = p.iter().map(|x| x.1).collect();
            Some(quantile(q.unwrap_or(f64::NAN), &mut vs))
        },
        _ => return None,
    })
}

/// Prometheus' `extrapolatedRate`: the change over the samples, counter
/// resets added back, extrapolated towards the window's edges (but not
/// beyond 1.1 average intervals, nor below zero for counters).
fn extrapolated(p: &[(i64, f64)], a: &RangeArg, counter: bool, per_second: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first, last) = (p[0], p[p.len() - 1]);
    let mut result = last.1 - first.1;
    if counter {
        for w in p.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let mut to_start = (first.0 - a.start) as f64 / 1000.0;
    let to_end = (a.end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (p.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    result *= interval / sampled;
    if per_second {
        result /= (a.end - a.start) as f64 / 1000.0;
    }
    Some(result)
}

/// `irate` / `idelta`: from the last two samples only.
fn instant_delta(p: &[(i64, f64)], rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev, last) = (p[p.len() - 2], p[p.len() - 1]);
    let mut result = if rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    if rate {
        let dt = last.0 - prev.0;
        if dt == 0 {
            return None;
        }
        result /= dt as f64 / 1000.0;
    }
    Some(result)
}

/// `(sum, compensation)` after adding `x` (Kahan–Babuška).
fn kahan_inc(x: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + x;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= x.abs() {
        c + ((sum - t) + x)
    } else {
        c + ((x - t) + sum)
    };
    (t, c)
}

fn kahan_sum(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for x in xs {
        (s, c) = kahan_inc(x, s, c);
    }
    s + c
}

/// Least squares over `(seconds since intercept_time, value)`: `(slope, intercept)`.
fn linear_regression(p: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init = p[0].1;
    let mut constant = true;
    for (i, (t, v)) in p.iter().enumerate() {
        if constant && i > 0 && *v != init {
            constant = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(*v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if constant {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// `avg_over_time`: an incremental mean, which cannot overflow where the sum would.
fn mean(p: &[(i64, f64)]) -> f64 {
    let (mut m, mut c, mut count) = (0.0f64, 0.0f64, 0.0f64);
    for (_, v) in p {
        count += 1.0;
        if m.is_infinite() {
            if v.is_infinite() && (m > 0.0) == (*v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (m, c) = kahan_inc(v / count - (m + c) / count, m, c);
    }
    if m.is_infinite() { m } else { m + c }
}

/// Population variance (Welford, with compensated sums).
fn variance(p: &[(i64, f64)]) -> f64 {
    let (mut count, mut m, mut cm, mut aux, mut caux) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    for (_, v) in p {
        count += 1.0;
        let delta = v - (m + cm);
        (m, cm) = kahan_inc(delta / count, m, cm);
        (aux, caux) = kahan_inc(delta * (v - (m + cm)), aux, caux);
    }
    (aux + caux) / count
}

/// Prometheus' quantile: linear interpolation between the closest ranks;
/// `q < 0` is -Inf, `q > 1` +Inf.
pub(crate) fn quantile(q: f64, vs: &mut [f64]) -> f64 {
    if vs.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN first, as Go's sort.Float64s orders them.
    vs.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = vs.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vs[lower as usize] * (1.0 - weight) + vs[upper as usize] * weight
}
