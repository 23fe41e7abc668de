//! Behaviour of the engine through its public interface, on real directories.

use std::sync::Arc;

use loupe_model::{NO_STEP, SeriesKey, SeriesMatcher};
use loupe_tsdb::{FsyncMode, Points, SeriesWrite, Tsdb, TsdbOptions, WriteBatch, XAxis};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn opts() -> TsdbOptions {
    TsdbOptions {
        background_flush: false,
        page_points: 64,
        ..Default::default()
    }
}

fn key(name: &str, run: &str) -> SeriesKey {
    SeriesKey::new(name, [("run", run)]).unwrap()
}

fn stepped(k: &SeriesKey, steps: std::ops::Range<i64>, f: impl Fn(i64) -> f64) -> SeriesWrite {
    let steps: Vec<i64> = steps.collect();
    let times = steps
        .iter()
        .map(|s| 1_700_000_000_000_000_000 + s * 150_000_000)
        .collect();
    let values = steps.iter().map(|&s| f(s)).collect();
    SeriesWrite::new(k.clone(), Some(steps), times, values)
}

/// A deterministic, incompressible-looking value for `i` (splitmix64).
fn noise(i: i64) -> f64 {
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

fn batch(ws: Vec<SeriesWrite>) -> WriteBatch {
    WriteBatch { series: ws }
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn points_read_back_bit_exact_from_head_segments_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("train/loss", "r1");
    let special = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::from_bits(0x7ff8_dead_beef_0001),
        // Prometheus' staleness marker, a signalling NaN: the scraper and
        // PromQL read it by its exact bits.
        loupe_model::stale::stale_marker(),
        5e-324,
    ];
    let f = |s: i64| {
        if s % 97 == 0 {
            special[(s / 97) as usize % special.len()]
        } else {
            (s as f64).ln_1p() as f32 as f64
        }
    };
    let expected: Vec<f64> = (0..5000).map(f).collect();
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        db.append(batch(vec![stepped(&k, 0..2000, f)])).unwrap();
        db.flush().unwrap();
        db.append(batch(vec![stepped(&k, 2000..5000, f)])).unwrap();
        let all = db.read_all(&k).unwrap();
        assert_eq!(all.steps, (0..5000).collect::<Vec<_>>());
        assert_eq!(bits(&all.values), bits(&expected));
        // Dropped without close: the second batch lives only in the WAL.
    }
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    assert_eq!(db.open_report().wal_records_replayed, 1);
    assert!(db.open_report().damaged.is_empty());
    let all = db.read_all(&k).unwrap();
    assert_eq!(bits(&all.values), bits(&expected));
    db.flush().unwrap();
    drop(db);
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    assert_eq!(db.open_report().wal_records_replayed, 0);
    let all = db.read_all(&k).unwrap();
    assert_eq!(bits(&all.values), bits(&expected));
    let r = db.read_range(&k, XAxis::Step, 1990, 2010, None).unwrap();
    assert_eq!(r.steps, (1990..=2010).collect::<Vec<_>>());
    let r = db.read_range(&k, XAxis::Step, 0, 4999, Some(10)).unwrap();
    assert_eq!(r.len(), 10);
    let s = db.summary(&k).unwrap().unwrap();
    assert_eq!(s.count, 5000);
    assert_eq!(s.max, f64::INFINITY);
    assert_eq!(s.last_step, 4999);
}

