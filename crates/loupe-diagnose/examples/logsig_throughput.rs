//! Throughput of the log-signature scanner on one core.
//!
//! `cargo run --release -p loupe-diagnose --example logsig_throughput [LINES]`
//!
//! Scans LINES (default 1,000,000) realistic lines three times: ordinary
//! info lines only (the common case, which the keyword pre-filter should
//! let through at ≥ 1M lines/s), ordinary stderr lines with timestamps and
//! rank tags, and a mix with 1% error lines (signatures, tracebacks and
//! unknown errors that go to the template miner). Prints lines/s for each.

use loupe_diagnose::logsig::LogScanner;
use loupe_model::{LogLevel, LogStream};
use std::hint::black_box;
use std::time::Instant;

fn ordinary(i: usize) -> String {
    match i % 8 {
        0 => format!(
            "step {i} | loss {:.4} | lr 3.0e-04 | grad_norm {:.3} | tokens/s {}",
            2.0 + (i % 97) as f64 / 100.0,
            0.5 + (i % 13) as f64 / 10.0,
            120_000 + i % 5000
        ),
        1 => format!(
            "{{'loss': {:.4}, 'grad_norm': 0.6542, 'learning_rate': 4.9e-05, 'epoch': {:.2}}}",
            1.8 + (i % 50) as f64 / 100.0,
            i as f64 / 1e5
        ),
        2 => format!(
            "Epoch 1/10:  {}%|███       | {}/1563 [02:11<00:00, 11.89it/s, loss=0.412]",
            i % 100,
            i % 1563
        ),
        3 => format!(
            "node01:12345:12399 [{}] NCCL INFO Channel {:02}/32 :    0   1   2   3   4   5   6   7",
            i % 8,
            i % 32
        ),
        4 => format!(
            "[2024-05-01 12:00:{:02},123] [INFO] [logging.py:96:log_dist] [Rank 0] step={i}, skipped=0, lr=[0.0003], mom=[(0.9, 0.95)]",
            i % 60
        ),
        5 => format!(
            " iteration {i:>8}/  500000 | consumed samples: {:>12} | elapsed time per iteration (ms): 1234.5 | learning rate: 1.500E-04 | lm loss: 7.123456E+00 | loss scale: 65536.0 | grad norm: 1.234 |",
            i * 512
        ),
        6 => format!(
            "INFO 05-01 12:00:30 metrics.py:334] Avg prompt throughput: {}.5 tokens/s, Running: 12 reqs, GPU KV cache usage: 45.1%",
            i % 3000
        ),
        _ => format!(
            "INFO:     127.0.0.1:{} - \"POST /v1/completions HTTP/1.1\" 200 OK",
            40000 + i % 20000
        ),
    }
}

fn stderr_ordinary(i: usize) -> String {
    format!(
        "[rank{}]: 2024-05-01 12:00:{:02},123 INFO {}",
        i % 8,
        i % 60,
        ordinary(i)
    )
}

/// 1 in 100 is an error line (a signature, a traceback line, or an unknown error).
fn mixed(i: usize) -> (LogLevel, String) {
    if i % 100 != 99 {
        return (LogLevel::Info, ordinary(i));
    }
    let line = match (i / 100) % 8 {
        0 => "Traceback (most recent call last):".to_owned(),
        1 => format!("  File \"/opt/app/train.py\", line {}, in step", i % 500),
        2 => format!(
            "RuntimeError: CUDA out of memory. Tried to allocate {}.00 MiB (GPU 0; 79.15 GiB total capacity)",
            i % 900
        ),
        3 => format!(
            "NVRM: Xid (PCI:0000:3b:00): 79, pid={i}, name=python, GPU has fallen off the bus."
        ),
        4 => format!(
            "[2024-05-01 12:00:03,123] [INFO] [loss_scaler.py:183:update_scale] [deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 65536, reducing to 32768 {i}"
        ),
        5 => format!(
            "ERROR: failed to fetch shard {} from s3://bucket/part-{i}.tar",
            i % 1000
        ),
        6 => format!("ERROR worker {} lost heartbeat after {} s", i % 64, i % 60),
        _ => format!(
            "node01:12345:12399 [0] NCCL WARN NET/IB : Got completion from peer 10.0.0.{}<47346> with error 12",
            i % 255
        ),
    };
    (LogLevel::Error, line)
}

fn measure(name: &str, lines: &[(LogStream, LogLevel, String)]) {
    let bytes: usize = lines.iter().map(|(_, _, l)| l.len()).sum();
    // Warm up: compile the regexes and fill the caches.
    let mut s = LogScanner::new();
    for (st, lv, l) in lines.iter().take(10_000) {
        black_box(s.scan(*st, *lv, l));
    }
    let mut s = LogScanner::new();
    let start = Instant::now();
    let mut matches = 0usize;
    for (st, lv, l) in lines {
        matches += black_box(s.scan(*st, *lv, l)).len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<28} {:>10.0} lines/s  {:>7.1} MB/s  ({} lines, avg {} B, {matches} matches, {} templates)",
        lines.len() as f64 / secs,
        bytes as f64 / secs / 1e6,
        lines.len(),
        bytes / lines.len().max(1),
        s.templates().len(),
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let info: Vec<_> = (0..n)
        .map(|i| (LogStream::Stdout, LogLevel::Info, ordinary(i)))
        .collect();
    measure("ordinary info (stdout)", &info);
    drop(info);
    let tagged: Vec<_> = (0..n)
        .map(|i| (LogStream::Stderr, LogLevel::Info, stderr_ordinary(i)))
        .collect();
    measure("ordinary, prefixed (stderr)", &tagged);
    drop(tagged);
    let mix: Vec<_> = (0..n)
        .map(|i| {
            let (lv, l) = mixed(i);
            (LogStream::Stderr, lv, l)
        })
        .collect();
    measure("1% error lines (stderr)", &mix);
    drop(mix);
    // Each kind of error line alone, to see what the slow path costs.
    for k in 0..8 {
        let only: Vec<_> = (0..n / 20)
            .map(|j| {
                let (lv, l) = mixed((j * 8 + k) * 100 + 99);
                (LogStream::Stderr, lv, l)
            })
            .collect();
        let first: String = only[0].2.chars().take(40).collect();
        measure(&format!("only {first:?}"), &only);
    }
}
