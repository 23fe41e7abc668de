//! Binary operators: arithmetic, comparison (filtering or `bool`) and set
//! operators, between scalars and vectors, with Prometheus' vector matching
//! (`on`/`ignoring`, `group_left`/`group_right`) and its errors.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::error::{Error, Result};
use crate::eval::{Ctx, check_unique};
use crate::labels::METRIC_NAME;
use crate::{Labels, Sample, Value};

pub(crate) fn eval(ctx: &Ctx, b: &BinaryExpr, t: i64) -> Result<Value> {
    let op = b.op.id();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ctx.eval(&b.lhs, t)?;
    let rhs = ctx.eval(&b.rhs, t)?;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            let (v, keep) = elem(op, l, r);
            Ok(Value::Scalar(if is_comparison(op) {
                if keep { 1.0 } else { 0.0 }
            } else {
                v
            }))
        }
        (Value::Vector(l), Value::Scalar(r)) => vector_scalar(op, l, r, false, return_bool, t),
        (Value::Scalar(l), Value::Vector(r)) => vector_scalar(op, r, l, true, return_bool, t),
        (Value::Vector(l), Value::Vector(r)) => {
            let default = BinModifier::default();
            let m = b.modifier.as_ref().unwrap_or(&default);
            match op {
                token::T_LAND | token::T_LOR | token::T_LUNLESS => set_op(op, l, r, m),
                _ => vector_vector(op, l, r, m, return_bool, t),
            }
        }
        (l, r) => Err(Error::Eval(format!(
            "binary operator between a {} and a {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

/// Arithmetic drops the metric name; comparisons and `atan2` keep it (as
/// Prometheus 2.x does).
fn drops_name(op: TokenId) -> bool {
    matches!(
        op,
        token::T_ADD | token::T_SUB | token::T_MUL | token::T_DIV | token::T_MOD | token::T_POW
    )
}

fn is_comparison(op: TokenId) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

/// `(value, keep)`: an arithmetic result, or a comparison's left value and outcome.
fn elem(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_MOD => (l % r, true),
        token::T_POW => (go_pow(l, r), true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

/// Go's `math.Pow`, which differs from C's `pow` on a few special cases.
fn go_pow(x: f64, y: f64) -> f64 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    x.powf(y)
}

fn vector_scalar(
    op: TokenId,
    v: Vec<Sample>,
    s: f64,
    scalar_left: bool,
    return_bool: bool,
    t: i64,
) -> Result<Value> {
    let comparison = is_comparison(op);
    let mut out = Vec::with_capacity(v.len());
    for x in v {
        let (l, r) = if scalar_left { (s, x.v) } else { (x.v, s) };
        let (mut value, mut keep) = elem(op, l, r);
        // A comparison's result is always the vector's value, whichever side it is on.
        if comparison && scalar_left {
            value = x.v;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if drops_name(op) || return_bool {
                x.labels.without_name()
            } else {
                x.labels
            };
            out.push(Sample {
                labels,
                t,
                v: value,
            });
        }
    }
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

/// How a modifier matches series: on `names` only, or on all labels but
/// `names` and the metric name.
struct Matching<'m> {
    on: bool,
    names: &'m [String],
}

impl Matching<'_> {
    fn of(m: &BinModifier) -> Matching<'_> {
        match &m.matching {
            Some(LabelModifier::Include(l)) => Matching {
                on: true,
                names: &l.labels,
            },
            Some(LabelModifier::Exclude(l)) => Matching {
                on: false,
                names: &l.labels,
            },
            None => Matching {
                on: false,
                names: &[],
            },
        }
    }

    fn signature(&self, l: &Labels) -> Vec<u8> {
        if self.on {
            l.signature(|n| self.names.iter().any(|x| x == n))
        } else {
            l.signature(|n| n != METRIC_NAME && !self.names.iter().any(|x| x == n))
        }
    }

    fn matched_labels(&self, l: &Labels) -> Labels {
        if self.on {
            l.filtered(|n| self.names.iter().any(|x| x == n))
        } else {
            l.filtered(|n| n != METRIC_NAME && !self.names.iter().any(|x| x == n))
        }
    }
}

fn set_op(op: TokenId, l: Vec<Sample>, r: Vec<Sample>, m: &BinModifier) -> Result<Value> {
    let matching = Matching::of(m);
    let out = match op {
        token::T_LAND => {
            let right: HashSet<Vec<u8>> = r.iter().map(|s| matching.signature(&s.labels)).collect();
            l.into_iter()
                .filter(|s| right.contains(&matching.signature(&s.labels)))
                .collect()
        }
        token::T_LUNLESS => {
            let right: HashSet<Vec<u8>> = r.iter().map(|s| matching.signature(&s.labels)).collect();
            l.into_iter()
                .filter(|s| !right.contains(&matching.signature(&s.labels)))
                .collect()
        }
        _ => {
            let left: HashSet<Vec<u8>> = l.iter().map(|s| matching.signature(&s.labels)).collect();
            let mut out = l;
            out.extend(
                r.into_iter()
                    .filter(|s| !left.contains(&matching.signature(&s.labels))),
            );
            out
        }
    };
    Ok(Value::Vector(out))
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &BinModifier,
    return_bool: bool,
    t: i64,
) -> Result<Value> {
    let matching = Matching::of(m);
    let (one_to_many, include): (bool, &[String]) = match &m.card {
        VectorMatchCardinality::ManyToOne(l) => (false, &l.labels),
        VectorMatchCardinality::OneToMany(l) => (true, &l.labels),
        _ => (false, &[]),
    };
    let one_to_one = matches!(
        m.card,
        VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany
    );
    // The "one" side goes on the right; a group_right swaps the sides.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: HashMap<Vec<u8>, Sample> = HashMap::with_capacity(one.len());
    for s in one {
        let sig = matching.signature(&s.labels);
        if let Some(dup) = one_by_sig.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(Error::Eval(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                matching.matched_labels(&s.labels),
                s.labels,
                dup.labels
            )));
        }
        one_by_sig.insert(sig, s);
    }
    let mut matched: HashMap<Vec<u8>, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for ls in many {
        let sig = matching.signature(&ls.labels);
        let Some(rs) = one_by_sig.get(&sig) else {
            continue;
        };
        let (vl, vr) = if one_to_many {
            (rs.v, ls.v)
        } else {
            (ls.v, rs.v)
        };
        let (mut value, keep) = elem(op, vl, vr);
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut labels = result_labels(&ls.labels, &rs.labels, op, &matching, one_to_one, include);
        if return_bool {
            labels = labels.without_name();
        }
        let seen = matched.entry(sig).or_default();
        if one_to_one {
            if !seen.is_empty() {
                return Err(Error::Eval(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            seen.insert(Labels::empty());
        } else if !seen.insert(labels.clone()) {
            return Err(Error::Eval(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        out.push(Sample {
            labels,
            t,
            v: value,
        });
    }
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

/// Prometheus' `resultMetric`: the "many" side's labels, the name dropped
/// for arithmetic, cut to the matching labels for one-to-one, and the
/// `group_x(…)` labels copied from the "one" side.
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: TokenId,
    matching: &Matching<'_>,
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut l = if drops_name(op) {
        many.without_name()
    } else {
        many.clone()
    };
    if one_to_one {
        l = if matching.on {
            l.filtered(|n| matching.names.iter().any(|x| x == n))
        } else {
            l.filtered(|n| !matching.names.iter().any(|x| x == n))
        };
    }
    for name in include {
        l = l.with(name, one.get(name).unwrap_or(""));
    }
    l
}
