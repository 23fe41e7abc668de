//! `loupe serve`: the HTTP API over the embedded store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Where data lives unless `--data` says otherwise: `$LOUPE_DATA`, else
/// `$XDG_DATA_HOME/loupe`, else `~/.local/share/loupe`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LOUPE_DATA") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("loupe");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".local/share/loupe")
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Data directory (default: $LOUPE_DATA, $XDG_DATA_HOME/loupe or ~/.local/share/loupe).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Address to listen on. Tokens are required on any non-loopback address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub addr: SocketAddr,
    /// Require tokens even on loopback.
    #[arg(long)]
    pub require_auth: bool,
    /// Also serve OTLP/gRPC (MetricsService and LogsService Export) on this
    /// address, e.g. 127.0.0.1:4317; off unless given. Plaintext; with tokens
    /// off it may only be a loopback address.
    #[arg(long, value_name = "ADDR")]
    pub otlp_grpc_listen: Option<SocketAddr>,
    /// DANGEROUS: serve a non-loopback address without tokens.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Seconds without a heartbeat before a running run is marked lost.
    #[arg(long, default_value_t = 600)]
    pub lost_after: u64,
    /// Largest request body accepted, in MiB (after decompression).
    #[arg(long, default_value_t = 64)]
    pub max_body_mib: usize,
    /// Most series in one metrics request.
    #[arg(long, default_value_t = 10_000)]
    pub max_series_per_request: usize,
    /// Most points in one metrics request.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_points_per_request: usize,
    /// Deepest JSON nesting accepted in a request body.
    #[arg(long, default_value_t = 64)]
    pub max_json_depth: usize,
    /// Most log records in one request.
    #[arg(long, default_value_t = 100_000)]
    pub max_log_records_per_request: usize,
    /// Longest log line accepted, in bytes.
    #[arg(long, default_value_t = 65_536)]
    pub max_log_text_bytes: usize,
    /// Most series one run may create; a batch that would create more is
    /// refused whole (422), points to existing series still go in. 0:
    /// unlimited. The default is five times the busiest training job Loupe
    /// is designed for (~10 000 series) and stops a runaway loop (a step
    /// number in a metric name) at about 80 MB of server memory.
    #[arg(long, default_value_t = 50_000)]
    pub max_series_per_run: u64,
    /// Most series one project may have, its runs' and its series outside
    /// runs together (422 past it). 0: unlimited. Each series costs memory
    /// while it lives (about 1.6 KB): a million is about 1.6 GB; deleting
    /// old runs frees their share.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_series_per_project: u64,
    /// Memory for request bodies in flight at once, all clients together,
    /// in MiB, charged as a body's bytes arrive and as it is decompressed.
    /// A request waits up to --body-budget-wait seconds for room (then 503
    /// with Retry-After); a body larger than all of it gets 413.
    #[arg(long, default_value_t = 256)]
    pub max_inflight_body_mib: usize,
    /// Seconds a request waits for room in --max-inflight-body-mib.
    #[arg(long, default_value_t = 10)]
    pub body_budget_wait: u64,
    /// Seconds one request may take, body read included, before it is
    /// answered 503 request_timeout (0: no bound). The live stream
    /// (/api/v1/live) is exempt.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub request_timeout: u64,
    /// PromQL (Prometheus' query API): how far back an instant selector
    /// looks for a sample, in seconds (Prometheus' --query.lookback-delta).
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub query_lookback_delta: u64,
    /// PromQL: most samples one query may load (Prometheus'
    /// --query.max-samples); past it the query is refused 422.
    #[arg(long, default_value_t = 50_000_000)]
    pub query_max_samples: usize,
    /// PromQL: seconds one query may run before it is refused 503
    /// `timeout` (keep it below --request-timeout).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub query_timeout: u64,
    /// Seconds between handing freed heap memory back to the system (0:
    /// never; to measure what it saves).
    #[arg(long, default_value_t = 5, hide = true)]
    pub malloc_trim_secs: u64,
    /// always, group (default) or never.
    #[arg(long, default_value = "group")]
    pub fsync: String,
    /// Turn live diagnosis off (no incidents, no health scores).
    #[arg(long)]
    pub no_diagnose: bool,
    /// Capacity of diagnosis' queue, in batches; a batch that does not fit
    /// is read back from the stores later (0: the default, 4096).
    #[arg(long, default_value_t = 0, hide = true)]
    pub diagnose_queue: usize,
    /// Hold diagnosis back this many milliseconds at start (a diagnoser
    /// that has fallen behind; for tests of its catch-up).
    #[arg(long, default_value_t = 0, hide = true)]
    pub diagnose_pause_ms: u64,
    #[command(flatten)]
    pub diagnose: crate::diagnose_cmd::DiagnoseSettings,
    /// Alert rules and channels (TOML; see docs/alerting.md). Built-in
    /// rules run without it.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Another name this server may be reached by (the `Host` header), besides
    /// IP addresses and localhost: `loupe.example.com`, `.example.com` for it
    /// and its subdomains, `*` for any. Repeatable. Requests for other names
    /// are refused (403), which stops DNS-rebinding pages.
    #[arg(long = "allowed-host", value_name = "NAME", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// An origin (`https://dash.example.com`) whose web pages may call the
    /// API, changes included: it gets CORS headers. Repeatable. Without it,
    /// a page from another origin can change nothing and read nothing.
    #[arg(long = "allowed-origin", value_name = "ORIGIN", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1; with
    /// --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Requests a second each token may send on average (0: no limit). A
    /// token over it gets 429 with Retry-After; requests without a token
    /// (open mode on loopback) are not limited.
    #[arg(long, default_value_t = 0.0, value_name = "PER_S")]
    pub rate_limit: f64,
    /// Requests a token may send at once above its rate (default: twice
    /// --rate-limit, at least 10).
    #[arg(long, value_name = "N")]
    pub rate_burst: Option<f64>,
    /// Most connections open at once; more are answered 503 and closed.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request's headers (also how long
    /// an idle keep-alive connection is kept).
    #[arg(long, default_value_t = 10)]
    pub header_read_timeout: u64,
    /// Seconds a request's body may take to arrive, whole (408 after).
    #[arg(long, default_value_t = 60)]
    pub body_read_timeout: u64,
    /// Scrape the Prometheus targets of this file: Prometheus' own
    /// `scrape_configs` syntax (an existing prometheus.yml works; see
    /// docs/protocols.md). Series go to the target's `loupe_project` label's
    /// project, else `default`.
    #[arg(long, value_name = "FILE")]
    pub scrape_config: Option<PathBuf>,
    /// Start even though `meta.sqlite` is missing next to existing
    /// time-series data: a new, empty one is created, so runs, logs, tokens
    /// and incidents start empty (the stored series stay, listed by no run).
    #[arg(long)]
    pub accept_missing_meta: bool,
}

