//! The engine: opening a data directory, and the shared state that the
//! write path ([`commit`]), flushes ([`flush`]) and reads ([`read`]) use.

mod commit;
pub(crate) mod flush;
pub(crate) mod flush_report {
    pub use super::flush::{LostChunk, RetentionReport};
}
mod read;
pub(crate) mod recover;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::catalog::Catalog;
use crate::head::HeadMap;
use crate::manifest::Manifest;
use crate::metrics::EngineMetrics;
use crate::page_cache::PageCache;
use crate::segment::{Segment, segment_path};
use crate::types::TsdbOptions;
use crate::wal::{TornTail, WalFile};
use crate::{Error, Result, fsutil};

pub use commit::CommitQueue;

/// What the engine reads from: published segments, heads being flushed, and
/// the active head. Replaced whole (copy-on-write), so a reader holds a
/// consistent view without blocking writers or flushes.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    /// Oldest first.
    pub segments: Vec<Arc<Segment>>,
    /// Oldest first.
    pub frozen: Vec<Arc<HeadMap>>,
    pub active: Arc<HeadMap>,
}

/// The WAL file being appended to.
pub(crate) struct WalState {
    pub file: WalFile,
    /// Set when a failed write could not be cut back; the next append starts
    /// a new file first.
    pub needs_new_file: bool,
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub wal_dir: PathBuf,
    pub seg_dir: PathBuf,
    pub opts: TsdbOptions,
    pub catalog: RwLock<Catalog>,
    pub version: RwLock<Arc<Version>>,
    pub wal: Mutex<WalState>,
    pub commits: CommitQueue,
    pub manifest: Mutex<Manifest>,
    /// One flush at a time: freezing the head and writing it out.
    pub flush_lock: Mutex<()>,
    /// One rewrite of existing segments at a time (merge, compaction,
    /// deletion, retention, repair). Flushes do not wait for it, so a long
    /// merge never lets the head grow past its flush size. Whoever takes
    /// both takes this one first.
    pub merge_lock: Mutex<()>,
    /// Appends hold it shared; deletion and retention hold it exclusively, so
    /// no append can reference a series while it is being removed.
    pub structure: RwLock<()>,
    pub metrics: EngineMetrics,
    pub closed: AtomicBool,
    pub flush_signal: (Mutex<bool>, Condvar),
    /// Wakes the merger after a flush added a segment.
    pub merge_signal: (Mutex<bool>, Condvar),
    pub open_report: OpenReport,
    /// Segments the manifest names that could not be opened. Reads fail while
    /// there are any (see `check_readable`); `loupe store repair` clears them.
    pub unreadable_segments: Vec<PathBuf>,
    pub page_cache: Arc<PageCache>,
    _lock_file: File,
}

/// What opening the directory found and did.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub segments: usize,
    pub wal_files_replayed: usize,
    pub wal_records_replayed: usize,
    pub points_replayed: u64,
    /// WAL files whose unacknowledged end a crash cut short (`torn.len()`).
    pub torn_tails: usize,
    /// Each torn tail: file, offset, bytes dropped. Expected after a crash,
    /// and logged, not damage.
    pub torn: Vec<TornTail>,
    /// Bytes after a sealed WAL file's acknowledged length (appends that
    /// failed and were answered with an error); not replayed.
    pub unacknowledged_bytes: u64,
    /// Damage found: checksum failures in WAL frames or unreadable segments,
    /// each naming its file. Everything else was read.
    pub damaged: Vec<Error>,
}

/// Loupe's embedded time-series database over one directory.
///
/// Cheap to clone; all clones share the database. Dropping the last clone
/// stops the background flusher (data already acknowledged is in the WAL).
#[derive(Clone)]
pub struct Tsdb {
    pub(crate) inner: Arc<Inner>,
    _flusher: Arc<FlusherHandle>,
}

struct FlusherHandle {
    inner: Arc<Inner>,
    /// The flusher and the merger.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for FlusherHandle {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        wake(&self.inner.flush_signal);
        wake(&self.inner.merge_signal);
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}

pub(crate) fn wake((lock, cv): &(Mutex<bool>, Condvar)) {
    *lock.lock() = true;
    cv.notify_all();
}