#[test]
fn a_resumed_run_newest_write_for_a_step_wins() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let k = key("train/loss", "r1");
    // First life: steps 0..1000, value = 1.
    db.append(batch(vec![stepped(&k, 0..1000, |_| 1.0)]))
        .unwrap();
    db.flush().unwrap();
    // Crash, resume from the checkpoint at step 800: steps 800..900, value = 2.
    db.append(batch(vec![stepped(&k, 800..900, |_| 2.0)]))
        .unwrap();
    let check = |db: &Tsdb| {
        let all = db.read_all(&k).unwrap();
        assert_eq!(all.steps, (0..1000).collect::<Vec<_>>());
        for (s, v) in all.steps.iter().zip(&all.values) {
            let want = if (800..900).contains(s) { 2.0 } else { 1.0 };
            assert_eq!(*v, want, "step {s}");
        }
        let r = db.read_range(&k, XAxis::Step, 850, 950, None).unwrap();
        assert_eq!(r.len(), 101);
        assert_eq!(r.values[0], 2.0);
        assert_eq!(r.values[60], 1.0);
        let s = db.summary(&k).unwrap().unwrap();
        assert_eq!(s.count, 1000);
        assert_eq!(s.sum, 1100.0);
        let m = db.m4(&k, XAxis::Step, 0, 999, 10).unwrap();
        assert_eq!(m.count, 1000);
        assert!(m.y.contains(&2.0));
        // By time, the rewritten steps come last (they were written later).
        let t = db
            .read_range(&k, XAxis::Time, i64::MIN, i64::MAX, None)
            .unwrap();
        assert_eq!(t.len(), 1000);
        assert!(t.times.is_sorted());
    };
    check(&db);
    db.flush().unwrap();
    check(&db);
    db.compact().unwrap();
    check(&db);
    drop(db);
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    check(&db);
}

/// An independent M4: every point through plain loops.
fn naive_m4(p: &Points, axis: XAxis, from: i64, to: i64, width: u32) -> (Vec<i64>, Vec<u64>, u64) {
    let span = to as i128 - from as i128 + 1;
    let mut cols: Vec<Vec<usize>> = vec![Vec::new(); width as usize];
    let mut count = 0;
    for i in 0..p.len() {
        let x = p.x(axis, i);
        if axis == XAxis::Step && x == NO_STEP {
            continue;
        }
        if x < from || x > to {
            continue;
        }
        count += 1;
        cols[((x as i128 - from as i128) * width as i128 / span) as usize].push(i);
    }
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for c in cols.iter().filter(|c| !c.is_empty()) {
        let first = *c.iter().min_by_key(|&&i| p.x(axis, i)).unwrap();
        let last = *c.iter().max_by_key(|&&i| p.x(axis, i)).unwrap();
        let min = c
            .iter()
            .map(|&i| p.values[i])
            .min_by(|a, b| a.total_cmp(b))
            .unwrap();
        let max = c
            .iter()
            .map(|&i| p.values[i])
            .max_by(|a, b| a.total_cmp(b))
            .unwrap();
        xs.push(p.x(axis, first));
        xs.push(p.x(axis, last));
        ys.push(min.to_bits());
        ys.push(max.to_bits());
    }
    (xs, ys, count)
}

