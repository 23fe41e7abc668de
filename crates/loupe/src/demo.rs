//! `loupe demo`: what the embedded store does, in one command.
//!
//! Simulates a training run that logs five scalars per step and a node of
//! eight GPUs sampled every second, with faults a user would want to see: a
//! one-step loss spike, a NaN, a resume from a checkpoint that re-logs steps,
//! and a GPU whose memory creeps up. Everything goes through the engine's
//! public write path (WAL, group commit, head, flush) and back out through
//! its reads, and the demo prints what a chart would draw.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use loupe_model::{SeriesKey, SeriesMatcher};
use loupe_tsdb::{SeriesWrite, Tsdb, TsdbOptions, WriteBatch, XAxis};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Training steps to simulate.
    #[arg(long, default_value_t = 300_000)]
    steps: i64,
    /// Data directory (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Width of the terminal charts, in characters.
    #[arg(long, default_value_t = 72)]
    width: u32,
}

const SPIKE_STEP: i64 = 123_457;
const NAN_STEP: i64 = 250_001;
const T0_NS: i64 = 1_764_000_000_000_000_000;

/// Deterministic noise in [-1, 1) (splitmix64), so every demo draws the same run.
fn noise(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn loss_at(step: i64, total: i64, life: u64) -> f64 {
    let base = 2.2 + 8.0 * (-(step as f64) / (total as f64 / 12.0)).exp();
    let v = base * (1.0 + 0.02 * noise(step as u64 ^ (life << 40)));
    let v = if step == SPIKE_STEP { v * 6.0 } else { v };
    let v = if step == NAN_STEP { f64::NAN } else { v };
    v as f32 as f64
}

fn training_batch(
    run: &str,
    steps: std::ops::Range<i64>,
    total: i64,
    life: u64,
) -> Result<WriteBatch> {
    let key = |n: &str| SeriesKey::new(n, [("run", run)]);
    let st: Vec<i64> = steps.clone().collect();
    let times: Vec<i64> = st
        .iter()
        .map(|s| T0_NS + s * 150_000_000 + (life as i64) * 3_600_000_000_000)
        .collect();
    let warmup = total / 100;
    let lr: Vec<f64> = st
        .iter()
        .map(|&s| {
            if s < warmup {
                3e-4 * (s + 1) as f64 / warmup as f64
            } else {
                let f = (s - warmup) as f64 / (total - warmup) as f64;
                3e-5 + 0.5 * (3e-4 - 3e-5) * (1.0 + (std::f64::consts::PI * f).cos())
            }
        })
        .collect();
    let mut b = WriteBatch::new();
    b.push(SeriesWrite::new(
        key("train/loss")?,
        Some(st.clone()),
        times.clone(),
        st.iter().map(|&s| loss_at(s, total, life)).collect(),
    ));
    b.push(SeriesWrite::new(
        key("train/grad_norm")?,
        Some(st.clone()),
        times.clone(),
        st.iter()
            .map(|&s| {
                let g = 1.0 + 0.15 * noise(s as u64 * 7 + life);
                (if s == SPIKE_STEP - 1 { g * 40.0 } else { g }) as f32 as f64
            })
            .collect(),
    ));
    b.push(SeriesWrite::new(
        key("train/lr")?,
        Some(st.clone()),
        times.clone(),
        lr,
    ));
    b.push(SeriesWrite::new(
        key("train/tokens_per_sec")?,
        Some(st.clone()),
        times.clone(),
        st.iter()
            .map(|&s| 524_288.0 / (0.15 * (1.0 + 0.03 * noise(s as u64 * 13))))
            .collect(),
    ));
    Ok(b)
}

fn gpu_batch(seconds: std::ops::Range<i64>) -> Result<WriteBatch> {
    let mut b = WriteBatch::new();
    let times: Vec<i64> = seconds.clone().map(|s| T0_NS + s * 1_000_000_000).collect();
    for gpu in 0..8 {
        let key = |n: &str| SeriesKey::new(n, [("host", "node-0"), ("gpu", &gpu.to_string())]);
        let util = seconds
            .clone()
            .map(|s| (96.0 + 3.0 * noise(s as u64 * 31 + gpu)).round())
            .collect();
        let mem = seconds
            .clone()
            .map(|s| {
                let leak = if gpu == 3 { s as f64 * 0.4 } else { 0.0 };
                (61_000.0 + leak + 50.0 * noise(s as u64 * 17 + gpu)).round()
            })
            .collect();
        b.push(SeriesWrite::new(
            key("gpu/util")?,
            None,
            times.clone(),
            util,
        ));
        b.push(SeriesWrite::new(
            key("gpu/mem_used_mib")?,
            None,
            times.clone(),
            mem,
        ));
    }
    Ok(b)
}

/// Draws an M4 result as a one-line chart: each character is a column's max.
fn sparkline(xs: &[i64], ys: &[f64], from: i64, to: i64, width: u32) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let mut cols: Vec<Option<f64>> = vec![None; width as usize];
    let mut nan_cols = vec![false; width as usize];
    let span = (to - from + 1) as f64;
    for (x, y) in xs.iter().zip(ys) {
        let c = (((x - from) as f64 / span) * width as f64) as usize;
        let c = c.min(width as usize - 1);
        if y.is_nan() {
            nan_cols[c] = true;
            continue;
        }
        cols[c] = Some(cols[c].map_or(*y, |m: f64| m.max(*y)));
    }
    let finite: Vec<f64> = cols
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    cols.iter()
        .zip(&nan_cols)
        .map(|(c, nan)| match (c, nan) {
            (_, true) => '✗',
            (None, _) => ' ',
            (Some(v), _) => {
                let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                BARS[((f * 7.0).round() as usize).min(7)]
            }
        })
        .collect()
}