/// Waits until woken or a second has passed.
fn wait((lock, cv): &(Mutex<bool>, Condvar)) {
    let mut woken = lock.lock();
    if !*woken {
        cv.wait_for(&mut woken, Duration::from_secs(1));
    }
    *woken = false;
}

impl Tsdb {
    /// Opens (or creates) the database in `dir`: loads the manifest and its
    /// segments, replays the WAL, and starts a fresh WAL file.
    pub fn open(dir: impl AsRef<Path>, opts: TsdbOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let wal_dir = dir.join("wal");
        let seg_dir = dir.join("segments");
        for d in [&dir, &wal_dir, &seg_dir] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("create directory", d, e))?;
        }
        let lock_file = lock_dir(&dir)?;
        let mut report = OpenReport::default();

        let manifest = match Manifest::load(&dir)? {
            Some(m) => m,
            None => {
                let m = Manifest::default();
                m.store(&dir)?;
                m
            }
        };
        remove_unlisted_segments(&seg_dir, &manifest)?;

        let page_cache = Arc::new(PageCache::new(opts.page_cache_bytes));
        let mut catalog = Catalog::new(manifest.next_series_id);
        let mut segments = Vec::new();
        let mut unreadable_segments = Vec::new();
        for &id in &manifest.segments {
            let path = segment_path(&seg_dir, id);
            let opened = Segment::open_with_cache(&path, id, page_cache.clone())
                .and_then(|seg| seg.keys().map(|keys| (seg, keys)));
            match opened {
                Ok((seg, keys)) => {
                    for (sid, key) in keys {
                        catalog.insert(sid, key);
                    }
                    segments.push(Arc::new(seg));
                }
                // Keep the file and its place in the manifest: it may be
                // repairable, and the other segments stay readable.
                Err(e) => {
                    report.damaged.push(e);
                    unreadable_segments.push(path);
                }
            }
        }
        report.segments = segments.len();

        let active = Arc::new(HeadMap::new());
        let (mut records, mut points) = (0, 0);
        let scan = recover::scan_wal(
            &wal_dir,
            manifest.wal_start,
            true,
            |path, payloads, damaged| {
                let (r, p) = recover::apply_records(path, payloads, &mut catalog, &active, damaged);
                records += r;
                points += p;
            },
        )?;
        report.wal_files_replayed = scan.files;
        report.wal_records_replayed = records;
        report.points_replayed = points;
        report.damaged.extend(scan.damaged);
        report.torn_tails = scan.torn.len();
        report.torn = scan.torn;
        report.unacknowledged_bytes = scan.unacknowledged_bytes;
        let wal_file = WalFile::create(&wal_dir, scan.last_id + 1, scan.last_len)?;
        let metrics = EngineMetrics::default();
        metrics.record_damage(report.damaged.len());
        metrics
            .torn_tail_bytes
            .store(report.torn.iter().map(|t| t.bytes).sum(), Ordering::Relaxed);

        let inner = Arc::new(Inner {
            dir,
            wal_dir,
            seg_dir,
            catalog: RwLock::new(catalog),
            version: RwLock::new(Arc::new(Version {
                segments,
                frozen: Vec::new(),
                active,
            })),
            wal: Mutex::new(WalState {
                file: wal_file,
                needs_new_file: false,
            }),
            commits: CommitQueue::default(),
            manifest: Mutex::new(manifest),
            flush_lock: Mutex::new(()),
            merge_lock: Mutex::new(()),
            structure: RwLock::new(()),
            metrics,
            closed: AtomicBool::new(false),
            flush_signal: (Mutex::new(false), Condvar::new()),
            merge_signal: (Mutex::new(false), Condvar::new()),
            open_report: report,
            unreadable_segments,
            page_cache,
            _lock_file: lock_file,
            opts,
        });
        let mut threads = Vec::new();
        if inner.opts.background_flush {
            let work: [(&str, BackgroundWork); 2] = [
                ("loupe-tsdb-flush", background_flusher),
                ("loupe-tsdb-merge", background_merger),
            ];
            for (name, run) in work {
                let bg = inner.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name(name.into())
                        .spawn(move || run(bg))
                        .map_err(|e| Error::io("spawn a background thread", &inner.dir, e))?,
                );
            }
        }
        Ok(Tsdb {
            _flusher: Arc::new(FlusherHandle {
                inner: inner.clone(),
                threads: Mutex::new(threads),
            }),
            inner,
        })
    }

    /// What opening found: replayed records, torn tails, damaged files.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.open_report
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn options(&self) -> &TsdbOptions {
        &self.inner.opts
    }

    pub(crate) fn snapshot(&self) -> Arc<Version> {
        self.inner.version.read().clone()
    }

    /// Flushes the head and stops the background flusher. Further appends fail.
    /// A merge in progress is abandoned (its segments stay as they were),
    /// so closing takes one flush, never a merge.
    pub fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::SeqCst);
        wake(&self.inner.flush_signal);
        wake(&self.inner.merge_signal);
        flush::flush_inner(&self.inner)
    }
}

