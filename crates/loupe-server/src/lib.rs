//! Loupe's HTTP server: the one API that the SDK, CLI, UI and tests use,
//! over the embedded store (time series in `loupe-tsdb`, everything else in
//! SQLite via `loupe-meta`).
//!
//! Layers, each using only the ones below it:
//!
//! - [`routes`]: one module per resource; a handler extracts, authorises,
//!   calls a service and maps the result. [`http`] is their plumbing.
//! - services: [`ingest`] (the one write path and its fan-out),
//!   [`diagnosis`], [`alerting`], [`summary`], [`live`] — each built from
//!   the parts it needs ([`stores::Stores`], the live hub, an incident sink),
//!   never the whole [`state::AppState`].
//! - [`stores`], [`counters`], [`error`]: shared leaves.
//! - [`telemetry`]: the server's own metrics (`/metrics`); each subsystem
//!   registers its families at start-up (`register_telemetry`).
//!
//! Around the routes: [`guard`] (the `Host`, `Origin` and `Content-Type`
//! checks that keep other sites' pages out) and [`listen`] (the connection
//! loop: a cap on connections, read timeouts, a shutdown that always
//! finishes).

pub mod alerting;
pub mod auth;
pub mod body_budget;
pub mod counters;
pub mod diagnosis;
pub mod error;
pub mod guard;
pub mod http;
pub mod ingest;
pub mod listen;
pub mod live;
pub mod memory;
pub mod otlp_grpc;
pub mod promql_source;
pub mod rate;
pub mod request_timeout;
pub mod routes;
pub mod scrape;
pub mod state;
pub mod stores;
pub mod summary;
pub mod telemetry;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use loupe_ingest::Limits;
use loupe_meta::MetaStore;
use loupe_tsdb::{Tsdb, TsdbOptions};

pub use state::{AppState, AuthMode, SharedState};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// Serve HTTPS with this certificate and key (`--tls-cert/--tls-key`).
    pub tls: Option<listen::tls::TlsFiles>,
    pub data_dir: PathBuf,
    /// Require tokens even on a loopback address.
    pub require_auth: bool,
    /// Serve a non-loopback address without tokens (loudly warned about).
    pub insecure_no_auth: bool,
    pub limits: Limits,
    /// A running run without a heartbeat for this long becomes `lost`.
    pub lost_after: Duration,
    pub tsdb: TsdbOptions,
    /// Diagnosis settings; `None` turns live diagnosis off.
    pub diagnose: Option<loupe_diagnose::DiagnoseConfig>,
    /// Capacity of diagnosis' queue, in batches (0: the default, 4096).
    pub diagnose_queue: usize,
    /// Holds diagnosis back this long at start (tests of its catch-up).
    pub diagnose_pause: Duration,
    /// The alert rules and channels file (`--rules`); built-in rules run
    /// without one.
    pub alert_rules: Option<PathBuf>,
    /// The names and origins the server answers besides its own.
    pub guard: guard::GuardConfig,
    /// Connection cap, read timeouts, shutdown grace.
    pub conn: listen::ConnLimits,
    /// Most series per run and per project.
    pub series_limits: ingest::SeriesLimits,
    /// Request bodies in flight at once, server-wide.
    pub body_budget: body_budget::BodyBudgetConfig,
    /// Requests per token (`--rate-limit`); `None`: unlimited.
    pub rate_limit: Option<rate::RateLimit>,
    /// How long one handler may take (`--request-timeout`); `None`: no bound.
    pub request_timeout: Option<Duration>,
    /// How often freed heap memory is given back to the system; `None`:
    /// never (to measure what it saves).
    pub trim_every: Option<Duration>,
    /// Prometheus targets to scrape (`--scrape-config`): a
    /// `prometheus.yml`-style file.
    pub scrape_config: Option<PathBuf>,
    /// Where OTLP/gRPC listens (`--otlp-grpc-listen`); `None`: off.
    pub otlp_grpc: Option<SocketAddr>,
    /// The PromQL engine's lookback, sample limit and timeout (`--query-*`).
    pub promql: loupe_promql::EngineOptions,
}

