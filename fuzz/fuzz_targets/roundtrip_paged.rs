//! Structured round trip of the paged codec: the input is a page size and a
//! column of 64-bit patterns; `encode_paged` then `decode_paged` (and each
//! page through `PagedReader`) must give back the same bits, as f64 and i64.
//!
//! Byte 0 picks the page size, byte 1 how the rest becomes values:
//! bit 0 = running sum (sorted, timestamp-like), bit 1 = repeat each value
//! (runs, constants), bit 2 = only the low 16 bits vary (narrow ranges).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_tsdb::codec::{ColumnValue, PagedReader, decode_paged, encode_paged, page_sizes};

fuzz_target!(|data: &[u8]| {
    let Some((&p, rest)) = data.split_first() else {
        return;
    };
    let page_points = if p < 128 {
        p as usize + 1
    } else {
        (p as usize - 127) * 37
    };
    let (mode, rest) = rest.split_first().map_or((0, &[][..]), |(m, r)| (*m, r));
    let mut raw: Vec<u64> = rest
        .chunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    if mode & 4 != 0 {
        for v in &mut raw {
            *v = 0x4059_0000_0000_0000 | (*v & 0xffff);
        }
    }
    if mode & 2 != 0 {
        raw = raw
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, (v >> 60) as usize + 1))
            .collect();
    }
    if mode & 1 != 0 {
        let mut acc = 0u64;
        for v in &mut raw {
            acc = acc.wrapping_add(*v & 0xffff_ffff);
            *v = acc;
        }
    }
    round_trip::<f64>(&raw, page_points);
    round_trip::<i64>(&raw, page_points);
});

fn round_trip<T: ColumnValue>(raw: &[u64], page_points: usize) {
    let values: Vec<T> = raw.iter().map(|&b| T::from_bits64(b)).collect();
    let enc = encode_paged(&values, page_points);
    let dec = decode_paged::<T>(&enc).expect("encoded column decodes");
    let bits = |v: &[T]| v.iter().map(|x| x.to_bits64()).collect::<Vec<_>>();
    assert_eq!(bits(&dec), raw, "decode_paged is not bit-exact");

    let mut r = PagedReader::<T>::new(&enc).expect("encoded column opens");
    assert_eq!(r.len(), values.len());
    let sizes = page_sizes(values.len(), page_points);
    // Constant and empty columns are one page (or none) whatever the size.
    if r.n_pages() > 1 {
        assert_eq!(r.n_pages(), sizes.len());
    }
    let mut out = Vec::new();
    for p in 0..r.n_pages() {
        r.decode_page(p, &mut out).expect("encoded page decodes");
    }
    assert_eq!(bits(&out), raw, "page-by-page decode is not bit-exact");
    let n = values.len();
    let (a, b) = (n / 5, n - n / 3);
    let part = r.decode_range(a..b).expect("encoded range decodes");
    assert_eq!(bits(&part), &raw[a..b]);
}
