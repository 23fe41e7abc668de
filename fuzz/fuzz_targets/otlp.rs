//! The OTLP decoders (`decode_otlp_metrics`, `decode_otlp_logs`, protobuf
//! and JSON) on arbitrary bytes: no panic, and what they accept keeps its
//! promises — every series' columns are the same length, with no steps,
//! times in range, the limits held, log records within theirs — and
//! decoding is a pure function (the same bytes decode the same way again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::Limits;
use loupe_ingest::otlp::{OtlpEncoding, decode_otlp_logs, decode_otlp_metrics};

const NOW: i64 = 1_733_500_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&select, body)) = data.split_first() else {
        return;
    };
    let encoding = if select & 1 == 0 {
        OtlpEncoding::Protobuf
    } else {
        OtlpEncoding::Json
    };
    let limits = Limits {
        max_series_per_request: 64,
        max_points_per_request: 4096,
        max_log_records_per_request: 256,
        ..Limits::default()
    };
    if select & 2 == 0 {
        let Ok(batch) = decode_otlp_metrics(body, encoding, &limits) else {
            return;
        };
        let mut points = 0;
        for (key, cols) in &batch.series {
            assert_eq!(cols.times_ns.len(), cols.values.len(), "{key}");
            assert!(cols.steps.is_none());
            assert!(cols.times_ns.iter().all(|t| *t > 0), "{key}");
            assert_eq!(key.name(), cols.name.as_str());
            assert!(key.label("project").is_none() && key.label("run").is_none());
            points += cols.len();
        }
        assert_eq!(points, batch.points());
        assert!(batch.series.len() <= 64 && points <= 4096);
        let again = decode_otlp_metrics(body, encoding, &limits).expect("decodes again");
        assert_eq!(again.series.len(), batch.series.len());
        assert_eq!(again.rejected, batch.rejected);
    } else {
        let Ok(logs) = decode_otlp_logs(body, encoding, NOW, &limits) else {
            return;
        };
        assert!(logs.records() <= 256);
        for s in &logs.services {
            assert!(!s.records.is_empty());
            for r in &s.records {
                assert!(r.time.is_finite() && r.time >= 0.0);
                assert!(r.text.len() <= limits.max_log_text_bytes);
                assert!(r.attributes.len() <= limits.max_attributes);
            }
        }
        let again = decode_otlp_logs(body, encoding, NOW, &limits).expect("decodes again");
        assert_eq!(again, logs);
    }
});
