//! `LineMetricExtractor::extract` on arbitrary lines: no panic, no hang,
//! and what it returns keeps its promises (valid keys, each key once, no
//! empty result). The first byte picks whether a user pattern is set, so
//! both paths run; the extractor's state (an open traceback) carries across
//! the lines of one input, split on `\n` and `\r` as `loupe run` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::LineMetricExtractor;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let patterns = if mode & 1 == 1 {
        vec![r"(?P<step>\d+)\s+(?P<loss>[0-9.eE+-]+)".to_owned()]
    } else {
        Vec::new()
    };
    let mut ex = LineMetricExtractor::new(&patterns).expect("the pattern is valid");
    let text = String::from_utf8_lossy(rest);
    for line in text.split(['\n', '\r']) {
        if let Some(m) = ex.extract(line) {
            assert!(!m.values.is_empty());
            for (i, (k, _)) in m.values.iter().enumerate() {
                assert!(!k.is_empty() && k.len() <= 256, "{k:?}");
                assert!(
                    k.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"_/.-".contains(&c)),
                    "{k:?}"
                );
                assert!(m.values[..i].iter().all(|(o, _)| o != k), "duplicate {k:?}");
            }
        }
    }
});