/// The body of a background thread.
type BackgroundWork = fn(Arc<Inner>);

/// Flushes the head whenever it holds `flush_points`, then wakes the
/// merger. Never merges itself: a flush must not wait behind a merge.
fn background_flusher(inner: Arc<Inner>) {
    loop {
        wait(&inner.flush_signal);
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        if inner.version.read().active.points() >= inner.opts.flush_points {
            match flush::flush_inner(&inner) {
                Ok(()) => wake(&inner.merge_signal),
                Err(e) => inner.metrics.record_flush_error(&e),
            }
        }
    }
}

/// Merges segments whenever there are more than `max_segments`, after a
/// flush and once a second (segments left over by a merge that a crash
/// interrupted are merged without waiting for the next flush).
fn background_merger(inner: Arc<Inner>) {
    loop {
        wait(&inner.merge_signal);
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        if inner.version.read().segments.len() > inner.opts.max_segments.max(1) {
            let _m = inner.merge_lock.lock();
            match flush::merge_if_needed(&inner) {
                Ok(()) | Err(Error::Closed) => {}
                Err(e) => inner.metrics.record_flush_error(&e),
            }
        }
    }
}

/// Takes an exclusive lock on the directory so two processes never share it.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    match loupe_model::lock::try_lock_file(&path) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(Error::io(
            "lock (is another Loupe process using this directory?)",
            &path,
            std::io::Error::from(std::io::ErrorKind::WouldBlock),
        )),
        Err(e) => Err(Error::io("open", &path, e)),
    }
}

/// Deletes segment files a crashed flush or compaction left unpublished.
pub(crate) fn remove_unlisted_segments(seg_dir: &Path, manifest: &Manifest) -> Result<()> {
    let rd = std::fs::read_dir(seg_dir).map_err(|e| Error::io("list", seg_dir, e))?;
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let listed = name
            .strip_suffix(".seg")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|id| manifest.segments.contains(&id));
        if !listed && (name.ends_with(".seg") || name.ends_with(".tmp")) {
            fsutil::remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use loupe_model::SeriesKey;

    use crate::{FsyncMode, SeriesWrite, Tsdb, TsdbOptions, WriteBatch};

    /// The head's memory is bounded by `flush_points` only if flushes never
    /// queue behind a merge, however long the merge runs.
    #[test]
    fn a_flush_does_not_wait_for_a_merge_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(
            dir.path(),
            TsdbOptions {
                fsync: FsyncMode::Never,
                flush_points: 1_000,
                background_flush: true,
                ..Default::default()
            },
        )
        .unwrap();
        // A merge that does not end while the test runs.
        let merging = db.inner.merge_lock.lock();
        let key = SeriesKey::for_run("loss", "r").unwrap();
        for round in 0..3i64 {
            let steps: Vec<i64> = (round * 2_000..(round + 1) * 2_000).collect();
            let mut b = WriteBatch::new();
            b.push(SeriesWrite::new(
                key.clone(),
                Some(steps.clone()),
                steps.iter().map(|s| s * 1_000_000_000).collect(),
                steps.iter().map(|s| *s as f64).collect(),
            ));
            db.append(b).unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while db.stats().flushes <= round as u64 {
                assert!(
                    Instant::now() < deadline,
                    "flush {} did not happen while a merge held its lock",
                    round + 1
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        assert_eq!(db.stats().head_points, 0);
        drop(merging);
        assert_eq!(db.read_all(&key).unwrap().len(), 6_000);
    }
}
