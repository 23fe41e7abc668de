//! Property tests: no input panics a decoder, and every valid batch a
//! client can write decodes to exactly what it wrote.

use std::collections::BTreeMap;
use std::io::Write;

use loupe_ingest::{
    DecodeError, Limits, decode_body, decode_external_metrics, decode_logs, decode_metrics,
};
use loupe_model::{LogLevel, LogStream, SeriesKey};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000_000_000_000;

fn small_limits() -> Limits {
    Limits {
        max_body_bytes: 1 << 16,
        max_series_per_request: 8,
        max_points_per_request: 64,
        max_json_depth: 16,
        max_log_records_per_request: 8,
        max_log_text_bytes: 64,
        max_attributes: 4,
        ..Limits::default()
    }
}

/// Runs every decoder on `body`; each must answer, and an error must read
/// as `path: message`.
fn decode_all(body: &[u8], limits: &Limits) {
    let check = |r: Result<(), DecodeError>| {
        if let Err(e) = r {
            assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
            assert_eq!(e.to_string(), format!("{}: {}", e.path, e.message));
        }
    };
    check(decode_metrics(body, NOW, limits).map(|b| {
        for s in &b.series {
            assert_eq!(s.times_ns.len(), s.values.len());
            assert!(s.steps.as_ref().is_none_or(|st| st.len() == s.values.len()));
        }
        assert!(b.points() <= limits.max_points_per_request);
    }));
    check(decode_external_metrics(body, NOW, limits).map(drop));
    check(decode_logs(body, NOW, limits).map(drop));
}

/// Pieces of JSON that make up batches, so random sequences of them reach
/// far deeper into the decoders than random bytes do.
fn json_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        " ",
        "\"series\"",
        "\"records\"",
        "\"name\"",
        "\"value\"",
        "\"step\"",
        "\"time\"",
        "\"labels\"",
        "\"text\"",
        "\"level\"",
        "\"stream\"",
        "\"attributes\"",
        "\"x\"",
        "\"run\"",
        "\"NaN\"",
        "\"Infinity\"",
        "\"info\"",
        "\"stderr\"",
        "1",
        "-1",
        "0.5",
        "1e400",
        "1732000000.5",
        "-9223372036854775808",
        "18446744073709551616",
        "true",
        "null",
        "NaN",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"é\"",
        "\"\\\"",
        "{\"series\":[",
        "{\"name\":\"a\",\"value\":[",
        "{\"records\":[{\"text\":\"t\"",
        "]}",
        "}]}",
    ])
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// How a finite value may be written: serde_json's text, or Rust's `{:?}`
/// (both shortest round-trip forms, with different exponent styles).
fn write_value(v: f64, rust_style: bool) -> String {
    if v.is_nan() {
        "\"NaN\"".into()
    } else if v == f64::INFINITY {
        if rust_style {
            "\"+Infinity\"".into()
        } else {
            "\"Infinity\"".into()
        }
    } else if v == f64::NEG_INFINITY {
        "\"-Infinity\"".into()
    } else if rust_style {
        format!("{v:?}")
    } else {
        serde_json::to_string(&v).unwrap()
    }
}

/// True when `ns` is the nanosecond nearest to `seconds × 10⁹`, computed
/// exactly from the double's mantissa and exponent.
fn is_nearest_ns(seconds: f64, ns: i64) -> bool {
    if seconds == 0.0 {
        return ns == 0;
    }
    let bits = seconds.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let (mantissa, exp) = if exp == 0 {
        ((bits & ((1 << 52) - 1)) as i128, -1074)
    } else {
        (((bits & ((1 << 52) - 1)) | (1 << 52)) as i128, exp - 1075)
    };
    let scaled = mantissa * 1_000_000_000;
    if exp >= 0 {
        return ns as i128 == scaled << exp;
    }
    let shift = -exp;
    if shift > 100 {
        // Under 2^-47 s: far below half a nanosecond.
        return ns == 0;
    }
    // |ns·2^shift − scaled| ≤ 2^shift / 2, ties either way.
    let diff = ((ns as i128) << shift) - scaled;
    2 * diff.abs() <= 1i128 << shift
}

#[derive(Debug, Clone)]
struct Series {
    name: String,
    steps: Option<Vec<i64>>,
    times: Option<Vec<f64>>,
    values: Vec<f64>,
    rust_style: bool,
}

