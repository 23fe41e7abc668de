//! Writes a segment file: the compressed chunks of many series, then an index.
//!
//! Chunks go to the file as they are encoded; only the index (one entry per
//! chunk, not per point) and a bounded window of recent columns stay in
//! memory, so writing a segment costs the same memory whatever its size.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use loupe_model::{NO_STEP, SeriesKey};

use super::Segment;
use super::stats::{ChunkSummary, PageStats};
use super::{BlobRef, FLAG_HAS_STATS, FLAG_HAS_STEPS, FLAG_TIMES_SORTED, FOOTER_MAGIC, MAGIC};
use crate::codec::bytes::ByteWriter;
use crate::codec::encode_paged;
use crate::types::{Points, SeriesId};
use crate::{Error, Result};

/// Bytes of recently written columns kept to find repeats.
const RECENT_BYTES: usize = 16 << 20;

/// Streams series chunks into one immutable segment file.
///
/// Identical encoded columns are stored once: the series a training loop
/// logs in one call share their steps and times, so a run's five scalars
/// pay for one time column, not five. Such series are adjacent in id order,
/// so a window of the most recent columns finds the repeats.
///
/// The file is created by [`SegmentWriter::create`] and removed again unless
/// [`SegmentWriter::finish`] completes; the caller publishes it.
pub struct SegmentWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// Bytes written so far: the offset of the next blob.
    written: u64,
    page_points: usize,
    max_chunk_points: usize,
    index: Vec<u8>,
    entries: u32,
    recent: RecentBlobs,
}

impl SegmentWriter {
    /// Creates the file at `path` (which must not exist) and writes its magic.
    pub fn create(path: &Path, page_points: usize, max_chunk_points: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        let mut w = Self {
            path: path.to_path_buf(),
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            written: 0,
            page_points: page_points.max(1),
            max_chunk_points: max_chunk_points.max(page_points.max(1)),
            index: Vec::new(),
            entries: 0,
            recent: RecentBlobs::default(),
        };
        w.write(MAGIC)?;
        Ok(w)
    }

    /// Most points one chunk holds.
    pub fn max_chunk_points(&self) -> usize {
        self.max_chunk_points
    }

    /// Adds a series' points, sorted by identity and free of repeats, cut
    /// into chunks of at most `max_chunk_points`.
    pub fn add_series(&mut self, id: SeriesId, key: &SeriesKey, points: &Points) -> Result<()> {
        let mut start = 0;
        while start < points.len() {
            let end = (start + self.max_chunk_points).min(points.len());
            let chunk = Points {
                steps: points.steps[start..end].to_vec(),
                times: points.times[start..end].to_vec(),
                values: points.values[start..end].to_vec(),
            };
            self.add_chunk(id, key, &chunk)?;
            start = end;
        }
        Ok(())
    }

    /// Adds one chunk (at most `max_chunk_points`, sorted by identity).
    pub fn add_chunk(&mut self, id: SeriesId, key: &SeriesKey, points: &Points) -> Result<()> {
        let n = points.len();
        let has_steps = points.steps.iter().any(|&s| s != NO_STEP);
        let times_sorted = points.times.windows(2).all(|w| w[0] <= w[1]);
        let with_stats = n > self.page_points;
        let mut flags = 0u8;
        if has_steps {
            flags |= FLAG_HAS_STEPS;
        }
        if times_sorted {
            flags |= FLAG_TIMES_SORTED;
        }
        if with_stats {
            flags |= FLAG_HAS_STATS;
        }
        let steps = self.put_blob(&encode_paged(&points.steps, self.page_points))?;
        let times = self.put_blob(&encode_paged(&points.times, self.page_points))?;
        let values = self.put_blob(&encode_paged(&points.values, self.page_points))?;
        let stats = if with_stats {
            self.put_blob(&PageStats::compute(points, self.page_points).encode())?
        } else {
            BlobRef::default()
        };
        let head = EntryHead {
            count: n as u32,
            flags,
            page_points: self.page_points as u32,
        };
        self.put_entry(
            id,
            key,
            head,
            &ChunkSummary::of(points),
            [steps, times, values, stats],
        );
        Ok(())
    }

    /// Copies a chunk of another segment as it is stored, checksums included:
    /// an intact chunk without decoding it, a damaged one byte for byte so
    /// that it stays damaged, and detectably so.
    pub(crate) fn copy_chunk(&mut self, key: &SeriesKey, from: &Segment, chunk: u32) -> Result<()> {
        let e = from.entry(chunk);
        let mut blobs = [BlobRef::default(); 4];
        for (slot, (bytes, crc)) in blobs.iter_mut().zip(from.raw_blobs(chunk)) {
            *slot = if bytes.is_empty() {
                BlobRef::default()
            } else if crc32c::crc32c(bytes) == crc {
                self.put_blob(bytes)?
            } else {
                let offset = self.write(bytes)?;
                BlobRef {
                    offset,
                    len: bytes.len() as u32,
                    crc,
                }
            };
        }
        let head = EntryHead {
            count: e.count,
            flags: e.flags,
            page_points: e.page_points,
        };
        self.put_entry(e.series, key, head, &e.summary, blobs);
        Ok(())
    }

