//! `loupe run [OPTIONS] -- CMD ARGS...`: runs a command as a Loupe run with
//! no code in it (the supervisor is `loupe_agent::supervise`; metrics come
//! from its output through `loupe_ingest::LineMetricExtractor`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use loupe_agent::supervise::{LineMetricFn, SuperviseConfig, supervise};
use loupe_ingest::LineMetricExtractor;
use loupe_model::run_url;

use crate::client::ServerArgs;
use steps::StepFiller;

mod steps;

#[derive(clap::Args, Debug)]
#[command(
    trailing_var_arg = true,
    after_help = "Examples:\n  loupe run -- python train.py --lr 3e-4\n  loupe run --project nlp --tag baseline -- torchrun --nproc-per-node 8 train.py\n\nThe command's output still reaches the terminal unchanged; a progress bar redrawn with \\r is logged once, in its last state. The run's page in the UI is printed at the start and at the end. The exit code is the command's (128+N when signal N killed it).\n\nSteps of metrics found in the output: a line that names its step (`step 7 loss=…`, a tqdm bar's count) keeps it; a line without one (a Hugging Face Trainer's {'loss': …, 'epoch': …}) takes the highest step seen so far in the output (the Trainer's bar counts global steps), or, before any step was seen, its arrival order (0, 1, 2, …)."
)]
pub struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Project of the run.
    #[arg(long, env = "LOUPE_PROJECT")]
    project: Option<String>,
    /// Name of the run (default: the script's name and the run id).
    #[arg(long)]
    name: Option<String>,
    /// A tag (repeat for several).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Group of runs (default: from LOUPE_GROUP, torchrun or SLURM).
    #[arg(long)]
    group: Option<String>,
    /// A regular expression whose named groups are metrics, e.g.
    /// 'it (?P<step>\d+) ppl (?P<ppl>[0-9.]+)' (repeat for several; the group
    /// `step` is the step).
    #[arg(long = "metric-pattern", value_name = "REGEX")]
    metric_patterns: Vec<String>,
    /// How often to sample the process tree, the host and the GPUs
    /// (e.g. 1s, 500ms, 2m).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Send the output as logs only; find no metrics in it.
    #[arg(long)]
    no_capture_metrics: bool,
    /// Do not sample GPUs.
    #[arg(long)]
    no_gpu: bool,
    /// Where undelivered data waits for `loupe sync` (as the Python SDK's
    /// runs: DIR/run-ID).
    #[arg(long, env = "LOUPE_DIR", default_value = "loupe")]
    dir: PathBuf,
    /// Longest wait after the command ends for the server to take
    /// everything; what it has not taken by then waits for `loupe sync`.
    #[arg(long, env = "LOUPE_RUN_FLUSH_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    flush_timeout: Duration,
    /// The command and its arguments (after `--`).
    #[arg(required = true, num_args = 1.., value_name = "CMD", allow_hyphen_values = true)]
    command: Vec<OsString>,
}

/// `1s`, `500ms`, `2m`, `0.5s`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 1s or 500ms"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{s:?}: must be more than 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A metric parser for one stream; `steps` is shared by both streams.
fn extractor(patterns: &[String], steps: &Arc<Mutex<StepFiller>>) -> Result<LineMetricFn> {
    let mut ex = LineMetricExtractor::new(patterns)?;
    let steps = Arc::clone(steps);
    Ok(Box::new(move |line: &str| {
        let m = ex.extract(line)?;
        let step = steps.lock().unwrap_or_else(|e| e.into_inner()).fill(m.step);
        Some((Some(step), m.values))
    }))
}

/// Runs the command; returns the exit code to exit with.
pub fn run(args: RunArgs) -> Result<i32> {
    let mut cfg = SuperviseConfig::new(args.command, &args.server.server);
    cfg.token = args.server.token;
    cfg.project = args.project;
    cfg.name = args.name;
    cfg.tags = args.tags;
    cfg.group = args.group;
    cfg.interval = args.interval;
    cfg.gpu = !args.no_gpu;
    cfg.dir = args.dir;
    cfg.flush_timeout = args.flush_timeout;
    if !args.no_capture_metrics {
        // Checked before the command starts: a bad pattern is a usage error.
        let steps = Arc::new(Mutex::new(StepFiller::default()));
        cfg.stdout_metrics = Some(extractor(&args.metric_patterns, &steps)?);
        cfg.stderr_metrics = Some(extractor(&args.metric_patterns, &steps)?);
    }
    let server = cfg.server.clone();
    let start_server = server.clone();
    cfg.on_start = Some(Box::new(move |run: &str| {
        eprintln!("loupe run: {}", run_url(&start_server, run));
    }));
    let out = supervise(cfg).context("loupe run")?;
    eprintln!(
        "loupe run: {} {}",
        out.status,
        run_url(&server, &out.run_id)
    );
    if let Some(e) = &out.spawn_error {
        eprintln!("loupe run: {e}");
    }
    if out.refused > 0 {
        eprintln!(
            "loupe run: the server at {server} refused {} requests for run {} (check the token and project)",
            out.refused, out.run_id
        );
    }
    if !out.delivered {
        eprintln!(
            "loupe run: not everything reached {server}; it is kept in {} — upload it with `loupe sync {}`",
            out.run_dir.display(),
            out.run_dir.display()
        );
    }
    Ok(out.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(
            parse_duration("0s").is_err()
                && parse_duration("3 parsecs").is_err()
                && parse_duration("x").is_err()
        );
    }
}
