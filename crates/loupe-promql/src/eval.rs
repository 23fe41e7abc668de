//! The evaluator: a query at one time (instant) or at every step of a range.
//!
//! A range query is evaluated as an instant query at each step, over data
//! loaded once; this is Prometheus' definition of a range query, and keeps
//! one code path for both.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use promql_parser::parser::{self, Expr, MatrixSelector, SubqueryExpr, VectorSelector};

use crate::error::{Error, Result};
use crate::plan::{self, QueryTimes, at_ms, offset_ms, selector_id};
use crate::source::{RawSeries, SeriesSource, is_stale};
use crate::{Labels, Sample, Series, Value, aggregate, binary, functions};

/// The bounds and defaults of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus' `--query.lookback-delta`).
    pub lookback: Duration,
    /// Samples one query may load (Prometheus' `--query.max-samples`).
    pub max_samples: usize,
    /// How long one query may run (Prometheus' `--query.timeout`).
    pub timeout: Duration,
    /// A subquery's step when it names none (Prometheus' global evaluation interval).
    pub default_subquery_step: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

/// Most points a range query may answer per series (Prometheus' limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Evaluates PromQL over a [`SeriesSource`].
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// The query's value at `time` (Unix ms).
    pub fn instant(&self, source: &dyn SeriesSource, query: &str, time: i64) -> Result<Value> {
        let expr = crate::parse_expr(query)?;
        let ctx = self.prepare(source, &expr, time, time, 0)?;
        let v = ctx.eval(&expr, time)?;
        Ok(match v {
            Value::Matrix(mut m) => {
                m.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(m)
            }
            Value::Vector(v) => {
                check_unique(&v)?;
                Value::Vector(v)
            }
            v => v,
        })
    }

    /// The query's values at `start, start + step, … ≤ end` (Unix ms): a matrix sorted by labels.
    pub fn range(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Value> {
        let expr = crate::parse_expr(query)?;
        match expr.value_type() {
            parser::value::ValueType::Scalar | parser::value::ValueType::Vector => {}
            t => {
                return Err(Error::Parse(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    range_type_name(t)
                )));
            }
        }
        if step <= 0 {
            return Err(Error::Parse(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end < start {
            return Err(Error::Parse(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end - start) / step >= MAX_POINTS_PER_SERIES {
            return Err(Error::Parse(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        let ctx = self.prepare(source, &expr, start, end, step)?;
        let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
        let mut t = start;
        while t <= end {
            ctx.check_deadline()?;
            match ctx.eval(&expr, t)? {
                Value::Scalar(v) => series.entry(Labels::empty()).or_default().push((t, v)),
                Value::Vector(samples) => {
                    for s in samples {
                        let points = series.entry(s.labels).or_default();
                        if points.last().is_some_and(|(pt, _)| *pt == t) {
                            return Err(Error::Eval(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        points.push((t, s.v));
                    }
                }
                v => {
                    return Err(Error::Eval(format!(
                        "unexpected {} in a range query",
                        v.type_name()
                    )));
                }
            }
            t += step;
        }
        let mut m: Vec<Series> = series
            .into_iter()
            .map(|(labels, points)| Series { labels, points })
            .collect();
        m.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Value::Matrix(m))
    }

    fn prepare(
        &self,
        source: &dyn SeriesSource,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Ctx> {
        let deadline = Instant::now() + self.opts.timeout;
        let q = QueryTimes {
            start,
            end,
            lookback: self.opts.lookback.as_millis() as i64,
        };
        // Each step's own point when the steps are few and far apart, so a
        // 24 h query at 1 h reads 24 windows, not the day; else the span.
        let steps = if step > 0 {
            (end - start) / step + 1
        } else {
            1
        };
        let times: plan::Windows = if steps <= 2_000 {
            (0..steps)
                .map(|i| (start + i * step, start + i * step))
                .collect()
        } else {
            vec![(start, end)]
        };
        let mut selectors = HashMap::new();
        plan::collect_windows(expr, &plan::merged(times), &q, &mut selectors);
        let data = plan::load(source, selectors, self.opts.max_samples)?;
        if Instant::now() > deadline {
            return Err(Error::Timeout("query preparation"));
        }
        Ok(Ctx {
            data,
            q,
            sub_step: self.opts.default_subquery_step.as_millis().max(1) as i64,
            deadline,
        })
    }
}

fn range_type_name(t: parser::value::ValueType) -> &'static str {
    match t {
        parser::value::ValueType::Matrix => "range vector",
        parser::value::ValueType::String => "string",
        parser::value::ValueType::Scalar => "scalar",
        parser::value::ValueType::Vector => "instant vector",
    }
}

/// Fails when two samples carry the same labels (a function or operator
/// dropped the metric name that told them apart).
pub(crate) fn check_unique(v: &[Sample]) -> Result<()> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.labels) {
            return Err(Error::Eval(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// A range vector argument at one evaluation time: the series' points in
/// `[start, end]`, staleness markers removed.
pub(crate) struct RangeArg {
    pub series: Vec<Series>,
    pub start: i64,
    pub end: i64,
}

/// One query's loaded data and clocks.
pub(crate) struct Ctx {
    data: HashMap<usize, Vec<RawSeries>>,
    pub(crate) q: QueryTimes,
    sub_step: i64,
    deadline: Instant,
}

impl Ctx {
    pub(crate) fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            Err(Error::Timeout("expression evaluation"))
        } else {
            Ok(())
        }
    }

    pub(crate) fn eval(&self, e: &Expr, t: i64) -> Result<Value> {
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => {
                    let out: Vec<Sample> = v
                        .into_iter()
                        .map(|s| Sample {
                            labels: s.labels.without_name(),
                            t,
                            v: -s.v,
                        })
                        .collect();
                    check_unique(&out)?;
                    Ok(Value::Vector(out))
                }
                v => Err(Error::Eval(format!("unary minus on a {}", v.type_name()))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.instant_selector(vs, t))),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.matrix_selector(ms, t).series)),
            Expr::Subquery(sq) => Ok(Value::Matrix(self.subquery(sq, t)?.series)),
            Expr::Call(c) => functions::call(self, c, t),
            Expr::Aggregate(a) => aggregate::eval(self, a, t),
            Expr::Binary(b) => binary::eval(self, b, t),
            Expr::Extension(_) => Err(Error::Eval(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// A scalar-typed argument's value.
    pub(crate) fn scalar(&self, e: &Expr, t: i64) -> Result<f64> {
        match self.eval(e, t)? {
            Value::Scalar(v) => Ok(v),
            v => Err(Error::Eval(format!(
                "expected a scalar, got a {}",
                v.type_name()
            ))),
        }
    }

    pub(crate) fn vector(&self, e: &Expr, t: i64) -> Result<Vec<Sample>> {
        match self.eval(e, t)? {
            Value::Vector(v) => Ok(v),
            v => Err(Error::Eval(format!(
                "expected an instant vector, got a {}",
                v.type_name()
            ))),
        }
    }

    pub(crate) fn string(&self, e: &Expr, t: i64) -> Result<String> {
        match self.eval(e, t)? {
            Value::String(s) => Ok(s),
            v => Err(Error::Eval(format!(
                "expected a string, got a {}",
                v.type_name()
            ))),
        }
    }

    fn series_of(&self, vs: &VectorSelector) -> &[RawSeries] {
        self.data
            .get(&selector_id(vs))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Each series' newest sample in `[t - lookback, t]` (after `@` and
    /// `offset`), unless that sample is a staleness marker.
    fn instant_selector(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        let at = at_ms(&vs.at, &self.q).unwrap_or(t) - offset_ms(&vs.offset);
        let from = at - self.q.lookback;
        let mut out = Vec::new();
        for s in self.series_of(vs) {
            let i = s.times.partition_point(|x| *x <= at);
            if i == 0 {
                continue;
            }
            let (st, sv) = (s.times[i - 1], s.values[i - 1]);
            if st < from || is_stale(sv) {
                continue;
            }
            out.push(Sample {
                labels: s.labels.clone(),
                t: st,
                v: sv,
            });
        }
        out
    }

    /// Each series' samples in `[t - range, t]` (after `@` and `offset`).
    pub(crate) fn matrix_selector(&self, ms: &MatrixSelector, t: i64) -> RangeArg {
        let vs = &ms.vs;
        let end = at_ms(&vs.at, &self.q).unwrap_or(t) - offset_ms(&vs.offset);
        let start = end - ms.range.as_millis() as i64;
        let mut series = Vec::new();
        for s in self.series_of(vs) {
            let a = s.times.partition_point(|x| *x < start);
            let b = s.times.partition_point(|x| *x <= end);
            let points: Vec<(i64, f64)> = (a..b)
                .filter(|&i| !is_stale(s.values[i]))
                .map(|i| (s.times[i], s.values[i]))
                .collect();
            if !points.is_empty() {
                series.push(Series {
                    labels: s.labels.clone(),
                    points,
                });
            }
        }
        RangeArg { series, start, end }
    }

    /// The inner expression at every multiple of the step in `[t - range, t]`
    /// (after `@` and `offset`).
    pub(crate) fn subquery(&self, sq: &SubqueryExpr, t: i64) -> Result<RangeArg> {
        let end = at_ms(&sq.at, &self.q).unwrap_or(t) - offset_ms(&sq.offset);
        let start = end - sq.range.as_millis() as i64;
        let step = sq
            .step
            .map(|d| d.as_millis() as i64)
            .filter(|s| *s > 0)
            .unwrap_or(self.sub_step);
        let mut first = start.div_euclid(step) * step;
        if first < start {
            first += step;
        }
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut series: Vec<Series> = Vec::new();
        let mut tt = first;
        while tt <= end {
            self.check_deadline()?;
            let samples = match self.eval(&sq.expr, tt)? {
                Value::Scalar(v) => vec![Sample {
                    labels: Labels::empty(),
                    t: tt,
                    v,
                }],
                Value::Vector(v) => v,
                v => {
                    return Err(Error::Eval(format!("subquery of a {}", v.type_name())));
                }
            };
            for s in samples {
                if is_stale(s.v) {
                    continue;
                }
                let i = *index.entry(s.labels.clone()).or_insert_with(|| {
                    series.push(Series {
                        labels: s.labels.clone(),
                        points: Vec::new(),
                    });
                    series.len() - 1
                });
                series[i].points.push((tt, s.v));
            }
            tt += step;
        }
        Ok(RangeArg { series, start, end })
    }

    /// A range-vector argument: a matrix selector or a subquery (in parentheses or not).
    pub(crate) fn range_arg(&self, e: &Expr, t: i64) -> Result<RangeArg> {
        match e {
            Expr::MatrixSelector(ms) => Ok(self.matrix_selector(ms, t)),
            Expr::Subquery(sq) => self.subquery(sq, t),
            Expr::Paren(p) => self.range_arg(&p.expr, t),
            _ => Err(Error::Eval("expected a range vector".into())),
        }
    }
}
