//! `loupe-diagnose`'s log scanner on arbitrary input: the bytes are split
//! into lines (the first byte of each line picks its stream and level), fed
//! to one scanner, then `finish` is called. Beyond "no panic, no OOM, no
//! hang": every title is one bounded line, every traceback text and every
//! template stays within its bound, and templates come most frequent first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_diagnose::logsig::{
    LogMatch, LogScanner, LogSignatureKind, MAX_LINE_BYTES, MAX_TEMPLATES, MAX_TRACEBACK_BYTES,
};
use loupe_model::{LogLevel, LogStream};

const STREAMS: [LogStream; 3] = [LogStream::Stdout, LogStream::Stderr, LogStream::App];
const LEVELS: [LogLevel; 5] = [
    LogLevel::Debug,
    LogLevel::Info,
    LogLevel::Warning,
    LogLevel::Error,
    LogLevel::Critical,
];

fn check(m: &LogMatch) {
    assert!(!m.title.is_empty(), "an empty title: {m:?}");
    assert!(!m.title.contains('\n'), "a title over several lines: {m:?}");
    assert!(m.title.len() <= 240, "a long title: {}", m.title.len());
    if let Some(tb) = m.attributes.get("traceback") {
        // The text's bound plus the "lines left out" marker.
        assert!(
            tb.len() <= MAX_TRACEBACK_BYTES + 64,
            "traceback of {} bytes",
            tb.len()
        );
    }
    for (k, v) in &m.attributes.to_map() {
        if k != "traceback" {
            assert!(
                v.len() <= MAX_LINE_BYTES,
                "attribute {k} of {} bytes",
                v.len()
            );
        }
    }
    if m.kind == LogSignatureKind::ErrorTemplate {
        assert!(m.attributes.contains_key("template_id"));
        assert!(m.attributes.contains_key("count"));
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut scanner = LogScanner::new();
    for line in text.split('\n') {
        let sel = line.bytes().next().unwrap_or(0) as usize;
        let stream = STREAMS[sel % STREAMS.len()];
        let level = LEVELS[(sel / 3) % LEVELS.len()];
        for m in scanner.scan(stream, level, line) {
            check(&m);
        }
    }
    // The whole input as one record (a multi-line text).
    for m in scanner.scan(LogStream::Stderr, LogLevel::Error, &text) {
        check(&m);
    }
    for m in scanner.finish() {
        check(&m);
    }
    assert!(scanner.finish().is_empty(), "finish twice gave more");
    let t = scanner.templates();
    assert!(t.len() <= MAX_TEMPLATES);
    assert!(
        t.windows(2).all(|w| w[0].count >= w[1].count),
        "templates out of order"
    );
    assert!(t.iter().all(|t| t.count >= 1 && t.example.len() <= 512));
});
