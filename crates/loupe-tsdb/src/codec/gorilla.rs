//! Gorilla's codecs (Pelkonen et al., "Gorilla: A Fast, Scalable, In-Memory
//! Time Series Database", VLDB 2015), kept as the baseline that Loupe's
//! pcodec pages were measured against (`loupe-bench codecs`). The engine does
//! not store data in this format.
//!
//! Both streams start with a little-endian `u32` count, followed by an
//! MSB-first bit stream padded with zero bits to a whole byte.
//!
//! **XOR floats** ([`encode_xor`]): the first value's 64 bits, then for each
//! value the XOR with the one before:
//! ```text
//! '0'                               XOR is zero (same bits as before)
//! '1' '0' <meaningful bits>         fits in the previous block of meaningful bits
//! '1' '1' <5 leading> <6 length> <meaningful bits>
//! ```
//! A length of 64 is written as 0 (a non-zero XOR never has 0 meaningful
//! bits), and leading-zero counts above 31 are written as 31, since the field
//! has 5 bits (as Gorilla implementations do).
//! Values are compared by bits, so every NaN payload, -0.0 and subnormal
//! comes back exactly.
//!
//! **Delta of delta** ([`encode_dod`]): the first value's 64 bits, then for
//! each value `dod = (v[i] - v[i-1]) - (v[i-1] - v[i-2])` (the delta before
//! the first is taken as 0) in the paper's buckets, extended by one bucket so
//! every `i64` fits:
//! ```text
//! '0'                 dod == 0
//! '10'    7 bits      -64 ..= 63
//! '110'   9 bits      -256 ..= 255
//! '1110'  12 bits     -2048 ..= 2047
//! '11110' 32 bits     i32 range
//! '11111' 64 bits     everything else
//! ```
//! Ranges are plain two's complement, so each is one off the paper's
//! `[-63, 64]`-style ranges at the ends. Arithmetic wraps, which makes the
//! codec exact for any `i64` sequence, including jumps across `i64::MIN`.

use super::bits::{BitReader, BitWriter};
use super::bytes::{ByteReader, ByteWriter};
use super::paged::MAX_COLUMN_VALUES;
use crate::{Error, Result};

/// Leading-zero counts are written in 5 bits.
const MAX_LEADING: u32 = 31;

/// Compresses `values` with Gorilla's XOR scheme.
///
/// # Panics
/// If `values` is longer than [`MAX_COLUMN_VALUES`], like the paged codec.
pub fn encode_xor(values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + values.len());
    out.put_u32(checked_count(values.len()));
    let mut w = BitWriter::with_prefix(out);
    let Some((first, rest)) = values.split_first() else {
        return w.finish();
    };
    let mut prev = first.to_bits();
    w.write_bits(prev, 64);
    // No block yet: 65 leading zeros never occur, so the first non-zero XOR
    // always writes its own block.
    let (mut block_leading, mut block_trailing) = (65u32, 0u32);
    for v in rest {
        let bits = v.to_bits();
        let xor = bits ^ prev;
        prev = bits;
        if xor == 0 {
            w.write_bit(false);
            continue;
        }
        let leading = xor.leading_zeros();
        let trailing = xor.trailing_zeros();
        if leading >= block_leading && trailing >= block_trailing {
            w.write_bits(0b10, 2);
            let len = 64 - block_leading - block_trailing;
            w.write_bits(xor >> block_trailing, len);
        } else {
            let leading = leading.min(MAX_LEADING);
            let len = 64 - leading - trailing;
            w.write_bits(0b11, 2);
            w.write_bits(u64::from(leading), 5);
            w.write_bits(u64::from(len % 64), 6);
            w.write_bits(xor >> trailing, len);
            (block_leading, block_trailing) = (leading, trailing);
        }
    }
    w.finish()
}

