//! Writes small, valid seed inputs for every fuzz target into
//! `<dir>/<target>/` (default `seeds/`). Run through `make_seeds.sh`.
//!
//! Seeds are generated with the engine's own encoders, so they follow the
//! current on-disk formats; rerun after a format change.

use std::fs;
use std::path::{Path, PathBuf};

use loupe_model::{NO_STEP, SeriesKey};
use loupe_tsdb::codec::encode_paged;
use loupe_tsdb::codec::gorilla::{encode_dod, encode_xor};
use loupe_tsdb::segment::SegmentWriter;
use loupe_tsdb::wal::{encode_append, frame};
use loupe_tsdb::{Points, SeriesWrite};

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds".into()));
    wal_frames(&root.join("wal_frames"));
    paged_column(&root.join("paged_column"));
    segment_file(&root.join("segment_file"));
    gorilla(&root.join("gorilla"));
    roundtrip_paged(&root.join("roundtrip_paged"));
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    assert!(
        bytes.len() < 20 * 1024,
        "seed {name} is {} bytes",
        bytes.len()
    );
    fs::write(dir.join(name), bytes).unwrap();
    println!("{:>6}  {}", bytes.len(), dir.join(name).display());
}

fn loss_key() -> SeriesKey {
    SeriesKey::new("loss", [("run", "a"), ("split", "train")]).unwrap()
}

fn steps(n: i64) -> Vec<i64> {
    (0..n).collect()
}

fn times(n: i64) -> Vec<i64> {
    (0..n)
        .map(|i| 1_700_000_000_000_000_000 + i * 150_000_000 + (i % 7) * 1_000)
        .collect()
}

fn losses(n: i64) -> Vec<f64> {
    (0..n)
        .map(|i| 2.5 * (-(i as f64) / 40.0).exp() + 0.01 * (i as f64).sin())
        .collect()
}

fn wal_frames(dir: &Path) {
    let k1 = loss_key();
    let k2 = SeriesKey::named("gpu_util").unwrap();
    let w1 = SeriesWrite::new(k1.clone(), Some(steps(20)), times(20), losses(20));
    let w2 = SeriesWrite::new(
        k2.clone(),
        None,
        times(5),
        vec![0.0, -0.0, f64::NAN, f64::INFINITY, 97.5],
    );
    let (b1, b2) = (k1.to_bytes(), k2.to_bytes());
    let first = encode_append(&[(1, &b1[..]), (2, &b2[..])], &[(1, &w1), (2, &w2)]);
    let second = encode_append(&[], &[(1, &w1)]);
    let empty = encode_append(&[], &[]);
    put(dir, "record_append", &first);
    put(dir, "record_empty", &empty);

    let mut file = frame(&first);
    file.extend(frame(&second));
    file.extend(frame(&empty));
    put(dir, "file_three_frames", &file);

    let mut torn = file.clone();
    torn.extend(&frame(&second)[..30]);
    put(dir, "file_torn_tail", &torn);

    let mut damaged = file.clone();
    let at = frame(&first).len() + 8 + 5;
    damaged[at] ^= 0x40; // a payload byte of the second frame
    put(dir, "file_damaged_middle", &damaged);

    let mut bad_len = file.clone();
    bad_len[frame(&first).len() + 3] = 0x7f; // the second frame's length
    put(dir, "file_damaged_length", &bad_len);
}

fn paged_column(dir: &Path) {
    put(dir, "empty", &encode_paged::<f64>(&[], 16));
    put(dir, "constant_i64", &encode_paged(&[7i64; 100], 16));
    put(dir, "steps_i64_p16", &encode_paged(&steps(100), 16));
    put(dir, "times_i64_p32", &encode_paged(&times(200), 32));
    put(dir, "losses_f64_p16", &encode_paged(&losses(100), 16));
    put(dir, "losses_f64_one_page", &encode_paged(&losses(64), 256));
    let special = [
        0.0,
        -0.0,
        f64::NAN,
        f64::from_bits(0x7ff8_0000_dead_beef),
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE / 3.0,
        f64::MAX,
        1.5,
    ];
    put(dir, "special_f64_p3", &encode_paged(&special, 3));
}