    fn put_entry(
        &mut self,
        id: SeriesId,
        key: &SeriesKey,
        head: EntryHead,
        summary: &ChunkSummary,
        blobs: [BlobRef; 4],
    ) {
        let ix = &mut self.index;
        ix.put_u64(id);
        ix.put_bytes(&key.to_bytes());
        ix.put_u32(head.count);
        ix.put_u8(head.flags);
        ix.put_u32(head.page_points);
        summary.write(ix);
        for b in blobs {
            b.write(ix);
        }
        self.entries += 1;
    }

    /// Writes a column, or points at an identical one written recently.
    fn put_blob(&mut self, bytes: &[u8]) -> Result<BlobRef> {
        let crc = crc32c::crc32c(bytes);
        let len = bytes.len() as u32;
        if let Some(offset) = self.recent.find(crc, bytes) {
            return Ok(BlobRef { offset, len, crc });
        }
        let offset = self.write(bytes)?;
        self.recent.remember(crc, offset, bytes);
        Ok(BlobRef { offset, len, crc })
    }

    /// Appends bytes to the file; returns where they start.
    fn write(&mut self, bytes: &[u8]) -> Result<u64> {
        let offset = self.written;
        let out = self.out.as_mut().expect("writer is open until finish");
        out.write_all(bytes)
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.written += bytes.len() as u64;
        Ok(offset)
    }

    /// Bytes the file will take, so far.
    pub fn size(&self) -> usize {
        self.written as usize + self.index.len() + 32
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Writes the index and footer and fsyncs the file; returns its size.
    /// The caller makes the directory entry durable and publishes the
    /// segment in the manifest.
    pub fn finish(mut self) -> Result<u64> {
        let mut index = Vec::with_capacity(self.index.len() + 4);
        index.put_u32(self.entries);
        index.extend_from_slice(&self.index);
        let index_offset = self.written;
        let mut footer = Vec::with_capacity(32);
        footer.put_u64(index_offset);
        footer.put_u32(index.len() as u32);
        footer.put_u32(crc32c::crc32c(&index));
        footer.extend_from_slice(FOOTER_MAGIC);
        self.write(&index)?;
        self.write(&footer)?;
        let mut out = self.out.take().expect("writer is open until finish");
        let synced = out
            .flush()
            .and_then(|()| out.get_ref().sync_all())
            .map_err(|e| Error::io("write", &self.path, e));
        if let Err(e) = synced {
            drop(out);
            let _ = std::fs::remove_file(&self.path);
            return Err(e);
        }
        Ok(self.written)
    }
}

impl Drop for SegmentWriter {
    /// A writer dropped before `finish` (an error, or nothing to write)
    /// leaves no file behind.
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            drop(out);
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// An index entry's fixed fields before its summary.
struct EntryHead {
    count: u32,
    flags: u8,
    page_points: u32,
}

/// A column's checksum and length.
type BlobSum = (u32, u32);

/// The most recently written columns, up to [`RECENT_BYTES`], by checksum
/// and length.
#[derive(Default)]
struct RecentBlobs {
    /// Where each column starts in the file, and its bytes.
    by_sum: HashMap<BlobSum, (u64, Box<[u8]>)>,
    order: VecDeque<(u32, u32, u64)>,
    bytes: usize,
}

impl RecentBlobs {
    fn find(&self, crc: u32, bytes: &[u8]) -> Option<u64> {
        let (offset, kept) = self.by_sum.get(&(crc, bytes.len() as u32))?;
        (**kept == *bytes).then_some(*offset)
    }

    fn remember(&mut self, crc: u32, offset: u64, bytes: &[u8]) {
        if bytes.len() > RECENT_BYTES / 4 {
            return;
        }
        let key = (crc, bytes.len() as u32);
        if let Some((_, old)) = self.by_sum.insert(key, (offset, bytes.into())) {
            self.bytes -= old.len();
        }
        self.bytes += bytes.len();
        self.order.push_back((key.0, key.1, offset));
        while self.bytes > RECENT_BYTES {
            let Some((crc, len, offset)) = self.order.pop_front() else {
                break;
            };
            // A newer column with the same checksum and length replaced it.
            if self
                .by_sum
                .get(&(crc, len))
                .is_some_and(|(o, _)| *o == offset)
                && let Some((_, old)) = self.by_sum.remove(&(crc, len))
            {
                self.bytes -= old.len();
            }
        }
    }
}
