//! Replaying the WAL on open, and judging what it finds: a torn tail in the
//! newest file (a crash cut an unacknowledged append short) is logged in the
//! report; damage to acknowledged records is an error in the report.

use std::path::Path;

use super::OpenReport;
use crate::catalog::Catalog;
use crate::head::HeadMap;
use crate::wal::{self, ReplayOutcome, WalRecord, decode_record, judge, read_frames};
use crate::{Error, Result, fsutil};

/// One WAL file read but not yet judged.
struct ReadFile {
    id: u64,
    path: std::path::PathBuf,
    outcome: ReplayOutcome,
    /// The seal record at the start of this file, if it has one.
    seal: Option<(u64, u64)>,
}

/// Where the WAL ends after replay: the newest file's id and acknowledged
/// length (what the next file's seal records).
pub(super) struct WalEnd {
    pub last_id: u64,
    pub last_len: u64,
}

/// Replays the WAL files at or after `wal_start` into `catalog` and
/// `active`, deleting older ones, and records what it found in `report`.
pub(super) fn replay_wal(
    wal_dir: &Path,
    wal_start: u64,
    catalog: &mut Catalog,
    active: &HeadMap,
    report: &mut OpenReport,
) -> Result<WalEnd> {
    let mut files = Vec::new();
    for id in wal::list_wal_files(wal_dir)? {
        let path = wal::wal_path(wal_dir, id);
        if id < wal_start {
            fsutil::remove_if_exists(&path)?;
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let outcome = read_frames(&bytes);
        let seal = outcome
            .payloads
            .first()
            .and_then(|(_, p)| match decode_record(p) {
                Ok(WalRecord::Seal { prev_id, prev_len }) => Some((prev_id, prev_len)),
                _ => None,
            });
        files.push(ReadFile {
            id,
            path,
            outcome,
            seal,
        });
    }
    report_missing_files(&files, wal_dir, wal_start, report);
    let mut end = WalEnd {
        last_id: wal_start.saturating_sub(1),
        last_len: 0,
    };
    for i in 0..files.len() {
        let sealed_len = files
            .get(i + 1)
            .and_then(|next| next.seal)
            .filter(|(prev, _)| *prev == files[i].id)
            .map(|(_, len)| len);
        let f = &mut files[i];
        let verdict = judge(&f.path, &mut f.outcome, sealed_len);
        report.damaged.extend(verdict.damaged);
        if let Some(torn) = verdict.torn {
            report.torn.push(torn);
        }
        report.unacknowledged_bytes += verdict.unacknowledged_bytes;
        report.wal_files_replayed += 1;
        let payloads = std::mem::take(&mut f.outcome.payloads);
        apply_records(&f.path, payloads, catalog, active, report);
        end = WalEnd {
            last_id: f.id,
            last_len: f.outcome.good_len(),
        };
    }
    report.torn_tails = report.torn.len();
    Ok(end)
}

/// A file's seal naming a predecessor that should still be here (at or
/// after `wal_start`, holding acknowledged bytes) but is not: a whole WAL
/// file of acknowledged records was lost.
fn report_missing_files(
    files: &[ReadFile],
    wal_dir: &Path,
    wal_start: u64,
    report: &mut OpenReport,
) {
    for (i, f) in files.iter().enumerate() {
        let Some((prev, len)) = f.seal else { continue };
        let present = i > 0 && files[i - 1].id == prev;
        if !present && prev >= wal_start && len > 0 {
            report.damaged.push(Error::corrupt(
                wal::wal_path(wal_dir, prev),
                format!(
                    "the WAL file is missing; {} sealed it with {len} bytes of acknowledged records",
                    f.path.display()
                ),
            ));
        }
    }
}

fn apply_records(
    path: &Path,
    payloads: Vec<(u64, Vec<u8>)>,
    catalog: &mut Catalog,
    active: &HeadMap,
    report: &mut OpenReport,
) {
    for (offset, payload) in payloads {
        match decode_record(&payload) {
            Ok(WalRecord::Append { defs, series }) => {
                for (sid, key) in defs {
                    catalog.insert(sid, key);
                }
                for s in series {
                    if catalog.key(s.id).is_none() {
                        report.damaged.push(Error::corrupt(
                            path,
                            format!("record at byte {offset} names unknown series {}", s.id),
                        ));
                        continue;
                    }
                    report.points_replayed += s.values.len() as u64;
                    active.append(s.id, Some(&s.steps), &s.times, &s.values);
                }
                report.wal_records_replayed += 1;
            }
            Ok(WalRecord::Seal { .. }) => {}
            Err(e) => report.damaged.push(Error::corrupt(
                path,
                format!("record at byte {offset}: {e}"),
            )),
        }
    }
}