fn segment_file(dir: &Path) {
    let tmp = std::env::temp_dir().join(format!("loupe-make-seeds-{}", std::process::id()));
    fs::create_dir_all(&tmp).unwrap();
    let create = |name: &str, page_points: usize, max_chunk_points: usize| {
        let path = tmp.join(name);
        let _ = fs::remove_file(&path);
        SegmentWriter::create(&path, page_points, max_chunk_points).unwrap()
    };
    let write = |name: &str, w: SegmentWriter| {
        w.finish().unwrap();
        let path = tmp.join(name);
        put(dir, name, &fs::read(&path).unwrap());
        fs::remove_file(&path).unwrap();
    };

    // Two series logged together (shared step and time columns), one of
    // them long enough for page roll-ups and cut into two chunks; a third
    // series with times only.
    let mut w = create("three_series.seg", 16, 64);
    let n = 100;
    let train = Points {
        steps: steps(n),
        times: times(n),
        values: losses(n),
    };
    let lr = Points {
        steps: steps(n),
        times: times(n),
        values: (0..n).map(|i| 1e-3 * 0.99f64.powi(i as i32)).collect(),
    };
    let gpu = Points {
        steps: vec![NO_STEP; 10],
        times: times(10),
        values: (0..10).map(|i| 90.0 + i as f64).collect(),
    };
    w.add_series(1, &loss_key(), &train).unwrap();
    w.add_series(2, &SeriesKey::new("lr", [("run", "a")]).unwrap(), &lr).unwrap();
    w.add_series(3, &SeriesKey::named("gpu_util").unwrap(), &gpu).unwrap();
    write("three_series.seg", w);

    // One short chunk, no roll-ups.
    let mut w = create("one_chunk.seg", 8, 8);
    let p = Points {
        steps: steps(5),
        times: times(5),
        values: vec![1.0, f64::NAN, -0.0, f64::INFINITY, 2.0],
    };
    w.add_series(9, &SeriesKey::named("x").unwrap(), &p).unwrap();
    write("one_chunk.seg", w);

    // A constant series with roll-ups.
    let mut w = create("constant.seg", 4, 32);
    let p = Points {
        steps: steps(20),
        times: times(20),
        values: vec![0.5; 20],
    };
    w.add_series(4, &SeriesKey::named("const").unwrap(), &p).unwrap();
    write("constant.seg", w);

    write("empty.seg", create("empty.seg", 16, 64));
    let _ = fs::remove_dir(&tmp);
}

fn gorilla(dir: &Path) {
    put(dir, "xor_losses", &encode_xor(&losses(200)));
    put(
        dir,
        "xor_special",
        &encode_xor(&[0.0, -0.0, f64::NAN, 1.5, 1.5, f64::MAX, 0.0]),
    );
    put(dir, "xor_empty", &encode_xor(&[]));
    put(dir, "dod_times", &encode_dod(&times(200)));
    put(
        dir,
        "dod_extremes",
        &encode_dod(&[i64::MIN, i64::MAX, 0, -1, 1 << 40, 3]),
    );
}

fn roundtrip_paged(dir: &Path) {
    let col = |page: u8, mode: u8, vals: &[u64]| {
        let mut b = vec![page, mode];
        for v in vals {
            b.extend(v.to_le_bytes());
        }
        b
    };
    let l: Vec<u64> = losses(60).iter().map(|v| v.to_bits()).collect();
    put(dir, "losses_p16", &col(15, 0, &l));
    let t: Vec<u64> = (0..60).map(|i| 150_000_000 + (i % 5) * 997).collect();
    put(dir, "running_sum_p37", &col(128, 1, &t));
    put(dir, "runs_narrow_p4", &col(3, 6, &l));
}
