//! `decode_line_protocol` on arbitrary bytes: no panic, and what it accepts
//! keeps its promises — every series' columns are the same length, values
//! are finite, times are in range, the point count matches, and a batch it
//! accepted decodes the same way again (decoding is a pure function).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::{Limits, decode_line_protocol};

const NOW: i64 = 1_733_500_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&unit, body)) = data.split_first() else {
        return;
    };
    let ns_per_unit = [1, 1_000, 1_000_000, 1_000_000_000][unit as usize % 4];
    let limits = Limits {
        max_series_per_request: 64,
        max_points_per_request: 4096,
        ..Limits::default()
    };
    let Ok(batch) = decode_line_protocol(body, ns_per_unit, NOW, &limits) else {
        return;
    };
    let mut points = 0;
    for (key, cols) in &batch.series {
        assert_eq!(cols.times_ns.len(), cols.values.len(), "{key}");
        assert!(cols.steps.is_none());
        assert!(cols.values.iter().all(|v| v.is_finite()), "{key}");
        assert!(cols.times_ns.iter().all(|t| *t >= 0), "{key}");
        assert_eq!(key.name(), cols.name.as_str());
        points += cols.len();
    }
    assert_eq!(points, batch.points());
    assert!(batch.series.len() <= 64 && points <= 4096);
    let again = decode_line_protocol(body, ns_per_unit, NOW, &limits).expect("decodes again");
    assert_eq!(again, batch);
});
