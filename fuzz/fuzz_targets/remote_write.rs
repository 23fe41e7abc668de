//! Prometheus remote write on arbitrary bytes, both versions, with and
//! without snappy in front: no panic, no allocation a block's header merely
//! claims, and what is accepted keeps its promises — columns of equal
//! length, times in range, no `__name__` or reserved label left, counts
//! that add up, and the same answer twice (decoding is a pure function).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::{Limits, RemoteWriteVersion, decode_body, decode_remote_write};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let version = if mode & 1 == 0 {
        RemoteWriteVersion::V1
    } else {
        RemoteWriteVersion::V2
    };
    let limits = Limits {
        max_body_bytes: 1 << 20,
        max_series_per_request: 64,
        max_points_per_request: 4096,
        ..Limits::default()
    };
    // Half the inputs go through snappy first, as requests do.
    let plain;
    let proto: &[u8] = if mode & 2 == 0 {
        body
    } else {
        match decode_body(body, Some("snappy"), &limits) {
            Ok(b) => {
                assert!(b.len() <= limits.max_body_bytes);
                plain = b.into_owned();
                &plain
            }
            Err(_) => return,
        }
    };
    let Ok(batch) = decode_remote_write(proto, version, &limits) else {
        return;
    };
    let mut points = 0;
    for (key, cols) in &batch.series {
        assert_eq!(cols.times_ns.len(), cols.values.len(), "{key}");
        assert!(cols.steps.is_none());
        assert!(cols.times_ns.iter().all(|t| *t >= 0), "{key}");
        assert!(!key.name().is_empty());
        assert!(
            key.labels()
                .iter()
                .all(|(k, v)| k != "__name__" && k != "run" && k != "project" && !v.is_empty()),
            "{key}"
        );
        points += cols.len();
    }
    assert_eq!(points, batch.points());
    assert_eq!(points as u64, batch.samples + 2 * batch.histograms);
    assert!(batch.series.len() <= 64 && points <= 4096);
    // Compared by bits: NaN payloads (staleness markers) are kept exactly.
    let bits = |b: &loupe_ingest::RemoteWriteBatch| {
        b.series
            .iter()
            .map(|(k, c)| (k.clone(), c.times_ns.clone(), c.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    };
    let again = decode_remote_write(proto, version, &limits).expect("decodes again");
    assert_eq!(bits(&again), bits(&batch));
    assert_eq!((again.samples, again.histograms), (batch.samples, batch.histograms));
});