/// A number in at most 12 characters: fixed point when readable, else exponent.
fn num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || (1e-2..1e6).contains(&a) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let temp;
    let dir = match &args.data {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary data directory")?;
            temp.path().to_path_buf()
        }
    };
    let total = args.steps.max(10_000);
    println!(
        "Loupe demo — embedded time-series store in {}",
        dir.display()
    );
    println!(
        "Simulating a {total}-step training run (5 scalars/step) and 8 GPUs sampled every second.\n"
    );
    let db = Tsdb::open(&dir, TsdbOptions::default())?;
    let started = Instant::now();
    let per_batch = 256; // about what the SDK sends every 0.5 s on a fast loop
    let resume_at = total * 9 / 10;
    let crash_at = resume_at + total / 50;
    let mut step = 0;
    let mut last_pct = u64::MAX;
    while step < crash_at {
        let end = (step + per_batch).min(crash_at);
        db.append(training_batch("demo", step..end, total, 0)?)?;
        let secs = (step as f64 * 0.15) as i64..(end as f64 * 0.15) as i64;
        if !secs.is_empty() {
            db.append(gpu_batch(secs)?)?;
        }
        step = end;
        let pct = (step * 100 / total) as u64;
        if pct / 5 != last_pct / 5 {
            last_pct = pct;
            let bar = "█".repeat((pct / 5) as usize);
            print!("\r  writing  [{bar:<20}] {pct:>3}%  step {step:>8}");
            use std::io::Write as _;
            std::io::stdout().flush().ok();
        }
    }
    // The job dies and restarts from the checkpoint at `resume_at`: it logs
    // those steps again, with a second life's values. Newest write wins.
    println!(
        "\n  the job crashes at step {crash_at} and resumes from its checkpoint at step {resume_at}"
    );
    let mut step = resume_at;
    while step < total {
        let end = (step + per_batch).min(total);
        db.append(training_batch("demo", step..end, total, 1)?)?;
        step = end;
    }
    let wrote = started.elapsed();
    let stats = db.stats();
    db.flush()?;
    let bytes = db.stats().segment_bytes;
    println!(
        "  {} points acknowledged durably in {:.2} s ({:.1} M points/s, {} fsyncs); on disk after flush: {:.2} MB, {:.2} bytes/point\n",
        stats.points_appended,
        wrote.as_secs_f64(),
        stats.points_appended as f64 / wrote.as_secs_f64() / 1e6,
        stats.fsyncs,
        bytes as f64 / 1e6,
        bytes as f64 / stats.points_appended as f64
    );

    let loss = SeriesKey::new("train/loss", [("run", "demo")])?;
    let t = Instant::now();
    let m = db.m4(&loss, XAxis::Step, 0, total - 1, args.width)?;
    println!(
        "train/loss by step, M4 at width {} ({} of {} points read back in {:.2} ms; ✗ = NaN):",
        args.width,
        m.x.len(),
        m.count,
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("  {}", sparkline(&m.x, &m.y, 0, total - 1, args.width));
    let spike =
        m.x.iter()
            .zip(&m.y)
            .find(|(x, _)| **x == SPIKE_STEP)
            .map(|(_, y)| *y);
    match spike {
        Some(y) => {
            println!("  the one-step spike at step {SPIKE_STEP} (loss {y:.2}) is in the drawn data")
        }
        None => println!("  WARNING: the spike at step {SPIKE_STEP} was not in the M4 result"),
    }
    let resumed = db.read_range(&loss, XAxis::Step, resume_at, resume_at, None)?;
    println!(
        "  step {resume_at} was logged twice (before and after the crash); reads return the newer write: {:.4} (second life: {:.4})\n",
        resumed.values[0],
        loss_at(resume_at, total, 1)
    );

    let mem = SeriesKey::new("gpu/mem_used_mib", [("host", "node-0"), ("gpu", "3")])?;
    let summary = db.summary(&mem)?.context("gpu 3 memory")?;
    let (t0, t1) = (summary.first_time, summary.last_time);
    let m = db.m4(&mem, XAxis::Time, t0, t1, args.width)?;
    println!("gpu/mem_used_mib{{gpu=\"3\"}} by time — memory creeping up:");
    println!("  {}\n", sparkline(&m.x, &m.y, t0, t1, args.width));

    println!(
        "{:<44} {:>9} {:>12} {:>12} {:>12}",
        "series", "points", "min", "max", "last"
    );
    for info in db.series(&SeriesMatcher::any().label_eq("run", "demo")) {
        if let Some(s) = db.summary(&info.key)? {
            println!(
                "{:<44} {:>9} {:>12} {:>12} {:>12}",
                info.key.to_string(),
                s.count,
                num(s.min),
                num(s.max),
                num(s.last)
            );
        }
    }
    let gpus = db.series(&SeriesMatcher::any().label_eq("host", "node-0"));
    println!("… and {} GPU series on node-0.", gpus.len());
    db.close()?;
    drop(db);
    let reopened = Tsdb::open(&dir, TsdbOptions::default())?;
    let back = reopened.summary(&loss)?.context("loss after reopen")?;
    println!(
        "\nReopened the store: train/loss still has {} points (last {:.4}). Next: `loupe serve` and the web UI (planned).",
        back.count, back.last
    );
    Ok(())
}
