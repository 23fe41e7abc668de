//! Opens a segment file and reads its chunks.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use loupe_model::SeriesKey;
use memmap2::Mmap;

use super::stats::{ChunkSummary, PageStats};
use super::{BlobRef, FLAG_HAS_STATS, FLAG_HAS_STEPS, FLAG_TIMES_SORTED, FOOTER_MAGIC, MAGIC};
use crate::codec::bytes::ByteReader;
use crate::codec::{ColumnValue, PagedReader};
use crate::page_cache::PageCache;
use crate::types::{Points, SeriesId};
use crate::{Error, Result};

/// One chunk of one series in a segment.
#[derive(Debug)]
pub struct ChunkEntry {
    pub series: SeriesId,
    pub count: u32,
    pub flags: u8,
    pub page_points: u32,
    pub summary: ChunkSummary,
    blobs: [BlobRef; 4],
    verified: [AtomicBool; 4],
    stats: OnceLock<Arc<PageStats>>,
}

const STEPS: usize = 0;
const TIMES: usize = 1;
const VALUES: usize = 2;
const STATS: usize = 3;

impl ChunkEntry {
    pub fn has_steps(&self) -> bool {
        self.flags & FLAG_HAS_STEPS != 0
    }
    pub fn times_sorted(&self) -> bool {
        self.flags & FLAG_TIMES_SORTED != 0
    }
    pub fn has_stats(&self) -> bool {
        self.flags & FLAG_HAS_STATS != 0
    }
    pub fn n_pages(&self) -> usize {
        (self.count as usize).div_ceil(self.page_points.max(1) as usize)
    }
    /// Bytes of the chunk's columns, shared columns counted in full.
    pub fn stored_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.len as u64).sum()
    }
}

/// An open, immutable segment file.
pub struct Segment {
    id: u64,
    path: PathBuf,
    map: Mmap,
    /// Sorted by series id (the writer adds series in id order), so a
    /// series' chunks are found by binary search without a per-series map.
    entries: Vec<ChunkEntry>,
    index_range: std::ops::Range<usize>,
    size: u64,
    cache: Arc<PageCache>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("chunks", &self.entries.len())
            .finish()
    }
}

/// The decoders for one chunk's columns.
pub struct ChunkColumns<'a> {
    pub steps: PagedReader<'a, i64>,
    pub times: PagedReader<'a, i64>,
    pub values: PagedReader<'a, f64>,
}

impl Segment {
    /// Maps the file and checks its footer and index. Chunk data is checked
    /// against its checksum the first time it is read.
    pub fn open(path: &Path, id: u64) -> Result<Self> {
        Self::open_with_cache(path, id, Arc::new(PageCache::new(0)))
    }

