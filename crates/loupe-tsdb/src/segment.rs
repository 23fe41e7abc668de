//! Segment files: immutable, compressed chunks of many series with an index.
//!
//! ```text
//! "LPSEG001"
//! blobs…                      paged columns and roll-ups, each checksummed in the index
//! index: u32 n_entries, entries { u64 series, bytes key, u32 count, u8 flags,
//!        u32 page_points, ChunkSummary, BlobRef steps, times, values, roll-ups }
//! footer: u64 index_offset, u32 index_len, u32 crc32c(index), "LPSEGEND"
//! ```
//! A segment is written whole, fsync'd, and only then named in the manifest;
//! it is never modified afterwards (compaction writes new ones).

mod reader;
pub mod stats;
mod writer;

pub use reader::{ChunkColumns, ChunkEntry, Segment};
pub use stats::{ChunkSummary, PageStats};
pub use writer::SegmentWriter;

use std::path::{Path, PathBuf};

use crate::Result;
use crate::codec::bytes::{ByteReader, ByteWriter};

pub(crate) const MAGIC: &[u8; 8] = b"LPSEG001";
pub(crate) const FOOTER_MAGIC: &[u8; 8] = b"LPSEGEND";

pub(crate) const FLAG_HAS_STEPS: u8 = 1;
pub(crate) const FLAG_TIMES_SORTED: u8 = 2;
pub(crate) const FLAG_HAS_STATS: u8 = 4;

/// Where a blob lies in the file, and its checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BlobRef {
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
}

impl BlobRef {
    fn write(&self, out: &mut Vec<u8>) {
        out.put_u64(self.offset);
        out.put_u32(self.len);
        out.put_u32(self.crc);
    }

    fn read(r: &mut ByteReader<'_>) -> Result<Self> {
        Ok(BlobRef {
            offset: r.u64("blob offset")?,
            len: r.u32("blob length")?,
            crc: r.u32("blob checksum")?,
        })
    }
}

/// The path of segment `id` under `dir`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.seg"))
}
