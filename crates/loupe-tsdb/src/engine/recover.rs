//! Reading the WAL back, and judging what it finds: a torn tail in the newest
//! file (a crash cut an unacknowledged append short) is noted; damage to
//! acknowledged records is an error. Open replays through it, and
//! `verify_dir` checks through it without changing anything.

use std::path::Path;

use crate::catalog::Catalog;
use crate::head::HeadMap;
use crate::wal::{self, TornTail, WalRecord, decode_record, judge, read_frames};
use crate::{Error, Result, fsutil};

/// What a pass over the WAL found.
#[derive(Debug, Default)]
pub(crate) struct WalScan {
    pub files: usize,
    pub damaged: Vec<Error>,
    pub torn: Vec<TornTail>,
    pub unacknowledged_bytes: u64,
    /// The newest file's id and acknowledged length (what the next file's
    /// seal records); `wal_start - 1` and 0 when there is none.
    pub last_id: u64,
    pub last_len: u64,
}

/// Reads every WAL file at or after `wal_start`, oldest first, judges it
/// against the seal its successor starts with, and hands the payloads fit
/// for replay (with their byte offsets) to `each`. With `remove_older`, files
/// below `wal_start` (already in segments) are deleted.
pub(crate) fn scan_wal(
    wal_dir: &Path,
    wal_start: u64,
    remove_older: bool,
    mut each: impl FnMut(&Path, Vec<(u64, Vec<u8>)>, &mut Vec<Error>),
) -> Result<WalScan> {
    let mut ids = Vec::new();
    for id in wal::list_wal_files(wal_dir)? {
        if id >= wal_start {
            ids.push(id);
        } else if remove_older {
            fsutil::remove_if_exists(&wal::wal_path(wal_dir, id))?;
        }
    }
    let seals: Vec<Option<(u64, u64)>> = ids
        .iter()
        .map(|&id| read_seal(&wal::wal_path(wal_dir, id)))
        .collect();
    let mut scan = WalScan {
        last_id: wal_start.saturating_sub(1),
        ..Default::default()
    };
    for (i, &id) in ids.iter().enumerate() {
        let path = wal::wal_path(wal_dir, id);
        if let Some((prev, len)) = seals[i] {
            let present = i > 0 && ids[i - 1] == prev;
            if !present && prev >= wal_start && len > 0 {
                scan.damaged.push(missing_file(wal_dir, prev, len, &path));
            }
        }
        let sealed_len = seals
            .get(i + 1)
            .copied()
            .flatten()
            .filter(|(prev, _)| *prev == id)
            .map(|(_, len)| len);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let mut outcome = read_frames(&bytes);
        drop(bytes);
        let verdict = judge(&path, &mut outcome, sealed_len);
        scan.damaged.extend(verdict.damaged);
        scan.torn.extend(verdict.torn);
        scan.unacknowledged_bytes += verdict.unacknowledged_bytes;
        scan.files += 1;
        scan.last_id = id;
        scan.last_len = outcome.good_len();
        each(
            &path,
            std::mem::take(&mut outcome.payloads),
            &mut scan.damaged,
        );
    }
    Ok(scan)
}

/// The seal a WAL file starts with, if its first frame is a whole one.
fn read_seal(path: &Path) -> Option<(u64, u64)> {
    use std::io::Read;
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)
        .ok()?
        .take(64)
        .read_to_end(&mut head)
        .ok()?;
    let outcome = read_frames(&head);
    let (offset, payload) = outcome.payloads.first()?;
    match (offset, decode_record(payload)) {
        (0, Ok(WalRecord::Seal { prev_id, prev_len })) => Some((prev_id, prev_len)),
        _ => None,
    }
}

/// A seal naming a predecessor that should still be here (at or after
/// `wal_start`, holding acknowledged bytes) but is not: a whole WAL file of
/// acknowledged records was lost.
fn missing_file(wal_dir: &Path, prev: u64, len: u64, sealed_by: &Path) -> Error {
    Error::corrupt(
        wal::wal_path(wal_dir, prev),
        format!(
            "the WAL file is missing; {} sealed it with {len} bytes of acknowledged records",
            sealed_by.display()
        ),
    )
}

/// Replays payloads into the catalog and the active head; returns the
/// number of records and points applied.
pub(crate) fn apply_records(
    path: &Path,
    payloads: Vec<(u64, Vec<u8>)>,
    catalog: &mut Catalog,
    active: &HeadMap,
    damaged: &mut Vec<Error>,
) -> (usize, u64) {
    let (mut records, mut points) = (0, 0);
    for (offset, payload) in payloads {
        match decode_record(&payload) {
            Ok(WalRecord::Append { defs, series }) => {
                for (sid, key) in defs {
                    catalog.insert(sid, key);
                }
                for s in series {
                    if catalog.key(s.id).is_none() {
                        damaged.push(unknown_series(path, offset, s.id));
                        continue;
                    }
                    points += s.values.len() as u64;
                    active.append(s.id, Some(&s.steps), &s.times, &s.values);
                }
                records += 1;
            }
            Ok(WalRecord::Seal { .. }) => {}
            Err(e) => damaged.push(Error::corrupt(
                path,
                format!("record at byte {offset}: {e}"),
            )),
        }
    }
    (records, points)
}

pub(crate) fn unknown_series(path: &Path, offset: u64, id: u64) -> Error {
    Error::corrupt(
        path,
        format!("record at byte {offset} names unknown series {id}"),
    )
}