impl ServerConfig {
    pub fn new(addr: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            addr,
            tls: None,
            data_dir,
            require_auth: false,
            insecure_no_auth: false,
            limits: Limits::default(),
            lost_after: Duration::from_secs(600),
            tsdb: TsdbOptions::default(),
            diagnose: Some(loupe_diagnose::DiagnoseConfig::default()),
            diagnose_queue: 0,
            diagnose_pause: Duration::ZERO,
            alert_rules: None,
            guard: Default::default(),
            conn: Default::default(),
            series_limits: Default::default(),
            body_budget: Default::default(),
            rate_limit: None,
            request_timeout: Some(Duration::from_secs(60)),
            trim_every: Some(memory::TRIM_EVERY),
            scrape_config: None,
            otlp_grpc: None,
            promql: loupe_promql::EngineOptions {
                // Below the default request timeout, so that a slow query is
                // answered in Prometheus' words, not the server's.
                timeout: Duration::from_secs(30),
                ..Default::default()
            },
        }
    }

    /// Tokens are needed unless the server listens only on loopback, or the
    /// operator turned them off explicitly.
    pub fn auth_mode(&self) -> AuthMode {
        if self.require_auth {
            AuthMode::Tokens
        } else if self.addr.ip().is_loopback() || self.insecure_no_auth {
            AuthMode::Open
        } else {
            AuthMode::Tokens
        }
    }
}

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("opening the time-series store: {0}")]
    Tsdb(#[from] loupe_tsdb::Error),
    #[error("opening the metadata store: {0}")]
    Meta(#[from] loupe_meta::Error),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The final flush failed (a full disk): acknowledged points are safe in
    /// the WAL, and the next start replays them.
    #[error(
        "flushing the time-series store at shutdown (every acknowledged point is in its write-ahead log; the next start replays it): {0}"
    )]
    Closing(loupe_tsdb::Error),
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error("counting the stored series: {0}")]
    SeriesCount(#[from] ingest::IngestError),
    #[error("alerting: {0}")]
    Alerting(#[from] alerting::AlertingError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] listen::tls::TlsError),
}

/// At shutdown, how long the scrapers may take to stop.
const SCRAPERS_SHUTDOWN: Duration = Duration::from_millis(500);
/// At shutdown, how long OTLP/gRPC exports in progress may take to finish.
const GRPC_SHUTDOWN: Duration = Duration::from_secs(1);

/// At shutdown, how long alert delivery may take to stop.
const ALERTS_SHUTDOWN: Duration = Duration::from_millis(500);
/// Diagnosis must have stopped this long after shutdown began; the
/// engine's close follows (SIGTERM to exit stays within 5 s).
const DIAGNOSIS_SHUTDOWN_BY: Duration = Duration::from_millis(3500);

/// Runs a blocking shutdown step; past `budget` it is left running (the
/// process exits without it) and a warning says so.
async fn within(what: &str, budget: Duration, f: impl FnOnce() + Send + 'static) {
    let task = tokio::task::spawn_blocking(f);
    if tokio::time::timeout(budget, task).await.is_err() {
        tracing::warn!("{what}: not finished {budget:?} into shutdown; exiting without it");
    }
}

/// The stores of a data directory: `DIR/tsdb` and `DIR/meta.sqlite`.
pub fn open_stores(cfg: &ServerConfig) -> Result<(Tsdb, MetaStore), ServerError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| ServerError::Bind {
        addr: cfg.addr,
        source: e,
    })?;
    let tsdb = Tsdb::open(cfg.data_dir.join("tsdb"), cfg.tsdb.clone())?;
    let meta = MetaStore::open(&cfg.data_dir.join("meta.sqlite"), Default::default())?;
    Ok((tsdb, meta))
}

