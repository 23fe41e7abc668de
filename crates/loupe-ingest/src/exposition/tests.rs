use super::*;

fn text(body: &str) -> Exposition {
    decode_exposition(body.as_bytes(), ExpositionFormat::Text004).unwrap()
}

fn om_err(body: &str) -> String {
    decode_exposition(body.as_bytes(), ExpositionFormat::OpenMetrics)
        .unwrap_err()
        .to_string()
}

fn text_err(body: &str) -> String {
    decode_exposition(body.as_bytes(), ExpositionFormat::Text004)
        .unwrap_err()
        .to_string()
}

#[test]
fn content_type_picks_the_format() {
    assert_eq!(
        format_of(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        ExpositionFormat::OpenMetrics
    );
    assert_eq!(
        format_of(Some("text/plain; version=0.0.4")),
        ExpositionFormat::Text004
    );
    assert_eq!(format_of(None), ExpositionFormat::Text004);
}

#[test]
fn samples_labels_and_timestamps() {
    let e = text("a 1\nb{x=\"1\",y=\"q\\\"\"} 2.5 1700000000123\n");
    assert_eq!(e.samples.len(), 2);
    assert_eq!(e.samples[0].name, "a");
    assert_eq!(e.samples[0].timestamp_ms, None);
    assert_eq!(
        e.samples[1].labels,
        vec![("x".into(), "1".into()), ("y".into(), "q\"".into())]
    );
    assert_eq!(e.samples[1].timestamp_ms, Some(1_700_000_000_123));
}

#[test]
fn openmetrics_seconds_become_milliseconds_truncated() {
    let e = decode_exposition(
        b"a 1 1700000000.1239\n# EOF\n",
        ExpositionFormat::OpenMetrics,
    )
    .unwrap();
    assert_eq!(e.samples[0].timestamp_ms, Some(1_700_000_000_123));
}

#[test]
fn exemplars_are_dropped_and_counted() {
    let e = decode_exposition(
        b"# TYPE f histogram\nf_bucket{le=\"+Inf\"} 3 # {trace_id=\"a\"} 0.5 1.5\nf_count 3\n# EOF\n",
        ExpositionFormat::OpenMetrics,
    )
    .unwrap();
    assert_eq!(e.exemplars_dropped, 1);
    assert_eq!(e.samples.len(), 2);
    assert_eq!(e.samples[0].value, 3.0);
}

#[test]
fn errors_name_the_line() {
    let e = text_err("a 1\nb{x=\"1\" 2\n");
    assert!(e.starts_with("line 2: "), "{e}");
    let e = text_err("a 1\n\nc one\n");
    assert!(
        e.starts_with("line 3: ") && e.contains("not a number"),
        "{e}"
    );
    let e = text_err("a 1 12.5\n");
    assert!(e.contains("milliseconds"), "{e}");
    let e = text_err("a{x=\"1\",x=\"2\"} 1\n");
    assert!(e.contains("twice"), "{e}");
    let e = text_err("9a 1\n");
    assert!(e.starts_with("line 1"), "{e}");
    let e = text_err("# TYPE a fancy\n");
    assert!(e.contains("unknown metric type"), "{e}");
    let e = decode_exposition(b"a\xff 1\n", ExpositionFormat::Text004)
        .unwrap_err()
        .to_string();
    assert!(e.contains("UTF-8"), "{e}");
}

#[test]
fn openmetrics_needs_eof_and_nothing_after_it() {
    assert!(om_err("a 1\n").contains("# EOF"));
    assert!(om_err("a 1\n# EOF\nb 2\n").starts_with("line 3"));
    assert!(om_err("a  1\n# EOF\n").contains("one space"));
}

#[test]
fn unknown_escapes_are_kept_as_written() {
    let e = text("a{p=\"C:\\\\x\\q\"} 1\n");
    assert_eq!(e.samples[0].labels[0].1, "C:\\x\\q");
}

#[test]
fn special_values() {
    let e = text("a NaN\nb +Inf\nc -Inf\nd -0\n");
    assert!(e.samples[0].value.is_nan());
    assert_eq!(e.samples[1].value, f64::INFINITY);
    assert_eq!(e.samples[2].value, f64::NEG_INFINITY);
    assert_eq!(e.samples[3].value.to_bits(), (-0.0f64).to_bits());
}
