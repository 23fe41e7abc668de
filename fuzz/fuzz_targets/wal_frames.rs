//! WAL framing and record decoding: `wal::read_frames` on arbitrary file
//! bytes, `wal::decode_record` on every payload it returns and on the raw
//! input, plus the invariants replay relies on.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use loupe_tsdb::SeriesWrite;
use loupe_tsdb::wal::{
    FRAME_HEADER, FRAME_MAGIC, WalRecord, decode_record, encode_append, frame, judge,
    read_frames,
};

/// Frame header: u32 length, u32 crc32c.
const HEADER: usize = FRAME_HEADER;

fuzz_target!(|data: &[u8]| {
    // 1. The input as a whole WAL file.
    check_frames(data);

    // 2. The input as one record payload (frames carry a checksum, so this is
    //    how arbitrary bytes reach the record decoder).
    check_record(data);

    // 3. The input framed as the WAL writes it must come back whole, whatever
    //    follows it (a torn or garbage tail never costs an acknowledged frame).
    let mut file = frame(data);
    let out = read_frames(&file);
    assert!(out.is_clean(), "a lone good frame is clean");
    assert_eq!(out.payloads.len(), 1);
    assert_eq!(out.payloads[0].0, 0);
    assert_eq!(out.payloads[0].1, data);
    file.extend_from_slice(data);
    let out = read_frames(&file);
    assert_eq!(
        out.payloads.first().map(|(o, p)| (*o, p.as_slice())),
        Some((0, data))
    );
});

fn check_frames(data: &[u8]) {
    let mut out = read_frames(data);
    let mut next_free = 0u64;
    for (offset, payload) in &out.payloads {
        // Frames come back in file order, never overlapping, each exactly
        // what the file holds at its offset and passing its checksum.
        assert!(*offset >= next_free, "frames overlap or go backwards");
        let start = *offset as usize;
        let header = &data[start..start + HEADER];
        assert_eq!(header[..4], FRAME_MAGIC, "a frame starts with its marker");
        let len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[8..12].try_into().unwrap());
        assert_eq!(len, payload.len());
        assert_eq!(
            &data[start + HEADER..start + HEADER + len],
            payload.as_slice()
        );
        assert_eq!(crc32c::crc32c_append(crc32c::crc32c(&header[4..8]), payload), crc);
        next_free = (start + HEADER + len) as u64;
        check_record(payload);
    }
    if data.is_empty() {
        assert!(out.payloads.is_empty() && out.is_clean());
    }
    // Judged as the newest file, only bad spans are damage and the tail is
    // torn; judged as sealed at its own good length, the same holds; no
    // payload at or past a seal is ever kept for replay.
    let good = out.good_len();
    let newest = judge(Path::new("fuzz.wal"), &mut out, None);
    assert_eq!(newest.damaged.len(), out.bad_spans.len());
    assert_eq!(newest.torn.is_some(), out.tail_offset.is_some());
    let seal = good / 2;
    let sealed = judge(Path::new("fuzz.wal"), &mut out, Some(seal));
    assert!(sealed.torn.is_none());
    assert!(out.payloads.iter().all(|(o, _)| *o < seal));
}

/// Decodes a payload; a record that decodes must survive a re-encode.
fn check_record(payload: &[u8]) {
    let Ok(rec) = decode_record(payload) else {
        return;
    };
    let WalRecord::Append { defs, series } = &rec else {
        return; // a seal: two integers, nothing more to check
    };
    for s in series {
        assert_eq!(s.steps.len(), s.times.len());
        assert_eq!(s.times.len(), s.values.len());
    }
    // Re-encode (steps always present: a record without steps decodes to
    // NO_STEP, which encodes back to the same points) and decode again.
    let key = loupe_model::SeriesKey::named("fuzz").unwrap();
    let writes: Vec<SeriesWrite> = series
        .iter()
        .map(|s| {
            SeriesWrite::new(
                key.clone(),
                Some(s.steps.clone()),
                s.times.clone(),
                s.values.clone(),
            )
        })
        .collect();
    let def_bytes: Vec<(u64, Vec<u8>)> = defs.iter().map(|(id, k)| (*id, k.to_bytes())).collect();
    let def_refs: Vec<(u64, &[u8])> = def_bytes
        .iter()
        .map(|(id, k)| (*id, k.as_slice()))
        .collect();
    let series_refs: Vec<_> = series.iter().map(|s| s.id).zip(writes.iter()).collect();
    let again = decode_record(&encode_append(&def_refs, &series_refs))
        .expect("a re-encoded record decodes");
    let WalRecord::Append {
        defs: defs2,
        series: series2,
    } = &again
    else {
        panic!("an append re-encodes as an append");
    };
    assert_eq!(defs, defs2);
    assert_eq!(series.len(), series2.len());
    for (a, b) in series.iter().zip(series2) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.times, b.times);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.values), bits(&b.values));
    }
}