/// Binds, serves until `shutdown` resolves, then flushes everything.
/// `on_ready` receives the bound address (useful with port 0).
pub async fn serve(
    cfg: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr) + Send,
) -> Result<(), ServerError> {
    let auth = cfg.auth_mode();
    if auth == AuthMode::Open && !cfg.addr.ip().is_loopback() {
        tracing::warn!(
            addr = %cfg.addr,
            "AUTHENTICATION IS OFF on a non-loopback address (--insecure-no-auth): anyone who can reach this port can read and write everything"
        );
    }
    let guard = cfg
        .guard
        .clone()
        .normalized()
        .map_err(ServerError::Config)?;
    // A bad scrape config stops the start, before anything is opened.
    let scrape_cfg = match &cfg.scrape_config {
        Some(path) => Some(scrape::load(path).map_err(|e| ServerError::Config(e.to_string()))?),
        None => None,
    };
    let (tsdb, meta) = open_stores(&cfg)?;
    let alerts = Arc::new(alerting::Alerting::open(
        &cfg.data_dir,
        cfg.alert_rules.as_deref(),
        &meta,
    )?);
    log_open_report(&tsdb);
    let stores = stores::Stores {
        tsdb: tsdb.clone(),
        meta: Arc::new(meta),
    };
    let fanout = ingest::Fanout {
        counters: Default::default(),
        summaries: Default::default(),
        live: Default::default(),
        diagnosis: Arc::new(diagnosis::Diagnosis::new(
            cfg.diagnose.clone(),
            cfg.diagnose_queue,
        )),
    };
    let started = std::time::Instant::now();
    let guard = Arc::new(guard::Guard::new(guard));
    let conn_metrics = listen::ConnMetrics::default();
    let ingest = ingest::Ingest::new(
        stores.clone(),
        cfg.limits.clone(),
        cfg.series_limits,
        fanout.clone(),
    )?;
    let body_budget = Arc::new(body_budget::BodyBudget::new(
        cfg.body_budget,
        cfg.limits.max_body_bytes,
        fanout.counters.clone(),
    ));
    let scrape_metrics = Arc::new(scrape::ScrapeMetrics::default());
    let telemetry = register_telemetry(TelemetrySources {
        scrape: &scrape_metrics,
        started,
        stores: &stores,
        fanout: &fanout,
        alerts: &alerts,
        guard: &guard,
        connections: &conn_metrics,
        body_budget: &body_budget,
    });
    let state: SharedState = Arc::new(AppState {
        tsdb: tsdb.clone(),
        meta: stores.meta.clone(),
        limits: cfg.limits.clone(),
        auth,
        live: fanout.live.clone(),
        summaries: fanout.summaries.clone(),
        metrics: fanout.counters.clone(),
        lost_after: cfg.lost_after,
        started,
        diagnosis: fanout.diagnosis.clone(),
        alerts: alerts.clone(),
        ingest,
        body_budget,
        rate: cfg.rate_limit.map(|l| Arc::new(rate::RateLimiter::new(l))),
        request_timeout: Arc::new(request_timeout::RequestTimeout {
            limit: cfg.request_timeout,
            metrics: fanout.counters.clone(),
        }),
        telemetry,
        promql: loupe_promql::Engine::new(cfg.promql.clone()),
    });
    state.diagnosis.start(
        diagnosis::DiagnosisDeps {
            stores: stores.clone(),
            live: fanout.live.clone(),
            incidents: alerts.clone(),
        },
        cfg.diagnose_pause,
    );
    let tls = match &cfg.tls {
        Some(files) => Some(files.acceptor()?),
        None => None,
    };
    let listener =
        tokio::net::TcpListener::bind(cfg.addr)
            .await
            .map_err(|e| ServerError::Bind {
                addr: cfg.addr,
                source: e,
            })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    let grpc_listener = match cfg.otlp_grpc {
        Some(addr) => {
            otlp_grpc::check_open_addr(addr, auth == AuthMode::Tokens, cfg.insecure_no_auth)
                .map_err(ServerError::Config)?;
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ServerError::Bind { addr, source: e })?;
            tracing::info!(addr = %l.local_addr().map_err(ServerError::Serve)?, "OTLP/gRPC listening");
            Some(l)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %local, scheme, auth = ?auth, data = %cfg.data_dir.display(), "loupe serve listening");
    // Summaries a crash cut off before they reached SQLite are rebuilt.
    state.summaries.mark_all(&state.tsdb);
    let background = tokio::spawn(background_tasks(state.clone(), cfg.trim_every));
    let alert_loop = tokio::spawn(alerting::run(alerts, stores, fanout.live.clone()));
    let scraping = scrape_cfg
        .map(|c| scrape::Scraping::start(c, state.ingest.clone(), scrape_metrics.clone()));
    on_ready(local);
    let app = routes::router(state.clone())
        .layer(axum::middleware::from_fn_with_state(guard, guard::check));
    // When shutdown began: the steps after the connections share what is
    // left of the budget.
    let began = Arc::new(std::sync::OnceLock::new());
    let b = began.clone();
    // The gRPC listener stops when the API's does.
    let (stop_grpc, mut grpc_stopping) = tokio::sync::watch::channel(false);
    let grpc = grpc_listener.map(|l| {
        tokio::spawn(otlp_grpc::serve(l, state.clone(), async move {
            let _ = grpc_stopping.changed().await;
        }))
    });
    listen::serve(
        listener,
        app,
        cfg.conn.clone(),
        tls,
        conn_metrics,
        async move {
            shutdown.await;
            let _ = b.set(std::time::Instant::now());
            let _ = stop_grpc.send(true);
        },
    )
    .await;
    if let Some(grpc) = grpc {
        // Exports in progress finish (each is one bounded request); past
        // the grace the task is dropped, as the API's connections are.
        match tokio::time::timeout(GRPC_SHUTDOWN, grpc).await {
            Ok(Ok(Err(e))) => tracing::warn!("OTLP/gRPC: {e}"),
            Err(_) => tracing::warn!(
                "OTLP/gRPC: exports still running {GRPC_SHUTDOWN:?} into shutdown; stopping without them"
            ),
            _ => {}
        }
    }
    let began = began.get().copied().unwrap_or_else(std::time::Instant::now);
    background.abort();
    alert_loop.abort();
    if let Some(s) = scraping {
        s.stop(SCRAPERS_SHUTDOWN).await;
    }
    wind_down(state, began).await
}