fn series_strategy() -> impl Strategy<Value = Series> {
    (0usize..12).prop_flat_map(|n| {
        let value = prop_oneof![
            4 => any::<f64>(),
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => (-1000i64..1000).prop_map(|i| i as f64),
            2 => (0.0f64..4.0).prop_map(|v| v as f32 as f64),
        ];
        let time = prop_oneof![0.0f64..=9.0e9, 1.6e9f64..1.8e9];
        (
            "[a-z][a-z0-9_/.]{0,15}|\\PC{1,20}",
            prop::option::of(vec(
                any::<i64>().prop_filter("reserved", |s| *s != i64::MIN),
                n,
            )),
            prop::option::of(vec(time, n)),
            vec(value, n),
            any::<bool>(),
        )
            .prop_map(|(name, steps, times, values, rust_style)| Series {
                name,
                steps,
                times,
                values,
                rust_style,
            })
    })
}

fn write_series(s: &Series, extra: &str) -> String {
    let mut fields = vec![format!(
        "\"name\":{}",
        serde_json::to_string(&s.name).unwrap()
    )];
    if let Some(steps) = &s.steps {
        fields.push(format!(
            "\"step\":{}",
            serde_json::to_string(steps).unwrap()
        ));
    }
    if let Some(times) = &s.times {
        let times: Vec<String> = times
            .iter()
            .map(|t| write_value(*t, s.rust_style))
            .collect();
        fields.push(format!("\"time\":[{}]", times.join(",")));
    }
    let values: Vec<String> = s
        .values
        .iter()
        .map(|v| write_value(*v, s.rust_style))
        .collect();
    fields.push(format!("\"value\":[{}]", values.join(",")));
    if !extra.is_empty() {
        fields.insert(1, extra.to_string());
    }
    format!("{{{}}}", fields.join(","))
}

fn same_value(a: f64, b: f64) -> bool {
    // Every NaN a client writes is "NaN"; the decoder gives the one NaN.
    if b.is_nan() {
        a.to_bits() == f64::NAN.to_bits()
    } else {
        a.to_bits() == b.to_bits()
    }
}

fn check_columns(got: &loupe_ingest::SeriesColumns, want: &Series) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.name, &want.name);
    prop_assert_eq!(&got.steps, &want.steps);
    prop_assert_eq!(got.values.len(), want.values.len());
    for (a, b) in got.values.iter().zip(&want.values) {
        prop_assert!(same_value(*a, *b), "{a:?} != {b:?}");
    }
    match &want.times {
        Some(times) => {
            prop_assert_eq!(got.times_ns.len(), times.len());
            for (ns, t) in got.times_ns.iter().zip(times) {
                prop_assert!(is_nearest_ns(*t, *ns), "{t} s → {ns} ns");
            }
        }
        None => prop_assert!(got.times_ns.iter().all(|t| *t == NOW)),
    }
    Ok(())
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(
        "[a-z_][a-z0-9_]{0,8}".prop_filter("reserved", |k| k != "run" && k != "project"),
        "\\PC{0,12}",
        0..5,
    )
}

#[derive(Debug, Clone)]
struct Record {
    time: Option<f64>,
    stream: Option<LogStream>,
    level: Option<(LogLevel, bool)>,
    text: String,
    attributes: BTreeMap<String, String>,
}

fn record_strategy() -> impl Strategy<Value = Record> {
    let stream = prop::sample::select(vec![LogStream::Stdout, LogStream::Stderr, LogStream::App]);
    let level = prop::sample::select(vec![
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warning,
        LogLevel::Error,
        LogLevel::Critical,
    ]);
    (
        prop::option::of(0.0f64..=9.0e9),
        prop::option::of(stream),
        prop::option::of((level, any::<bool>())),
        "\\PC{0,40}",
        btree_map("[a-z.]{1,10}", "\\PC{0,12}", 0..4),
    )
        .prop_map(|(time, stream, level, text, attributes)| Record {
            time,
            stream,
            level,
            text,
            attributes,
        })
}

