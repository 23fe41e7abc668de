//! The training-like benchmark corpus the storage numbers are measured on.
//!
//! 200k steps, 5 series per step, as a real PyTorch loop would log them:
//! - `train/loss`, `train/grad_norm`, `train/accuracy`: float32 tensors turned
//!   into Python floats by `.item()`, so f64 values with float32 precision.
//!   Accuracy is `correct / tokens` over a 16384-token batch.
//! - `train/lr`: a linear warm-up then cosine schedule, computed in f64.
//! - `train/tokens_per_sec`: `tokens / dt` in f64 (full-precision noise).
//! - Wall-clock time per step about 0.15 s, with 3% Gaussian jitter and a 1%
//!   chance of a 0.2 s pause (checkpoint, eval), read from `time.time()` as
//!   float seconds and converted to nanoseconds the way the server does.
//!
//! Seeded, so every run of a benchmark sees the same numbers.

use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};

/// One series of the corpus.
pub struct CorpusSeries {
    pub name: &'static str,
    pub values: Vec<f64>,
}

/// The whole corpus: shared steps and times, five value columns.
pub struct Corpus {
    pub steps: Vec<i64>,
    pub times_ns: Vec<i64>,
    pub series: Vec<CorpusSeries>,
}

impl Corpus {
    pub fn points(&self) -> usize {
        self.steps.len() * self.series.len()
    }
}

/// Builds the corpus with `n_steps` steps (200k for the published figures).
pub fn training_corpus(n_steps: usize, seed: u64) -> Corpus {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f64, 1.0).expect("valid normal");
    let nf = n_steps.max(1) as f64;
    let warmup = (n_steps / 100).max(1);
    let (peak_lr, min_lr) = (3e-4f64, 3e-5f64);
    let batch_tokens = 16384.0f64;

    let mut steps = Vec::with_capacity(n_steps);
    let mut times_ns = Vec::with_capacity(n_steps);
    let mut loss = Vec::with_capacity(n_steps);
    let mut grad = Vec::with_capacity(n_steps);
    let mut acc = Vec::with_capacity(n_steps);
    let mut lr = Vec::with_capacity(n_steps);
    let mut tps = Vec::with_capacity(n_steps);
    let mut t = 1_764_000_000.0f64; // Unix seconds, late 2025
    for i in 0..n_steps {
        let progress = (-(i as f64) / (nf / 10.0)).exp();
        let base_loss = 2.5 + 7.5 * progress;
        loss.push((base_loss * (1.0 + 0.02 * normal.sample(&mut rng))) as f32 as f64);
        grad.push(((1.0 + 0.15 * normal.sample(&mut rng)).abs() + 0.05 * progress) as f32 as f64);
        let p = 0.6 - 0.3 * progress;
        let correct = (p * batch_tokens + 60.0 * normal.sample(&mut rng))
            .round()
            .clamp(0.0, batch_tokens);
        acc.push((correct as f32 / batch_tokens as f32) as f64);
        lr.push(if i < warmup {
            peak_lr * (i + 1) as f64 / warmup as f64
        } else {
            let frac = (i - warmup) as f64 / (n_steps - warmup).max(1) as f64;
            min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + (std::f64::consts::PI * frac).cos())
        });
        let pause = if rng.gen_bool(0.01) { 0.2 } else { 0.0 };
        let dt = 0.15 * (1.0 + 0.03 * normal.sample(&mut rng)).max(0.5) + pause;
        t += dt;
        tps.push(batch_tokens * 32.0 / dt);
        steps.push(i as i64);
        times_ns.push(seconds_to_ns(t));
    }
    Corpus {
        steps,
        times_ns,
        series: vec![
            CorpusSeries {
                name: "train/loss",
                values: loss,
            },
            CorpusSeries {
                name: "train/grad_norm",
                values: grad,
            },
            CorpusSeries {
                name: "train/accuracy",
                values: acc,
            },
            CorpusSeries {
                name: "train/lr",
                values: lr,
            },
            CorpusSeries {
                name: "train/tokens_per_sec",
                values: tps,
            },
        ],
    }
}

/// Unix seconds as an f64 (what `time.time()` gives) to integer nanoseconds.
pub fn seconds_to_ns(t: f64) -> i64 {
    (t * 1e9).round() as i64
}
