//! [`run_agent`]: `loupe agent`'s loop.
//!
//! Every interval: sample the host (and the GPUs when NVML works), stamp the
//! round with one wall-clock time, add it to a [`BatchBuilder`], and hand a
//! batch to the [`Sender`] every `send_every` (5 s) or once `max_points`
//! (1000) are waiting. The sender ships it in the background; this loop
//! never waits on the network. A second thread polls the server for open
//! incidents on this host, which, with the [`LocalRules`], drives the
//! [`IntervalPolicy`]. SIGINT or SIGTERM stops the loop; what is queued is
//! flushed within `shutdown_timeout` and the rest stays in the disk buffer
//! for the next start.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loupe_client::api::IncidentQuery;
use loupe_client::{Client, ClientOptions};

use crate::AgentError;
use crate::adaptive::{IntervalPolicy, LocalRules};
use crate::batch::BatchBuilder;
use crate::gpu::GpuCollector;
use crate::host::HostCollector;
use crate::sample::Sample;
use crate::sender::{Sender, SenderConfig, SenderStats};

/// Everything `loupe agent` can be told.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Base URL of the server.
    pub server: String,
    pub token: Option<String>,
    /// The `host` label on every series.
    pub host: String,
    pub interval: Duration,
    pub fast_interval: Duration,
    /// How long attention must be clear before the interval relaxes.
    pub relax_after: Duration,
    pub buffer_dir: PathBuf,
    pub buffer_max_bytes: u64,
    /// Collect GPU metrics (when NVML is there).
    pub gpu: bool,
    /// Longest a sample waits before it is handed to the sender.
    pub send_every: Duration,
    /// Points that make a batch worth sending at once.
    pub max_points: usize,
    /// How often to ask the server about open incidents on this host.
    pub incident_poll: Duration,
    pub rules: LocalRules,
    /// Longest the final flush may take.
    pub shutdown_timeout: Duration,
    /// Install SIGINT/SIGTERM handlers that stop the loop.
    pub handle_signals: bool,
    /// Stops the loop when set (for embedding and tests).
    pub stop: Arc<AtomicBool>,
}