#[test]
fn m4_matches_a_naive_reduction_on_random_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let k = key("train/grad_norm", "m4");
    let mut step = 0i64;
    for round in 0..6 {
        let n = rng.gen_range(500..3000);
        let steps: Vec<i64> = (0..n)
            .map(|_| {
                step += rng.gen_range(1..4);
                step
            })
            .collect();
        let times: Vec<i64> = steps
            .iter()
            .map(|s| s * 1_000 + rng.gen_range(0..500))
            .collect();
        let values: Vec<f64> = (0..n)
            .map(|_| match rng.gen_range(0..200) {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => 1e9,
                _ => rng.gen_range(-1.0..1.0),
            })
            .collect();
        db.append(batch(vec![SeriesWrite::new(
            k.clone(),
            Some(steps),
            times,
            values,
        )]))
        .unwrap();
        if round % 2 == 0 {
            db.flush().unwrap();
        }
    }
    let all = db.read_all(&k).unwrap();
    for _ in 0..60 {
        let axis = if rng.gen_bool(0.5) {
            XAxis::Step
        } else {
            XAxis::Time
        };
        let lo = all.x(axis, 0);
        let hi = all.x(axis, all.len() - 1);
        let a = rng.gen_range(lo - 10..hi);
        let b = rng.gen_range(a..hi + 10);
        let width = rng.gen_range(1..300);
        let got = db.m4(&k, axis, a, b, width).unwrap();
        let (xs, ys, count) = naive_m4(&all, axis, a, b, width);
        assert_eq!(got.count, count, "count {axis:?} {a}..{b} w{width}");
        assert!(got.x.len() <= 4 * width as usize);
        assert!(got.x.windows(2).all(|w| w[0] <= w[1]), "x order");
        for x in xs {
            assert!(got.x.contains(&x), "first/last x {x} missing");
        }
        let got_bits: Vec<u64> = got.y.iter().map(|y| y.to_bits()).collect();
        for y in ys {
            assert!(
                got_bits.contains(&y),
                "extreme {} missing",
                f64::from_bits(y)
            );
        }
        // Every returned point is a real point.
        for (x, y) in got.x.iter().zip(&got.y) {
            let i = (0..all.len())
                .find(|&i| all.x(axis, i) == *x)
                .expect("real x");
            let same_x: Vec<u64> = (i..all.len())
                .take_while(|&j| all.x(axis, j) == *x)
                .map(|j| all.values[j].to_bits())
                .collect();
            assert!(same_x.contains(&y.to_bits()) || axis == XAxis::Time);
        }
    }
}

#[test]
fn unstepped_series_read_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let k = SeriesKey::new("gpu/util", [("host", "n1"), ("gpu", "0")]).unwrap();
    let times: Vec<i64> = (0..1000).map(|i| i * 1_000_000_000).collect();
    let values: Vec<f64> = (0..1000).map(|i| (i % 100) as f64).collect();
    db.append(batch(vec![SeriesWrite::new(
        k.clone(),
        None,
        times.clone(),
        values.clone(),
    )]))
    .unwrap();
    db.flush().unwrap();
    let r = db
        .read_range(&k, XAxis::Time, 10_000_000_000, 19_000_000_000, None)
        .unwrap();
    assert_eq!(r.len(), 10);
    assert!(r.steps.iter().all(|&s| s == NO_STEP));
    assert!(
        db.read_range(&k, XAxis::Step, i64::MIN + 1, i64::MAX, None)
            .unwrap()
            .is_empty()
    );
    let m = db.m4(&k, XAxis::Time, 0, 999_000_000_000, 10).unwrap();
    assert_eq!(m.count, 1000);
    assert!(m.y.contains(&99.0) && m.y.contains(&0.0));
    // Writing the same timestamps again replaces them.
    db.append(batch(vec![SeriesWrite::new(
        k.clone(),
        None,
        times[..10].to_vec(),
        vec![-1.0; 10],
    )]))
    .unwrap();
    let r = db.read_all(&k).unwrap();
    assert_eq!(r.len(), 1000);
    assert_eq!(r.values[..10], [-1.0; 10]);
}

#[test]
fn listing_by_matcher_and_deleting_reclaims_space() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    for (r, run) in ["a", "b", "c"].iter().enumerate() {
        let ws = ["loss", "lr", "acc"]
            .iter()
            .enumerate()
            .map(|(n, name)| {
                let salt = (r * 3 + n) as i64 * 1_000_000;
                stepped(&key(name, run), 0..20_000, move |s| noise(s + salt))
            })
            .collect();
        db.append(batch(ws)).unwrap();
    }
    db.flush().unwrap();
    assert_eq!(db.series(&SeriesMatcher::any()).len(), 9);
    assert_eq!(
        db.series(&SeriesMatcher::any().label_eq("run", "b")).len(),
        3
    );
    assert_eq!(db.series(&SeriesMatcher::any().name_eq("lr")).len(), 3);
    let before = db.disk_bytes();
    let n = db
        .delete_series(&SeriesMatcher::any().label_eq("run", "b"))
        .unwrap();
    assert_eq!(n, 3);
    let after = db.disk_bytes();
    assert!(after < before * 3 / 4, "{before} -> {after}");
    assert!(db.read_all(&key("loss", "b")).unwrap().is_empty());
    assert_eq!(db.read_all(&key("loss", "a")).unwrap().len(), 20_000);
    // The name can be used again, as a new series.
    db.append(batch(vec![stepped(&key("loss", "b"), 0..5, |_| 3.0)]))
        .unwrap();
    drop(db);
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    assert_eq!(db.read_all(&key("loss", "b")).unwrap().values, vec![3.0; 5]);
    assert_eq!(db.series(&SeriesMatcher::any()).len(), 7);
}

