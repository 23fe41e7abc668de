//! `loupe serve --scrape-config FILE`: Loupe scrapes Prometheus targets
//! itself, from Prometheus' own `scrape_configs` (read by
//! `loupe_ingest::scrape_config`).
//!
//! ```text
//! job task (one per job) ── targets: static_configs + file_sd_configs, relabelled
//!    └─ target task (one per target): every interval, jittered
//!         fetch ─► decode (text 0.0.4 / OpenMetrics) ─► assemble ─► Ingest::scraped
//! ```
//!
//! Scraped series are series outside runs, stored through the one ingest
//! path under the target's `loupe_project` label or else the project
//! `default`. A job with `file_sd_configs` looks at its files every second
//! (and re-reads them every `refresh_interval` regardless): targets that
//! appear start, targets that leave end with staleness markers. A file
//! that stops parsing keeps its last good targets (with a warning), as
//! Prometheus does.
//!
//! Shutdown: [`Scraping::stop`] ends every loop (no markers are written
//! at shutdown) within a budget the server's SIGTERM promise allows.

mod assemble;
mod client;
mod target;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loupe_ingest::scrape_config::{
    ScrapeFile, ScrapeJob, ScrapeTarget, TargetGroup, parse_target_groups,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ingest::Ingest;
use assemble::TargetSpec;
use target::{Stop, TargetRun};

/// The project scraped series go to when their target names none.
pub const DEFAULT_PROJECT: &str = "default";

/// How often a job looks at its file-SD files for changes.
const FILE_SD_POLL: Duration = Duration::from_secs(1);

/// `/metrics`' scrape families (registered whether or not anything is
/// scraped, so dashboards find them).
#[derive(Debug, Default)]
pub struct ScrapeMetrics {
    pub targets: Gauge,
    pub scrapes: Counter,
    pub failures: Counter,
    pub samples: Counter,
    pub stale_markers: Counter,
    pub exemplars_dropped: Counter,
}

impl ScrapeMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "loupe_scrape_targets",
            "Targets being scraped (--scrape-config)",
            self.targets.clone(),
        );
        let counters = [
            ("loupe_scrape_scrapes", "Scrapes attempted", &self.scrapes),
            (
                "loupe_scrape_failures",
                "Scrapes that failed (up 0): unreachable, an error status, a bad body, a limit",
                &self.failures,
            ),
            (
                "loupe_scrape_samples",
                "Scraped samples stored (after metric relabelling)",
                &self.samples,
            ),
            (
                "loupe_scrape_stale_markers",
                "Staleness markers written for series or targets that went away",
                &self.stale_markers,
            ),
            (
                "loupe_scrape_exemplars_dropped",
                "OpenMetrics exemplars read and not stored",
                &self.exemplars_dropped,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
    }
}

/// Why scraping could not start.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] loupe_ingest::scrape_config::ConfigError),
    #[error("{file}: job {job:?}: {message}")]
    Targets {
        file: String,
        job: String,
        message: String,
    },
}

/// Reads and checks a scrape config file, its static targets included;
/// warns once about the sections Loupe does not read.
pub fn load(path: &Path) -> Result<ScrapeFile, ScrapeConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScrapeConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let cfg = loupe_ingest::scrape_config::parse_scrape_file(&text, &file)?;
    if !cfg.ignored_sections.is_empty() {
        tracing::warn!(
            "{file}: sections not read by Loupe's scraper, ignored: {}",
            cfg.ignored_sections.join(", ")
        );
    }
    for job in &cfg.jobs {
        job.targets(&job.static_configs)
            .map_err(|message| ScrapeConfigError::Targets {
                file: file.clone(),
                job: job.job_name.clone(),
                message,
            })?;
    }
    Ok(cfg)
}

/// The running scrapers.
pub struct Scraping {
    shutdown: watch::Sender<bool>,
    jobs: Vec<JoinHandle<()>>,
}

impl Scraping {
    /// Starts one task per job (and per target) on the current runtime.
    pub fn start(cfg: ScrapeFile, ingest: Ingest, metrics: Arc<ScrapeMetrics>) -> Scraping {
        let (shutdown, rx) = watch::channel(false);
        let external = Arc::new(cfg.global.external_labels.clone());
        let jobs = cfg
            .jobs
            .into_iter()
            .map(|job| {
                let j = JobRun {
                    job: Arc::new(job),
                    external: external.clone(),
                    ingest: ingest.clone(),
                    metrics: metrics.clone(),
                };
                tokio::spawn(j.run(rx.clone()))
            })
            .collect();
        Scraping { shutdown, jobs }
    }

    /// Ends every scrape loop; past `budget` the rest are aborted (a
    /// store write already under way finishes; nothing new starts).
    pub async fn stop(self, budget: Duration) {
        let _ = self.shutdown.send(true);
        let aborts: Vec<_> = self.jobs.iter().map(|j| j.abort_handle()).collect();
        let all = futures::future::join_all(self.jobs);
        if tokio::time::timeout(budget, all).await.is_err() {
            tracing::warn!("scrapers not stopped {budget:?} into shutdown; aborting them");
            for a in aborts {
                a.abort();
            }
        }
    }
}

struct JobRun {
    job: Arc<ScrapeJob>,
    external: Arc<Vec<(String, String)>>,
    ingest: Ingest,
    metrics: Arc<ScrapeMetrics>,
}

struct Running {
    stop: watch::Sender<Stop>,
    task: AbortOnDrop,
}

