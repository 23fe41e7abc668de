//! Good requests decode to exactly what the client meant.

use std::io::Write;

use loupe_ingest::{
    Limits, MetricBatch, SeriesColumns, decode_body, decode_external_metrics, decode_logs,
    decode_metrics,
};
use loupe_model::{LogLevel, LogStream, SeriesKey};

const NOW: i64 = 1_700_000_000_123_000_000;

fn metrics(body: &str) -> MetricBatch {
    decode_metrics(body.as_bytes(), NOW, &Limits::default()).unwrap()
}

#[test]
fn a_full_batch_decodes_to_columns() {
    let batch = metrics(
        r#"{"series":[
            {"name":"train/loss","step":[1,2,3],"time":[1732000000,1732000000.5,1732000001.25],"value":[2.5,2,-1e-3]},
            {"name":"train/lr","step":[1,2,3],"time":[1732000000,1732000000.5,1732000001.25],"value":[0.001,0.002,0.003]}
        ]}"#,
    );
    assert_eq!(batch.points(), 6);
    assert_eq!(
        batch.series[0],
        SeriesColumns {
            name: "train/loss".into(),
            steps: Some(vec![1, 2, 3]),
            times_ns: vec![
                1_732_000_000_000_000_000,
                1_732_000_000_500_000_000,
                1_732_000_001_250_000_000
            ],
            values: vec![2.5, 2.0, -1e-3],
        }
    );
    assert_eq!(batch.series[1].name, "train/lr");
    assert_eq!(batch.series[1].values, vec![0.001, 0.002, 0.003]);
}

#[test]
fn nan_and_infinities_round_trip_bit_for_bit() {
    let batch = metrics(
        r#"{"series":[{"name":"x","value":["NaN","Infinity","-Infinity","+Infinity",-0.0,5e-324,1.7976931348623157e308,0.1,-2.2250738585072014e-308]}]}"#,
    );
    let got: Vec<u64> = batch.series[0].values.iter().map(|v| v.to_bits()).collect();
    let want: Vec<u64> = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        -0.0,
        5e-324,
        f64::MAX,
        0.1,
        -f64::MIN_POSITIVE,
    ]
    .iter()
    .map(|v| v.to_bits())
    .collect();
    assert_eq!(got, want);
}

#[test]
fn missing_time_is_now_and_missing_step_is_none() {
    let batch = metrics(
        r#"{"series":[{"name":"gpu","value":[1,2]},{"name":"b","step":null,"time":null,"value":[3]}]}"#,
    );
    assert_eq!(batch.series[0].steps, None);
    assert_eq!(batch.series[0].times_ns, vec![NOW, NOW]);
    assert_eq!(batch.series[1].steps, None);
    assert_eq!(batch.series[1].times_ns, vec![NOW]);
}

#[test]
fn steps_are_integers_written_either_way() {
    let batch = metrics(
        r#"{"series":[{"name":"a","step":[0,-5,3.0,1e3,9223372036854775807,-9223372036854775807],"value":[1,2,3,4,5,6]}]}"#,
    );
    assert_eq!(
        batch.series[0].steps,
        Some(vec![0, -5, 3, 1000, i64::MAX, -i64::MAX])
    );
}

#[test]
fn integer_values_and_times_are_taken() {
    let batch = metrics(
        r#"{"series":[{"name":"a","time":[0, 9000000000],"value":[18446744073709551615, -9223372036854775808]}]}"#,
    );
    let s = &batch.series[0];
    assert_eq!(s.times_ns, vec![0, 9_000_000_000_000_000_000]);
    assert_eq!(s.values, vec![u64::MAX as f64, i64::MIN as f64]);
}