    /// Like [`Segment::open`], sharing a cache of decoded pages.
    pub fn open_with_cache(path: &Path, id: u64, cache: Arc<PageCache>) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        // Safety: segment files are immutable once published and never
        // truncated; a removed file stays mapped until the last reader drops it.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io("map", path, e))?;
        let size = map.len() as u64;
        let corrupt = |d: String| Error::corrupt(path, d);
        if map.len() < MAGIC.len() + 24 || &map[..MAGIC.len()] != MAGIC {
            return Err(corrupt(
                "not a Loupe segment (bad magic or too short)".into(),
            ));
        }
        let footer = &map[map.len() - 24..];
        if &footer[16..] != FOOTER_MAGIC {
            return Err(corrupt(
                "bad footer magic: the file is truncated or damaged".into(),
            ));
        }
        let mut fr = ByteReader::new(footer);
        let index_offset = fr.u64("index offset").map_err(|e| corrupt(e.to_string()))? as usize;
        let index_len = fr.u32("index length").map_err(|e| corrupt(e.to_string()))? as usize;
        let index_crc = fr
            .u32("index checksum")
            .map_err(|e| corrupt(e.to_string()))?;
        if index_offset.checked_add(index_len) != Some(map.len() - 24) {
            return Err(corrupt("index bounds do not match the file size".into()));
        }
        let index = &map[index_offset..index_offset + index_len];
        if crc32c::crc32c(index) != index_crc {
            return Err(corrupt("index fails its checksum".into()));
        }
        let entries =
            parse_index(index, index_offset as u64).map_err(|e| corrupt(format!("index: {e}")))?;
        if !entries.is_sorted_by_key(|e| e.series) {
            return Err(corrupt("index entries are not in series order".into()));
        }
        let index_range = index_offset..index_offset + index_len;
        // The index is parsed; let the kernel drop its pages until a rewrite
        // reads the keys again, so idle series cost only their entries.
        // Safety: a read-only, file-backed mapping; dropped pages are read
        // back from the file on the next access.
        let page = 4096;
        let start = index_range.start.div_ceil(page) * page;
        if index_range.end > start {
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    index_range.end - start,
                )
            };
        }
        Ok(Segment {
            id,
            path: path.to_path_buf(),
            map,
            entries,
            index_range,
            size,
            cache,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Heap bytes held: the chunk index and the page roll-ups reads have
    /// loaded (the mapped file itself is page cache, not counted).
    pub fn memory_bytes(&self) -> usize {
        let stats: usize = self
            .entries
            .iter()
            .filter_map(|e| e.stats.get())
            .map(|s| s.memory_bytes())
            .sum();
        self.entries.capacity() * std::mem::size_of::<ChunkEntry>() + stats
    }

    /// The series keys this segment holds chunks for, read from its index.
    pub fn keys(&self) -> Result<Vec<(SeriesId, SeriesKey)>> {
        let index = &self.map[self.index_range.clone()];
        parse_keys(index).map_err(|e| Error::corrupt(&self.path, format!("index: {e}")))
    }

    pub fn entries(&self) -> &[ChunkEntry] {
        &self.entries
    }

    /// The chunks of one series, in identity order.
    pub fn chunks_of(&self, id: SeriesId) -> std::ops::Range<u32> {
        let lo = self.entries.partition_point(|e| e.series < id);
        let hi = lo + self.entries[lo..].partition_point(|e| e.series == id);
        lo as u32..hi as u32
    }

    pub fn contains(&self, id: SeriesId) -> bool {
        !self.chunks_of(id).is_empty()
    }

    pub fn entry(&self, chunk: u32) -> &ChunkEntry {
        &self.entries[chunk as usize]
    }

    /// A chunk's four column blobs (steps, times, values, roll-ups) and their
    /// stored checksums, unchecked: a rewrite copies a damaged chunk as it is,
    /// so its damage stays detectable until `loupe store repair` handles it.
    pub(crate) fn raw_blobs(&self, chunk: u32) -> [(&[u8], u32); 4] {
        let e = &self.entries[chunk as usize];
        e.blobs.map(|b| {
            // In bounds: parse_index checked every blob against the data.
            let bytes = &self.map[b.offset as usize..b.offset as usize + b.len as usize];
            (bytes, b.crc)
        })
    }

    fn blob(&self, chunk: u32, which: usize) -> Result<&[u8]> {
        let e = &self.entries[chunk as usize];
        let b = e.blobs[which];
        let bytes = &self.map[b.offset as usize..b.offset as usize + b.len as usize];
        if !e.verified[which].load(Ordering::Acquire) {
            if crc32c::crc32c(bytes) != b.crc {
                return Err(Error::corrupt(
                    &self.path,
                    format!(
                        "chunk {chunk} (series {}) column {} fails its checksum",
                        e.series,
                        ["steps", "times", "values", "roll-ups"][which]
                    ),
                ));
            }
            e.verified[which].store(true, Ordering::Release);
        }
        Ok(bytes)
    }

    fn wrap<T>(&self, chunk: u32, r: Result<T>) -> Result<T> {
        r.map_err(|e| match e {
            Error::Codec(d) => Error::corrupt(&self.path, format!("chunk {chunk}: {d}")),
            other => other,
        })
    }

    /// Opens the decoders of a chunk's columns.
    pub fn columns(&self, chunk: u32) -> Result<ChunkColumns<'_>> {
        let n = self.entries[chunk as usize].count as usize;
        let steps = self.wrap(chunk, PagedReader::with_len(self.blob(chunk, STEPS)?, n))?;
        let times = self.wrap(chunk, PagedReader::with_len(self.blob(chunk, TIMES)?, n))?;
        let values = self.wrap(chunk, PagedReader::with_len(self.blob(chunk, VALUES)?, n))?;
        Ok(ChunkColumns {
            steps,
            times,
            values,
        })
    }

    /// Decodes a whole chunk.
    pub fn read_chunk(&self, chunk: u32) -> Result<Points> {
        let mut c = self.columns(chunk)?;
        let steps = self.wrap(chunk, c.steps.decode_all())?;
        let times = self.wrap(chunk, c.times.decode_all())?;
        let values = self.wrap(chunk, c.values.decode_all())?;
        Ok(Points {
            steps,
            times,
            values,
        })
    }

    /// Appends page `page` of a column to `out`, from the page cache when it
    /// holds it. `column` is 0 for steps, 1 for times, 2 for values.
    pub fn decode_page_cached<T: ColumnValue>(
        &self,
        chunk: u32,
        column: u8,
        reader: &mut PagedReader<'_, T>,
        page: usize,
        out: &mut Vec<T>,
    ) -> Result<()> {
        let key = (self.id, chunk, column, page as u32);
        if let Some(bits) = self.cache.get(&key) {
            out.extend(bits.iter().map(|b| T::from_bits64(*b)));
            return Ok(());
        }
        let start = out.len();
        self.wrap(chunk, reader.decode_page(page, out))?;
        let bits: Arc<[u64]> = out[start..].iter().map(|v| v.to_bits64()).collect();
        self.cache.insert(key, bits);
        Ok(())
    }

    /// The page roll-ups of a chunk, decoded once and kept.
    pub fn page_stats(&self, chunk: u32) -> Result<Option<Arc<PageStats>>> {
        let e = &self.entries[chunk as usize];
        if !e.has_stats() {
            return Ok(None);
        }
        if let Some(s) = e.stats.get() {
            return Ok(Some(s.clone()));
        }
        let bytes = self.blob(chunk, STATS)?;
        let stats = Arc::new(self.wrap(chunk, PageStats::decode(bytes, e.n_pages()))?);
        Ok(Some(e.stats.get_or_init(|| stats).clone()))
    }

    /// Checks one chunk's column checksums.
    pub(crate) fn check_chunk(&self, chunk: u32) -> Result<()> {
        let has_stats = self.entries[chunk as usize].has_stats();
        for which in [STEPS, TIMES, VALUES, STATS] {
            if which != STATS || has_stats {
                self.blob(chunk, which)?;
            }
        }
        Ok(())
    }

    /// Checks every chunk's checksums; returns the damage found.
    pub fn verify(&self) -> Vec<Error> {
        let mut out = Vec::new();
        for i in 0..self.entries.len() as u32 {
            if let Err(err) = self.check_chunk(i) {
                out.push(err);
            }
        }
        out
    }
}