fn write_record(r: &Record) -> String {
    let mut obj = serde_json::Map::new();
    if let Some(t) = r.time {
        obj.insert("time".into(), t.into());
    }
    if let Some(s) = r.stream {
        obj.insert("stream".into(), s.as_str().into());
    }
    if let Some((level, upper)) = r.level {
        let name = level.as_str();
        obj.insert(
            "level".into(),
            if upper {
                name.to_uppercase()
            } else {
                name.to_string()
            }
            .into(),
        );
    }
    obj.insert("text".into(), r.text.clone().into());
    if !r.attributes.is_empty() {
        obj.insert(
            "attributes".into(),
            serde_json::to_value(&r.attributes).unwrap(),
        );
    }
    serde_json::Value::Object(obj).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        let limits = small_limits();
        decode_all(&bytes, &limits);
        for encoding in [None, Some("gzip"), Some("zstd"), Some("identity")] {
            if let Ok(body) = decode_body(&bytes, encoding, &limits) {
                decode_all(&body, &limits);
            }
        }
    }

    #[test]
    fn arbitrary_json_pieces_never_panic(pieces in vec(json_piece(), 0..60)) {
        let body = pieces.concat();
        decode_all(body.as_bytes(), &small_limits());
        decode_all(body.as_bytes(), &Limits::default());
    }

    #[test]
    fn mutated_batches_never_panic(
        series in vec(series_strategy(), 1..4),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let items: Vec<String> = series.iter().map(|s| write_series(s, "")).collect();
        let mut body = format!("{{\"series\":[{}]}}", items.join(",")).into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(body.len() + 1);
            match op {
                0 => body.insert(i, byte),
                1 if i < body.len() => { body.remove(i); }
                _ if i < body.len() => body[i] = byte,
                _ => {}
            }
        }
        decode_all(&body, &small_limits());
        decode_all(&body, &Limits::default());
        if let Ok(body) = decode_body(&gzip(&body), Some("gzip"), &small_limits()) {
            decode_all(&body, &small_limits());
        }
    }

    #[test]
    fn metric_batches_round_trip(series in vec(series_strategy(), 0..6), unknown in any::<bool>()) {
        let extra = if unknown { r#""unit":{"si":["s",1.5,null]}"# } else { "" };
        let items: Vec<String> = series.iter().map(|s| write_series(s, extra)).collect();
        let body = format!("{{\"series\":[{}]}}", items.join(","));
        let limits = Limits::default();
        let batch = decode_metrics(body.as_bytes(), NOW, &limits)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
        prop_assert_eq!(batch.series.len(), series.len());
        for (got, want) in batch.series.iter().zip(&series) {
            check_columns(got, want)?;
        }
        // Compressed, the same batch decodes the same.
        let gz = gzip(body.as_bytes());
        let raw = decode_body(&gz, Some("gzip"), &limits).unwrap();
        prop_assert_eq!(&raw[..], body.as_bytes());
        let zstd = zstd::encode_all(body.as_bytes(), 1).unwrap();
        let raw = decode_body(&zstd, Some("zstd"), &limits).unwrap();
        prop_assert_eq!(&raw[..], body.as_bytes());
    }

    #[test]
    fn external_batches_round_trip(entries in vec((series_strategy(), label_map()), 0..5)) {
        let items: Vec<String> = entries
            .iter()
            .map(|(s, labels)| {
                write_series(s, &format!("\"labels\":{}", serde_json::to_string(labels).unwrap()))
            })
            .collect();
        let body = format!("{{\"series\":[{}]}}", items.join(","));
        let got = decode_external_metrics(body.as_bytes(), NOW, &Limits::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
        prop_assert_eq!(got.len(), entries.len());
        for ((key, columns), (s, labels)) in got.iter().zip(&entries) {
            prop_assert_eq!(key, &SeriesKey::new(s.name.as_str(), labels.clone()).unwrap());
            check_columns(columns, s)?;
        }
    }

    #[test]
    fn log_batches_round_trip(records in vec(record_strategy(), 0..8)) {
        let items: Vec<String> = records.iter().map(write_record).collect();
        let body = format!("{{\"records\":[{}]}}", items.join(","));
        let got = decode_logs(body.as_bytes(), NOW, &Limits::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
        prop_assert_eq!(got.len(), records.len());
        for (g, r) in got.iter().zip(&records) {
            prop_assert_eq!(g.time.to_bits(), r.time.unwrap_or(NOW as f64 / 1e9).to_bits());
            prop_assert_eq!(g.stream, r.stream.unwrap_or(LogStream::App));
            prop_assert_eq!(g.level, r.level.map_or(LogLevel::Info, |(l, _)| l));
            prop_assert_eq!(&g.text, &r.text);
            prop_assert_eq!(&g.attributes, &r.attributes);
        }
    }
}
