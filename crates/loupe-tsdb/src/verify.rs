//! `verify_dir`: checks every file of a store without changing any — the
//! manifest, every page of every segment it names (checksum and decoding),
//! and every WAL frame and record — and names each problem found.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::recover::{scan_wal, unknown_series};
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::page_cache::PageCache;
use crate::segment::{Segment, segment_path};
use crate::wal::{TornTail, WalRecord, decode_record};
use crate::{Error, Result};

/// One problem: the file, and what is wrong where in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub file: PathBuf,
    /// Where in the file (byte offset, chunk and series) and what.
    pub detail: String,
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Corrupt { path, detail } => Problem { file: path, detail },
            Error::Io { op, path, source } => Problem {
                file: path,
                detail: format!("{op}: {source}"),
            },
            other => Problem {
                file: PathBuf::new(),
                detail: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.detail)
    }
}

/// What [`verify_dir`] checked and found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub segments: usize,
    pub chunks: usize,
    pub points: u64,
    pub wal_files: usize,
    pub wal_records: usize,
    /// Damage to acknowledged data. Empty means everything checked is sound.
    pub problems: Vec<Problem>,
    /// Not damage: a torn tail of the newest WAL file (an unacknowledged
    /// append a crash cut short), leftovers the next open removes.
    pub notes: Vec<String>,
}

/// Checks the store in `dir` (the directory holding `MANIFEST`), taking its
/// lock so no server changes it meanwhile. Fails only when the directory
/// cannot be checked at all; damage is reported in the result.
pub fn verify_dir(dir: &Path) -> Result<VerifyReport> {
    if !dir.join(MANIFEST_FILE).exists() {
        return Err(Error::Invalid(format!(
            "{} holds no {MANIFEST_FILE}: not a Loupe time-series store",
            dir.display()
        )));
    }
    let _lock = crate::engine::lock_dir(dir)?;
    let mut report = VerifyReport::default();
    let manifest = match Manifest::load(dir) {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => {
            report.problems.push(e.into());
            Manifest {
                wal_start: 0,
                ..Manifest::default()
            }
        }
    };
    let mut known: HashSet<u64> = HashSet::new();
    for &id in &manifest.segments {
        let path = segment_path(&dir.join("segments"), id);
        verify_segment(&path, id, &mut known, &mut report);
    }
    note_unlisted_segments(dir, &manifest, &mut report);
    verify_wal(dir, manifest.wal_start, &mut known, &mut report)?;
    Ok(report)
}

/// Opens a segment and decodes every chunk: columns, pages and roll-ups.
fn verify_segment(path: &Path, id: u64, known: &mut HashSet<u64>, report: &mut VerifyReport) {
    let seg = match Segment::open_with_cache(path, id, Arc::new(PageCache::new(0))) {
        Ok(s) => s,
        Err(e) => return report.problems.push(e.into()),
    };
    match seg.keys() {
        Ok(keys) => known.extend(keys.into_iter().map(|(id, _)| id)),
        Err(e) => return report.problems.push(e.into()),
    }
    report.segments += 1;
    for (chunk, entry) in seg.entries().iter().enumerate() {
        report.chunks += 1;
        let chunk = chunk as u32;
        let decoded = seg.read_chunk(chunk).and_then(|p| {
            if p.len() != entry.count as usize {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "chunk {chunk} (series {}) decodes to {} points; its index says {}",
                        entry.series,
                        p.len(),
                        entry.count
                    ),
                ));
            }
            seg.page_stats(chunk).map(|_| p.len())
        });
        match decoded {
            Ok(n) => report.points += n as u64,
            Err(e) => report.problems.push(e.into()),
        }
    }
}

fn note_unlisted_segments(dir: &Path, manifest: &Manifest, report: &mut VerifyReport) {
    let Ok(rd) = std::fs::read_dir(dir.join("segments")) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let listed = name
            .strip_suffix(".seg")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|id| manifest.segments.contains(&id));
        if !listed {
            report.notes.push(format!(
                "{}: not named by the manifest (a crashed flush's leftover; the next open removes it)",
                entry.path().display()
            ));
        }
    }
}

/// Reads every WAL frame and decodes every record, as replay would.
fn verify_wal(
    dir: &Path,
    wal_start: u64,
    known: &mut HashSet<u64>,
    report: &mut VerifyReport,
) -> Result<()> {
    let wal_dir = dir.join("wal");
    if !wal_dir.exists() {
        return Ok(());
    }
    let mut records = 0;
    let scan = scan_wal(&wal_dir, wal_start, false, |path, payloads, damaged| {
        for (offset, payload) in payloads {
            match decode_record(&payload) {
                Ok(WalRecord::Append { defs, series }) => {
                    records += 1;
                    known.extend(defs.iter().map(|(id, _)| *id));
                    for s in series.iter().filter(|s| !known.contains(&s.id)) {
                        damaged.push(unknown_series(path, offset, s.id));
                    }
                }
                Ok(WalRecord::Seal { .. }) => {}
                Err(e) => damaged.push(Error::corrupt(
                    path,
                    format!("record at byte {offset}: {e}"),
                )),
            }
        }
    })?;
    report.wal_files = scan.files;
    report.wal_records = records;
    report
        .problems
        .extend(scan.damaged.into_iter().map(Problem::from));
    report
        .notes
        .extend(scan.torn.iter().map(TornTail::to_string));
    if scan.unacknowledged_bytes > 0 {
        report.notes.push(format!(
            "{} bytes of failed (never acknowledged) appends after sealed WAL files' ends; not replayed",
            scan.unacknowledged_bytes
        ));
    }
    Ok(())
}