fn parse_index(index: &[u8], data_end: u64) -> Result<Vec<ChunkEntry>> {
    let mut r = ByteReader::new(index);
    let n = r.count("chunk entries", 100)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let series = r.u64("series id")?;
        let key_bytes = r.bytes("series key")?;
        SeriesKey::from_bytes(key_bytes)
            .map_err(|e| Error::Codec(format!("series {series}: {e}")))?;
        let count = r.u32("point count")?;
        let flags = r.u8("flags")?;
        let page_points = r.u32("page size")?;
        if page_points == 0 || page_points as usize > crate::codec::paged::MAX_COLUMN_VALUES {
            return Err(Error::Codec(format!("page size {page_points}")));
        }
        if count as usize > crate::codec::paged::MAX_COLUMN_VALUES {
            return Err(Error::Codec(format!("chunk of {count} points")));
        }
        let summary = ChunkSummary::read(&mut r)?;
        let mut blobs = [BlobRef::default(); 4];
        for b in blobs.iter_mut() {
            *b = BlobRef::read(&mut r)?;
            if b.offset
                .checked_add(b.len as u64)
                .is_none_or(|end| end > data_end)
            {
                return Err(Error::Codec(format!(
                    "chunk of series {series} points past the data"
                )));
            }
        }
        entries.push(ChunkEntry {
            series,
            count,
            flags,
            page_points,
            summary,
            blobs,
            verified: Default::default(),
            stats: OnceLock::new(),
        });
    }
    if r.remaining() != 0 {
        return Err(Error::Codec("bytes after the last index entry".into()));
    }
    Ok(entries)
}

/// The distinct (series, key) pairs of an index already checked by [`parse_index`].
fn parse_keys(index: &[u8]) -> Result<Vec<(SeriesId, SeriesKey)>> {
    let mut r = ByteReader::new(index);
    let n = r.count("chunk entries", 100)?;
    let mut keys: Vec<(SeriesId, SeriesKey)> = Vec::new();
    for _ in 0..n {
        let series = r.u64("series id")?;
        let key_bytes = r.bytes("series key")?;
        // count, flags, page size, summary (12 x 8), four blob refs (4 x 16)
        r.take(4 + 1 + 4 + 96 + 64, "index entry")?;
        if keys.last().map(|(id, _)| *id) != Some(series) {
            let key = SeriesKey::from_bytes(key_bytes)
                .map_err(|e| Error::Codec(format!("series {series}: {e}")))?;
            keys.push((series, key));
        }
    }
    Ok(keys)
}