/// A target's task, aborted when its job's task is (a shutdown past its
/// budget must not leave loops appending to a store being closed).
struct AbortOnDrop(Option<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

impl JobRun {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut running: BTreeMap<ScrapeTarget, Running> = BTreeMap::new();
        let mut sd = FileSdState::default();
        let mut first = true;
        loop {
            if first || !self.job.file_sd.is_empty() {
                let groups = if self.job.file_sd.is_empty() {
                    Some(self.job.static_configs.clone())
                } else {
                    let job = self.job.clone();
                    let mut state = std::mem::take(&mut sd);
                    let (state, changed) = tokio::task::spawn_blocking(move || {
                        let changed = state.poll(&job);
                        (state, changed)
                    })
                    .await
                    .unwrap_or_default();
                    sd = state;
                    (changed || first).then(|| {
                        let mut g = self.job.static_configs.clone();
                        g.extend(sd.groups.values().flatten().cloned());
                        g
                    })
                };
                if let Some(groups) = groups {
                    self.apply(&groups, &mut running);
                }
                first = false;
            }
            tokio::select! {
                _ = tokio::time::sleep(FILE_SD_POLL) => {}
                _ = shutdown.changed() => break,
            }
        }
        for r in running.values() {
            let _ = r.stop.send(Stop::Shutdown);
        }
        for (_, mut r) in running {
            if let Some(t) = r.task.0.take() {
                let _ = t.await;
            }
        }
    }

    /// Starts the targets of `groups` not yet running, ends those gone.
    fn apply(&self, groups: &[TargetGroup], running: &mut BTreeMap<ScrapeTarget, Running>) {
        let wanted: BTreeSet<ScrapeTarget> = match self.job.targets(groups) {
            Ok(t) => t.into_iter().collect(),
            Err(e) => {
                tracing::warn!(job = %self.job.job_name, "targets not updated: {e}");
                return;
            }
        };
        let gone: Vec<ScrapeTarget> = running
            .keys()
            .filter(|t| !wanted.contains(*t))
            .cloned()
            .collect();
        for t in gone {
            if let Some(mut r) = running.remove(&t) {
                let _ = r.stop.send(Stop::Removed);
                // Detached, not aborted: it writes its staleness markers
                // and ends on its own.
                drop(r.task.0.take());
                self.metrics.targets.dec();
            }
        }
        for t in wanted {
            if running.contains_key(&t) {
                continue;
            }
            let spec = Arc::new(TargetSpec {
                project: t
                    .project
                    .clone()
                    .unwrap_or_else(|| DEFAULT_PROJECT.to_string()),
                target: t.clone(),
                job: self.job.clone(),
                external_labels: self.external.clone(),
            });
            let limit = match self.job.body_size_limit {
                0 => self.ingest.limits().max_body_bytes,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            };
            let (stop, rx) = watch::channel(Stop::No);
            let run = TargetRun {
                spec,
                ingest: self.ingest.clone(),
                metrics: self.metrics.clone(),
                body_limit: limit,
            };
            let task = tokio::spawn(target::run(run, rx));
            self.metrics.targets.inc();
            running.insert(
                t,
                Running {
                    stop,
                    task: AbortOnDrop(Some(task)),
                },
            );
        }
    }
}

/// What a job's file-SD files held when last read.
#[derive(Default)]
struct FileSdState {
    /// Per file: its modification time and length when read.
    stamps: BTreeMap<PathBuf, (Option<SystemTime>, u64)>,
    /// Per file: its last good target groups.
    groups: BTreeMap<PathBuf, Vec<TargetGroup>>,
    last_full_read: Option<std::time::Instant>,
}

impl FileSdState {
    /// Looks at the job's files; re-reads those that changed (or all, once
    /// `refresh_interval` has passed). True when the targets may differ.
    fn poll(&mut self, job: &ScrapeJob) -> bool {
        let mut files = BTreeSet::new();
        let mut refresh = Duration::MAX;
        for sd in &job.file_sd {
            refresh = refresh.min(sd.refresh_interval);
            for pattern in &sd.files {
                match glob::glob(pattern) {
                    Ok(paths) => files.extend(paths.flatten()),
                    Err(e) => {
                        tracing::warn!(job = %job.job_name, "file_sd pattern {pattern:?}: {e}")
                    }
                }
            }
        }
        let full = self.last_full_read.is_none_or(|t| t.elapsed() >= refresh);
        if full {
            self.last_full_read = Some(std::time::Instant::now());
        }
        let mut changed = false;
        let before = self.groups.len();
        self.groups.retain(|p, _| files.contains(p));
        self.stamps.retain(|p, _| files.contains(p));
        changed |= before != self.groups.len();
        for path in files {
            let stamp = std::fs::metadata(&path)
                .map(|m| (m.modified().ok(), m.len()))
                .unwrap_or((None, 0));
            if !full && self.stamps.get(&path) == Some(&stamp) {
                continue;
            }
            self.stamps.insert(path.clone(), stamp);
            let read = std::fs::read(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|b| {
                    parse_target_groups(&b, &path.display().to_string()).map_err(|e| e.to_string())
                });
            match read {
                Ok(g) => {
                    if self.groups.get(&path) != Some(&g) {
                        self.groups.insert(path, g);
                        changed = true;
                    }
                }
                Err(e) => tracing::warn!(
                    job = %job.job_name,
                    "file_sd: {e} (keeping the file's last good targets)"
                ),
            }
        }
        changed
    }
}
