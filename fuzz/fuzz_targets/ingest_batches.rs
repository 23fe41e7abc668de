//! The HTTP ingest decoders of `loupe-ingest` on arbitrary request bodies:
//! `decode_metrics`, `decode_external_metrics` and `decode_logs` (default
//! `Limits`, a fixed "now"), and `decode_body` with every encoding. Beyond
//! "no panic, no OOM, no hang":
//! - what decodes respects every limit and is what the store accepts
//!   (columns of equal length, storable times, valid series keys);
//! - the same JSON with one character of its first string written as a
//!   `\u00XX` escape decodes to the same result (the metric decoders' fast
//!   path gives up on escapes, so this compares it with the serde path);
//! - `decode_body` agrees with itself under a small cap, and what it
//!   decompresses is fed to the JSON decoders too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::{
    BodyError, Limits, MAX_TIME_SECONDS, RESERVED_LABELS, SeriesColumns, decode_body,
    decode_external_metrics, decode_logs, decode_metrics,
};
use loupe_model::{LogRecord, MAX_LABELS, MAX_NAME_BYTES, SeriesKey};

/// "Now" for points and records sent without a time.
const NOW_NS: i64 = 1_764_000_000_123_456_789;

const ENCODINGS: [Option<&str>; 9] = [
    None,
    Some("identity"),
    Some(""),
    Some("gzip"),
    Some("x-gzip"),
    Some(" GZip "),
    Some("zstd"),
    Some("br"),
    Some("gzip, zstd"),
];

/// Decompressed bodies up to this size also go through the JSON decoders.
const JSON_AFTER_BODY_MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    check_json(data, &limits);
    // Small enough that fuzzed gzip/zstd inputs cross it.
    let small = Limits {
        max_body_bytes: 4096,
        ..Limits::default()
    };
    for enc in ENCODINGS {
        let full = decode_body(data, enc, &limits);
        let capped = decode_body(data, enc, &small);
        check_body(data, enc, &limits, &full);
        check_body(data, enc, &small, &capped);
        match (&full, &capped) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{enc:?}: the cap changed the bytes"),
            (Ok(a), Err(BodyError::TooLarge { .. })) => {
                assert!(
                    a.len() > small.max_body_bytes,
                    "{enc:?}: TooLarge under the cap"
                )
            }
            (Ok(a), Err(e)) => panic!("{enc:?}: {} bytes uncapped, {e} capped", a.len()),
            // A smaller cap may stop before the damage; a larger one never
            // succeeds where the smaller failed on the same bytes.
            (Err(_), Ok(b)) => panic!("{enc:?}: only the capped decode gave {} bytes", b.len()),
            (Err(_), Err(_)) => {}
        }
        if let Ok(b) = &full
            && enc.is_some_and(|e| e.to_ascii_lowercase().contains("gzip") || e == "zstd")
            && b.len() <= JSON_AFTER_BODY_MAX
        {
            check_json(b, &limits);
        }
    }
});

fn check_body(
    data: &[u8],
    enc: Option<&str>,
    limits: &Limits,
    r: &Result<std::borrow::Cow<'_, [u8]>, BodyError>,
) {
    let name = enc.map(|e| e.trim().to_ascii_lowercase());
    match name.as_deref() {
        None | Some("") | Some("identity") => match r {
            Ok(b) => assert_eq!(&b[..], data, "identity changes nothing"),
            Err(BodyError::TooLarge {
                compressed: false, ..
            }) => assert!(data.len() > limits.max_body_bytes),
            Err(e) => panic!("identity body refused: {e}"),
        },
        Some("gzip" | "x-gzip" | "zstd") => match r {
            Ok(b) => {
                assert!(b.len() <= limits.max_body_bytes, "over the cap");
                assert!(!data.is_empty(), "an empty compressed body decoded");
            }
            Err(BodyError::UnsupportedEncoding(_)) => panic!("{enc:?} is supported"),
            Err(_) => {}
        },
        Some(_) => assert!(
            matches!(r, Err(BodyError::UnsupportedEncoding(_))),
            "{enc:?} must be refused as unsupported"
        ),
    }
}