/// What opening the engine found: torn WAL tails (expected after a crash)
/// and damage in acknowledged data (an error).
fn log_open_report(tsdb: &Tsdb) {
    let report = tsdb.open_report();
    for t in &report.torn {
        tracing::warn!("{t}");
    }
    for d in &report.damaged {
        tracing::error!(
            "damaged data found on open (counted in loupe_tsdb_damage_found_total): {d}"
        );
    }
}

/// After the connections: alert delivery, summaries and diagnosis within
/// what is left of the shutdown budget, then the engine's close in full.
async fn wind_down(state: SharedState, began: std::time::Instant) -> Result<(), ServerError> {
    // A delivery in progress stays in the durable queue and is retried at
    // the next start.
    let s = state.clone();
    within("alert delivery", ALERTS_SHUTDOWN, move || {
        s.alerts.shutdown()
    })
    .await;
    flush_summaries(&state);
    let left = DIAGNOSIS_SHUTDOWN_BY
        .saturating_sub(began.elapsed())
        .max(Duration::from_millis(200));
    let s = state.clone();
    within(
        "diagnosis (incidents from the last batches may be missing)",
        left,
        move || s.diagnosis.shutdown(),
    )
    .await;
    // The engine's close is never cut short: it is what "everything
    // flushed" means (the WAL already holds every acknowledged point).
    let t = state.tsdb.clone();
    tokio::task::spawn_blocking(move || t.close())
        .await
        .map_err(|e| ServerError::Serve(std::io::Error::other(e)))?
        .map_err(ServerError::Closing)?;
    tracing::info!("loupe serve stopped; everything flushed");
    Ok(())
}

