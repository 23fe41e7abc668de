//! `loupe_promql` on arbitrary query text: parsed, then evaluated as an
//! instant and a range query over a few in-memory series (a counter with a
//! reset, a gauge ended by a staleness marker, NaN and infinities, classic
//! buckets). No panic; errors are typed; a range answer is a matrix sorted
//! by labels with points on the steps, in order.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use loupe_promql::{
    Engine, EngineOptions, Labels, Matcher, RawSeries, STALE_NAN_BITS, SeriesSource, SourceError,
    Value,
};

struct Memory(Vec<RawSeries>);

impl SeriesSource for Memory {
    fn select(&self, matchers: &[Matcher], _: &[(i64, i64)]) -> Result<Vec<RawSeries>, SourceError> {
        Ok(self
            .0
            .iter()
            .filter(|s| matchers.iter().all(|m| m.is_match(s.labels.get(&m.name).unwrap_or(""))))
            .cloned()
            .collect())
    }
}

fn series(name: &str, extra: &[(&str, &str)], values: &[f64]) -> RawSeries {
    let mut labels = vec![("__name__".to_string(), name.to_string()), ("job".into(), "a".into())];
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    RawSeries {
        labels: Labels::new(labels),
        times: (0..values.len() as i64).map(|i| i * 15_000).collect(),
        values: values.to_vec(),
    }
}

fn data() -> Memory {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut out = vec![
        series("c", &[], &[1.0, 5.0, 9.0, 2.0, 4.0, 8.0, 20.0, 21.0]),
        series("g", &[("i", "1")], &[3.0, f64::NAN, -1.0, f64::INFINITY, 2.5, stale]),
        series("g", &[("i", "2")], &[f64::NEG_INFINITY, 0.0, -0.0, 7.0, 1e308, 1e-308]),
    ];
    for (le, k) in [("0.1", 1.0), ("1", 3.0), ("+Inf", 4.0)] {
        out.push(series("h_bucket", &[("le", le)], &[k, 2.0 * k, 3.0 * k, 5.0 * k]));
    }
    Memory(out)
}

fuzz_target!(|data_in: &[u8]| {
    let query = String::from_utf8_lossy(data_in);
    if query.len() > 512 || loupe_promql::parse(&query).is_err() {
        return;
    }
    let engine = Engine::new(EngineOptions {
        max_samples: 100_000,
        timeout: Duration::from_secs(2),
        default_subquery_step: Duration::from_secs(15),
        ..EngineOptions::default()
    });
    let src = data();
    let _ = engine.instant(&src, &query, 60_000);
    if let Ok(Value::Matrix(m)) = engine.range(&src, &query, 0, 135_000, 15_000) {
        assert!(m.windows(2).all(|w| w[0].labels < w[1].labels), "sorted, unique");
        for s in &m {
            assert!(s.points.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(s.points.iter().all(|p| p.0 % 15_000 == 0 && (0..=135_000).contains(&p.0)));
        }
    }
});
