//! Reading `corpus/curves/index.toml` and its CSV files.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::corpus::CorpusError;
use crate::corpus::load::{read_index, read_text};

/// One published metric history.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The CSV's file name (the curve's name in tables).
    pub file: String,
    /// Where the values were published.
    pub source: String,
    /// The series name it is fed under (decides its detectors).
    pub series: String,
    /// First and last step of the failure; `None` for a healthy curve.
    pub failure: Option<(i64, i64)>,
    /// `dev` or `heldout`.
    pub split: String,
    pub steps: Vec<i64>,
    pub values: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    curve: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    file: String,
    source: String,
    series: String,
    failure: Option<[i64; 2]>,
    split: String,
    #[allow(dead_code)]
    note: Option<String>,
}

/// `crates/loupe-diagnose/corpus/curves`.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/curves")
}

/// Every curve of the index in `dir`, in index order.
pub fn load(dir: &Path) -> Result<Vec<Curve>, CorpusError> {
    let index: Index = read_index(&dir.join("index.toml"))?;
    index
        .curve
        .into_iter()
        .map(|e| {
            let (steps, values) = parse_csv(&e.file, &read_text(&dir.join(&e.file))?)?;
            Ok(Curve {
                file: e.file,
                source: e.source,
                series: e.series,
                failure: e.failure.map(|[a, b]| (a, b)),
                split: e.split,
                steps,
                values,
            })
        })
        .collect()
}

/// `step,value` rows after a header; values as Rust reads them (`NaN`,
/// `inf` included).
fn parse_csv(file: &str, text: &str) -> Result<(Vec<i64>, Vec<f64>), CorpusError> {
    let (mut steps, mut values) = (Vec::new(), Vec::new());
    for (i, row) in text.lines().enumerate().skip(1) {
        if row.trim().is_empty() {
            continue;
        }
        let bad = |what: String| CorpusError::Row {
            file: file.to_string(),
            line: i + 1,
            what,
        };
        let (s, v) = row
            .split_once(',')
            .ok_or_else(|| bad("expected step,value".into()))?;
        let step: i64 = s.trim().parse().map_err(|_| bad(format!("step {s:?}")))?;
        let value: f64 = v.trim().parse().map_err(|_| bad(format!("value {v:?}")))?;
        if steps.last().is_some_and(|&last| step <= last) {
            return Err(bad(format!("step {step} does not advance")));
        }
        steps.push(step);
        values.push(value);
    }
    Ok((steps, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_non_finite_values_and_reject_bad_ones() {
        let (s, v) = parse_csv("a.csv", "step,value\n1,2.5\n2,NaN\n3,inf\n").unwrap();
        assert_eq!(s, vec![1, 2, 3]);
        assert!(v[1].is_nan() && v[2] == f64::INFINITY);
        let e = parse_csv("a.csv", "step,value\n1,2\n1,3\n").unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        assert!(parse_csv("a.csv", "step,value\nx,1\n").is_err());
    }
}
