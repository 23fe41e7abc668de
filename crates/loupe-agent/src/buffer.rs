//! [`DiskBuffer`]: a bounded, crash-safe, append-only queue of request
//! bodies on disk, for the time the server cannot be reached.
//!
//! ```text
//! DIR/{id:016}.seg   segment files, oldest first; only the newest is appended to
//! DIR/acked          "SEGMENT OFFSET": where the oldest unacknowledged record starts
//! DIR/LOCK           flock'd while a DiskBuffer has the directory open
//! frame   = u32 len (of payload, LE) | u32 crc32c(payload) (LE) | payload
//! payload = u16 path length (LE) | path (UTF-8) | body
//! ```
//!
//! - **Crash safety.** A frame is written with one `write` and `fdatasync`ed
//!   before [`DiskBuffer::push`] returns. On open, each segment is read
//!   frame by frame; the first frame that runs past the end of the file or
//!   fails its checksum ends the segment (a torn tail from a crash during a
//!   write) and the file is cut back there. Appends always go to a segment
//!   created after the open, so a good frame never follows garbage.
//! - **The bound.** Segment files together never exceed `max_bytes`: when
//!   a push would pass it, whole oldest segments are deleted first and their
//!   unacknowledged records are counted in [`DiskBuffer::dropped`]. Segments
//!   are at most a quarter of the bound (and 8 MiB), so dropping frees room
//!   in steps without throwing away most of the queue.
//! - **Acknowledgement.** [`DiskBuffer::peek`] returns the oldest record;
//!   [`DiskBuffer::ack`] moves past it, rewrites the `acked` marker
//!   (write-then-rename, not fsynced) and deletes a segment once all of it is
//!   acknowledged. A crash can therefore replay a few records that were
//!   already sent: the server keeps one value per series and timestamp, so a
//!   replayed metrics batch changes nothing.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Errors of the disk buffer.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a record of {size} bytes does not fit a buffer of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("target path of {0} bytes is too long")]
    PathTooLong(usize),
    #[error("{0} is in use by another process (its LOCK is held)")]
    Locked(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BufferError + '_ {
    move |source| BufferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One queued request: where it goes and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The API path, e.g. `/api/v1/metrics`.
    pub path: String,
    /// The request body, uncompressed.
    pub body: Vec<u8>,
}

/// Where a record sits on disk; what [`DiskBuffer::ack`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordId {
    segment: u64,
    offset: u64,
    /// Frame length, so that acknowledging needs no read.
    len: u64,
}

const HEADER: u64 = 8;
const MAX_SEGMENT: u64 = 8 << 20;
const MIN_SEGMENT: u64 = 4 << 10;

#[derive(Debug)]
struct Segment {
    id: u64,
    /// Bytes of whole, valid frames.
    len: u64,
    records: u64,
}

/// See the module docs.
pub struct DiskBuffer {
    dir: PathBuf,
    /// Holds the directory's flock: two writers would interleave frames.
    _lock: File,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first. When `writer` is open it appends to the last one.
    segments: VecDeque<Segment>,
    writer: Option<File>,
    /// The id the next segment gets: above every segment that existed and
    /// at least the marker's, so a new segment is never taken for an
    /// acknowledged one after a restart.
    next_id: u64,
    /// Offset in the front segment of the oldest unacknowledged record.
    read_off: u64,
    /// Records of the front segment before `read_off`.
    front_acked: u64,
    reader: Option<(u64, BufReader<File>)>,
    pending: u64,
    dropped: u64,
    scratch: Vec<u8>,
}

fn seg_name(id: u64) -> String {
    format!("{id:016}.seg")
}

