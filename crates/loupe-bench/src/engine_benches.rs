//! Benchmarks of the engine as a whole: bytes on disk (against Prometheus),
//! durable ingest, M4 reads, reopen after a crash, memory per idle series.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loupe_model::{SeriesKey, SeriesMatcher};
use loupe_tsdb::{SeriesWrite, Tsdb, TsdbOptions, WriteBatch, XAxis};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

use crate::corpus::{Corpus, training_corpus};

fn quiet_opts() -> TsdbOptions {
    TsdbOptions {
        background_flush: false,
        flush_points: usize::MAX,
        ..Default::default()
    }
}

/// Writes the corpus in batches of `steps_per_batch` steps, five series each.
fn write_corpus(
    db: &Tsdb,
    c: &Corpus,
    run: &str,
    steps_per_batch: usize,
    times: &[i64],
) -> anyhow::Result<()> {
    let keys: Vec<SeriesKey> = c
        .series
        .iter()
        .map(|s| SeriesKey::new(s.name, [("run", run)]))
        .collect::<Result<_, _>>()?;
    let n = c.steps.len();
    let mut start = 0;
    while start < n {
        let end = (start + steps_per_batch).min(n);
        let mut batch = WriteBatch::new();
        for (k, s) in keys.iter().zip(&c.series) {
            batch.push(SeriesWrite::new(
                k.clone(),
                Some(c.steps[start..end].to_vec()),
                times[start..end].to_vec(),
                s.values[start..end].to_vec(),
            ));
        }
        db.append(batch)?;
        start = end;
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct StorageArgs {
    #[arg(long, default_value_t = 200_000)]
    steps: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Skip the Prometheus anchor (needs `promtool`, from Debian's `prometheus`).
    #[arg(long)]
    no_prometheus: bool,
}

/// Bytes on disk per point, step and time included, after flush.
pub fn storage(args: &StorageArgs) -> anyhow::Result<()> {
    let c = training_corpus(args.steps, args.seed);
    let points = c.points() as f64;
    let measure = |times: &[i64]| -> anyhow::Result<(u64, f64)> {
        let dir = tempfile::tempdir()?;
        let db = Tsdb::open(dir.path(), quiet_opts())?;
        // The SDK sends every 0.5 s: about 3 steps per batch at 0.15 s/step.
        write_corpus(&db, &c, "bench", 4, times)?;
        let t = Instant::now();
        db.flush()?;
        let flush = t.elapsed().as_secs_f64();
        let bytes = db.stats().segment_bytes;
        // Every point must read back bit-exact before its size counts.
        for s in &c.series {
            let k = SeriesKey::new(s.name, [("run", "bench")])?;
            let back = db.read_all(&k)?;
            if back
                .values
                .iter()
                .map(|v| v.to_bits())
                .ne(s.values.iter().map(|v| v.to_bits()))
                || back.times != times
            {
                bail!("{} did not read back bit-exact", s.name);
            }
        }
        Ok((bytes, flush))
    };
    let (jit_bytes, flush_s) = measure(&c.times_ns)?;
    // Same values, timestamps exactly 15 s apart (what the Prometheus anchor gets).
    let regular: Vec<i64> = (0..c.steps.len() as i64)
        .map(|i| 1_764_000_000_000_000_000 + i * 15_000_000_000)
        .collect();
    let (reg_bytes, _) = measure(&regular)?;
    println!(
        "corpus: {} steps x {} series = {} points (seed {})",
        c.steps.len(),
        c.series.len(),
        c.points(),
        args.seed
    );
    println!(
        "loupe, jittered wall-clock times   : {:>10} bytes  {:.3} bytes/point  (flush {:.2} s)",
        jit_bytes,
        jit_bytes as f64 / points,
        flush_s
    );
    println!(
        "loupe, regular 15 s timestamps     : {:>10} bytes  {:.3} bytes/point",
        reg_bytes,
        reg_bytes as f64 / points
    );
    let mut report = json!({
        "points": c.points(),
        "loupe_bytes_per_point_jittered": jit_bytes as f64 / points,
        "loupe_bytes_per_point_regular": reg_bytes as f64 / points,
    });
    if args.no_prometheus {
        println!("prometheus anchor: skipped (--no-prometheus)");
    } else {
        match prometheus_anchor(&c) {
            Ok(p) => {
                let per = p["block_bytes_per_sample"].as_f64().unwrap_or(f64::NAN);
                let chunk_per = p["chunk_bytes_per_sample"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "prometheus {} tsdb, regular 15 s : {:>10} bytes  {:.3} bytes/sample (chunks only {:.3})",
                    p["prometheus_version"].as_str().unwrap_or("?"),
                    p["block_bytes"],
                    per,
                    chunk_per
                );
                println!(
                    "ratio prometheus / loupe (same values, regular times): {:.2}x; loupe with real jittered times is still {:.2}x smaller",
                    per / (reg_bytes as f64 / points),
                    per / (jit_bytes as f64 / points)
                );
                report["prometheus"] = p;
            }
            Err(e) => println!("prometheus anchor: not run: {e:#}"),
        }
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Runs `bench/prometheus_anchor.py` on the corpus values.
fn prometheus_anchor(c: &Corpus) -> anyhow::Result<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/prometheus_anchor.py");
    let mut csv = String::with_capacity(c.points() * 24);
    csv.push_str("series_name,value\n");
    for s in &c.series {
        for v in &s.values {
            // Rust's shortest round-trip form, like Python's repr.
            csv.push_str(s.name);
            csv.push(',');
            if v.is_nan() {
                csv.push_str("nan");
            } else {
                csv.push_str(&format!("{v:?}"));
            }
            csv.push('\n');
        }
    }
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", script.display()))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(csv.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[derive(clap::Args)]
pub struct IngestArgs {
    /// Series written to.
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Points per batch (spread evenly over the series).
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Points to write in all.
    #[arg(long, default_value_t = 40_000_000)]
    points: usize,
    /// Writer threads.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// always | group | never
    #[arg(long, default_value = "group")]
    fsync: String,
}

/// Durable in-process ingest throughput.
pub fn ingest(args: &IngestArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Tsdb::open(
        dir.path(),
        TsdbOptions {
            fsync: args.fsync.parse()?,
            ..Default::default()
        },
    )?;
    let keys: Vec<SeriesKey> = (0..args.series)
        .map(|i| {
            SeriesKey::new(
                "train/metric",
                [("run", "ingest"), ("series", &i.to_string())],
            )
        })
        .collect::<Result<_, _>>()?;
    let per_series = (args.batch / args.series).max(1);
    let batches = args.points / (per_series * args.series);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut handles = Vec::new();
        for _ in 0..args.writers {
            handles.push(s.spawn(|| -> anyhow::Result<()> {
                let mut rng = StdRng::seed_from_u64(1);
                loop {
                    let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if b >= batches {
                        return Ok(());
                    }
                    let mut batch = WriteBatch::new();
                    let step0 = (b * per_series) as i64;
                    for k in &keys {
                        let steps: Vec<i64> = (step0..step0 + per_series as i64).collect();
                        let times = steps
                            .iter()
                            .map(|s| 1_764_000_000_000_000_000 + s * 150_000_000)
                            .collect();
                        let values = (0..per_series).map(|_| rng.r#gen::<f32>() as f64).collect();
                        batch.push(SeriesWrite::new(k.clone(), Some(steps), times, values));
                    }
                    db.append(batch)?;
                }
            }));
        }
        for h in handles {
            h.join().expect("writer thread")?;
        }
        Ok(())
    })?;
    let took = t.elapsed();
    let st = db.stats();
    let points = st.points_appended as f64;
    println!(
        "ingest: {} points into {} series, batches of {} points, {} writers, fsync {}: {:.2} s, {:.2} M points/s durable; {} fsyncs for {} appends, {} background flushes",
        st.points_appended,
        args.series,
        per_series * args.series,
        args.writers,
        args.fsync,
        took.as_secs_f64(),
        points / took.as_secs_f64() / 1e6,
        st.fsyncs,
        st.appends,
        st.flushes
    );
    println!(
        "{}",
        json!({"points": st.points_appended, "seconds": took.as_secs_f64(), "points_per_sec": points / took.as_secs_f64(), "fsyncs": st.fsyncs, "appends": st.appends})
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct M4Args {
    /// Series lengths to compare, in points.
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    lengths: Vec<usize>,
    #[arg(long, default_value_t = 2000)]
    width: u32,
    #[arg(long, default_value_t = 200)]
    repeats: usize,
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// M4 reads of long series: warm full-range reads and random zooms.
pub fn m4(args: &M4Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Tsdb::open(dir.path(), quiet_opts())?;
    let mut rng = StdRng::seed_from_u64(3);
    let mut report = Vec::new();
    for &n in &args.lengths {
        let k = SeriesKey::new("train/loss", [("run", &format!("len{n}"))])?;
        let mut step = 0i64;
        let chunk = 1_000_000;
        let mut written = 0;
        while written < n {
            let m = chunk.min(n - written);
            let steps: Vec<i64> = (step..step + m as i64).collect();
            let times = steps
                .iter()
                .map(|s| 1_764_000_000_000_000_000 + s * 150_000_000)
                .collect();
            let values = steps
                .iter()
                .map(|&s| {
                    let base = 2.5 + 7.5 * (-(s as f64) / (n as f64 / 10.0)).exp();
                    let spike = if rng.gen_bool(1e-5) { 20.0 } else { 1.0 };
                    (base * spike * (1.0 + 0.02 * (rng.r#gen::<f64>() - 0.5))) as f32 as f64
                })
                .collect();
            db.append(WriteBatch {
                series: vec![SeriesWrite::new(k.clone(), Some(steps), times, values)],
            })?;
            step += m as i64;
            written += m;
            db.flush()?;
        }
        db.compact()?;
        let last = n as i64 - 1;
        // Cold: first query after the segment was opened (roll-ups not yet decoded).
        let t = Instant::now();
        let r = db.m4(&k, XAxis::Step, 0, last, args.width)?;
        let cold = t.elapsed();
        assert_eq!(r.count as usize, n);
        let mut full = Vec::with_capacity(args.repeats);
        for _ in 0..args.repeats {
            let t = Instant::now();
            let r = db.m4(&k, XAxis::Step, 0, last, args.width)?;
            full.push(t.elapsed());
            std::hint::black_box(r);
        }
        full.sort();
        let mut zoom = Vec::with_capacity(args.repeats);
        for _ in 0..args.repeats {
            let a = rng.gen_range(0..last);
            let b = rng.gen_range(a..=last);
            let t = Instant::now();
            let r = db.m4(&k, XAxis::Step, a, b, args.width)?;
            zoom.push(t.elapsed());
            std::hint::black_box(r);
        }
        zoom.sort();
        let mut by_time = Vec::with_capacity(args.repeats);
        let (t0, t1) = (
            1_764_000_000_000_000_000i64,
            1_764_000_000_000_000_000 + last * 150_000_000,
        );
        for _ in 0..args.repeats.min(50) {
            let t = Instant::now();
            let r = db.m4(&k, XAxis::Time, t0, t1, args.width)?;
            by_time.push(t.elapsed());
            std::hint::black_box(r);
        }
        by_time.sort();
        println!(
            "m4 {:>9} points, width {}: full range p50 {:>7.3} ms (min {:.3}, p90 {:.3}; cold {:.3} ms) | random zoom p50 {:.3} ms p90 {:.3} ms | by time p50 {:.3} ms; {} points out",
            n,
            args.width,
            percentile(&full, 0.5).as_secs_f64() * 1e3,
            full[0].as_secs_f64() * 1e3,
            percentile(&full, 0.9).as_secs_f64() * 1e3,
            cold.as_secs_f64() * 1e3,
            percentile(&zoom, 0.5).as_secs_f64() * 1e3,
            percentile(&zoom, 0.9).as_secs_f64() * 1e3,
            percentile(&by_time, 0.5).as_secs_f64() * 1e3,
            r.x.len()
        );
        report.push(json!({"points": n, "full_p50_ms": percentile(&full, 0.5).as_secs_f64() * 1e3, "zoom_p50_ms": percentile(&zoom, 0.5).as_secs_f64() * 1e3, "cold_ms": cold.as_secs_f64() * 1e3}));
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[derive(clap::Args)]
pub struct ReopenArgs {
    /// Points left only in the WAL when the process dies.
    #[arg(long, default_value_t = 10_000_000)]
    points: usize,
    #[arg(long, default_value_t = 1000)]
    series: usize,
}

/// Time to reopen after a crash with everything still in the WAL.
pub fn reopen(args: &ReopenArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keys: Vec<SeriesKey> = (0..args.series)
        .map(|i| SeriesKey::new("train/metric", [("series", i.to_string())]))
        .collect::<Result<_, _>>()?;
    let per = args.points / args.series;
    let mut rng = StdRng::seed_from_u64(5);
    {
        let db = Tsdb::open(dir.path(), quiet_opts())?;
        let per_batch = 10;
        let mut s0 = 0;
        while s0 < per {
            let m = per_batch.min(per - s0);
            let mut batch = WriteBatch::new();
            for k in &keys {
                let steps: Vec<i64> = (s0 as i64..(s0 + m) as i64).collect();
                let times = steps
                    .iter()
                    .map(|s| 1_764_000_000_000_000_000 + s * 150_000_000)
                    .collect();
                let values = (0..m).map(|_| rng.r#gen::<f32>() as f64).collect();
                batch.push(SeriesWrite::new(k.clone(), Some(steps), times, values));
            }
            db.append(batch)?;
            s0 += m;
        }
        // Dropped without flush or close: what a crash leaves.
    }
    let wal_bytes = loupe_dir_bytes(&dir.path().join("wal"));
    // Evict the WAL from the page cache as far as we can without root tricks:
    // not possible portably, so this measures a warm-cache reopen, the case
    // after a process crash (a machine crash adds the disk read).
    let t = Instant::now();
    let db = Tsdb::open(dir.path(), quiet_opts())?;
    let took = t.elapsed();
    let rep = db.open_report();
    println!(
        "reopen: {} points in {} WAL records ({:.0} MB of WAL) replayed in {:.3} s",
        rep.points_replayed,
        rep.wal_records_replayed,
        wal_bytes as f64 / 1e6,
        took.as_secs_f64()
    );
    if rep.points_replayed as usize != per * args.series {
        bail!(
            "replayed {} points, expected {}",
            rep.points_replayed,
            per * args.series
        );
    }
    println!(
        "{}",
        json!({"points": rep.points_replayed, "seconds": took.as_secs_f64()})
    );
    Ok(())
}

fn loupe_dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[derive(clap::Args)]
pub struct MemoryArgs {
    /// Idle series to create.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Internal: measure opening this directory in this (fresh) process.
    #[arg(long, hide = true)]
    open_only: Option<std::path::PathBuf>,
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Resident memory per idle series: series with data on disk, listed in the
/// catalog, head empty, measured in a fresh process that opens the directory.
pub fn memory(args: &MemoryArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.open_only {
        let before = rss_bytes();
        let db = Tsdb::open(dir, quiet_opts())?;
        // Touch every series once, as a dashboard listing them would.
        let listed = db.series(&SeriesMatcher::any()).len();
        let peak = rss_bytes();
        // What the database holds, not what the allocator kept from the
        // temporary vectors of opening and listing: return free memory first.
        // Safety: glibc's malloc_trim only releases unused heap memory.
        unsafe { libc::malloc_trim(0) };
        let after = rss_bytes();
        println!("{listed} {before} {after} {peak}");
        drop(db);
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    {
        let db = Tsdb::open(dir.path(), quiet_opts())?;
        let mut batch = WriteBatch::new();
        for i in 0..args.series {
            let k = SeriesKey::new(
                "gpu/util",
                [
                    ("host", format!("node-{:05}", i / 8)),
                    ("gpu", (i % 8).to_string()),
                ],
            )?;
            batch.push(SeriesWrite::new(
                k,
                None,
                vec![1_764_000_000_000_000_000 + i as i64],
                vec![i as f64],
            ));
            if batch.series.len() == 10_000 {
                db.append(std::mem::take(&mut batch))?;
            }
        }
        if !batch.series.is_empty() {
            db.append(batch)?;
        }
        db.close()?;
    }
    let out = Command::new(std::env::current_exe()?)
        .args(["memory", "--open-only"])
        .arg(dir.path())
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout)?;
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(|t| t.parse())
        .collect::<Result<_, _>>()?;
    let [listed, before, after, peak] = nums[..] else {
        bail!("unexpected output {text:?}");
    };
    let per = after.saturating_sub(before) as f64 / args.series as f64;
    println!(
        "memory: {} idle series (listed {}), fresh process RSS {:.1} MB -> {:.1} MB held after open and a full listing (peak {:.1} MB): {:.0} bytes per idle series",
        args.series,
        listed,
        before as f64 / 1e6,
        after as f64 / 1e6,
        peak as f64 / 1e6,
        per
    );
    println!(
        "{}",
        json!({"series": args.series, "bytes_per_series": per})
    );
    Ok(())
}
