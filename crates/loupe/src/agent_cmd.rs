//! `loupe agent`: the host and GPU collector (see `loupe_agent::agent`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::client::ServerArgs;

#[derive(clap::Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Base sampling interval (e.g. 1s, 500ms, 2m).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Interval while something needs attention (an open incident on this
    /// host, a hot GPU, memory nearly gone, an Xid error).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub fast_interval: Duration,
    /// How long attention must be clear before going back to --interval.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub relax_after: Duration,
    /// The `host` label of every series (default: this machine's hostname).
    #[arg(long)]
    pub host: Option<String>,
    /// Where batches wait while the server is away (default:
    /// $XDG_STATE_HOME/loupe/agent or ~/.local/state/loupe/agent).
    #[arg(long)]
    pub buffer_dir: Option<PathBuf>,
    /// Most bytes the buffer may hold on disk; the oldest batches go first.
    #[arg(long, default_value_t = 256 << 20)]
    pub buffer_max_bytes: u64,
    /// Do not load NVML (no GPU metrics).
    #[arg(long)]
    pub no_gpu: bool,
    /// Longest a sample waits before its batch is sent (a batch also goes
    /// once 1000 points are waiting).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub send_every: Duration,
    /// Longest the final flush may take on SIGINT/SIGTERM.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

/// `$XDG_STATE_HOME/loupe/agent`, else `~/.local/state/loupe/agent`: the
/// buffer is state of this machine's agent, not data of a server.
fn default_buffer_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("loupe/agent");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".local/state/loupe/agent")
}

/// `250ms`, `1s`, `1.5s`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 1s or 200ms"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

pub fn run(args: AgentArgs) -> Result<()> {
    if args.interval.is_zero() || args.fast_interval.is_zero() {
        bail!("--interval and --fast-interval must be above zero");
    }
    let host = args.host.unwrap_or_else(loupe_agent::hostname);
    let buffer_dir = args.buffer_dir.unwrap_or_else(default_buffer_dir);
    let mut cfg = loupe_agent::AgentConfig::new(&args.server.server, &host, buffer_dir);
    cfg.token = args.server.token;
    cfg.interval = args.interval;
    cfg.fast_interval = args.fast_interval;
    cfg.relax_after = args.relax_after;
    cfg.buffer_max_bytes = args.buffer_max_bytes;
    cfg.gpu = !args.no_gpu;
    cfg.shutdown_timeout = args.shutdown_timeout;
    cfg.send_every = args.send_every;
    cfg.handle_signals = true;
    let summary = loupe_agent::run_agent(cfg).context("loupe agent")?;
    tracing::info!(
        "loupe agent: {} rounds, {} points; sent {} batches, spooled {}, dropped {}",
        summary.rounds,
        summary.points,
        summary.sender.sent,
        summary.sender.spooled,
        summary.sender.dropped
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("1 fortnight").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
