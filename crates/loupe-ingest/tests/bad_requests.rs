//! Every kind of bad request the decoders refuse, each with the path,
//! message and kind the client gets back.

use std::io::Write;

use loupe_ingest::{
    BodyError, DecodeError, DecodeErrorKind, Limits, decode_body, decode_body_metered,
    decode_external_metrics, decode_logs, decode_metrics,
};

use DecodeErrorKind::{Invalid, LimitExceeded, Malformed};

const NOW: i64 = 1_700_000_000_000_000_000;

#[derive(Clone, Copy)]
enum Endpoint {
    Metrics,
    External,
    Logs,
}

struct Case {
    what: &'static str,
    endpoint: Endpoint,
    body: Vec<u8>,
    path: &'static str,
    message: &'static str,
    kind: DecodeErrorKind,
}

fn case(
    what: &'static str,
    endpoint: Endpoint,
    body: impl Into<Vec<u8>>,
    path: &'static str,
    message: &'static str,
    kind: DecodeErrorKind,
) -> Case {
    Case {
        what,
        endpoint,
        body: body.into(),
        path,
        message,
        kind,
    }
}

fn decode(endpoint: Endpoint, body: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    match endpoint {
        Endpoint::Metrics => decode_metrics(body, NOW, limits).map(drop),
        Endpoint::External => decode_external_metrics(body, NOW, limits).map(drop),
        Endpoint::Logs => decode_logs(body, NOW, limits).map(drop),
    }
}

