//! `decode_exposition` (Prometheus text 0.0.4 and OpenMetrics) on arbitrary
//! bytes, in both formats: no panic, and what it accepts keeps its
//! promises — names and label names follow Prometheus' grammar, no label is
//! given twice, and decoding is a pure function (the same body decodes the
//! same way again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::exposition::{ExpositionFormat, decode_exposition, is_label_name};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let format = if which & 1 == 0 {
        ExpositionFormat::Text004
    } else {
        ExpositionFormat::OpenMetrics
    };
    let Ok(e) = decode_exposition(body, format) else {
        return;
    };
    for s in &e.samples {
        assert!(!s.name.is_empty());
        for (i, (k, _)) in s.labels.iter().enumerate() {
            assert!(is_label_name(k), "{k:?}");
            assert!(!s.labels[..i].iter().any(|(o, _)| o == k), "{k:?} twice");
        }
    }
    let again = decode_exposition(body, format).expect("decodes again");
    // NaN != NaN: compare the values' bits.
    assert_eq!(again.samples.len(), e.samples.len());
    for (a, b) in again.samples.iter().zip(&e.samples) {
        assert_eq!(
            (&a.name, &a.labels, a.timestamp_ms),
            (&b.name, &b.labels, b.timestamp_ms)
        );
        assert_eq!(a.value.to_bits(), b.value.to_bits());
    }
    assert_eq!(again.exemplars_dropped, e.exemplars_dropped);
});