/// Refuses to start an empty metadata store beside existing time-series
/// data (a lost or misplaced `meta.sqlite`), unless told to.
pub fn check_meta_present(data: &Path, accept_missing: bool) -> Result<()> {
    let manifest = data.join("tsdb").join("MANIFEST");
    let meta = data.join("meta.sqlite");
    if manifest.is_file() && !meta.exists() {
        if accept_missing {
            tracing::warn!(
                "{} is missing next to existing time-series data; starting an empty one \
                 (--accept-missing-meta)",
                meta.display()
            );
        } else {
            bail!(
                "{} is missing, but {} holds time-series data: refusing to start an empty \
                 metadata store beside it (runs, logs, tokens and incidents would be gone). \
                 Restore meta.sqlite, or start with --accept-missing-meta to create an empty one",
                meta.display(),
                data.join("tsdb").display()
            );
        }
    }
    Ok(())
}

pub fn config(a: &ServeArgs) -> Result<loupe_server::ServerConfig> {
    let mut cfg =
        loupe_server::ServerConfig::new(a.addr, a.data.clone().unwrap_or_else(default_data_dir));
    cfg.require_auth = a.require_auth;
    cfg.otlp_grpc = a.otlp_grpc_listen;
    cfg.insecure_no_auth = a.insecure_no_auth;
    cfg.lost_after = Duration::from_secs(a.lost_after);
    cfg.limits.max_body_bytes = a.max_body_mib << 20;
    cfg.limits.max_series_per_request = a.max_series_per_request;
    cfg.limits.max_points_per_request = a.max_points_per_request;
    cfg.limits.max_json_depth = a.max_json_depth;
    cfg.limits.max_log_records_per_request = a.max_log_records_per_request;
    cfg.limits.max_log_text_bytes = a.max_log_text_bytes;
    cfg.series_limits = loupe_server::ingest::SeriesLimits {
        per_run: a.max_series_per_run,
        per_project: a.max_series_per_project,
    };
    if a.max_inflight_body_mib == 0 {
        bail!("--max-inflight-body-mib must be at least 1");
    }
    cfg.body_budget = loupe_server::body_budget::BodyBudgetConfig {
        max_bytes: a.max_inflight_body_mib << 20,
        wait: Duration::from_secs(a.body_budget_wait),
    };
    cfg.request_timeout = (a.request_timeout > 0).then(|| Duration::from_secs(a.request_timeout));
    if a.query_lookback_delta == 0 || a.query_timeout == 0 {
        bail!("--query-lookback-delta and --query-timeout must be at least 1 second");
    }
    cfg.promql.lookback = Duration::from_secs(a.query_lookback_delta);
    cfg.promql.max_samples = a.query_max_samples;
    cfg.promql.timeout = Duration::from_secs(a.query_timeout);
    cfg.trim_every = (a.malloc_trim_secs > 0).then(|| Duration::from_secs(a.malloc_trim_secs));
    cfg.tsdb.fsync = a.fsync.parse().context("--fsync")?;
    cfg.alert_rules = a.rules.clone();
    cfg.scrape_config = a.scrape_config.clone();
    cfg.diagnose_queue = a.diagnose_queue;
    cfg.diagnose_pause = Duration::from_millis(a.diagnose_pause_ms);
    cfg.guard.allowed_hosts = a.allowed_hosts.clone();
    cfg.guard.allowed_origins = a.allowed_origins.clone();
    if a.max_connections == 0 {
        bail!("--max-connections must be at least 1");
    }
    cfg.conn.max_connections = a.max_connections;
    if !(a.rate_limit.is_finite() && a.rate_limit >= 0.0) {
        bail!("--rate-limit must be a number of requests a second, 0 for none");
    }
    cfg.rate_limit = (a.rate_limit > 0.0).then(|| loupe_server::rate::RateLimit {
        per_s: a.rate_limit,
        burst: a.rate_burst.unwrap_or((2.0 * a.rate_limit).max(10.0)),
    });
    cfg.tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(loupe_server::listen::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    cfg.conn.header_read_timeout = Duration::from_secs(a.header_read_timeout.max(1));
    cfg.conn.body_read_timeout = Duration::from_secs(a.body_read_timeout.max(1));
    cfg.diagnose = if a.no_diagnose {
        None
    } else {
        Some(a.diagnose.load()?)
    };
    Ok(cfg)
}

/// Blocks the calling thread until SIGTERM or SIGINT; `on_ready` runs once
/// both are being caught, so a signal sent after it is never the default,
/// fatal one.
pub fn block_until_signal(on_ready: impl FnOnce()) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut term = signal(SignalKind::terminate()).context("catching SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("catching SIGINT")?;
        on_ready();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests and flushing");
}

pub fn run(a: ServeArgs) -> Result<()> {
    let cfg = config(&a)?;
    check_meta_present(&cfg.data_dir, a.accept_missing_meta)?;
    raise_open_file_limit(cfg.conn.max_connections);
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = rt.block_on(async move {
        loupe_server::serve(cfg, shutdown_signal(), |addr| {
            // Scripts and tests read this line to find the port.
            println!("loupe serve listening on {scheme}://{addr}");
        })
        .await
    });
    // A shutdown step that overran its budget is still running on a
    // blocking thread: it is not waited for.
    rt.shutdown_timeout(Duration::from_millis(100));
    served?;
    Ok(())
}

/// Raises the soft open-file limit to the hard one (as Go's runtime does):
/// each connection is a descriptor, and the usual soft limit of 1024 is
/// below what `--max-connections` and the store need together. Warns when
/// the limit stays too low for the cap.
fn raise_open_file_limit(max_connections: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = lim.rlim_max.min(1 << 20);
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = want;
            }
        }
    }
    // Room for the store's files, the WAL, SQLite and the log.
    let needed = max_connections as u64 + 128;
    if lim.rlim_cur < needed {
        tracing::warn!(
            "the open-file limit is {} but --max-connections {max_connections} needs about \
             {needed}: connections past the limit fail to be accepted (raise it with ulimit -n \
             or LimitNOFILE=, or lower --max-connections)",
            lim.rlim_cur
        );
    }
}
