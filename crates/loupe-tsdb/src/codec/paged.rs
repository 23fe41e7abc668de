//! A column of numbers compressed with pcodec in fixed-size pages.
//!
//! Pages are the unit of random access: an M4 read decodes only the pages that
//! straddle a pixel-column boundary, so a page is small (see
//! `SegmentOptions::page_points`); pcodec's chunk metadata (bins, ANS tables)
//! is shared by all pages of the column, which keeps small pages cheap.
//!
//! Layout (little-endian):
//! ```text
//! u8  kind        0 = empty, 1 = constant, 2 = pcodec pages
//! u32 n           number of values
//! kind 1: u32 page_points, u64 the value's bits
//! kind 2: u32 page_points, u32 n_pages, u32 page_end[n_pages],
//!         bytes meta (pcodec file header + chunk meta), page bytes…
//! ```

use pco::data_types::Number;
use pco::wrapped::{ChunkDecompressor, FileCompressor, FileDecompressor};
use pco::{ChunkConfig, PagingSpec};

use super::bytes::{ByteReader, ByteWriter};
use crate::{Error, Result};

const KIND_EMPTY: u8 = 0;
const KIND_CONSTANT: u8 = 1;
const KIND_PCO: u8 = 2;

/// Most values one column may hold; the segment writer cuts longer series
/// into several chunks. Bounds what a damaged length can make a reader allocate.
pub const MAX_COLUMN_VALUES: usize = 1 << 25;

/// Numbers the paged codec stores: `i64` (steps, times) and `f64` (values).
pub trait ColumnValue: Number + Copy + Default + 'static {
    fn to_bits64(self) -> u64;
    fn from_bits64(b: u64) -> Self;
}

impl ColumnValue for i64 {
    fn to_bits64(self) -> u64 {
        self as u64
    }
    fn from_bits64(b: u64) -> Self {
        b as i64
    }
}

impl ColumnValue for f64 {
    fn to_bits64(self) -> u64 {
        self.to_bits()
    }
    fn from_bits64(b: u64) -> Self {
        f64::from_bits(b)
    }
}

/// Number of values in each page when `n` values are cut into pages of `page_points`.
pub fn page_sizes(n: usize, page_points: usize) -> Vec<usize> {
    let page_points = page_points.max(1);
    let mut sizes = vec![page_points; n / page_points];
    if !n.is_multiple_of(page_points) {
        sizes.push(n % page_points);
    }
    sizes
}

/// Encodes `values` into the paged layout.
///
/// # Panics
/// If `values` is longer than [`MAX_COLUMN_VALUES`]; callers cut chunks first.
pub fn encode_paged<T: ColumnValue>(values: &[T], page_points: usize) -> Vec<u8> {
    assert!(values.len() <= MAX_COLUMN_VALUES, "column too long");
    let mut out = Vec::new();
    if values.is_empty() {
        out.put_u8(KIND_EMPTY);
        out.put_u32(0);
        return out;
    }
    let first = values[0].to_bits64();
    if values.iter().all(|v| v.to_bits64() == first) {
        out.put_u8(KIND_CONSTANT);
        out.put_u32(values.len() as u32);
        // Kept so a constant column pages exactly like its siblings in a chunk.
        out.put_u32(page_points.max(1) as u32);
        out.put_u64(first);
        return out;
    }
    let sizes = page_sizes(values.len(), page_points);
    let config = ChunkConfig::default().with_paging_spec(PagingSpec::Exact(sizes.clone()));
    let fc = FileCompressor::default();
    // pcodec only refuses invalid configurations; ours is valid by construction.
    let mut cc = fc
        .chunk_compressor(values, &config)
        .expect("pcodec accepts exact paging that sums to the input length");
    let mut meta = Vec::new();
    fc.write_header(&mut meta).expect("writing to a Vec");
    cc.write_meta(&mut meta).expect("writing to a Vec");
    let mut pages = Vec::new();
    let mut ends = Vec::with_capacity(sizes.len());
    for i in 0..sizes.len() {
        cc.write_page(i, &mut pages).expect("writing to a Vec");
        ends.push(pages.len() as u32);
    }
    out.put_u8(KIND_PCO);
    out.put_u32(values.len() as u32);
    out.put_u32(page_points as u32);
    out.put_u32(sizes.len() as u32);
    for e in ends {
        out.put_u32(e);
    }
    out.put_bytes(&meta);
    out.extend_from_slice(&pages);
    out
}

/// Decodes a paged column, a page at a time or whole.
pub struct PagedReader<'a, T: ColumnValue> {
    n: usize,
    page_points: usize,
    body: Body<'a, T>,
}

enum Body<'a, T: ColumnValue> {
    Empty,
    Constant(T),
    Pco {
        decompressor: Box<ChunkDecompressor<T>>,
        page_ends: Vec<u32>,
        pages: &'a [u8],
    },
}

