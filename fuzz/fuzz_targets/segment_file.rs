//! Segment files: `Segment::open` on arbitrary file contents, then for every
//! chunk `read_chunk`, `columns` page by page, `page_stats`, and `verify`.
//!
//! Segments checksum their index and every blob, so random mutations almost
//! never get past `open`. Each input is therefore tried twice: as it is, and
//! with its checksums recomputed ("repaired") where the footer and index can
//! be parsed, so the fuzzer also reaches the index parser's later checks and
//! the column and roll-up decoders behind the blob checksums.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loupe_tsdb::segment::Segment;

const MAGIC: &[u8; 8] = b"LPSEG001";
const FOOTER_MAGIC: &[u8; 8] = b"LPSEGEND";
const FOOTER: usize = 24;
/// ChunkSummary: u64 count, 5 f64, 6 i64.
const SUMMARY: usize = 8 * 12;
/// A chunk may legally claim up to 2^25 points (256 MiB a column once
/// decoded, and 15 roll-up columns of as many pages); decoding that on every
/// such input slows the fuzzer ~100x, so larger chunks are opened and
/// verified but not decoded. See README.md for what such chunks cost.
const MAX_DECODED: u32 = 1 << 16;

fn scratch_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("loupe-fuzz-segment-{}.seg", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let scan = scan_index(data);
    check(data);
    if let Some(scan) = scan {
        let mut fixed = data.to_vec();
        repair_checksums(&mut fixed, &scan);
        if fixed != data {
            check(&fixed);
        }
    }
});

fn check(bytes: &[u8]) {
    let path = scratch_path();
    std::fs::write(path, bytes).expect("write the scratch segment");
    let opened = Segment::open(path, 1);
    // The segment is mapped; the name is not needed once it is open, and
    // removing it leaves nothing behind when the fuzzer exits.
    let _ = std::fs::remove_file(path);
    let Ok(seg) = opened else {
        return;
    };
    let _ = seg.keys();
    for (i, e) in seg.entries().iter().enumerate() {
        let chunk = i as u32;
        assert!(seg.chunks_of(e.series).contains(&chunk));
        if e.count > MAX_DECODED {
            continue;
        }
        if let Ok(points) = seg.read_chunk(chunk) {
            assert_eq!(points.values.len(), e.count as usize);
            assert_eq!(points.steps.len(), points.values.len());
            assert_eq!(points.times.len(), points.values.len());
        }
        if let Ok(mut cols) = seg.columns(chunk) {
            let mut out = Vec::new();
            for p in 0..cols.values.n_pages() {
                out.clear();
                let _ = cols.values.decode_page(p, &mut out);
            }
            let mut out = Vec::new();
            for p in 0..cols.times.n_pages() {
                out.clear();
                let _ = cols.times.decode_page(p, &mut out);
            }
        }
        if let Ok(Some(stats)) = seg.page_stats(chunk) {
            assert_eq!(stats.pages(), e.n_pages());
        }
    }
    let _ = seg.verify();
    drop(seg);
}

/// Where the footer and index of a segment put things, as far as they parse.
struct Scan {
    index_start: usize,
    footer: usize,
    /// Byte offsets of each 16-byte blob reference (u64 offset, u32 len, u32 crc).
    blob_refs: Vec<usize>,
    /// Some blob reference has `offset + len` past `u64::MAX`.
    overflowing_blob: bool,
}

/// Parses the footer and as much of the index as it can, in the layout
/// `segment.rs` documents; `None` if the footer is not a segment's.
fn scan_index(b: &[u8]) -> Option<Scan> {
    if b.len() < MAGIC.len() + FOOTER || &b[..8] != MAGIC || &b[b.len() - 8..] != FOOTER_MAGIC {
        return None;
    }
    let footer = b.len() - FOOTER;
    let index_offset = u64::from_le_bytes(b[footer..footer + 8].try_into().unwrap());
    let index_len = u32::from_le_bytes(b[footer + 8..footer + 12].try_into().unwrap()) as u64;
    if index_offset.checked_add(index_len) != Some(footer as u64) {
        return None;
    }
    let mut scan = Scan {
        index_start: index_offset as usize,
        footer,
        blob_refs: Vec::new(),
        overflowing_blob: false,
    };
    let mut pos = scan.index_start;
    let mut take = |n: usize| -> Option<usize> {
        let at = pos;
        if footer - at < n {
            return None;
        }
        pos += n;
        Some(at)
    };
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let Some(at) = take(4) else {
        return Some(scan);
    };
    'entries: for _ in 0..u32_at(at) {
        // u64 series, bytes key, u32 count, u8 flags, u32 page_points,
        // summary, 4 blob references
        let Some(_) = take(8) else { break };
        let Some(at) = take(4) else { break };
        if take(u32_at(at) as usize).is_none() || take(4 + 1 + 4 + SUMMARY).is_none() {
            break;
        }
        for _ in 0..4 {
            let Some(at) = take(16) else { break 'entries };
            let off = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
            if off.checked_add(u64::from(u32_at(at + 8))).is_none() {
                scan.overflowing_blob = true;
            }
            scan.blob_refs.push(at);
        }
    }
    Some(scan)
}

/// Recomputes the checksum of every blob that lies inside the data and the
/// index's checksum.
fn repair_checksums(b: &mut [u8], scan: &Scan) {
    for &at in &scan.blob_refs {
        let off = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let len = u64::from(u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()));
        if let Some(end) = off
            .checked_add(len)
            .filter(|&e| e <= scan.index_start as u64)
        {
            let crc = crc32c::crc32c(&b[off as usize..end as usize]);
            b[at + 12..at + 16].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(&b[scan.index_start..scan.footer]);
    b[scan.footer + 12..scan.footer + 16].copy_from_slice(&crc.to_le_bytes());
}
