//! Seeds a metadata store with 10k runs (5 summary metrics each) and 1M log
//! lines, then times the two reads the UI leans on: the run table sorted by
//! a metric, and a log search.
//!
//! ```text
//! cargo run --release -p loupe-meta --example bench_meta [-- RUNS LINES [DIR]]
//! ```
//!
//! With DIR the database is left there for inspection (DIR must not exist).

use std::collections::BTreeMap;
use std::time::Instant;

use loupe_meta::{LogQuery, MetaOptions, MetaStore, NewRun, RunPatch, RunQuery};
use loupe_model::{LogLevel, LogRecord, LogStream, SeriesSummary};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const METRICS: [&str; 5] = ["train/loss", "eval/loss", "eval/acc", "lr", "grad_norm"];
const ITERATIONS: usize = 50;

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(10_000, |a| a.parse().expect("RUNS"));
    let lines: usize = args.next().map_or(1_000_000, |a| a.parse().expect("LINES"));
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = match args.next() {
        Some(kept) => {
            std::fs::create_dir(&kept).expect("DIR must not exist");
            std::path::PathBuf::from(kept)
        }
        None => temp.path().to_path_buf(),
    };
    let path = dir.join("meta.db");
    let store = MetaStore::open(&path, MetaOptions::default()).expect("open");
    let mut rng = StdRng::seed_from_u64(7);

    let t = Instant::now();
    // All lines go to the last run: the worst case for a per-run search.
    let log_run = seed_runs(&store, runs, &mut rng);
    let seed_runs = t.elapsed();

    let t = Instant::now();
    seed_logs(&store, &log_run, lines, &mut rng);
    let seed_logs = t.elapsed();
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "seeded {runs} runs in {:.1} s ({:.0} runs/s, create + summary), {lines} log lines in {:.1} s ({:.0} lines/s); files {:.0} MB",
        seed_runs.as_secs_f64(),
        runs as f64 / seed_runs.as_secs_f64(),
        seed_logs.as_secs_f64(),
        lines as f64 / seed_logs.as_secs_f64(),
        size as f64 / 1e6
    );

    time_run_lists(&store);
    time_log_reads(&store, &log_run, lines);
}

/// Creates `runs` runs over ten projects, each with a summary of
/// [`METRICS`]; returns the last run's id.
fn seed_runs(store: &MetaStore, runs: usize, rng: &mut StdRng) -> String {
    let mut last_id = String::new();
    for i in 0..runs {
        let (run, _) = store
            .create_or_resume_run(NewRun {
                project: format!("project-{}", i % 10),
                tags: Some(vec![format!("sweep-{}", i % 50)]),
                config: Some(serde_json::json!({"lr": rng.gen_range(1e-5..1e-3), "batch": 256})),
                ..NewRun::default()
            })
            .expect("create run");
        let mut summary = BTreeMap::new();
        for (m, name) in METRICS.iter().enumerate() {
            // Every 20th run has not logged its training loss yet.
            if m == 0 && i % 20 == 0 {
                continue;
            }
            let last: f64 = rng.gen_range(0.0..5.0);
            summary.insert(
                name.to_string(),
                SeriesSummary {
                    last,
                    min: last * 0.9,
                    max: last * 3.0,
                    count: 1000,
                    last_step: Some(999),
                },
            );
        }
        store
            .update_run(
                &run.id,
                RunPatch {
                    summary: Some(summary),
                    ..RunPatch::default()
                },
            )
            .expect("summary");
        last_id = run.id;
    }
    last_id
}