impl AgentConfig {
    /// Defaults: 1 s base, 100 ms fast, relax after 60 s, 256 MiB buffer,
    /// GPU on, batches every 5 s or 1000 points, incidents polled every 5 s.
    pub fn new(server: &str, host: &str, buffer_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            server: server.trim_end_matches('/').to_string(),
            token: None,
            host: host.to_string(),
            interval: Duration::from_secs(1),
            fast_interval: Duration::from_millis(100),
            relax_after: Duration::from_secs(60),
            buffer_dir,
            buffer_max_bytes: 256 << 20,
            gpu: true,
            send_every: Duration::from_secs(5),
            max_points: 1000,
            incident_poll: Duration::from_secs(5),
            rules: LocalRules::default(),
            shutdown_timeout: Duration::from_secs(5),
            handle_signals: false,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What a finished agent did.
#[derive(Debug, Clone, Copy)]
pub struct AgentSummary {
    pub rounds: u64,
    pub points: u64,
    pub sender: SenderStats,
    /// Whether the final flush delivered everything.
    pub flushed: bool,
}

/// Set by the signal handler.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNALLED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<(), AgentError> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an
        // atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(AgentError::Signal(std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

/// This machine's name, as `hostname` prints it.
pub fn hostname() -> String {
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            return h.to_string();
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(s) = std::str::from_utf8(&buf[..end])
            && !s.is_empty()
        {
            return s.to_string();
        }
    }
    "localhost".to_string()
}

use loupe_model::clock::now_s as unix_now;

/// What the poller reads of a page of incidents: whether there is one, not
/// their shape (which a newer server may extend).
#[derive(serde::Deserialize)]
struct OpenIncidents {
    incidents: Vec<serde::de::IgnoredAny>,
}

/// Polls the server for open incidents on `host` until `stop`; the answer
/// goes to `open`.
fn spawn_incident_poller(cfg: &AgentConfig, open: Arc<AtomicBool>) -> Result<(), AgentError> {
    let client = Client::new(
        &cfg.server,
        ClientOptions {
            token: cfg.token.clone(),
            timeout: Some(cfg.incident_poll.max(Duration::from_secs(1))),
            connect_timeout: None,
        },
    );
    // One is enough to know.
    let query = IncidentQuery {
        host: Some(cfg.host.clone()),
        state: Some("open".into()),
        limit: Some(1),
        ..Default::default()
    };
    let host = cfg.host.clone();
    let every = cfg.incident_poll;
    let stop = cfg.stop.clone();
    std::thread::Builder::new()
        .name("loupe-incidents".into())
        .spawn(move || {
            let mut was_open = false;
            while !stop.load(Ordering::SeqCst) && !SIGNALLED.load(Ordering::SeqCst) {
                // Any failure (no server, an older one without diagnosis)
                // means "none known".
                let now_open = client
                    .get::<OpenIncidents>("/api/v1/incidents", &query)
                    .is_ok_and(|page| !page.incidents.is_empty());
                if now_open != was_open {
                    tracing::info!(
                        "loupe agent: the server reports {} open incident(s) on {host}",
                        if now_open { "some" } else { "no" }
                    );
                    was_open = now_open;
                }
                open.store(now_open, Ordering::SeqCst);
                sleep_unless(&stop, every);
            }
        })
        .map_err(AgentError::Thread)?;
    Ok(())
}

fn stopped(stop: &AtomicBool) -> bool {
    stop.load(Ordering::SeqCst) || SIGNALLED.load(Ordering::SeqCst)
}

/// Sleeps `d`, waking every 100 ms to see whether to stop (a signal handler
/// cannot wake a condition variable, and 10 atomic loads a second cost
/// nothing measurable).
fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    loop {
        if stopped(stop) {
            return;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Runs the agent until SIGINT/SIGTERM (with `handle_signals`) or
/// `cfg.stop`; see the module docs.
pub fn run_agent(cfg: AgentConfig) -> Result<AgentSummary, AgentError> {
    if cfg.interval.is_zero() || cfg.fast_interval.is_zero() {
        return Err(AgentError::Config("intervals must be above zero".into()));
    }
    if cfg.host.is_empty() {
        return Err(AgentError::Config("the host name is empty".into()));
    }
    if cfg.handle_signals {
        install_signal_handlers()?;
    }
    let mut scfg = SenderConfig::new(&cfg.server, cfg.buffer_dir.clone());
    scfg.token = cfg.token.clone();
    scfg.buffer_max_bytes = cfg.buffer_max_bytes;
    let sender = Sender::start(scfg)?;

    let mut host = HostCollector::new();
    let mut gpu = if cfg.gpu {
        match GpuCollector::new() {
            Ok(g) => {
                tracing::info!("loupe agent: collecting {} GPU(s)", g.device_count());
                Some(g)
            }
            Err(e) => {
                tracing::info!("loupe agent: {e}");
                None
            }
        }
    } else {
        None
    };
    let incidents = Arc::new(AtomicBool::new(false));
    spawn_incident_poller(&cfg, incidents.clone())?;

    let mut policy = IntervalPolicy::new(cfg.interval, cfg.fast_interval, cfg.relax_after);
    let mut batch = BatchBuilder::new(vec![("host".to_string(), cfg.host.clone())]);
    let mut samples: Vec<Sample> = Vec::with_capacity(128);
    let (mut rounds, mut points) = (0u64, 0u64);
    let mut last_send = Instant::now();
    let mut was_fast = false;
    let mut next = Instant::now();
    tracing::info!(
        "loupe agent: host {} → {} every {:?} (fast {:?})",
        cfg.host,
        cfg.server,
        cfg.interval,
        cfg.fast_interval
    );

    while !stopped(&cfg.stop) {
        let now = Instant::now();
        samples.clear();
        host.collect_into(&mut samples);
        if let Some(g) = gpu.as_mut() {
            g.collect_into(&mut samples);
        }
        let local = cfg.rules.check(&samples);
        policy.observe(now, local.is_some() || incidents.load(Ordering::SeqCst));
        let fast = policy.is_fast(now);
        if fast != was_fast {
            match (&local, fast) {
                (Some(why), true) => tracing::info!("loupe agent: sampling fast: {why}"),
                (None, true) => tracing::info!("loupe agent: sampling fast: open incident"),
                (_, false) => tracing::info!("loupe agent: back to the base interval"),
            }
            was_fast = fast;
        }
        let interval = policy.interval(now);
        samples.push(Sample::new(
            "agent.interval_seconds",
            &[],
            interval.as_secs_f64(),
        ));
        batch.add(unix_now(), &samples);
        rounds += 1;
        points += samples.len() as u64;

        if batch.points() >= cfg.max_points || last_send.elapsed() >= cfg.send_every {
            if let Some(body) = batch.take_body() {
                sender.submit("/api/v1/metrics", body);
            }
            last_send = Instant::now();
        }

        next += interval;
        let now = Instant::now();
        if next < now {
            // Overran (a slow statvfs, a suspended VM): start afresh rather
            // than firing a burst of catch-up samples.
            next = now + interval;
        }
        sleep_unless(&cfg.stop, next - now);
    }

    tracing::info!(
        "loupe agent: stopping; flushing for up to {:?}",
        cfg.shutdown_timeout
    );
    if let Some(body) = batch.take_body() {
        sender.submit("/api/v1/metrics", body);
    }
    let stats_before = sender.stats();
    let flushed = sender.shutdown(cfg.shutdown_timeout);
    if !flushed {
        tracing::warn!(
            "loupe agent: the server did not take everything in time; the rest stays in {} for the next start",
            cfg.buffer_dir.display()
        );
    }
    Ok(AgentSummary {
        rounds,
        points,
        sender: stats_before,
        flushed,
    })
}