/// Decodes what [`encode_xor`] wrote; damaged input is an error, never a panic.
pub fn decode_xor(bytes: &[u8]) -> Result<Vec<f64>> {
    let (n, mut r) = open_stream(bytes, "XOR")?;
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        r.expect_end()?;
        return Ok(out);
    }
    let mut prev = r.read_bits(64)?;
    out.push(f64::from_bits(prev));
    let mut block: Option<(u32, u32)> = None; // (leading, length)
    for i in 1..n {
        if r.read_bit()? {
            let (leading, len) = if r.read_bit()? {
                let leading = r.read_bits(5)? as u32;
                let len = match r.read_bits(6)? as u32 {
                    0 => 64,
                    len => len,
                };
                if leading + len > 64 {
                    return Err(Error::Codec(format!(
                        "XOR value {i}: block of {leading} leading zeros and {len} bits exceeds 64 bits"
                    )));
                }
                block = Some((leading, len));
                (leading, len)
            } else {
                block.ok_or_else(|| {
                    Error::Codec(format!(
                        "XOR value {i} reuses a block of meaningful bits before any was written"
                    ))
                })?
            };
            let trailing = 64 - leading - len;
            prev ^= r.read_bits(len)? << trailing;
        }
        out.push(f64::from_bits(prev));
    }
    r.expect_end()?;
    Ok(out)
}

/// Compresses `values` with Gorilla's delta-of-delta scheme.
///
/// # Panics
/// If `values` is longer than [`MAX_COLUMN_VALUES`], like the paged codec.
pub fn encode_dod(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + values.len() / 4);
    out.put_u32(checked_count(values.len()));
    let mut w = BitWriter::with_prefix(out);
    let Some((&first, rest)) = values.split_first() else {
        return w.finish();
    };
    w.write_bits(first as u64, 64);
    let (mut prev, mut prev_delta) = (first, 0i64);
    for &v in rest {
        let delta = v.wrapping_sub(prev);
        let dod = delta.wrapping_sub(prev_delta);
        (prev, prev_delta) = (v, delta);
        match dod {
            0 => w.write_bit(false),
            -64..=63 => {
                w.write_bits(0b10, 2);
                w.write_bits(dod as u64, 7);
            }
            -256..=255 => {
                w.write_bits(0b110, 3);
                w.write_bits(dod as u64, 9);
            }
            -2048..=2047 => {
                w.write_bits(0b1110, 4);
                w.write_bits(dod as u64, 12);
            }
            _ if i32::try_from(dod).is_ok() => {
                w.write_bits(0b11110, 5);
                w.write_bits(dod as u64, 32);
            }
            _ => {
                w.write_bits(0b11111, 5);
                w.write_bits(dod as u64, 64);
            }
        }
    }
    w.finish()
}

/// Decodes what [`encode_dod`] wrote; damaged input is an error, never a panic.
pub fn decode_dod(bytes: &[u8]) -> Result<Vec<i64>> {
    let (n, mut r) = open_stream(bytes, "delta-of-delta")?;
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        r.expect_end()?;
        return Ok(out);
    }
    let mut prev = r.read_bits(64)? as i64;
    out.push(prev);
    let mut prev_delta = 0i64;
    for _ in 1..n {
        // Count the '1's of the prefix, up to the five of the widest bucket.
        let mut ones = 0;
        while ones < 5 && r.read_bit()? {
            ones += 1;
        }
        let dod = match ones {
            0 => 0,
            1 => signed(r.read_bits(7)?, 7),
            2 => signed(r.read_bits(9)?, 9),
            3 => signed(r.read_bits(12)?, 12),
            4 => signed(r.read_bits(32)?, 32),
            _ => r.read_bits(64)? as i64,
        };
        prev_delta = prev_delta.wrapping_add(dod);
        prev = prev.wrapping_add(prev_delta);
        out.push(prev);
    }
    r.expect_end()?;
    Ok(out)
}

/// Sign-extends the low `n` bits of `v` (`1 <= n < 64`).
fn signed(v: u64, n: u32) -> i64 {
    ((v << (64 - n)) as i64) >> (64 - n)
}

fn checked_count(n: usize) -> u32 {
    assert!(n <= MAX_COLUMN_VALUES, "column too long");
    n as u32
}