/// The three JSON decoders, their invariants, and the escaped variant.
fn check_json(body: &[u8], limits: &Limits) {
    let metrics = decode_metrics(body, NOW_NS, limits);
    if let Ok(b) = &metrics {
        check_series(b.series.iter(), limits);
        for s in &b.series {
            // What the server builds from each series.
            SeriesKey::new(s.name.clone(), [("run", "r")]).expect("a run series key");
        }
    }
    let external = decode_external_metrics(body, NOW_NS, limits);
    if let Ok(x) = &external {
        check_series(x.iter().map(|(_, c)| c), limits);
        for (key, cols) in x {
            assert_eq!(key.name(), cols.name);
            assert!(
                key.labels()
                    .iter()
                    .all(|(k, _)| !RESERVED_LABELS.contains(&k.as_str())),
                "a reserved label got through: {key:?}"
            );
            // The decoder leaves room for the `project` label the server adds.
            assert!(key.labels().len() < MAX_LABELS, "room for `project`");
            {
                let mut labels = key.labels().to_vec();
                labels.push(("project".into(), "p".into()));
                SeriesKey::new(key.name(), labels).expect("the server's external key");
            }
        }
    }
    let logs = decode_logs(body, NOW_NS, limits);
    if let Ok(records) = &logs {
        check_logs(records, limits);
    }

    // The same JSON, one character of its first string escaped: the serde
    // path decodes it (the fast path gives up on escapes) and must agree.
    let Some(esc) = escaped_variant(body) else {
        return;
    };
    match (&metrics, decode_metrics(&esc, NOW_NS, limits)) {
        (Ok(a), Ok(b)) => assert!(
            same_series(a.series.iter(), b.series.iter()),
            "decode_metrics differs once a character is escaped\n{a:?}\n{b:?}"
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("decode_metrics: {a:?} as sent, {b:?} escaped"),
    }
    match (&external, decode_external_metrics(&esc, NOW_NS, limits)) {
        (Ok(a), Ok(b)) => {
            assert!(
                a.iter().map(|(k, _)| k).eq(b.iter().map(|(k, _)| k)),
                "external keys differ once a character is escaped"
            );
            assert!(
                same_series(a.iter().map(|(_, c)| c), b.iter().map(|(_, c)| c)),
                "decode_external_metrics differs once a character is escaped"
            );
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("decode_external_metrics: {a:?} as sent, {b:?} escaped"),
    }
    match (&logs, decode_logs(&esc, NOW_NS, limits)) {
        (Ok(a), Ok(b)) => assert!(
            same_logs(a, &b),
            "decode_logs differs once a character is escaped"
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("decode_logs: {a:?} as sent, {b:?} escaped"),
    }
}

fn check_series<'a>(series: impl Iterator<Item = &'a SeriesColumns>, limits: &Limits) {
    let (mut n_series, mut points) = (0, 0);
    for s in series {
        n_series += 1;
        points += s.len();
        assert_eq!(s.times_ns.len(), s.values.len(), "{}: times", s.name);
        if let Some(steps) = &s.steps {
            assert_eq!(steps.len(), s.values.len(), "{}: steps", s.name);
            assert!(
                !steps.contains(&i64::MIN),
                "{}: the reserved no-step value as a step",
                s.name
            );
        }
        assert!(!s.name.is_empty(), "an empty series name");
        assert!(
            s.name.len() <= limits.max_name_bytes.min(MAX_NAME_BYTES),
            "{} bytes of name",
            s.name.len()
        );
        for &t in &s.times_ns {
            assert!(
                t == NOW_NS || (0..=(MAX_TIME_SECONDS * 1e9) as i64).contains(&t),
                "{}: time {t} ns outside 1970..2255",
                s.name
            );
        }
    }
    assert!(
        n_series <= limits.max_series_per_request,
        "{n_series} series"
    );
    assert!(points <= limits.max_points_per_request, "{points} points");
}

fn check_logs(records: &[LogRecord], limits: &Limits) {
    assert!(records.len() <= limits.max_log_records_per_request);
    let now_s = NOW_NS as f64 / 1e9;
    for r in records {
        assert!(
            r.time == now_s || (0.0..=MAX_TIME_SECONDS).contains(&r.time),
            "log time {}",
            r.time
        );
        assert!(r.text.len() <= limits.max_log_text_bytes, "log text length");
        assert!(r.attributes.len() <= limits.max_attributes, "attributes");
        for (k, v) in &r.attributes {
            assert!(!k.is_empty(), "an empty attribute name");
            assert!(
                k.len() <= limits.max_name_bytes.min(MAX_NAME_BYTES),
                "attribute name length"
            );
            assert!(
                v.len() <= limits.max_attribute_value_bytes,
                "attribute value length"
            );
        }
    }
}

fn same_series<'a>(
    a: impl Iterator<Item = &'a SeriesColumns>,
    b: impl Iterator<Item = &'a SeriesColumns>,
) -> bool {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (a, b): (Vec<_>, Vec<_>) = (a.collect(), b.collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x.name == y.name
                && x.steps == y.steps
                && x.times_ns == y.times_ns
                && bits(&x.values) == bits(&y.values)
        })
}

fn same_logs(a: &[LogRecord], b: &[LogRecord]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.time.to_bits() == y.time.to_bits()
                && x.stream == y.stream
                && x.level == y.level
                && x.text == y.text
                && x.attributes == y.attributes
        })
}

/// `body` with the first ASCII letter or digit that follows a `"` written as
/// `\u00XX`. In valid JSON a `"` followed by a letter or digit always opens
/// a string (or is an escaped quote inside one), so the meaning is kept.
fn escaped_variant(body: &[u8]) -> Option<Vec<u8>> {
    let i = body
        .windows(2)
        .position(|w| w[0] == b'"' && w[1].is_ascii_alphanumeric())?;
    let mut out = Vec::with_capacity(body.len() + 5);
    out.extend_from_slice(&body[..=i]);
    out.extend_from_slice(format!("\\u{:04x}", body[i + 1]).as_bytes());
    out.extend_from_slice(&body[i + 2..]);
    Some(out)
}