/// Reads one frame at the reader's position. `Ok(None)` at a clean end of
/// file; `Err(())` for a torn or damaged frame.
fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>, room: u64) -> Result<Option<u64>, ()> {
    let mut h = [0u8; HEADER as usize];
    let mut got = 0;
    while got < h.len() {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
    let len = u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    // A length past what the file can still hold is a torn (or garbage)
    // header: do not allocate for it.
    if len < 2 || len + HEADER > room {
        return Err(());
    }
    buf.clear();
    buf.resize(len as usize, 0);
    r.read_exact(buf).map_err(|_| ())?;
    if crc32c::crc32c(buf) != crc {
        return Err(());
    }
    Ok(Some(len + HEADER))
}

fn decode_payload(p: &[u8]) -> Option<Record> {
    let n = usize::from(u16::from_le_bytes([*p.first()?, *p.get(1)?]));
    let path = std::str::from_utf8(p.get(2..2 + n)?).ok()?.to_string();
    Some(Record {
        path,
        body: p.get(2 + n..)?.to_vec(),
    })
}

impl DiskBuffer {
    /// Opens (creating) the buffer in `dir`, holding at most `max_bytes`
    /// of segment files. Recovers what an earlier process left there.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<DiskBuffer, BufferError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join("LOCK");
        // Released when `lock` closes (the buffer drops or the process dies).
        let lock = loupe_model::lock::try_lock_file(&lock_path)
            .map_err(io_err(&lock_path))?
            .ok_or_else(|| BufferError::Locked(dir.to_path_buf()))?;
        let mut ids: Vec<u64> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let stem = name.to_str()?.strip_suffix(".seg")?;
                stem.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let marker = fs::read_to_string(dir.join("acked")).ok().and_then(|s| {
            let mut it = s.split_ascii_whitespace();
            Some((
                it.next()?.parse::<u64>().ok()?,
                it.next()?.parse::<u64>().ok()?,
            ))
        });
        let mut b = DiskBuffer {
            dir: dir.to_path_buf(),
            _lock: lock,
            max_bytes,
            segment_bytes: (max_bytes / 4).clamp(MIN_SEGMENT, MAX_SEGMENT),
            segments: VecDeque::new(),
            writer: None,
            next_id: ids
                .last()
                .map_or(0, |l| l + 1)
                .max(marker.map_or(0, |(seg, _)| seg)),
            read_off: 0,
            front_acked: 0,
            reader: None,
            pending: 0,
            dropped: 0,
            scratch: Vec::new(),
        };
        for id in ids {
            let path = dir.join(seg_name(id));
            if marker.is_some_and(|(seg, _)| id < seg) {
                // Wholly acknowledged before the last exit.
                let _ = fs::remove_file(&path);
                continue;
            }
            let ack_at = marker.and_then(|(seg, off)| (seg == id).then_some(off));
            let (len, records, acked) = b.scan(&path, ack_at)?;
            if records == 0 {
                let _ = fs::remove_file(&path);
                continue;
            }
            if let (Some(off), Some(n)) = (ack_at, acked)
                && b.segments.is_empty()
            {
                b.read_off = off;
                b.front_acked = n;
            }
            b.pending += records;
            b.segments.push_back(Segment { id, len, records });
        }
        b.pending -= b.front_acked;
        Ok(b)
    }

    /// Validates a segment, cutting a torn tail. Returns its valid length,
    /// its record count, and how many records start before `ack_at` when
    /// `ack_at` falls on a frame boundary.
    fn scan(
        &mut self,
        path: &Path,
        ack_at: Option<u64>,
    ) -> Result<(u64, u64, Option<u64>), BufferError> {
        let f = File::open(path).map_err(io_err(path))?;
        let size = f.metadata().map_err(io_err(path))?.len();
        let mut r = BufReader::new(f);
        let (mut off, mut records, mut acked) = (0u64, 0u64, None);
        loop {
            if ack_at == Some(off) {
                acked = Some(records);
            }
            match read_frame(&mut r, &mut self.scratch, size - off) {
                Ok(Some(n)) => {
                    off += n;
                    records += 1;
                }
                Ok(None) => break,
                Err(()) => {
                    tracing::warn!(
                        "{}: cutting {} bytes of a torn or damaged record at offset {off}",
                        path.display(),
                        size - off
                    );
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io_err(path))?;
                    f.set_len(off).map_err(io_err(path))?;
                    f.sync_all().map_err(io_err(path))?;
                    break;
                }
            }
        }
        Ok((off, records, acked))
    }

    /// Records waiting to be acknowledged.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Records thrown away to keep the bound (or because they were damaged
    /// on disk, or larger than the bound), since this buffer was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes of segment files on disk now.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Appends a record; durable when this returns. Drops the oldest
    /// segments when the bound would be passed.
    pub fn push(&mut self, path: &str, body: &[u8]) -> Result<RecordId, BufferError> {
        let path_len =
            u16::try_from(path.len()).map_err(|_| BufferError::PathTooLong(path.len()))?;
        let payload_len = 2 + path.len() as u64 + body.len() as u64;
        let frame_len = HEADER + payload_len;
        if frame_len > self.max_bytes || payload_len > u64::from(u32::MAX) {
            self.dropped += 1;
            return Err(BufferError::TooLarge {
                size: frame_len,
                max: self.max_bytes,
            });
        }
        let need_roll = match (&self.writer, self.segments.back()) {
            (Some(_), Some(back)) => back.len > 0 && back.len + frame_len > self.segment_bytes,
            _ => true,
        };
        if need_roll {
            self.roll()?;
        }
        while self.disk_bytes() + frame_len > self.max_bytes && self.segments.len() > 1 {
            self.drop_front();
        }
        if self.disk_bytes() + frame_len > self.max_bytes {
            // Only the write segment is left and it is too full: start a
            // fresh one and let the old one go.
            self.roll()?;
            self.drop_front();
        }

        let mut frame = Vec::with_capacity(frame_len as usize);
        frame.extend_from_slice(&(payload_len as u32).to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&path_len.to_le_bytes());
        frame.extend_from_slice(path.as_bytes());
        frame.extend_from_slice(body);
        let crc = crc32c::crc32c(&frame[HEADER as usize..]);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());

        let (Some(w), Some(back)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(BufferError::Io {
                path: self.dir.clone(),
                source: io::Error::other("no open segment"),
            });
        };
        let seg_path = self.dir.join(seg_name(back.id));
        let res = w.write_all(&frame).and_then(|_| w.sync_data());
        if let Err(e) = res {
            // Cut the partial frame so the file ends on a frame boundary.
            let _ = w.set_len(back.len);
            let _ = w.seek(SeekFrom::Start(back.len));
            return Err(BufferError::Io {
                path: seg_path,
                source: e,
            });
        }
        let id = RecordId {
            segment: back.id,
            offset: back.len,
            len: frame_len,
        };
        back.len += frame_len;
        back.records += 1;
        self.pending += 1;
        Ok(id)
    }

    /// Closes the current write segment and starts a new one.
    fn roll(&mut self) -> Result<(), BufferError> {
        if let Some(w) = self.writer.take() {
            let _ = w.sync_all();
        }
        let id = self.next_id;
        self.next_id += 1;
        let path = self.dir.join(seg_name(id));
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        // The new file's name must survive a crash too.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.writer = Some(f);
        self.segments.push_back(Segment {
            id,
            len: 0,
            records: 0,
        });
        Ok(())
    }

    /// Deletes the oldest segment, counting its unacknowledged records.
    fn drop_front(&mut self) {
        let Some(front) = self.segments.pop_front() else {
            return;
        };
        let lost = front.records.saturating_sub(self.front_acked);
        self.dropped += lost;
        self.pending = self.pending.saturating_sub(lost);
        self.forget_front(front.id);
    }

    fn forget_front(&mut self, id: u64) {
        let _ = fs::remove_file(self.dir.join(seg_name(id)));
        if self.reader.as_ref().is_some_and(|(r, _)| *r == id) {
            self.reader = None;
        }
        if self.segments.is_empty() {
            self.writer = None;
        }
        self.read_off = 0;
        self.front_acked = 0;
    }

    /// The oldest unacknowledged record, or `None` when there is none.
    pub fn peek(&mut self) -> Result<Option<(RecordId, Record)>, BufferError> {
        loop {
            let Some(front) = self.segments.front() else {
                return Ok(None);
            };
            let (id, len, records) = (front.id, front.len, front.records);
            let is_writer = self.segments.len() == 1 && self.writer.is_some();
            if self.read_off >= len {
                if is_writer {
                    return Ok(None);
                }
                self.segments.pop_front();
                self.forget_front(id);
                continue;
            }
            let path = self.dir.join(seg_name(id));
            if self.reader.as_ref().is_none_or(|(r, _)| *r != id) {
                let f = File::open(&path).map_err(io_err(&path))?;
                self.reader = Some((id, BufReader::new(f)));
            }
            let Some((_, r)) = self.reader.as_mut() else {
                continue;
            };
            r.seek(SeekFrom::Start(self.read_off))
                .map_err(io_err(&path))?;
            let frame = read_frame(r, &mut self.scratch, len - self.read_off);
            let record = match frame {
                Ok(Some(n)) => decode_payload(&self.scratch).map(|rec| (n, rec)),
                _ => None,
            };
            match record {
                Some((n, rec)) => {
                    let rid = RecordId {
                        segment: id,
                        offset: self.read_off,
                        len: n,
                    };
                    return Ok(Some((rid, rec)));
                }
                None => {
                    // Damaged after it was validated (the disk changed under
                    // us): the rest of this segment cannot be trusted.
                    tracing::warn!(
                        "{}: damaged record at offset {}; skipping the rest of the segment",
                        path.display(),
                        self.read_off
                    );
                    let lost = records.saturating_sub(self.front_acked);
                    self.dropped += lost;
                    self.pending = self.pending.saturating_sub(lost);
                    self.front_acked = records;
                    self.read_off = len;
                }
            }
        }
    }

    /// Marks the record `id` (from [`peek`](Self::peek) or
    /// [`push`](Self::push)) as delivered. Only the oldest record can be
    /// acknowledged: one that is not (the bound dropped it meanwhile, or it
    /// was acknowledged already) is ignored.
    pub fn ack(&mut self, id: RecordId) {
        let front_id = self.segments.front().map(|s| s.id);
        if front_id != Some(id.segment) || self.read_off != id.offset {
            return;
        }
        self.read_off += id.len;
        self.front_acked += 1;
        self.pending = self.pending.saturating_sub(1);
        let done = self
            .segments
            .front()
            .is_some_and(|s| self.read_off >= s.len);
        let is_writer = self.segments.len() == 1 && self.writer.is_some();
        if done && !is_writer {
            self.segments.pop_front();
            self.forget_front(id.segment);
            // The marker now points at the next segment's start.
            let next = self.segments.front().map_or(id.segment + 1, |s| s.id);
            self.write_marker(next, 0);
        } else {
            self.write_marker(id.segment, self.read_off);
        }
    }

    fn write_marker(&self, segment: u64, offset: u64) {
        let tmp = self.dir.join("acked.tmp");
        let res = fs::write(&tmp, format!("{segment} {offset}\n"))
            .and_then(|_| fs::rename(&tmp, self.dir.join("acked")));
        if let Err(e) = res {
            // Only costs a replay of acknowledged records after a restart.
            tracing::debug!("cannot update {}: {e}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &mut DiskBuffer) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some((id, r)) = b.peek().expect("peek") {
            out.push(r);
            b.ack(id);
        }
        out
    }

    fn body(i: usize) -> Vec<u8> {
        format!("{{\"n\":{i}}}").into_bytes()
    }

    #[test]
    fn records_come_back_in_order_across_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let mut b = DiskBuffer::open(dir.path(), 1 << 20).expect("open");
            for i in 0..10 {
                b.push("/api/v1/metrics", &body(i)).expect("push");
            }
            // Deliver three, then "crash".
            for _ in 0..3 {
                let (id, _) = b.peek().expect("peek").expect("some");
                b.ack(id);
            }
        }
        let mut b = DiskBuffer::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(b.pending(), 7);
        b.push("/x", b"late").expect("push");
        let got = drain(&mut b);
        let want: Vec<Vec<u8>> = (3..10).map(body).chain([b"late".to_vec()]).collect();
        assert_eq!(got.iter().map(|r| r.body.clone()).collect::<Vec<_>>(), want);
        assert_eq!(got[0].path, "/api/v1/metrics");
        assert_eq!(got[7].path, "/x");
        assert!(b.is_empty());
        // Everything acknowledged: a reopen finds nothing to send.
        drop(b);
        let mut b = DiskBuffer::open(dir.path(), 1 << 20).expect("reopen");
        assert!(b.peek().expect("peek").is_none());
    }

    #[test]
    fn new_segments_after_everything_was_acknowledged_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut b = DiskBuffer::open(dir.path(), 16 << 10).expect("open");
        // Several segments, all delivered: the files are gone, the marker
        // points past them.
        for i in 0..30 {
            b.push("/p", &[i; 300]).expect("push");
        }
        let segs = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .count();
        assert!(segs >= 2, "{segs} segments");
        assert_eq!(drain(&mut b).len(), 30);
        drop(b);
        for round in 0..3u8 {
            let mut b = DiskBuffer::open(dir.path(), 16 << 10).expect("reopen");
            assert!(b.peek().expect("peek").is_none(), "round {round}");
            b.push("/p", &[round; 10]).expect("push");
            drop(b);
            let mut b = DiskBuffer::open(dir.path(), 16 << 10).expect("reopen");
            assert_eq!(b.pending(), 1, "round {round}: a new record was lost");
            let got = drain(&mut b);
            assert_eq!(got[0].body, vec![round; 10]);
        }
    }

    #[test]
    fn a_torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let mut b = DiskBuffer::open(dir.path(), 1 << 20).expect("open");
            for i in 0..5 {
                b.push("/p", &body(i)).expect("push");
            }
        }
        let seg = dir.path().join(seg_name(0));
        let full = fs::metadata(&seg).expect("meta").len();
        // A crash in the middle of the last write: half a frame remains.
        let f = OpenOptions::new().write(true).open(&seg).expect("open seg");
        f.set_len(full - 5).expect("cut");
        drop(f);
        // And garbage after a frame boundary in a second file.
        fs::write(dir.path().join(seg_name(1)), [7u8; 3]).expect("junk");

        let mut b = DiskBuffer::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(b.pending(), 4);
        b.push("/p", b"after").expect("push");
        let got: Vec<Vec<u8>> = drain(&mut b).into_iter().map(|r| r.body).collect();
        let want: Vec<Vec<u8>> = (0..4).map(body).chain([b"after".to_vec()]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_flipped_byte_ends_the_segment_there() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let mut b = DiskBuffer::open(dir.path(), 1 << 20).expect("open");
            for i in 0..3 {
                b.push("/p", &body(i)).expect("push");
            }
        }
        let seg = dir.path().join(seg_name(0));
        let mut bytes = fs::read(&seg).expect("read");
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        fs::write(&seg, bytes).expect("write");
        let mut b = DiskBuffer::open(dir.path(), 1 << 20).expect("reopen");
        let got: Vec<Vec<u8>> = drain(&mut b).into_iter().map(|r| r.body).collect();
        assert_eq!(got, vec![body(0), body(1)]);
    }

    #[test]
    fn the_bound_holds_and_drops_the_oldest() {
        let dir = tempfile::tempdir().expect("tmp");
        let max = 64 << 10;
        let mut b = DiskBuffer::open(dir.path(), max).expect("open");
        let payload = vec![b'x'; 1000];
        for i in 0..1000u32 {
            let mut p = payload.clone();
            p[..4].copy_from_slice(&i.to_le_bytes());
            b.push("/p", &p).expect("push");
            let on_disk: u64 = fs::read_dir(dir.path())
                .expect("ls")
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum();
            assert!(on_disk <= max, "{on_disk} bytes on disk > {max}");
        }
        assert!(b.dropped() > 0);
        assert_eq!(b.dropped() + b.pending(), 1000);
        // What is left is the newest records, in order, ending with the last.
        let got = drain(&mut b);
        let ids: Vec<u32> = got
            .iter()
            .map(|r| u32::from_le_bytes([r.body[0], r.body[1], r.body[2], r.body[3]]))
            .collect();
        assert_eq!(ids.len() as u64 + b.dropped(), 1000);
        assert_eq!(*ids.last().expect("some"), 999);
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
        // A record larger than the bound is refused and counted.
        let dropped = b.dropped();
        assert!(matches!(
            b.push("/p", &vec![0; max as usize]),
            Err(BufferError::TooLarge { .. })
        ));
        assert_eq!(b.dropped(), dropped + 1);
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = DiskBuffer::open(dir.path(), 1 << 20).expect("open");
        assert!(matches!(
            DiskBuffer::open(dir.path(), 1 << 20),
            Err(BufferError::Locked(_))
        ));
        drop(b);
        DiskBuffer::open(dir.path(), 1 << 20).expect("free again");
    }

    #[test]
    fn ack_of_a_record_dropped_by_the_bound_is_ignored() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut b = DiskBuffer::open(dir.path(), 16 << 10).expect("open");
        b.push("/p", &[1; 1000]).expect("push");
        let (stale, _) = b.peek().expect("peek").expect("some");
        for _ in 0..40 {
            b.push("/p", &[2; 1000]).expect("push");
        }
        b.ack(stale);
        let (_, first) = b.peek().expect("peek").expect("some");
        assert_eq!(first.body[0], 2);
    }
}