/// What the subsystems that register families in `/metrics` are made of.
struct TelemetrySources<'a> {
    started: std::time::Instant,
    stores: &'a stores::Stores,
    fanout: &'a ingest::Fanout,
    alerts: &'a Arc<alerting::Alerting>,
    guard: &'a guard::Guard,
    connections: &'a listen::ConnMetrics,
    body_budget: &'a body_budget::BodyBudget,
    scrape: &'a scrape::ScrapeMetrics,
}

/// `/metrics`' registry: every subsystem registers its own families, once,
/// before the server answers anything.
fn register_telemetry(s: TelemetrySources<'_>) -> telemetry::Telemetry {
    let mut t = telemetry::Telemetry::default();
    let r = t.registry();
    s.fanout.counters.register(r);
    r.register_collector(Box::new(stores::telemetry::StoreCollector::new(
        s.stores.tsdb.clone(),
        s.stores.meta.path(),
    )));
    r.register_collector(Box::new(live::SubscriberGauge(s.fanout.live.clone())));
    s.guard.register(r);
    s.connections.register(r);
    s.body_budget.register(r);
    s.scrape.register(r);
    r.register_collector(Box::new(telemetry::process::ProcessCollector::new(
        s.started,
    )));
    diagnosis::telemetry::register(&s.fanout.diagnosis, &mut t);
    alerting::telemetry::register(s.alerts, &mut t);
    t
}

/// Writes the summaries of the series marked dirty, computed from the
/// engine, in one transaction. Runs that received points get a heartbeat too
/// (fresh points mean the run is alive); summaries rebuilt at start do not
/// touch status.
fn flush_summaries(st: &SharedState) {
    let mut updates = Vec::new();
    let mut pending = Vec::new();
    for (run, series) in st.summaries.take() {
        match summary::compute(&st.tsdb, &run, &series) {
            Ok(items) => {
                let alive = st.summaries.take_alive(&run);
                updates.push(loupe_meta::SummaryUpdate {
                    run: run.clone(),
                    summary: items,
                    alive,
                });
                pending.push((run, series));
            }
            Err(e) => {
                tracing::warn!(run = %run, "could not compute run summary, will retry: {e}");
                st.summaries.restore(&run, series);
            }
        }
    }
    if updates.is_empty() {
        return;
    }
    // Deleted runs come back as missing and are simply dropped.
    if let Err(e) = st.meta.store_summaries(&updates) {
        tracing::warn!("could not store run summaries, will retry: {e}");
        for (run, series) in pending {
            st.summaries.restore(&run, series);
        }
    }
}

async fn background_tasks(st: SharedState, trim_every: Option<Duration>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut lost_check = 0u32;
    let mut last_trim = std::time::Instant::now();
    loop {
        tick.tick().await;
        let s = st.clone();
        let _ = tokio::task::spawn_blocking(move || flush_summaries(&s)).await;
        if trim_every.is_some_and(|every| last_trim.elapsed() >= every) {
            last_trim = std::time::Instant::now();
            let _ = tokio::task::spawn_blocking(memory::give_back).await;
        }
        lost_check += 1;
        if lost_check >= 5 {
            lost_check = 0;
            let s = st.clone();
            let timeout = st.lost_after.as_secs_f64();
            let lost = tokio::task::spawn_blocking(move || {
                s.meta.mark_lost_runs(loupe_model::clock::now_s(), timeout)
            })
            .await;
            if let Ok(Ok(ids)) = lost {
                for id in ids {
                    let lost = loupe_api::LiveStatus {
                        status: loupe_model::RunStatus::Lost,
                        created: None,
                    };
                    st.live.publish(&id, loupe_api::LivePayload::Status(lost));
                }
            }
        }
    }
}
