//! `repair_dir`: takes what `verify_dir` found damaged out of service so the
//! rest of the store serves again, keeping the damaged files and a note of
//! what was lost in `DIR/quarantine/{unix seconds}/`.
//!
//! - a segment that cannot be opened is moved there and dropped from the
//!   manifest;
//! - segments with damaged chunks are copied there, then rewritten without
//!   those chunks;
//! - WAL files with damaged frames are copied there; the frames that read
//!   back are replayed and flushed into a segment.

use std::path::{Path, PathBuf};

use crate::engine::flush::{self, LostChunk, OnDamage, Rewrite};
use crate::types::TsdbOptions;
use crate::verify::{Problem, VerifyReport, verify_dir};
use crate::{Error, Result, Tsdb, fsutil};

/// Where quarantined files go, under the store's directory.
pub const QUARANTINE_DIR: &str = "quarantine";
/// The note of what a repair quarantined and lost, in its quarantine folder.
pub const NOTE_FILE: &str = "NOTE.json";

/// What a repair did; also written as the quarantine note.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RepairReport {
    /// The quarantine folder this repair used (none when nothing was damaged).
    pub quarantine: Option<PathBuf>,
    /// Damage `verify_dir` found before the repair.
    pub found: Vec<Problem>,
    /// Segment files moved out of the store whole (unreadable index).
    pub segments_removed: Vec<PathBuf>,
    /// Damaged chunks left out of the rewritten segments.
    pub chunks_lost: Vec<LostChunk>,
    /// WAL files copied aside before their readable frames were flushed.
    pub wal_files_copied: Vec<PathBuf>,
    /// Damage `verify_dir` still finds afterwards (empty when it worked).
    pub remaining: Vec<Problem>,
}

/// Repairs the store in `dir`; a no-op when `verify_dir` finds no damage.
/// Nothing is deleted: damaged files are moved or copied to the quarantine.
pub fn repair_dir(dir: &Path, opts: TsdbOptions) -> Result<RepairReport> {
    let before: VerifyReport = verify_dir(dir)?;
    let mut report = RepairReport {
        found: before.problems.clone(),
        ..Default::default()
    };
    if before.problems.is_empty() {
        return Ok(report);
    }
    let stamp = loupe_model::clock::now_s() as u64;
    let qdir = dir.join(QUARANTINE_DIR).join(stamp.to_string());
    std::fs::create_dir_all(&qdir).map_err(|e| Error::io("create directory", &qdir, e))?;
    report.quarantine = Some(qdir.clone());
    // Copy damaged WAL files first: opening replays what reads back, and the
    // flush below deletes them.
    for file in damaged_files(&before, &dir.join("wal")) {
        copy_into(&file, &qdir)?;
        report.wal_files_copied.push(file);
    }
    let db = Tsdb::open(
        dir,
        TsdbOptions {
            background_flush: false,
            ..opts
        },
    )?;
    remove_unreadable_segments(&db, &qdir, &mut report)?;
    for file in damaged_files(&before, &dir.join("segments")) {
        if file.exists() && !report.segments_removed.contains(&file) {
            copy_into(&file, &qdir)?;
        }
    }
    {
        let inner = &db.inner;
        let _f = inner.flush_lock.lock();
        flush::rewrite_segments(
            inner,
            flush::all_segments(inner),
            Rewrite::KeepAll,
            OnDamage::Drop(&mut report.chunks_lost),
        )?;
    }
    db.flush()?;
    drop(db);
    report.remaining = verify_dir(dir)?.problems;
    let note = serde_json::to_vec_pretty(&report)
        .map_err(|e| Error::Invalid(format!("repair note: {e}")))?;
    fsutil::write_atomic(&qdir.join(NOTE_FILE), &note)?;
    Ok(report)
}

/// The files under `under` that the report names as damaged.
fn damaged_files(report: &VerifyReport, under: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = report
        .problems
        .iter()
        .filter(|p| p.file.starts_with(under) && p.file.is_file())
        .map(|p| p.file.clone())
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Moves the segments the open could not read into the quarantine and
/// publishes a manifest without them.
fn remove_unreadable_segments(db: &Tsdb, qdir: &Path, report: &mut RepairReport) -> Result<()> {
    let inner = &db.inner;
    if inner.unreadable_segments.is_empty() {
        return Ok(());
    }
    let _f = inner.flush_lock.lock();
    let mut m = inner.manifest.lock();
    let mut next = m.clone();
    for path in &inner.unreadable_segments {
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok());
        next.segments.retain(|s| Some(*s) != id);
        if path.exists() {
            copy_into(path, qdir)?;
        }
        report.segments_removed.push(path.clone());
    }
    next.store(&inner.dir)?;
    *m = next;
    drop(m);
    // Only now, with the manifest no longer naming them, the originals go.
    for path in &inner.unreadable_segments {
        fsutil::remove_if_exists(path)?;
    }
    Ok(())
}

/// Copies `file` into `dir` under its own name and makes the copy durable.
fn copy_into(file: &Path, dir: &Path) -> Result<()> {
    let name = file.file_name().unwrap_or_default();
    let to = dir.join(name);
    std::fs::copy(file, &to).map_err(|e| Error::io("copy to quarantine", &to, e))?;
    std::fs::File::open(&to)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("fsync", &to, e))?;
    fsutil::sync_dir(dir)
}