/// Reads the count and checks it against the limit and against the bits
/// left: the first value takes 64 bits and every later one at least 1, so a
/// damaged count cannot make the decoder allocate more than the input justifies.
fn open_stream<'a>(bytes: &'a [u8], what: &str) -> Result<(usize, BitReader<'a>)> {
    let mut br = ByteReader::new(bytes);
    let n = br.u32(&format!("{what} value count"))? as usize;
    if n > MAX_COLUMN_VALUES {
        return Err(Error::Codec(format!(
            "{what} stream claims {n} values, over the limit of {MAX_COLUMN_VALUES}"
        )));
    }
    let r = BitReader::new(&bytes[br.position()..]);
    let min_bits = if n == 0 { 0 } else { 63 + n };
    if min_bits > r.remaining_bits() {
        return Err(Error::Codec(format!(
            "{what} stream claims {n} values but has only {} bits",
            r.remaining_bits()
        )));
    }
    Ok((n, r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn xor_round_trip(v: &[f64]) -> Vec<u8> {
        let enc = encode_xor(v);
        assert_eq!(bits(&decode_xor(&enc).unwrap()), bits(v));
        enc
    }

    #[test]
    fn special_floats_are_bit_exact() {
        let v = [
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7ff8_0000_dead_beef),
            f64::from_bits(0xfff0_0000_0000_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE / 3.0,
            f64::from_bits(1),
            f64::MAX,
            f64::MIN,
            1.5,
            -0.0,
            0.0,
        ];
        xor_round_trip(&v);
        for (i, x) in v.iter().enumerate() {
            xor_round_trip(&[*x]);
            xor_round_trip(&[*x, v[(i + 1) % v.len()], *x]);
        }
    }

    #[test]
    fn repeated_values_cost_one_bit() {
        let enc = xor_round_trip(&[42.25; 1001]);
        // Count, the first value, then 1000 zero bits.
        assert_eq!(enc.len(), 4 + 8 + 125);
    }

    #[test]
    fn full_width_xor_uses_length_zero_for_64() {
        // An XOR with bit 63 and bit 0 set has all 64 bits meaningful.
        let a = f64::from_bits(0);
        let b = f64::from_bits(0x8000_0000_0000_0001);
        xor_round_trip(&[a, b, a, b]);
    }

    #[test]
    fn smooth_series_compress() {
        let v: Vec<f64> = (0..10_000).map(|i| (i as f64 * 0.5).floor()).collect();
        let enc = xor_round_trip(&v);
        assert!(enc.len() < v.len() * 4, "{} bytes", enc.len());
    }

    #[test]
    fn dod_buckets_at_their_edges() {
        let mut v = vec![0i64, 0];
        let mut delta = 0i64;
        for dod in [
            0,
            -64,
            63,
            64,
            -65,
            -256,
            255,
            256,
            -2048,
            2047,
            2048,
            i32::MIN as i64,
            i32::MAX as i64,
            i32::MAX as i64 + 1,
            i64::MAX,
            i64::MIN,
        ] {
            delta = delta.wrapping_add(dod);
            let next = v.last().unwrap().wrapping_add(delta);
            v.push(next);
        }
        assert_eq!(decode_dod(&encode_dod(&v)).unwrap(), v);
    }

    #[test]
    fn regular_steps_cost_one_bit() {
        let v: Vec<i64> = (0..10_001).map(|i| 1_000 + i * 15).collect();
        let enc = encode_dod(&v);
        assert_eq!(decode_dod(&enc).unwrap(), v);
        // Count, the first value, the first delta (7-bit bucket), 9999 zero bits.
        assert_eq!(enc.len(), 4 + (64 + 9 + 9999usize).div_ceil(8));
    }

    #[test]
    fn extremes_round_trip() {
        let v = [i64::MIN, i64::MAX, i64::MIN, 0, -1, i64::MAX, i64::MAX, 1];
        assert_eq!(decode_dod(&encode_dod(&v)).unwrap(), v);
        assert_eq!(decode_dod(&encode_dod(&[])).unwrap(), Vec::<i64>::new());
        assert_eq!(decode_dod(&encode_dod(&[i64::MIN])).unwrap(), [i64::MIN]);
    }

    #[test]
    fn huge_or_unbacked_counts_are_refused() {
        let mut b = u32::MAX.to_le_bytes().to_vec();
        b.extend([0u8; 64]);
        assert!(decode_xor(&b).is_err());
        assert!(decode_dod(&b).is_err());
        // 1000 values cannot fit in 8 bytes of bits.
        let mut b = 1000u32.to_le_bytes().to_vec();
        b.extend([0u8; 8]);
        let err = decode_xor(&b).unwrap_err().to_string();
        assert!(err.contains("only 64 bits"), "{err}");
        assert!(decode_dod(&b).is_err());
    }

    #[test]
    fn truncation_and_trailing_bytes_are_errors() {
        let v: Vec<f64> = (0..500).map(|i| (i as f64 * 0.1).sin()).collect();
        let enc = encode_xor(&v);
        for cut in 0..enc.len() {
            assert!(decode_xor(&enc[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = enc.clone();
        longer.push(0);
        assert!(decode_xor(&longer).is_err());

        let t: Vec<i64> = (0..500).map(|i| i * 150_000_000 + (i % 7) * 999).collect();
        let enc = encode_dod(&t);
        for cut in 0..enc.len() {
            assert!(decode_dod(&enc[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn reusing_a_block_before_one_exists_is_an_error() {
        // One value of zeros, then '10' (reuse) with no block written yet.
        let mut b = 2u32.to_le_bytes().to_vec();
        b.extend([0u8; 8]);
        b.push(0b1000_0000);
        let err = decode_xor(&b).unwrap_err().to_string();
        assert!(err.contains("before any was written"), "{err}");
    }

    proptest! {
        #[test]
        fn any_f64_bits_round_trip(v in proptest::collection::vec(any::<u64>(), 0..2000)) {
            let v: Vec<f64> = v.into_iter().map(f64::from_bits).collect();
            let enc = encode_xor(&v);
            prop_assert_eq!(bits(&decode_xor(&enc).unwrap()), bits(&v));
        }

        #[test]
        fn runs_of_similar_f64_round_trip(
            v in proptest::collection::vec((any::<u64>(), 0u32..64, 0usize..4), 0..500)
        ) {
            // Values that share high bits and repeat, so the reuse and
            // zero-XOR branches are taken as often as the new-block branch.
            let mut bits_in = Vec::new();
            let mut base = 0u64;
            for (r, shift, repeat) in v {
                base ^= r >> shift;
                bits_in.extend(std::iter::repeat_n(base, repeat + 1));
            }
            let values: Vec<f64> = bits_in.iter().copied().map(f64::from_bits).collect();
            prop_assert_eq!(bits(&decode_xor(&encode_xor(&values)).unwrap()), bits_in);
        }

        #[test]
        fn any_i64_round_trips(v in proptest::collection::vec(any::<i64>(), 0..2000)) {
            prop_assert_eq!(decode_dod(&encode_dod(&v)).unwrap(), v);
        }

        #[test]
        fn near_regular_i64_round_trips(
            start in any::<i64>(),
            step in any::<i64>(),
            jitter in proptest::collection::vec(-3000i64..3000, 0..2000)
        ) {
            let v: Vec<i64> = jitter
                .iter()
                .enumerate()
                .map(|(i, j)| start.wrapping_add(step.wrapping_mul(i as i64)).wrapping_add(*j))
                .collect();
            prop_assert_eq!(decode_dod(&encode_dod(&v)).unwrap(), v);
        }

        #[test]
        fn decoding_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_xor(&b);
            let _ = decode_dod(&b);
        }

        #[test]
        fn garbage_with_a_plausible_count_never_panics(
            n in 0u32..3000,
            body in proptest::collection::vec(any::<u8>(), 0..400)
        ) {
            let mut b = n.to_le_bytes().to_vec();
            b.extend(body);
            let _ = decode_xor(&b);
            let _ = decode_dod(&b);
        }

        #[test]
        fn damaged_streams_never_panic(flip in 0usize..100_000, bit in 0u8..8, cut in 0usize..100_000) {
            let v: Vec<f64> = (0..1000).map(|i| ((i as f64) * 0.01).cos() as f32 as f64).collect();
            let t: Vec<i64> = (0..1000).map(|i| i * 150_000_000 + (i * i % 13) * 1_000_003).collect();
            for mut enc in [encode_xor(&v), encode_dod(&t)] {
                let i = flip % enc.len();
                enc[i] ^= 1 << bit;
                let _ = decode_xor(&enc);
                let _ = decode_dod(&enc);
                enc.truncate(cut % (enc.len() + 1));
                let _ = decode_xor(&enc);
                let _ = decode_dod(&enc);
            }
        }
    }
}