/// Appends `lines` training-like log lines to one run in batches of 5000:
/// one OOM error every 10k lines, a checkpoint line every 1000.
fn seed_logs(store: &MetaStore, log_run: &str, lines: usize, rng: &mut StdRng) {
    let words = [
        "step",
        "loss",
        "lr",
        "grad_norm",
        "tokens/s",
        "throughput",
        "epoch",
        "batch",
        "rank",
    ];
    let mut batch = Vec::with_capacity(5000);
    for i in 0..lines {
        let text = if i % 10_000 == 4321 {
            format!("RuntimeError: CUDA out of memory at step {i}; torch.cuda.OutOfMemoryError")
        } else if i % 1000 == 0 {
            format!("checkpoint saved to /ckpt/step_{i}.pt")
        } else {
            format!(
                "step {i} {} {:.4} {} {:.3e} rank {}",
                words[i % words.len()],
                rng.gen_range(0.0..5.0),
                words[(i / 7) % words.len()],
                rng.gen_range(1e-5..1e-3),
                i % 8
            )
        };
        batch.push(LogRecord {
            time: 1.7e9 + i as f64 * 0.01,
            stream: if i % 50 == 0 {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            },
            level: if i % 10_000 == 4321 {
                LogLevel::Error
            } else {
                LogLevel::Info
            },
            text,
            attributes: BTreeMap::new(),
        });
        if batch.len() == 5000 {
            store.append_logs(log_run, &batch).expect("append");
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.append_logs(log_run, &batch).expect("append");
    }
}

/// The run table's reads: sorted by a summary metric, paged, filtered.
fn time_run_lists(store: &MetaStore) {
    let sorted = RunQuery {
        sort: "-summary.train/loss.last".parse().unwrap(),
        ..RunQuery::default()
    };
    time(
        "list 50 runs by -summary.train/loss.last (all summaries)",
        || store.list_runs(sorted.clone()).unwrap().runs.len(),
    );
    let only_loss = RunQuery {
        summary_series: Some(vec!["train/loss".into()]),
        ..sorted.clone()
    };
    time(
        "list 50 runs by -summary.train/loss.last (loss only)",
        || store.list_runs(only_loss.clone()).unwrap().runs.len(),
    );
    let deep = {
        let mut q = sorted.clone();
        for _ in 0..100 {
            q.cursor = store.list_runs(q.clone()).unwrap().next_cursor;
        }
        q
    };
    time("list, page 101 of the same sort (cursor)", || {
        store.list_runs(deep.clone()).unwrap().runs.len()
    });
    let in_project = RunQuery {
        project: Some("project-3".into()),
        sort: "summary.eval/acc.max".parse().unwrap(),
        ..RunQuery::default()
    };
    time(
        "list 50 runs of one project by summary.eval/acc.max",
        || store.list_runs(in_project.clone()).unwrap().runs.len(),
    );
    time("list 50 runs, default sort (-start_time)", || {
        store.list_runs(RunQuery::default()).unwrap().runs.len()
    });
    let searched = RunQuery {
        q: Some("brave".into()),
        ..RunQuery::default()
    };
    time("list 50 runs, name substring 'brave'", || {
        store.list_runs(searched.clone()).unwrap().runs.len()
    });
}

/// Log search and log reads over the run holding every line.
fn time_log_reads(store: &MetaStore, log_run: &str, lines: usize) {
    let search = |q: &str| LogQuery {
        q: Some(q.into()),
        ..LogQuery::default()
    };
    for (label, query) in [
        (
            "log search 'OutOfMemoryError' (100 hits of 1M)",
            search("OutOfMemoryError"),
        ),
        (
            "log search 'checkpoint' (1000 hits, first 100)",
            search("checkpoint"),
        ),
        (
            "log search 'CUDA out of memory' (AND of 4 words)",
            search("CUDA out of memory"),
        ),
        ("log search 'step' (every line, first 100)", search("step")),
        ("log search 'nosuchword' (no hits)", search("nosuchword")),
        (
            "log search 'checkpoint rank' (common AND rare, no hits)",
            search("checkpoint rank"),
        ),
        (
            "log search 'checkpoint' at level >= error (no hits)",
            LogQuery {
                level: Some(LogLevel::Error),
                ..search("checkpoint")
            },
        ),
        (
            "log search 'checkpoint', newest first",
            LogQuery {
                order: loupe_meta::LogOrder::Desc,
                ..search("checkpoint")
            },
        ),
        (
            "log read, level >= error (100 of 1M lines)",
            LogQuery {
                level: Some(LogLevel::Error),
                ..LogQuery::default()
            },
        ),
        (
            "log read, 100 lines from a time window mid-run",
            LogQuery {
                from: Some(1.7e9 + lines as f64 * 0.005),
                ..LogQuery::default()
            },
        ),
        (
            "log read, last 100 lines (desc)",
            LogQuery {
                order: loupe_meta::LogOrder::Desc,
                ..LogQuery::default()
            },
        ),
    ] {
        time(label, || {
            store
                .query_logs(log_run, query.clone())
                .unwrap()
                .records
                .len()
        });
    }
}

/// Runs `f` `ITERATIONS` times after one warm-up call; prints p50 and p95.
fn time(label: &str, mut f: impl FnMut() -> usize) {
    let n = f();
    let mut ms: Vec<f64> = (0..ITERATIONS)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{label:<58} {n:>4} rows  p50 {:>7.3} ms  p95 {:>7.3} ms",
        ms[ms.len() / 2],
        ms[ms.len() * 95 / 100]
    );
}