#[test]
fn empty_batches_and_empty_series_are_fine() {
    assert!(metrics(r#"{"series":[]}"#).series.is_empty());
    let batch = metrics(r#"{"series":[{"name":"a","step":[],"time":[],"value":[]}]}"#);
    assert!(batch.series[0].is_empty());
    assert_eq!(batch.series[0].steps, Some(vec![]));
}

#[test]
fn unknown_fields_are_ignored() {
    let batch = metrics(
        r#"{"version":2,"sdk":{"name":"loupe","v":[1,{"x":null}]},
            "series":[{"unit":"s","name":"a","meta":{"a":[[1]]},"value":[1],"labels":{"k":"v"}}]}"#,
    );
    assert_eq!(batch.series[0].name, "a");
    assert_eq!(batch.series[0].values, vec![1.0]);
}

#[test]
fn escapes_and_whitespace_are_json() {
    let batch = metrics(
        "\n{ \"series\" : [ { \"name\" : \"eval\\/acc \\u00e9\\ud83d\\ude00\" ,\r\n \"value\" : [ 1 , \"NaN\" ] } ] }\n\t",
    );
    assert_eq!(batch.series[0].name, "eval/acc é😀");
    let nan = metrics(r#"{"series":[{"name":"a","value":["\u004eaN"]}]}"#);
    assert!(nan.series[0].values[0].is_nan());
}

#[test]
fn external_series_carry_validated_labels() {
    let body = r#"{"series":[
        {"name":"gpu/util","labels":{"host":"n1","gpu":0,"mig":false},"time":[1732000000],"value":[97.5]},
        {"name":"host/load","value":[0.5]}
    ]}"#;
    let series = decode_external_metrics(body.as_bytes(), NOW, &Limits::default()).unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(
        series[0].0,
        SeriesKey::new("gpu/util", [("gpu", "0"), ("host", "n1"), ("mig", "false")]).unwrap()
    );
    assert_eq!(series[0].1.name, "gpu/util");
    assert_eq!(series[0].1.values, vec![97.5]);
    assert_eq!(series[1].0, SeriesKey::named("host/load").unwrap());
    assert_eq!(series[1].1.times_ns, vec![NOW]);
}

#[test]
fn log_records_take_defaults_and_coerce_attributes() {
    let body = r#"{"records":[
        {"text":"starting"},
        {"time":1732000000.5,"stream":"stderr","level":"WARN","text":"loss spiked","attributes":{"step":1200,"ratio":0.5,"ok":true,"rank":"3"}},
        {"time":null,"stream":null,"level":null,"text":"","attributes":null,"extra":[1]}
    ]}"#;
    let records = decode_logs(body.as_bytes(), NOW, &Limits::default()).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].time, NOW as f64 / 1e9);
    assert_eq!(records[0].stream, LogStream::App);
    assert_eq!(records[0].level, LogLevel::Info);
    assert!(records[0].attributes.is_empty());
    let r = &records[1];
    assert_eq!(
        (r.time, r.stream, r.level),
        (1_732_000_000.5, LogStream::Stderr, LogLevel::Warning)
    );
    assert_eq!(r.text, "loss spiked");
    let attrs: Vec<(&str, &str)> = r
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        vec![
            ("ok", "true"),
            ("rank", "3"),
            ("ratio", "0.5"),
            ("step", "1200")
        ]
    );
    assert_eq!(records[2].text, "");
    assert_eq!(records[2].level, LogLevel::Info);
}

#[test]
fn log_text_at_the_limit_is_kept_whole() {
    let text = "é".repeat(32 * 1024); // 65 536 bytes
    let body = serde_json::json!({"records": [{"text": text}]}).to_string();
    let records = decode_logs(body.as_bytes(), NOW, &Limits::default()).unwrap();
    assert_eq!(records[0].text, text);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn compressed_bodies_decode() {
    let json = br#"{"series":[{"name":"a","step":[1],"value":["NaN"]}]}"#;
    let limits = Limits::default();
    let gz = gzip(json);
    for header in ["gzip", "GZIP", "x-gzip", " gzip "] {
        let body = decode_body(&gz, Some(header), &limits).unwrap();
        assert_eq!(&body[..], &json[..], "{header}");
    }
    let zstd = zstd::encode_all(&json[..], 3).unwrap();
    for header in ["zstd", "ZStd"] {
        let body = decode_body(&zstd, Some(header), &limits).unwrap();
        let batch = decode_metrics(&body, NOW, &limits).unwrap();
        assert!(batch.series[0].values[0].is_nan());
    }
    // Concatenated gzip members (and zstd frames) are one body.
    let mut two = gzip(&json[..20]);
    two.extend(gzip(&json[20..]));
    assert_eq!(
        &decode_body(&two, Some("gzip"), &limits).unwrap()[..],
        &json[..]
    );
    let mut frames = zstd::encode_all(&json[..20], 3).unwrap();
    frames.extend(zstd::encode_all(&json[20..], 3).unwrap());
    assert_eq!(
        &decode_body(&frames, Some("zstd"), &limits).unwrap()[..],
        &json[..]
    );
}

#[test]
fn identity_bodies_are_borrowed() {
    let limits = Limits::default();
    for header in [None, Some("identity"), Some(""), Some("Identity")] {
        let body = decode_body(b"{}", header, &limits).unwrap();
        assert!(matches!(body, std::borrow::Cow::Borrowed(_)), "{header:?}");
    }
}
