//! Writes a segment file: the compressed chunks of many series, then an index.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;

use loupe_model::{NO_STEP, SeriesKey};

use super::Segment;
use super::stats::{ChunkSummary, PageStats};
use super::{BlobRef, FLAG_HAS_STATS, FLAG_HAS_STEPS, FLAG_TIMES_SORTED, FOOTER_MAGIC, MAGIC};
use crate::codec::bytes::ByteWriter;
use crate::codec::encode_paged;
use crate::types::{Points, SeriesId};
use crate::{Error, Result};

/// Collects series chunks and writes them as one immutable segment file.
///
/// Identical encoded columns are stored once: the series a training loop
/// logs in one call share their steps and times, so a run's five scalars
/// pay for one time column, not five.
pub struct SegmentWriter {
    page_points: usize,
    max_chunk_points: usize,
    data: Vec<u8>,
    index: Vec<u8>,
    entries: u32,
    dedup: HashMap<(u32, u32), Vec<(u64, u32)>>,
}

impl SegmentWriter {
    pub fn new(page_points: usize, max_chunk_points: usize) -> Self {
        let mut data = Vec::new();
        data.extend_from_slice(MAGIC);
        Self {
            page_points: page_points.max(1),
            max_chunk_points: max_chunk_points.max(page_points.max(1)),
            data,
            index: Vec::new(),
            entries: 0,
            dedup: HashMap::new(),
        }
    }

    /// Adds a series' points, sorted by identity and free of repeats.
    pub fn add_series(&mut self, id: SeriesId, key: &SeriesKey, points: &Points) {
        let mut start = 0;
        while start < points.len() {
            let end = (start + self.max_chunk_points).min(points.len());
            let chunk = Points {
                steps: points.steps[start..end].to_vec(),
                times: points.times[start..end].to_vec(),
                values: points.values[start..end].to_vec(),
            };
            self.add_chunk(id, key, &chunk);
            start = end;
        }
    }

    fn add_chunk(&mut self, id: SeriesId, key: &SeriesKey, points: &Points) {
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
        let steps = self.put_blob(&encode_paged(&points.steps, self.page_points));
        let times = self.put_blob(&encode_paged(&points.times, self.page_points));
        let values = self.put_blob(&encode_paged(&points.values, self.page_points));
        let stats = if with_stats {
            self.put_blob(&PageStats::compute(points, self.page_points).encode())
        } else {
            BlobRef::default()
        };
        let ix = &mut self.index;
        ix.put_u64(id);
        ix.put_bytes(&key.to_bytes());
        ix.put_u32(n as u32);
        ix.put_u8(flags);
        ix.put_u32(self.page_points as u32);
        ChunkSummary::of(points).write(ix);
        for b in [steps, times, values, stats] {
            b.write(ix);
        }
        self.entries += 1;
    }

    /// Copies a chunk of another segment as it is stored, checksums included
    /// (a damaged chunk stays damaged, and detectably so).
    pub(crate) fn copy_chunk(&mut self, key: &SeriesKey, from: &Segment, chunk: u32) {
        let e = from.entry(chunk);
        let blobs = from.raw_blobs(chunk).map(|(bytes, crc)| {
            let offset = self.data.len() as u64;
            self.data.extend_from_slice(bytes);
            BlobRef {
                offset,
                len: bytes.len() as u32,
                crc,
            }
        });
        let ix = &mut self.index;
        ix.put_u64(e.series);
        ix.put_bytes(&key.to_bytes());
        ix.put_u32(e.count);
        ix.put_u8(e.flags);
        ix.put_u32(e.page_points);
        e.summary.write(ix);
        for b in blobs {
            b.write(ix);
        }
        self.entries += 1;
    }

    fn put_blob(&mut self, bytes: &[u8]) -> BlobRef {
        let crc = crc32c::crc32c(bytes);
        let len = bytes.len() as u32;
        if let Some(cands) = self.dedup.get(&(crc, len)) {
            for &(off, _) in cands {
                let off_us = off as usize;
                if &self.data[off_us..off_us + len as usize] == bytes {
                    return BlobRef {
                        offset: off,
                        len,
                        crc,
                    };
                }
            }
        }
        let offset = self.data.len() as u64;
        self.data.extend_from_slice(bytes);
        self.dedup
            .entry((crc, len))
            .or_default()
            .push((offset, len));
        BlobRef { offset, len, crc }
    }

    /// Bytes the file will take, so far.
    pub fn size(&self) -> usize {
        self.data.len() + self.index.len() + 32
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Writes the file and fsyncs it. The caller makes the directory entry
    /// durable and publishes the segment in the manifest.
    pub fn finish(self, path: &Path) -> Result<u64> {
        let mut index = Vec::with_capacity(self.index.len() + 4);
        index.put_u32(self.entries);
        index.extend_from_slice(&self.index);
        let index_offset = self.data.len() as u64;
        let mut footer = Vec::with_capacity(32);
        footer.put_u64(index_offset);
        footer.put_u32(index.len() as u32);
        footer.put_u32(crc32c::crc32c(&index));
        footer.extend_from_slice(FOOTER_MAGIC);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let res = (|| {
            w.write_all(&self.data)?;
            w.write_all(&index)?;
            w.write_all(&footer)?;
            w.flush()?;
            w.get_ref().sync_all()
        })();
        if let Err(e) = res {
            drop(w);
            let _ = std::fs::remove_file(path);
            return Err(Error::io("write", path, e));
        }
        Ok((self.data.len() + index.len() + footer.len()) as u64)
    }
}