fn series(n: usize, item: &str) -> String {
    let items = vec![item; n].join(",");
    format!(r#"{{"series":[{items}]}}"#)
}

fn cases() -> Vec<Case> {
    use Endpoint::*;
    let deep = format!(
        r#"{{"series":[],"extra":{}{}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    let mut bad_utf8 = br#"{"series":[{"name":"loss"#.to_vec();
    let utf8_at = bad_utf8.len();
    bad_utf8.extend_from_slice(b"\xff\xfe\",\"value\":[1]}]}");
    assert_eq!(utf8_at, 24);
    let long_name = format!(
        r#"{{"series":[{{"name":"a","value":[]}},{{"name":"{}","value":[1]}}]}}"#,
        "n".repeat(300)
    );
    let value_17 = {
        let mut values = vec!["1".to_string(); 20];
        values[17] = r#""nan""#.to_string();
        let s = format!(r#"{{"name":"x","value":[{}]}}"#, values.join(","));
        format!(r#"{{"series":[{{"name":"a","value":[1]}},{{"name":"b","value":[2]}},{s}]}}"#)
    };
    vec![
        // Shape of the body.
        case(
            "empty body",
            Metrics,
            "",
            "body",
            "the body is empty",
            Malformed,
        ),
        case(
            "blank body",
            Logs,
            " \n\t",
            "body",
            "the body is empty",
            Malformed,
        ),
        case(
            "not JSON",
            Metrics,
            "hello",
            "body",
            "invalid JSON at byte 0: expected value",
            Malformed,
        ),
        case(
            "invalid UTF-8",
            Metrics,
            bad_utf8,
            "body",
            "invalid UTF-8 at byte 24",
            Malformed,
        ),
        case(
            "top-level array",
            Metrics,
            "[]",
            "body",
            r#"expected an object with a "series" array, found an array"#,
            Invalid,
        ),
        case(
            "top-level number",
            Metrics,
            "42",
            "body",
            r#"expected an object with a "series" array, found 42"#,
            Invalid,
        ),
        case(
            "no series",
            Metrics,
            r#"{"runs":[]}"#,
            "body",
            r#"expected an object with a "series" array"#,
            Invalid,
        ),
        case(
            "series is an object",
            Metrics,
            r#"{"series":{}}"#,
            "series",
            "expected an array of series objects, found an object",
            Invalid,
        ),
        case(
            "series is null",
            Metrics,
            r#"{"series":null}"#,
            "series",
            "expected an array of series objects, found null",
            Invalid,
        ),
        case(
            "series given twice",
            Metrics,
            r#"{"series":[],"series":[]}"#,
            "series",
            "given more than once",
            Invalid,
        ),
        case(
            "trailing garbage",
            Metrics,
            r#"{"series":[]} x"#,
            "body",
            "invalid JSON at byte 14: trailing characters",
            Malformed,
        ),
        case(
            "truncated",
            Metrics,
            r#"{"series":[{"name":"a","value":[1,2"#,
            "series[0].value[2]",
            "EOF while parsing a list",
            Malformed,
        ),
        case(
            "syntax error in a value",
            Metrics,
            r#"{"series":[{"name":"a","value":[1,,2]}]}"#,
            "series[0].value[1]",
            "invalid JSON at byte 34: expected value",
            Malformed,
        ),
        case(
            "nested too deep",
            Metrics,
            deep,
            "extra",
            "JSON nested deeper than 64 levels",
            LimitExceeded,
        ),
        case(
            "number out of range",
            Metrics,
            r#"{"series":[{"name":"a","value":[1e400]}]}"#,
            "series[0].value[0]",
            "number out of range",
            Malformed,
        ),
        case(
            "bare NaN (Python's json default)",
            Metrics,
            r#"{"series":[{"name":"a","value":[1, NaN]}]}"#,
            "series[0].value[1]",
            r#"send the strings "NaN", "Infinity", "-Infinity""#,
            Malformed,
        ),
        case(
            "series element not an object",
            Metrics,
            r#"{"series":[[]]}"#,
            "series[0]",
            r#"expected a series object with "name" and "value", found an array"#,
            Invalid,
        ),
        // Series fields.
        case(
            "missing name",
            Metrics,
            r#"{"series":[{"value":[1]}]}"#,
            "series[0]",
            r#"missing "name""#,
            Invalid,
        ),
        case(
            "missing value",
            Metrics,
            r#"{"series":[{"name":"a","step":[1]}]}"#,
            "series[0]",
            r#"missing "value""#,
            Invalid,
        ),
        case(
            "null value",
            Metrics,
            r#"{"series":[{"name":"a","value":null}]}"#,
            "series[0]",
            r#"missing "value""#,
            Invalid,
        ),
        case(
            "name not a string",
            Metrics,
            r#"{"series":[{"name":7,"value":[1]}]}"#,
            "series[0].name",
            "expected a series name as a string, found 7",
            Invalid,
        ),
        case(
            "empty name",
            Metrics,
            r#"{"series":[{"name":"","value":[1]}]}"#,
            "series[0].name",
            "the series name is empty",
            Invalid,
        ),
        case(
            "NUL in name",
            Metrics,
            r#"{"series":[{"name":"a\u0000b","value":[1]}]}"#,
            "series[0].name",
            "NUL",
            Invalid,
        ),
        case(
            "name over 256 bytes",
            Metrics,
            long_name,
            "series[1].name",
            "300 bytes, over the limit of 256",
            LimitExceeded,
        ),
        case(
            "field given twice",
            Metrics,
            r#"{"series":[{"name":"a","value":[1],"value":[2]}]}"#,
            "series[0].value",
            "given more than once",
            Invalid,
        ),
        case(
            "step shorter than value",
            Metrics,
            r#"{"series":[{"name":"a","step":[1,2,3],"value":[1,2,3,4]}]}"#,
            "series[0]",
            r#""step" has 3 entries but "value" has 4"#,
            Invalid,
        ),
        case(
            "time longer than value",
            Metrics,
            r#"{"series":[{"name":"a","time":[1,2,3],"value":[1,2]}]}"#,
            "series[0]",
            r#""time" has 3 entries but "value" has 2"#,
            Invalid,
        ),
        case(
            "value not an array",
            Metrics,
            r#"{"series":[{"name":"a","value":3}]}"#,
            "series[0].value",
            "expected an array, found 3",
            Invalid,
        ),
        // Values.
        case(
            "bad value string",
            Metrics,
            value_17,
            "series[2].value[17]",
            r#"expected a number or "NaN", "Infinity", "-Infinity", found "nan""#,
            Invalid,
        ),
        case(
            "lowercase inf",
            Metrics,
            r#"{"series":[{"name":"a","value":["inf"]}]}"#,
            "series[0].value[0]",
            r#"found "inf""#,
            Invalid,
        ),
        case(
            "boolean value",
            Metrics,
            r#"{"series":[{"name":"a","value":[1,true]}]}"#,
            "series[0].value[1]",
            r#"expected a number or "NaN", "Infinity", "-Infinity", found true"#,
            Invalid,
        ),
        case(
            "null in values",
            Metrics,
            r#"{"series":[{"name":"a","value":[null]}]}"#,
            "series[0].value[0]",
            "found null",
            Invalid,
        ),
        case(
            "object in values",
            Metrics,
            r#"{"series":[{"name":"a","value":[{"v":1}]}]}"#,
            "series[0].value[0]",
            "found an object",
            Invalid,
        ),
        // Steps.
        case(
            "step not an integer",
            Metrics,
            r#"{"series":[{"name":"a","step":[1,1.5],"value":[1,2]}]}"#,
            "series[0].step[1]",
            "expected an integer step, found 1.5",
            Invalid,
        ),
        case(
            "step as a string",
            Metrics,
            r#"{"series":[{"name":"a","step":["1"],"value":[1]}]}"#,
            "series[0].step[0]",
            r#"expected an integer step, found string "1""#,
            Invalid,
        ),
        case(
            "reserved step",
            Metrics,
            r#"{"series":[{"name":"a","step":[-9223372036854775808],"value":[1]}]}"#,
            "series[0].step[0]",
            "is reserved",
            Invalid,
        ),
        case(
            "step over i64",
            Metrics,
            r#"{"series":[{"name":"a","step":[9223372036854775808],"value":[1]}]}"#,
            "series[0].step[0]",
            "over the largest step",
            Invalid,
        ),
        case(
            "step float over i64",
            Metrics,
            r#"{"series":[{"name":"a","step":[1e19],"value":[1]}]}"#,
            "series[0].step[0]",
            "expected an integer step",
            Invalid,
        ),
        // Times.
        case(
            "time not finite",
            Metrics,
            r#"{"series":[{"name":"a","time":["Infinity"],"value":[1]}]}"#,
            "series[0].time[0]",
            r#"expected Unix seconds as a number, found string "Infinity""#,
            Invalid,
        ),
        case(
            "time before 1970",
            Metrics,
            r#"{"series":[{"name":"a","time":[-1],"value":[1]}]}"#,
            "series[0].time[0]",
            "-1 is not a time Loupe can store",
            Invalid,
        ),
        case(
            "time after 2255",
            Metrics,
            r#"{"series":[{"name":"a","time":[1, 9.5e9],"value":[1,2]}]}"#,
            "series[0].time[1]",
            "9500000000 is not a time Loupe can store",
            Invalid,
        ),
        case(
            "time in milliseconds",
            Metrics,
            r#"{"series":[{"name":"a","time":[1732000000000],"value":[1]}]}"#,
            "series[0].time[0]",
            "expected Unix seconds",
            Invalid,
        ),
        // Limits.
        case(
            "too many series",
            Metrics,
            series(10_001, r#"{"name":"a","value":[]}"#),
            "series",
            "10001 series, over the limit of 10000 per request",
            LimitExceeded,
        ),
        // External series.
        case(
            "reserved label run",
            External,
            r#"{"series":[{"name":"a","labels":{"host":"n1","run":"r1"},"value":[1]}]}"#,
            "series[0].labels.run",
            r#"label "run" is set by the server"#,
            Invalid,
        ),
        case(
            "reserved label project",
            External,
            r#"{"series":[{"name":"a","labels":{"project":"p"},"value":[1]}]}"#,
            "series[0].labels.project",
            "set by the server",
            Invalid,
        ),
        case(
            "label value an object",
            External,
            r#"{"series":[{"name":"a","labels":{"host":{}},"value":[1]}]}"#,
            "series[0].labels.host",
            "expected a label value as a string, number or boolean, found an object",
            Invalid,
        ),
        case(
            "empty label name",
            External,
            r#"{"series":[{"name":"a","labels":{"":"x"},"value":[1]}]}"#,
            "series[0].labels",
            "label name is empty",
            Invalid,
        ),
        case(
            "label with an odd name",
            External,
            r#"{"series":[{"name":"a","labels":{"a b":{}},"value":[1]}]}"#,
            r#"series[0].labels["a b"]"#,
            "found an object",
            Invalid,
        ),
        case(
            "label value too long",
            External,
            format!(
                r#"{{"series":[{{"name":"a","labels":{{"k":"{}"}},"value":[1]}}]}}"#,
                "v".repeat(1025)
            ),
            "series[0].labels.k",
            "1025 bytes, over the limit of 1024",
            LimitExceeded,
        ),
        case(
            "too many labels",
            External,
            format!(
                r#"{{"series":[{{"name":"a","labels":{{{}}},"value":[1]}}]}}"#,
                // 32 labels: one too many once the server adds `project`.
                (0..32)
                    .map(|i| format!(r#""l{i}":"v""#))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "series[0].labels",
            "more than 31 labels",
            LimitExceeded,
        ),
        case(
            "labels not an object",
            External,
            r#"{"series":[{"name":"a","labels":["host"],"value":[1]}]}"#,
            "series[0].labels",
            "found an array",
            Invalid,
        ),
        // Logs.
        case(
            "logs: no records",
            Logs,
            r#"{"series":[]}"#,
            "body",
            r#"expected an object with a "records" array"#,
            Invalid,
        ),
        case(
            "logs: missing text",
            Logs,
            r#"{"records":[{"level":"info"}]}"#,
            "records[0]",
            r#"missing "text""#,
            Invalid,
        ),
        case(
            "logs: text too long",
            Logs,
            format!(
                r#"{{"records":[{{"text":"ok"}},{{"text":"{}"}}]}}"#,
                "x".repeat(65_537)
            ),
            "records[1].text",
            "65537 bytes, over the limit of 65536",
            LimitExceeded,
        ),
        case(
            "logs: unknown stream",
            Logs,
            r#"{"records":[{"text":"a"},{"text":"b","stream":"stdlog"}]}"#,
            "records[1].stream",
            r#"unknown stream "stdlog": expected stdout, stderr or app"#,
            Invalid,
        ),
        case(
            "logs: unknown level",
            Logs,
            r#"{"records":[{"text":"a","level":"loud"}]}"#,
            "records[0].level",
            r#"unknown level "loud""#,
            Invalid,
        ),
        case(
            "logs: level a number",
            Logs,
            r#"{"records":[{"text":"a","level":30}]}"#,
            "records[0].level",
            "found 30",
            Invalid,
        ),
        case(
            "logs: time a string",
            Logs,
            r#"{"records":[{"text":"a","time":"2024-01-01"}]}"#,
            "records[0].time",
            "expected Unix seconds as a number",
            Invalid,
        ),
        case(
            "logs: time out of range",
            Logs,
            r#"{"records":[{"text":"a","time":-5}]}"#,
            "records[0].time",
            "not a time Loupe can store",
            Invalid,
        ),
        case(
            "logs: attribute nested",
            Logs,
            r#"{"records":[{"text":"a","attributes":{"k":{"x":1}}}]}"#,
            "records[0].attributes.k",
            "expected an attribute value as a string, number or boolean, found an object",
            Invalid,
        ),
        case(
            "logs: attribute null",
            Logs,
            r#"{"records":[{"text":"a","attributes":{"k":null}}]}"#,
            "records[0].attributes.k",
            "found null",
            Invalid,
        ),
        case(
            "logs: attribute twice",
            Logs,
            r#"{"records":[{"text":"a","attributes":{"k":"1","k":"2"}}]}"#,
            "records[0].attributes.k",
            "given more than once",
            Invalid,
        ),
        case(
            "logs: too many attributes",
            Logs,
            format!(
                r#"{{"records":[{{"text":"a","attributes":{{{}}}}}]}}"#,
                (0..65)
                    .map(|i| format!(r#""a{i}":{i}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "records[0].attributes",
            "more than 64 attributes, over the limit of 64",
            LimitExceeded,
        ),
        case(
            "logs: attribute value too long",
            Logs,
            format!(
                r#"{{"records":[{{"text":"a","attributes":{{"k":"{}"}}}}]}}"#,
                "v".repeat(4097)
            ),
            "records[0].attributes.k",
            "4097 bytes, over the limit of 4096",
            LimitExceeded,
        ),
        case(
            "logs: record not an object",
            Logs,
            r#"{"records":["text"]}"#,
            "records[0]",
            r#"expected a log record object with a "text", found string "text""#,
            Invalid,
        ),
    ]
}

#[test]
fn bad_requests_are_refused_with_their_first_problem_located() {
    let limits = Limits::default();
    let mut failures = Vec::new();
    let cases = cases();
    for c in &cases {
        match decode(c.endpoint, &c.body, &limits) {
            Ok(()) => failures.push(format!("{}: accepted", c.what)),
            Err(e) => {
                if e.path != c.path || !e.message.contains(c.message) || e.kind != c.kind {
                    failures.push(format!(
                        "{}:\n    got  {:?} {:?} {:?}\n    want {:?} {:?} {:?}",
                        c.what, e.path, e.message, e.kind, c.path, c.message, c.kind
                    ));
                }
                assert_eq!(e.to_string(), format!("{}: {}", e.path, e.message));
                assert!(
                    e.message.len() < 400,
                    "{}: message of {} bytes",
                    c.what,
                    e.message.len()
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_first_problem_in_document_order_is_reported() {
    let body = r#"{"series":[
        {"name":"a","value":[1,"x"]},
        {"name":"","value":[true]}
    ]}"#;
    let e = decode_metrics(body.as_bytes(), NOW, &Limits::default()).unwrap_err();
    assert_eq!(e.path, "series[0].value[1]");
    // Within a series, a bad element is reported before a length mismatch
    // that is only known once the series is read.
    let body = r#"{"series":[{"name":"a","step":[1],"value":[1,"x"]}]}"#;
    let e = decode_metrics(body.as_bytes(), NOW, &Limits::default()).unwrap_err();
    assert_eq!(e.path, "series[0].value[1]");
}

#[test]
fn point_and_record_limits_count_the_whole_request() {
    let limits = Limits {
        max_points_per_request: 5,
        max_log_records_per_request: 2,
        max_series_per_request: 3,
        ..Limits::default()
    };
    // 3 + 2 points fit; one more does not, wherever it is.
    let ok = r#"{"series":[{"name":"a","value":[1,2,3]},{"name":"b","step":[1,2],"value":[1,2]}]}"#;
    assert_eq!(
        decode_metrics(ok.as_bytes(), NOW, &limits)
            .unwrap()
            .points(),
        5
    );
    let over =
        r#"{"series":[{"name":"a","value":[1,2,3]},{"name":"b","time":[1,2,3],"value":[1,2,3]}]}"#;
    let e = decode_metrics(over.as_bytes(), NOW, &limits).unwrap_err();
    assert_eq!(e.path, "series[1].time");
    assert_eq!(e.kind, LimitExceeded);
    assert!(e.message.contains("more than 5 points"), "{e}");

    let e = decode_metrics(
        series(4, r#"{"name":"a","value":[]}"#).as_bytes(),
        NOW,
        &limits,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "series: 4 series, over the limit of 3 per request"
    );

    let logs = r#"{"records":[{"text":"a"},{"text":"b"},{"text":"c"}]}"#;
    let e = decode_logs(logs.as_bytes(), NOW, &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "records: 3 records, over the limit of 2 per request"
    );
    assert_eq!(e.code(), "limit_exceeded");
}

#[test]
fn depth_limit_is_configurable_and_counts_from_the_top() {
    // Top object 1, "extra" array 2, … : 64 levels in all are fine.
    let at = |levels: usize| {
        format!(
            r#"{{"series":[],"extra":{}{}}}"#,
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    let limits = Limits::default();
    assert!(decode_metrics(at(64).as_bytes(), NOW, &limits).is_ok());
    let e = decode_metrics(at(65).as_bytes(), NOW, &limits).unwrap_err();
    assert_eq!(e.kind, LimitExceeded);
    // Far past serde_json's own recursion limit, the message is still ours.
    let e = decode_metrics(at(10_000).as_bytes(), NOW, &limits).unwrap_err();
    assert_eq!(e.to_string(), "extra: JSON nested deeper than 64 levels");

    let shallow = Limits {
        max_json_depth: 2,
        ..Limits::default()
    };
    let e = decode_metrics(br#"{"series":[{"name":"a","value":[]}]}"#, NOW, &shallow).unwrap_err();
    assert_eq!(e.to_string(), "series[0]: JSON nested deeper than 2 levels");
}

#[test]
fn codes_and_statuses() {
    let limits = Limits::default();
    let malformed = decode_metrics(b"{", NOW, &limits).unwrap_err();
    assert_eq!(
        (malformed.code(), malformed.http_status()),
        ("malformed_json", 400)
    );
    let invalid = decode_metrics(br#"{"series":[{"name":"a"}]}"#, NOW, &limits).unwrap_err();
    assert_eq!(
        (invalid.code(), invalid.http_status()),
        ("invalid_batch", 422)
    );
    let limit = decode_metrics(
        series(10_001, r#"{"name":"a","value":[]}"#).as_bytes(),
        NOW,
        &limits,
    )
    .unwrap_err();
    assert_eq!((limit.code(), limit.http_status()), ("limit_exceeded", 422));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn bodies_in_the_wrong_encoding_are_refused() {
    let limits = Limits::default();
    let json = br#"{"series":[]}"#;

    let e = decode_body(json, Some("gzip"), &limits).unwrap_err();
    assert!(
        matches!(
            e,
            BodyError::Corrupt {
                encoding: "gzip",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("body is not valid gzip: "), "{e}");
    assert_eq!((e.code(), e.http_status()), ("invalid_encoding", 400));

    let e = decode_body(json, Some("zstd"), &limits).unwrap_err();
    assert!(e.to_string().starts_with("body is not valid zstd: "), "{e}");

    for encoding in ["gzip", "zstd"] {
        let e = decode_body(b"", Some(encoding), &limits).unwrap_err();
        assert!(matches!(e, BodyError::Corrupt { .. }), "{encoding}: {e:?}");
    }

    // A gzip body cut short, or with garbage after it.
    let good = gzip(json);
    let e = decode_body(&good[..good.len() - 4], Some("gzip"), &limits).unwrap_err();
    assert!(matches!(e, BodyError::Corrupt { .. }), "{e:?}");
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage");
    let e = decode_body(&trailing, Some("gzip"), &limits).unwrap_err();
    assert!(matches!(e, BodyError::Corrupt { .. }), "{e:?}");
    let zstd = zstd::encode_all(&json[..], 3).unwrap();
    let e = decode_body(&zstd[..zstd.len() - 3], Some("zstd"), &limits).unwrap_err();
    assert!(matches!(e, BodyError::Corrupt { .. }), "{e:?}");
    let snappy = snap::raw::Encoder::new().compress_vec(&json[..]).unwrap();
    let e = decode_body(&snappy[..snappy.len() - 3], Some("snappy"), &limits).unwrap_err();
    assert!(matches!(e, BodyError::Corrupt { .. }), "{e:?}");
    let e = decode_body(b"", Some("snappy"), &limits).unwrap_err();
    assert!(matches!(e, BodyError::Corrupt { .. }), "{e:?}");
}

#[test]
fn snappy_bodies_decode_and_a_block_claiming_too_much_is_refused_unread() {
    let limits = Limits {
        max_body_bytes: 1 << 20,
        ..Limits::default()
    };
    let json = br#"{"series":[{"name":"loss","step":[1],"value":[0.5]}]}"#;
    let snappy = snap::raw::Encoder::new().compress_vec(&json[..]).unwrap();
    assert_eq!(
        &decode_body(&snappy, Some("Snappy"), &limits).unwrap()[..],
        json
    );
    // A block whose header claims 16 MiB: refused from the header alone,
    // before anything of that size is allocated or metered.
    let mut claim = Vec::new();
    let mut n: u64 = 16 << 20;
    while n >= 0x80 {
        claim.push((n as u8) | 0x80);
        n >>= 7;
    }
    claim.push(n as u8);
    claim.extend_from_slice(&[0u8; 8]);
    let mut metered = 0;
    let e = decode_body_metered(&claim, Some("snappy"), &limits, &mut |b| {
        metered += b;
        true
    })
    .unwrap_err();
    assert_eq!(
        e,
        BodyError::TooLarge {
            limit: 1 << 20,
            compressed: true
        }
    );
    assert_eq!(metered, 0);
}

#[test]
fn unknown_encodings_are_refused() {
    let limits = Limits::default();
    for header in ["br", "deflate", "gzip, zstd", "compress"] {
        let e = decode_body(b"{}", Some(header), &limits).unwrap_err();
        assert_eq!(e, BodyError::UnsupportedEncoding(header.to_string()));
        assert_eq!((e.code(), e.http_status()), ("unsupported_encoding", 415));
        assert!(
            e.to_string()
                .contains("expected identity, gzip, zstd or snappy")
        );
    }
}

#[test]
fn zip_bombs_stop_at_the_cap() {
    let limits = Limits {
        max_body_bytes: 1 << 20,
        ..Limits::default()
    };
    // 64 MiB of zeros: ~64 KiB gzip, a few KiB zstd.
    let zeros = vec![0u8; 64 << 20];
    let bomb = gzip(&zeros);
    assert!(bomb.len() < 128 << 10);
    let e = decode_body(&bomb, Some("gzip"), &limits).unwrap_err();
    assert_eq!(
        e,
        BodyError::TooLarge {
            limit: 1 << 20,
            compressed: true
        }
    );
    assert_eq!((e.code(), e.http_status()), ("body_too_large", 413));
    assert_eq!(
        e.to_string(),
        "body is over the limit of 1048576 bytes once decompressed"
    );

    let bomb = zstd::encode_all(&zeros[..], 3).unwrap();
    let e = decode_body(&bomb, Some("zstd"), &limits).unwrap_err();
    assert!(matches!(e, BodyError::TooLarge { .. }), "{e:?}");

    // Exactly at the cap is fine; plain bodies are held to it too.
    let at_cap = vec![b' '; 1 << 20];
    assert_eq!(
        decode_body(&gzip(&at_cap), Some("gzip"), &limits)
            .unwrap()
            .len(),
        1 << 20
    );
    assert!(decode_body(&at_cap, None, &limits).is_ok());
    let over = vec![b' '; (1 << 20) + 1];
    let e = decode_body(&over, None, &limits).unwrap_err();
    assert_eq!(e.to_string(), "body is over the limit of 1048576 bytes");
}

#[test]
fn serde_jsons_own_depth_limit_reads_as_ours() {
    let deep = Limits {
        max_json_depth: 1000,
        ..Limits::default()
    };
    let body = format!(
        r#"{{"series":[],"x":{}{}}}"#,
        "[".repeat(500),
        "]".repeat(500)
    );
    let e = decode_metrics(body.as_bytes(), NOW, &deep).unwrap_err();
    assert_eq!(e.kind, LimitExceeded);
    assert!(e.message.contains("nested deeper than 127 levels"), "{e}");
}