#[test]
fn retention_drops_old_points_and_reclaims_space() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let sys = SeriesKey::new("cpu", [("host", "n1")]).unwrap();
    let train = key("loss", "r");
    let times: Vec<i64> = (0..50_000).map(|i| i * 1_000_000_000).collect();
    let values: Vec<f64> = (0..50_000).map(noise).collect();
    db.append(batch(vec![
        SeriesWrite::new(sys.clone(), None, times.clone(), values.clone()),
        SeriesWrite::new(
            train.clone(),
            Some((0..50_000).collect()),
            times.clone(),
            values.iter().map(|v| v * 2.0).collect(),
        ),
    ]))
    .unwrap();
    db.flush().unwrap();
    let cutoff = 40_000 * 1_000_000_000;
    let rep = db
        .retain(&SeriesMatcher::any().label_eq("host", "n1"), cutoff)
        .unwrap();
    assert_eq!(rep.series_matched, 1);
    assert_eq!(rep.points_dropped, 40_000);
    assert!(rep.bytes_after < rep.bytes_before);
    let r = db.read_all(&sys).unwrap();
    assert_eq!(r.len(), 10_000);
    assert_eq!(r.times[0], cutoff);
    assert_eq!(
        db.read_all(&train).unwrap().len(),
        50_000,
        "unmatched series untouched"
    );
    // Dropping everything removes the series.
    let rep = db
        .retain(&SeriesMatcher::any().label_eq("host", "n1"), i64::MAX)
        .unwrap();
    assert_eq!(rep.series_emptied, 1);
    assert!(
        db.series(&SeriesMatcher::any().label_eq("host", "n1"))
            .is_empty()
    );
}

#[test]
fn a_flipped_byte_in_a_segment_is_named_and_the_rest_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (key("loss", "a"), key("loss", "b"));
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        db.append(batch(vec![
            stepped(&a, 0..3000, |s| s as f64 * 0.5),
            stepped(&b, 0..3000, |s| (s as f64).sqrt()),
        ]))
        .unwrap();
        db.close().unwrap();
    }
    let seg = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // Series a's values are the third blob written; damage a byte in it.
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let before_b = db.read_all(&b).unwrap();
    drop(db);
    // Find a's value bytes: flip bytes until reading a fails but b still works.
    let mut found = false;
    for off in (16..bytes.len() / 2).step_by(97) {
        bytes[off] ^= 0x40;
        std::fs::write(&seg, &bytes).unwrap();
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        let ra = db.read_all(&a);
        let rb = db.read_all(&b);
        if let (Err(e), Ok(pb)) = (&ra, &rb) {
            assert!(e.is_corruption());
            assert!(
                e.to_string()
                    .contains(seg.file_name().unwrap().to_str().unwrap()),
                "{e}"
            );
            assert_eq!(bits(&pb.values), bits(&before_b.values));
            found = true;
            break;
        }
        assert!(
            ra.is_err()
                || bits(&ra.unwrap().values)
                    == bits(&(0..3000).map(|s| s as f64 * 0.5).collect::<Vec<_>>()),
            "damage must never read back as wrong numbers"
        );
        bytes[off] ^= 0x40;
    }
    assert!(found, "some flipped byte in a's chunk is caught");
}

