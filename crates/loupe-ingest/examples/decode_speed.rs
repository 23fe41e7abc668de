//! Decode speed of a training-like metrics batch: 100 series × 100 points
//! (10k points) with steps, fractional Unix-second times and full-precision
//! values, the shape the Python SDK sends.
//!
//! `cargo run --release -p loupe-ingest --example decode_speed`

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use loupe_ingest::{Limits, decode_body, decode_metrics};

const SERIES: usize = 100;
const POINTS: usize = 100;

fn main() {
    let limits = Limits::default();
    let full = batch(true, true);
    let values_only = batch(false, false);
    let gzip = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&full).unwrap();
        enc.finish().unwrap()
    };
    let zstd = zstd::encode_all(&full[..], 3).unwrap();

    println!(
        "batch: {SERIES} series × {POINTS} points = {} points; {} bytes JSON, {} gzip, {} zstd",
        SERIES * POINTS,
        full.len(),
        gzip.len(),
        zstd.len()
    );
    report("step + time + value", || {
        decode_metrics(black_box(&full), 0, &limits).unwrap()
    });
    // An escaped `/` in the first name sends the whole batch down the
    // serde path (the fast path hands over at the first escape).
    let escaped = String::from_utf8(full.clone())
        .unwrap()
        .replacen("train/metric_0", "train\\/metric_0", 1)
        .into_bytes();
    report("same, serde path", || {
        decode_metrics(black_box(&escaped), 0, &limits).unwrap()
    });
    report("value only (time = now)", || {
        decode_metrics(black_box(&values_only), 0, &limits).unwrap()
    });
    report("gzip body, step + time + value", || {
        let body = decode_body(black_box(&gzip), Some("gzip"), &limits).unwrap();
        decode_metrics(&body, 0, &limits).unwrap()
    });
    report("zstd body, step + time + value", || {
        let body = decode_body(black_box(&zstd), Some("zstd"), &limits).unwrap();
        decode_metrics(&body, 0, &limits).unwrap()
    });
}

fn report<T>(what: &str, mut decode: impl FnMut() -> T) {
    // Warm up, then take the best of several timed rounds: the figure is
    // the decoder's speed, not the machine's noise.
    for _ in 0..20 {
        black_box(decode());
    }
    let mut best = Duration::MAX;
    for _ in 0..10 {
        let rounds = 50;
        let start = Instant::now();
        for _ in 0..rounds {
            black_box(decode());
        }
        best = best.min(start.elapsed() / rounds);
    }
    let points = (SERIES * POINTS) as f64;
    println!(
        "{what:32} {:8.1} µs/batch  {:6.1} M points/s",
        best.as_secs_f64() * 1e6,
        points / best.as_secs_f64() / 1e6
    );
}

/// JSON as a client writes it: serde_json's shortest round-trip floats.
fn batch(with_step: bool, with_time: bool) -> Vec<u8> {
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut series = Vec::new();
    for s in 0..SERIES {
        let steps: Vec<i64> = (0..POINTS as i64).map(|i| 120_000 + i).collect();
        let times: Vec<f64> = (0..POINTS)
            .map(|i| 1_732_000_000.0 + i as f64 * 0.153 + next() * 0.01)
            .collect();
        // Values logged from float32 tensors, as most training scalars are.
        let values: Vec<f64> = (0..POINTS).map(|_| (next() * 4.0) as f32 as f64).collect();
        let mut obj = serde_json::Map::new();
        obj.insert("name".into(), format!("train/metric_{s}").into());
        if with_step {
            obj.insert("step".into(), steps.into());
        }
        if with_time {
            obj.insert("time".into(), times.into());
        }
        obj.insert("value".into(), values.into());
        series.push(serde_json::Value::Object(obj));
    }
    serde_json::to_vec(&serde_json::json!({ "series": series })).unwrap()
}
