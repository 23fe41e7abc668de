//! The engine over series held in memory: what the comparison test against
//! Prometheus cannot load through promtool (staleness markers), and the
//! engine's bounds.

use std::time::Duration;

use loupe_promql::{
    Engine, EngineOptions, Error, Labels, Matcher, RawSeries, STALE_NAN_BITS, SeriesSource,
    SourceError, Value,
};

struct Memory(Vec<RawSeries>);

impl SeriesSource for Memory {
    fn select(
        &self,
        matchers: &[Matcher],
        _windows: &[(i64, i64)],
    ) -> Result<Vec<RawSeries>, SourceError> {
        Ok(self
            .0
            .iter()
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.is_match(s.labels.get(&m.name).unwrap_or("")))
            })
            .cloned()
            .collect())
    }
}

fn series(name: &str, job: &str, points: &[(i64, f64)]) -> RawSeries {
    RawSeries {
        labels: Labels::new(vec![
            ("__name__".into(), name.into()),
            ("job".into(), job.into()),
        ]),
        times: points.iter().map(|p| p.0).collect(),
        values: points.iter().map(|p| p.1).collect(),
    }
}

fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

fn vector(v: Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(s) => s
            .into_iter()
            .map(|s| (s.labels.get("job").unwrap_or("").to_string(), s.v))
            .collect(),
        v => panic!("expected a vector, got {v:?}"),
    }
}

/// Samples every 15 s from 0 to 10 min; `b` is marked stale at 5 min.
fn data() -> Memory {
    let a: Vec<(i64, f64)> = (0..=40).map(|i| (i * 15_000, i as f64)).collect();
    let mut b: Vec<(i64, f64)> = (0..20).map(|i| (i * 15_000, 100.0 + i as f64)).collect();
    b.push((300_000, stale()));
    let c = vec![(0, f64::NAN), (15_000, f64::NAN)];
    Memory(vec![
        series("x", "a", &a),
        series("x", "b", &b),
        series("y", "nan", &c),
    ])
}

#[test]
fn a_staleness_marker_ends_a_series_at_once() {
    let e = Engine::default();
    // 285 s: b's last real sample is current.
    let v = vector(e.instant(&data(), "x", 285_000).unwrap());
    assert_eq!(v, vec![("a".into(), 19.0), ("b".into(), 119.0)]);
    // 300 s: the marker hides b, though its last real sample is 15 s old.
    let v = vector(e.instant(&data(), "x", 300_000).unwrap());
    assert_eq!(v, vec![("a".into(), 20.0)]);
    // Range functions ignore the marker as a value.
    let v = vector(
        e.instant(&data(), "count_over_time(x[1m])", 300_000)
            .unwrap(),
    );
    assert_eq!(v, vec![("a".into(), 5.0), ("b".into(), 4.0)]);
}

#[test]
fn an_ordinary_nan_is_a_value_not_a_marker() {
    let e = Engine::default();
    let v = vector(e.instant(&data(), "y", 20_000).unwrap());
    assert_eq!(v.len(), 1);
    assert!(v[0].1.is_nan());
}

#[test]
fn the_lookback_delta_is_configurable() {
    let short = Engine::new(EngineOptions {
        lookback: Duration::from_secs(10),
        ..EngineOptions::default()
    });
    // 12 s after a's last sample at 600 s: outside a 10 s lookback, inside 5 min.
    assert!(vector(short.instant(&data(), "x{job=\"a\"}", 612_000).unwrap()).is_empty());
    let v = vector(
        Engine::default()
            .instant(&data(), "x{job=\"a\"}", 612_000)
            .unwrap(),
    );
    assert_eq!(v, vec![("a".into(), 40.0)]);
}

#[test]
fn too_many_samples_is_refused_with_prometheus_words() {
    let e = Engine::new(EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    });
    let err = e
        .instant(&data(), "sum_over_time(x[10m])", 600_000)
        .unwrap_err();
    assert!(matches!(err, Error::TooManySamples), "{err:?}");
    assert_eq!(err.error_type().as_str(), "execution");
    assert!(err.to_string().contains("too many samples"));
}

#[test]
fn a_query_past_its_timeout_is_refused() {
    let e = Engine::new(EngineOptions {
        timeout: Duration::ZERO,
        ..EngineOptions::default()
    });
    let err = e
        .range(&data(), "rate(x[1m])", 0, 600_000, 15_000)
        .unwrap_err();
    assert_eq!(err.error_type().as_str(), "timeout", "{err:?}");
}

#[test]
fn bad_queries_are_bad_data() {
    let e = Engine::default();
    for q in ["sum(", "rate(x)", "x[5m] + 1", "x{job=~\"(\"}"] {
        let err = e.instant(&data(), q, 0).unwrap_err();
        assert_eq!(err.error_type().as_str(), "bad_data", "{q}: {err:?}");
    }
    let err = e.range(&data(), "x[5m]", 0, 60_000, 15_000).unwrap_err();
    assert!(err.to_string().contains("range vector"), "{err}");
}

#[test]
fn many_to_many_matching_is_an_execution_error() {
    let e = Engine::default();
    let err = e.instant(&data(), "x + on() x", 100_000).unwrap_err();
    assert_eq!(err.error_type().as_str(), "execution");
    assert!(
        err.to_string()
            .contains("many-to-many matching not allowed"),
        "{err}"
    );
}