impl<'a, T: ColumnValue> PagedReader<'a, T> {
    /// Parses the column's header and pcodec metadata; pages are decoded on demand.
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        let mut r = ByteReader::new(bytes);
        let kind = r.u8("column kind")?;
        let n = r.u32("column length")? as usize;
        if n > MAX_COLUMN_VALUES {
            return Err(Error::Codec(format!(
                "column claims {n} values, over the limit of {MAX_COLUMN_VALUES}"
            )));
        }
        match kind {
            KIND_EMPTY => {
                if n != 0 {
                    return Err(Error::Codec(format!("empty column claims {n} values")));
                }
                Ok(Self {
                    n,
                    page_points: 1,
                    body: Body::Empty,
                })
            }
            KIND_CONSTANT => {
                let page_points = r.u32("page size")? as usize;
                if page_points == 0 || page_points > MAX_COLUMN_VALUES {
                    return Err(Error::Codec(format!("page size {page_points}")));
                }
                let v = T::from_bits64(r.u64("constant value")?);
                Ok(Self {
                    n,
                    page_points,
                    body: Body::Constant(v),
                })
            }
            KIND_PCO => {
                let page_points = r.u32("page size")? as usize;
                if page_points == 0 || page_points > MAX_COLUMN_VALUES {
                    return Err(Error::Codec(format!("page size {page_points}")));
                }
                let n_pages = r.count("page count", 4)?;
                if n_pages != n.div_ceil(page_points) {
                    return Err(Error::Codec(format!(
                        "{n_pages} pages cannot hold {n} values of {page_points} per page"
                    )));
                }
                let mut page_ends = Vec::with_capacity(n_pages);
                for _ in 0..n_pages {
                    page_ends.push(r.u32("page offset")?);
                }
                let meta = r.bytes("pcodec metadata")?;
                let pages = &bytes[r.position()..];
                let mut last = 0;
                for &e in &page_ends {
                    if e < last || e as usize > pages.len() {
                        return Err(Error::Codec(format!(
                            "page offset {e} outside the {} page bytes",
                            pages.len()
                        )));
                    }
                    last = e;
                }
                let (fd, rest) = FileDecompressor::new(meta)
                    .map_err(|e| Error::Codec(format!("pcodec header: {e}")))?;
                let (decompressor, _) = fd
                    .chunk_decompressor::<T, _>(rest)
                    .map_err(|e| Error::Codec(format!("pcodec chunk metadata: {e}")))?;
                Ok(Self {
                    n,
                    page_points,
                    body: Body::Pco {
                        decompressor: Box::new(decompressor),
                        page_ends,
                        pages,
                    },
                })
            }
            other => Err(Error::Codec(format!("unknown column kind {other}"))),
        }
    }

    /// Like [`PagedReader::new`], and checks the column holds exactly `n` values.
    pub fn with_len(bytes: &'a [u8], n: usize) -> Result<Self> {
        let r = Self::new(bytes)?;
        if r.n != n {
            return Err(Error::Codec(format!(
                "column holds {} values where {n} were expected",
                r.n
            )));
        }
        Ok(r)
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn page_points(&self) -> usize {
        self.page_points
    }

    pub fn n_pages(&self) -> usize {
        self.n.div_ceil(self.page_points)
    }

    /// Index range of the values in page `page`.
    pub fn page_range(&self, page: usize) -> std::ops::Range<usize> {
        let start = page * self.page_points;
        start..(start + self.page_points).min(self.n)
    }

    /// Appends the values of page `page` to `out`.
    pub fn decode_page(&mut self, page: usize, out: &mut Vec<T>) -> Result<()> {
        let range = self.page_range(page);
        if range.is_empty() {
            return Err(Error::Codec(format!("page {page} out of range")));
        }
        match &mut self.body {
            Body::Empty => Ok(()),
            Body::Constant(v) => {
                out.extend(std::iter::repeat_n(*v, range.len()));
                Ok(())
            }
            Body::Pco {
                decompressor,
                page_ends,
                pages,
            } => {
                let start = if page == 0 { 0 } else { page_ends[page - 1] } as usize;
                let end = page_ends[page] as usize;
                let src = &pages[start..end];
                let base = out.len();
                out.resize(base + range.len(), T::default());
                let mut pd = decompressor
                    .page_decompressor(src, range.len())
                    .map_err(|e| Error::Codec(format!("page {page}: {e}")))?;
                let progress = pd
                    .read(&mut out[base..])
                    .map_err(|e| Error::Codec(format!("page {page}: {e}")))?;
                if progress.n_processed != range.len() || !progress.finished {
                    return Err(Error::Codec(format!("page {page} ended early")));
                }
                Ok(())
            }
        }
    }

    /// Decodes every value.
    pub fn decode_all(&mut self) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(self.n);
        match &self.body {
            Body::Empty => {}
            Body::Constant(v) => out.resize(self.n, *v),
            Body::Pco { .. } => {
                for p in 0..self.n_pages() {
                    self.decode_page(p, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    /// Decodes the values with indexes in `range`, touching only their pages.
    pub fn decode_range(&mut self, range: std::ops::Range<usize>) -> Result<Vec<T>> {
        let range = range.start.min(self.n)..range.end.min(self.n);
        if range.is_empty() {
            return Ok(Vec::new());
        }
        if let Body::Constant(v) = &self.body {
            return Ok(vec![*v; range.len()]);
        }
        let first_page = range.start / self.page_points;
        let last_page = (range.end - 1) / self.page_points;
        let mut buf =
            Vec::with_capacity(((last_page - first_page + 1) * self.page_points).min(self.n));
        for p in first_page..=last_page {
            self.decode_page(p, &mut buf)?;
        }
        let off = first_page * self.page_points;
        Ok(buf[range.start - off..range.end - off].to_vec())
    }
}

/// Decodes a whole column in one call.
pub fn decode_paged<T: ColumnValue>(bytes: &[u8]) -> Result<Vec<T>> {
    PagedReader::<T>::new(bytes)?.decode_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn special_floats_are_bit_exact() {
        let v = vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7ff8_0000_dead_beef),
            f64::from_bits(0xfff0_0000_0000_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE / 3.0,
            f64::MAX,
            1.5,
        ];
        for page in [1, 3, 256] {
            let enc = encode_paged(&v, page);
            assert_eq!(bits(&decode_paged::<f64>(&enc).unwrap()), bits(&v));
        }
    }

    #[test]
    fn pages_decode_independently() {
        let v: Vec<i64> = (0..5000)
            .map(|i| i * 150_000_000 + (i % 7) * 1000)
            .collect();
        let enc = encode_paged(&v, 512);
        let mut r = PagedReader::<i64>::new(&enc).unwrap();
        assert_eq!(r.n_pages(), 10);
        let mut out = Vec::new();
        r.decode_page(9, &mut out).unwrap();
        assert_eq!(out, v[4608..]);
        assert_eq!(r.decode_range(700..1300).unwrap(), v[700..1300]);
        assert!(r.decode_page(10, &mut out).is_err());
    }

    #[test]
    fn constant_and_empty() {
        let c = encode_paged(&[i64::MIN; 1000], 256);
        assert!(c.len() < 20);
        assert_eq!(decode_paged::<i64>(&c).unwrap(), vec![i64::MIN; 1000]);
        // A constant column pages like any other of the same page size.
        let mut r = PagedReader::<i64>::new(&c).unwrap();
        assert_eq!(r.n_pages(), 4);
        let mut page = Vec::new();
        r.decode_page(3, &mut page).unwrap();
        assert_eq!(page.len(), 1000 - 768);
        let e = encode_paged::<f64>(&[], 256);
        assert!(decode_paged::<f64>(&e).unwrap().is_empty());
    }

    #[test]
    fn damaged_input_is_an_error() {
        let v: Vec<f64> = (0..3000).map(|i| (i as f64).sin()).collect();
        let enc = encode_paged(&v, 512);
        for cut in [0, 1, 5, 20, enc.len() / 2] {
            let _ = decode_paged::<f64>(&enc[..cut]); // must not panic
            assert!(decode_paged::<f64>(&enc[..cut]).is_err() || cut == enc.len());
        }
    }

    proptest! {
        #[test]
        fn any_f64_round_trips(v in proptest::collection::vec(any::<u64>(), 0..3000), page in 1usize..700) {
            let v: Vec<f64> = v.into_iter().map(f64::from_bits).collect();
            let enc = encode_paged(&v, page);
            prop_assert_eq!(bits(&decode_paged::<f64>(&enc).unwrap()), bits(&v));
        }

        #[test]
        fn any_i64_round_trips(v in proptest::collection::vec(any::<i64>(), 0..3000), page in 1usize..700) {
            let enc = encode_paged(&v, page);
            prop_assert_eq!(decode_paged::<i64>(&enc).unwrap(), v);
        }

        #[test]
        fn decoding_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_paged::<f64>(&b);
            let _ = decode_paged::<i64>(&b);
        }

        #[test]
        fn damaged_columns_never_panic(flip in 0usize..10_000, bit in 0u8..8, cut in 0usize..10_000) {
            let v: Vec<f64> = (0..2000).map(|i| ((i as f64) * 0.01).cos() as f32 as f64).collect();
            let mut enc = encode_paged(&v, 256);
            let i = flip % enc.len();
            enc[i] ^= 1 << bit;
            let _ = decode_paged::<f64>(&enc);
            enc.truncate(cut % (enc.len() + 1));
            let _ = decode_paged::<f64>(&enc);
        }
    }
}
