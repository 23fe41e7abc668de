//! The write path: validate, log, fsync (grouped), apply to the head, acknowledge.
//!
//! Appends queue their encoded WAL records. The first appender to find no
//! commit in progress becomes the leader: it writes every queued record in
//! one `write`, fsyncs once, applies the records to the head in queue order,
//! and wakes their appenders. Appends that arrive meanwhile queue for the next
//! round. So an append returns only once its data is on disk, and the head
//! sees writes in exactly the order the WAL holds them — which is the order
//! replay will apply them after a crash.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::{Inner, Tsdb};
use crate::types::{FsyncMode, SeriesId, WriteBatch};
use crate::wal::file::AppendError;
use crate::wal::{WalFile, encode_append};
use crate::{Error, Result};

struct Pending {
    seq: u64,
    payload: Vec<u8>,
    ids: Vec<SeriesId>,
    batch: WriteBatch,
}

#[derive(Default)]
struct QueueState {
    queue: Vec<Pending>,
    next_seq: u64,
    /// Every append with a lower or equal sequence number has finished.
    done_seq: u64,
    leader_active: bool,
    failures: HashMap<u64, (std::io::ErrorKind, String)>,
}

/// Appends waiting for the next group commit.
#[derive(Default)]
pub struct CommitQueue {
    state: Mutex<QueueState>,
    done: Condvar,
}

impl Tsdb {
    /// Appends a batch; returns once it is durable (per the fsync mode) and
    /// visible to reads. A batch is accepted whole or not at all.
    pub fn append(&self, batch: WriteBatch) -> Result<()> {
        let inner = &*self.inner;
        if inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        for (i, s) in batch.series.iter().enumerate() {
            s.validate(i)?;
        }
        let _structure = inner.structure.read();
        let ids = resolve_ids(inner, &batch)?;
        let payload = {
            let catalog = inner.catalog.read();
            let defs: Vec<(SeriesId, &[u8])> = ids
                .iter()
                .filter(|(_, new)| *new)
                .map(|(id, _)| (*id, catalog.key_bytes(*id).expect("just inserted")))
                .collect();
            let series: Vec<(SeriesId, &crate::types::SeriesWrite)> = ids
                .iter()
                .zip(&batch.series)
                .map(|((id, _), s)| (*id, s))
                .collect();
            encode_append(&defs, &series)
        };
        let points = batch.points() as u64;
        let defined: Vec<SeriesId> = ids.iter().filter(|(_, d)| *d).map(|(id, _)| *id).collect();
        let ids: Vec<SeriesId> = ids.into_iter().map(|(id, _)| id).collect();
        commit(inner, payload, ids, batch)?;
        if !defined.is_empty() {
            inner.catalog.write().mark_durable(&defined);
        }
        inner.metrics.record_append(points);
        if inner.version.read().active.points() >= inner.opts.flush_points {
            let (lock, cv) = &inner.flush_signal;
            *lock.lock() = true;
            cv.notify_one();
        }
        Ok(())
    }
}

/// Finds or assigns the id of every series in the batch; the flag marks
/// series whose key must travel in this WAL record (first seen, or not yet
/// in any durable record because an earlier append failed).
fn resolve_ids(inner: &Inner, batch: &WriteBatch) -> Result<Vec<(SeriesId, bool)>> {
    let mut out = Vec::with_capacity(batch.series.len());
    {
        let catalog = inner.catalog.read();
        for s in &batch.series {
            match catalog.get(&s.key) {
                Some(id) => out.push((id, catalog.is_undurable(id))),
                None => break,
            }
        }
    }
    if out.len() < batch.series.len() {
        out.clear();
        let mut catalog = inner.catalog.write();
        for s in &batch.series {
            let id = match catalog.get(&s.key) {
                Some(id) => id,
                None => catalog.insert_new(s.key.clone()),
            };
            out.push((id, catalog.is_undurable(id)));
        }
    }
    // A key repeated within the batch is written once, at its first mention.
    let mut defined = std::collections::HashSet::new();
    for (id, def) in out.iter_mut() {
        if *def && !defined.insert(*id) {
            *def = false;
        }
    }
    Ok(out)
}

fn commit(inner: &Inner, payload: Vec<u8>, ids: Vec<SeriesId>, batch: WriteBatch) -> Result<()> {
    let q = &inner.commits;
    let mut st = q.state.lock();
    st.next_seq += 1;
    let seq = st.next_seq;
    st.queue.push(Pending {
        seq,
        payload,
        ids,
        batch,
    });
    if st.leader_active {
        while st.done_seq < seq {
            q.done.wait(&mut st);
        }
        return match st.failures.remove(&seq) {
            None => Ok(()),
            Some((kind, msg)) => Err(Error::io(
                "append to",
                inner.wal.lock().file.path(),
                std::io::Error::new(kind, msg),
            )),
        };
    }
    st.leader_active = true;
    let mut my_result = None;
    loop {
        let group: Vec<Pending> = if inner.opts.fsync == FsyncMode::Always {
            vec![st.queue.remove(0)]
        } else {
            std::mem::take(&mut st.queue)
        };
        drop(st);
        let last_seq = group.last().expect("group is never empty").seq;
        let result = write_group(inner, &group);
        st = q.state.lock();
        if let Err(e) = &result {
            let kind = match e {
                Error::Io { source, .. } => source.kind(),
                _ => std::io::ErrorKind::Other,
            };
            for p in &group {
                if p.seq != seq {
                    st.failures.insert(p.seq, (kind, e.to_string()));
                }
            }
        }
        if group.iter().any(|p| p.seq == seq) {
            my_result = Some(result);
        }
        st.done_seq = last_seq;
        q.done.notify_all();
        if st.queue.is_empty() {
            st.leader_active = false;
            break;
        }
    }
    drop(st);
    my_result.expect("the leader's own append is in a group it wrote")
}

/// Writes one group to the WAL, fsyncs, and applies it to the active head.
fn write_group(inner: &Inner, group: &[Pending]) -> Result<()> {
    let mut wal = inner.wal.lock();
    if wal.needs_new_file {
        let next = WalFile::create(&inner.wal_dir, wal.file.id() + 1, wal.file.len())?;
        wal.file = next;
        wal.needs_new_file = false;
    }
    let payloads: Vec<&[u8]> = group.iter().map(|p| p.payload.as_slice()).collect();
    let sync = inner.opts.fsync != FsyncMode::Never;
    let started = Instant::now();
    match wal.file.append(&payloads, sync) {
        Ok(()) => {}
        Err(AppendError::Failed(e)) => return Err(e),
        Err(AppendError::Unusable(e)) => {
            wal.needs_new_file = true;
            return Err(e);
        }
    }
    if sync {
        inner.metrics.record_fsync(started.elapsed());
    }
    inner
        .metrics
        .wal_bytes
        .store(wal.file.len(), std::sync::atomic::Ordering::Relaxed);
    // Applied under the WAL lock: a flush swaps the head under the same lock,
    // so every record lands in the head generation its WAL file belongs to.
    let active = inner.version.read().active.clone();
    for p in group {
        for (id, s) in p.ids.iter().zip(&p.batch.series) {
            active.append(*id, s.steps.as_deref(), &s.times, &s.values);
        }
    }
    Ok(())
}
