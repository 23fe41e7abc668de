//! Tiered, streaming merges keep every point: random writes (resumed runs
//! that rewrite steps, unstepped series, many small flushes) read back
//! exactly as a newest-write-wins model says, through automatic merges,
//! full compactions and a reopen.

use std::collections::BTreeMap;

use loupe_model::{NO_STEP, SeriesKey};
use loupe_tsdb::{Points, SeriesWrite, Tsdb, TsdbOptions, WriteBatch};
use proptest::prelude::*;

const SERIES: usize = 3;
const MAX_SEGMENTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// Steps `start..start + len` of series `s`, values from `seed`.
    Stepped {
        s: usize,
        start: i64,
        len: i64,
        seed: u64,
    },
    /// Points of the unstepped series at times `start..start + len`.
    Timed {
        start: i64,
        len: i64,
        seed: u64,
    },
    Flush,
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SERIES, 0i64..400, 1i64..120, any::<u64>())
            .prop_map(|(s, start, len, seed)| Op::Stepped { s, start, len, seed }),
        2 => (0i64..400, 1i64..90, any::<u64>())
            .prop_map(|(start, len, seed)| Op::Timed { start, len, seed }),
        3 => Just(Op::Flush),
        1 => Just(Op::Compact),
    ]
}

fn value(seed: u64, i: i64) -> f64 {
    let z = seed
        .wrapping_add(i as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn keys() -> Vec<SeriesKey> {
    let mut k: Vec<SeriesKey> = (0..SERIES)
        .map(|s| SeriesKey::new(format!("m{s}"), [("run", "r")]).unwrap())
        .collect();
    k.push(SeriesKey::new("gpu", [("host", "h")]).unwrap());
    k
}

/// (step, time, value bits) by identity, per series.
type Model = Vec<BTreeMap<i64, (i64, i64, u64)>>;

fn expected(m: &BTreeMap<i64, (i64, i64, u64)>) -> (Vec<i64>, Vec<i64>, Vec<u64>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for &(s, t, v) in m.values() {
        out.0.push(s);
        out.1.push(t);
        out.2.push(v);
    }
    out
}

fn got(p: &Points) -> (Vec<i64>, Vec<i64>, Vec<u64>) {
    (
        p.steps.clone(),
        p.times.clone(),
        p.values.iter().map(|v| v.to_bits()).collect(),
    )
}

fn check(db: &Tsdb, model: &Model, keys: &[SeriesKey]) -> Result<(), TestCaseError> {
    for (k, m) in keys.iter().zip(model) {
        let p = db.read_all(k).unwrap();
        prop_assert_eq!(got(&p), expected(m), "series {}", k);
    }
    Ok(())
}

fn options() -> TsdbOptions {
    TsdbOptions {
        background_flush: false,
        page_points: 8,
        // Small chunks: merges copy some chunks as stored and re-cut others.
        max_chunk_points: 32,
        max_segments: MAX_SEGMENTS,
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn merges_keep_the_newest_write_of_every_point(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys();
        let mut model: Model = vec![BTreeMap::new(); keys.len()];
        let mut clock = 0i64;
        {
            let db = Tsdb::open(dir.path(), options()).unwrap();
            for op in &ops {
                match *op {
                    Op::Stepped { s, start, len, seed } => {
                        let steps: Vec<i64> = (start..start + len).collect();
                        let times: Vec<i64> = steps.iter().map(|_| { clock += 1; clock }).collect();
                        let values: Vec<f64> = steps.iter().map(|&i| value(seed, i)).collect();
                        for i in 0..steps.len() {
                            model[s].insert(steps[i], (steps[i], times[i], values[i].to_bits()));
                        }
                        let w = SeriesWrite::new(keys[s].clone(), Some(steps), times, values);
                        db.append(WriteBatch { series: vec![w] }).unwrap();
                    }
                    Op::Timed { start, len, seed } => {
                        let times: Vec<i64> = (start..start + len).collect();
                        let values: Vec<f64> = times.iter().map(|&t| value(seed, t)).collect();
                        for i in 0..times.len() {
                            model[SERIES].insert(times[i], (NO_STEP, times[i], values[i].to_bits()));
                        }
                        let w = SeriesWrite::new(keys[SERIES].clone(), None, times, values);
                        db.append(WriteBatch { series: vec![w] }).unwrap();
                    }
                    Op::Flush => {
                        db.flush().unwrap();
                        prop_assert!(db.stats().segments <= MAX_SEGMENTS);
                    }
                    Op::Compact => {
                        db.compact().unwrap();
                        prop_assert!(db.stats().segments <= 1);
                    }
                }
            }
            check(&db, &model, &keys)?;
            db.flush().unwrap();
            check(&db, &model, &keys)?;
        }
        let db = Tsdb::open(dir.path(), options()).unwrap();
        check(&db, &model, &keys)?;
        db.compact().unwrap();
        check(&db, &model, &keys)?;
        prop_assert!(db.verify().is_empty());
    }
}

/// Flushes many small segments: the merges keep the count bounded without
/// ever rewriting the whole store, and the data reads back.
#[test]
fn many_flushes_merge_small_neighbours_not_the_whole_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(
        dir.path(),
        TsdbOptions {
            background_flush: false,
            page_points: 64,
            max_segments: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let key = SeriesKey::new("loss", [("run", "r")]).unwrap();
    // A large first segment, then 40 small flushes.
    let big = 200_000i64;
    let write = |from: i64, to: i64| {
        let steps: Vec<i64> = (from..to).collect();
        let times = steps.clone();
        let values = steps.iter().map(|&s| value(7, s)).collect();
        let w = SeriesWrite::new(key.clone(), Some(steps), times, values);
        db.append(WriteBatch { series: vec![w] }).unwrap();
        db.flush().unwrap();
    };
    write(0, big);
    let base_size = db.stats().segment_bytes;
    for i in 0..40 {
        write(big + i * 100, big + (i + 1) * 100);
        let s = db.stats();
        assert!(s.segments <= 4, "{} segments after flush {i}", s.segments);
    }
    let s = db.stats();
    assert!(s.merges >= 10, "{} merges", s.merges);
    // Rewriting the whole store at each merge would write the base segment
    // ten times over; the small flushes merge among themselves.
    assert!(
        s.merged_bytes < base_size,
        "merges wrote {} bytes, the base segment is {base_size}",
        s.merged_bytes
    );
    let p = db.read_all(&key).unwrap();
    assert_eq!(p.len() as i64, big + 4000);
    assert!(p.steps.windows(2).all(|w| w[0] + 1 == w[1]));
}