#[test]
fn a_flipped_byte_in_the_wal_is_reported_and_other_records_replay() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("loss", "w");
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        for i in 0..3 {
            db.append(batch(vec![stepped(&k, i * 100..(i + 1) * 100, |s| {
                s as f64
            })]))
            .unwrap();
        }
    }
    let wal = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    let third = bytes.len() / 2; // inside the second record
    bytes[third] ^= 1;
    std::fs::write(&wal, &bytes).unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let rep = db.open_report();
    assert_eq!(rep.damaged.len(), 1);
    assert!(
        rep.damaged[0]
            .to_string()
            .contains(wal.file_name().unwrap().to_str().unwrap())
    );
    let all = db.read_all(&k).unwrap();
    assert_eq!(all.len(), 200, "first and third records replay");
    assert_eq!(all.steps[100], 200);
}

#[test]
fn a_torn_wal_tail_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("loss", "t");
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        db.append(batch(vec![stepped(&k, 0..100, |s| s as f64)]))
            .unwrap();
        db.append(batch(vec![stepped(&k, 100..200, |s| s as f64)]))
            .unwrap();
    }
    let wal = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let len = std::fs::metadata(&wal).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len - 100).unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    assert_eq!(db.open_report().torn_tails, 1);
    assert!(db.open_report().damaged.is_empty());
    assert_eq!(db.read_all(&k).unwrap().len(), 100);
}

#[test]
fn bad_writes_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let k = key("loss", "x");
    let good = stepped(&k, 0..10, |s| s as f64);
    let bad = SeriesWrite::new(key("acc", "x"), Some(vec![1, 2]), vec![1], vec![1.0, 2.0]);
    let err = db.append(batch(vec![good, bad])).unwrap_err();
    assert!(err.to_string().contains("series[1]"), "{err}");
    assert!(db.read_all(&k).unwrap().is_empty());
    let reserved = SeriesWrite::new(k.clone(), Some(vec![NO_STEP]), vec![1], vec![1.0]);
    assert!(db.append(batch(vec![reserved])).is_err());
    let second = Tsdb::open(dir.path(), opts());
    assert!(
        second.is_err(),
        "a directory is opened by one process at a time"
    );
}

