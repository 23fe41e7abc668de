//! What an expression evaluates to.

use crate::Labels;

/// One element of an instant vector. `t` is the sample's own time (Unix ms)
/// for a selector's output, which `timestamp()` reads; the evaluation time otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// One series of a range vector or of a range query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    /// `(Unix ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// A query's or a sub-expression's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus' name for the type, as its errors and `resultType` spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