#[test]
fn many_writers_and_readers_at_once_with_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(
        dir.path(),
        TsdbOptions {
            fsync: FsyncMode::Group,
            flush_points: 20_000,
            background_flush: true,
            page_points: 128,
            max_segments: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        writers.push(std::thread::spawn(move || {
            for b in 0..50 {
                let ws = (0..5)
                    .map(|s| {
                        let k = key(&format!("s{s}"), &format!("w{w}"));
                        stepped(&k, b * 200..(b + 1) * 200, |x| (x * (w + 1)) as f64)
                    })
                    .collect();
                db.append(batch(ws)).unwrap();
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..2 {
        let db = db.clone();
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for w in 0..4i64 {
                    let k = key("s0", &format!("w{w}"));
                    let p = db.read_all(&k).unwrap();
                    // Whatever prefix is visible is complete and in order.
                    assert_eq!(p.len() % 200, 0);
                    assert!(p.steps.iter().enumerate().all(|(i, &s)| s == i as i64));
                    assert!(
                        p.values
                            .iter()
                            .zip(&p.steps)
                            .all(|(v, s)| *v == (s * (w + 1)) as f64)
                    );
                    let m = db.m4(&k, XAxis::Step, 0, 9_999, 50).unwrap();
                    assert!(m.count as usize >= p.len());
                    reads += 1;
                }
            }
            reads
        }));
    }
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    for w in 0..4 {
        for s in 0..5 {
            assert_eq!(
                db.read_all(&key(&format!("s{s}"), &format!("w{w}")))
                    .unwrap()
                    .len(),
                10_000
            );
        }
    }
    // Merges run beside flushes, on their own thread, and may lag behind;
    // a flush asked for merges before it returns.
    db.flush().unwrap();
    let st = db.stats();
    assert_eq!(st.points_appended, 4 * 50 * 5 * 200);
    assert!(st.flushes > 0);
    assert!(st.segments <= 4, "{} segments", st.segments);
    assert!(st.fsyncs <= st.appends, "group commit shares fsyncs");
}

#[test]
fn constant_columns_page_like_their_siblings() {
    // A constant learning rate, an all-NaN series and shared constant times:
    // every column of a chunk must page alike for range and M4 reads.
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let lr = key("train/lr", "c");
    let nan = key("train/loss", "c");
    let same_time = key("train/acc", "c");
    let n = 1000i64;
    db.append(batch(vec![
        stepped(&lr, 0..n, |_| 0.001),
        stepped(&nan, 0..n, |_| f64::NAN),
        SeriesWrite::new(
            same_time.clone(),
            Some((0..n).collect()),
            vec![7; n as usize],
            (0..n).map(noise).collect(),
        ),
    ]))
    .unwrap();
    db.flush().unwrap();
    for k in [&lr, &nan, &same_time] {
        let r = db.read_range(k, XAxis::Step, 100, 899, None).unwrap();
        assert_eq!(r.len(), 800, "{k}");
        let m = db.m4(k, XAxis::Step, 0, n - 1, 7).unwrap();
        assert_eq!(m.count, n as u64, "{k}");
        let t = db
            .read_range(k, XAxis::Time, i64::MIN, i64::MAX, None)
            .unwrap();
        assert_eq!(t.len(), n as usize, "{k}");
    }
    assert_eq!(
        db.read_range(&lr, XAxis::Step, 0, n, None).unwrap().values,
        vec![0.001; n as usize]
    );
}

#[test]
fn m4_over_a_large_head_matches_a_naive_reduction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let k = key("train/loss", "head");
    // Many appends of odd sizes, so blocks complete across appends; no flush.
    let mut step = 0i64;
    for _ in 0..40 {
        let n = rng.gen_range(1..700);
        let steps: Vec<i64> = (0..n)
            .map(|_| {
                step += rng.gen_range(1..3);
                step
            })
            .collect();
        let times: Vec<i64> = steps.iter().map(|s| s * 1000).collect();
        let values: Vec<f64> = (0..n)
            .map(|_| {
                if rng.gen_bool(0.01) {
                    f64::NAN
                } else {
                    rng.r#gen::<f64>()
                }
            })
            .collect();
        db.append(batch(vec![SeriesWrite::new(
            k.clone(),
            Some(steps),
            times,
            values,
        )]))
        .unwrap();
    }
    let all = db.read_all(&k).unwrap();
    assert!(all.len() > 5 * 512);
    for _ in 0..40 {
        let axis = if rng.gen_bool(0.5) {
            XAxis::Step
        } else {
            XAxis::Time
        };
        let (lo, hi) = (all.x(axis, 0), all.x(axis, all.len() - 1));
        let a = rng.gen_range(lo - 5..hi);
        let b = rng.gen_range(a..hi + 5);
        let width = rng.gen_range(1..200);
        let got = db.m4(&k, axis, a, b, width).unwrap();
        let (xs, ys, count) = naive_m4(&all, axis, a, b, width);
        assert_eq!(got.count, count);
        for x in xs {
            assert!(got.x.contains(&x));
        }
        let got_bits: Vec<u64> = got.y.iter().map(|y| y.to_bits()).collect();
        for y in ys {
            assert!(got_bits.contains(&y));
        }
    }
    let s = db.summary(&k).unwrap().unwrap();
    assert_eq!(s.count as usize, all.len());
    assert_eq!(s.last_step, *all.steps.last().unwrap());
}
