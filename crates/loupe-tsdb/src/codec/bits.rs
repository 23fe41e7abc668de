//! MSB-first bit writing and bounds-checked bit reading, for the Gorilla codecs.
//!
//! Bits fill each byte from its most significant end, as in the Gorilla
//! paper, so a stream can be read back with plain big-endian loads. The
//! reader checks every read against the bits left and answers a short stream
//! with [`Error::Codec`], never a panic, whatever the input.

use crate::{Error, Result};

/// Appends bit fields to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    /// Bits not yet flushed, right-aligned; `pending_len` of them are valid.
    pending: u64,
    pending_len: u32,
}

impl BitWriter {
    /// A writer that appends after the bytes already in `out`.
    pub(crate) fn with_prefix(out: Vec<u8>) -> Self {
        Self {
            out,
            pending: 0,
            pending_len: 0,
        }
    }

    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `n` bits of `value`, most significant first.
    ///
    /// # Panics
    /// If `n > 64` (a bug in the caller, not a property of the data).
    pub(crate) fn write_bits(&mut self, value: u64, n: u32) {
        assert!(n <= 64, "cannot write {n} bits at once");
        if n == 0 {
            return;
        }
        let value = if n == 64 {
            value
        } else {
            value & ((1 << n) - 1)
        };
        // Keep at most 7 bits pending between calls, so a 64-bit field is
        // split only when it would overflow the accumulator.
        if self.pending_len + n <= 64 {
            self.pending = if n == 64 {
                value
            } else {
                (self.pending << n) | value
            };
            self.pending_len += n;
        } else {
            let first = 64 - self.pending_len;
            let rest = n - first;
            self.pending = (self.pending << first) | (value >> rest);
            self.pending_len = 64;
            self.flush_whole_bytes();
            self.pending = (self.pending << rest) | (value & ((1 << rest) - 1));
            self.pending_len += rest;
        }
        self.flush_whole_bytes();
    }

    fn flush_whole_bytes(&mut self) {
        while self.pending_len >= 8 {
            self.pending_len -= 8;
            self.out.push((self.pending >> self.pending_len) as u8);
        }
        // Drop flushed bits so the shifts above never carry stale high bits.
        self.pending &= (1u64 << self.pending_len) - 1;
    }

    /// Pads the last byte with zero bits and returns the buffer.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.pending_len > 0 {
            let pad = 8 - self.pending_len;
            self.out.push((self.pending << pad) as u8);
        }
        self.out
    }
}

/// Reads what [`BitWriter`] wrote.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    /// Position in bits from the start of `buf`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining_bits(&self) -> usize {
        self.buf.len() * 8 - self.pos
    }

    pub(crate) fn read_bit(&mut self) -> Result<bool> {
        Ok(self.read_bits(1)? == 1)
    }

    /// Reads an `n`-bit field (`n <= 64`), most significant bit first.
    pub(crate) fn read_bits(&mut self, n: u32) -> Result<u64> {
        if n > 64 {
            return Err(Error::Codec(format!("cannot read {n} bits at once")));
        }
        if n as usize > self.remaining_bits() {
            return Err(Error::Codec(format!(
                "bit stream truncated: needs {n} bits at bit {}, {} left",
                self.pos,
                self.remaining_bits()
            )));
        }
        if n == 0 {
            return Ok(0);
        }
        // One 8-byte window always holds at least 57 bits from `pos`.
        if n <= 57 {
            let v = self.window() >> (64 - n);
            self.pos += n as usize;
            Ok(v)
        } else {
            let hi = self.read_bits(n - 32)?;
            let lo = self.read_bits(32)?;
            Ok((hi << 32) | lo)
        }
    }

    /// The 64 bits starting at `pos`, zero-filled past the end of the input.
    fn window(&self) -> u64 {
        let byte = self.pos / 8;
        let word = match self.buf.get(byte..byte + 8) {
            Some(s) => u64::from_be_bytes(s.try_into().expect("slice of 8 bytes")),
            None => {
                let mut a = [0u8; 8];
                let tail = &self.buf[byte.min(self.buf.len())..];
                a[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(a)
            }
        };
        word << (self.pos % 8)
    }

    /// Checks that only the zero padding [`BitWriter::finish`] adds is left,
    /// so trailing garbage is reported rather than silently ignored.
    pub(crate) fn expect_end(&mut self) -> Result<()> {
        let left = self.remaining_bits();
        if left >= 8 {
            return Err(Error::Codec(format!(
                "{} unread bytes after the last value",
                left / 8
            )));
        }
        if self.read_bits(left as u32)? != 0 {
            return Err(Error::Codec("non-zero padding after the last value".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn msb_first_layout() {
        let mut w = BitWriter::default();
        w.write_bit(true);
        w.write_bits(0b01, 2);
        w.write_bits(0x1f, 5);
        w.write_bits(0xabc, 12);
        assert_eq!(w.finish(), vec![0b1011_1111, 0xab, 0xc0]);
    }

    #[test]
    fn prefix_is_kept() {
        let mut w = BitWriter::with_prefix(vec![9, 9]);
        w.write_bits(u64::MAX, 64);
        w.write_bit(true);
        let b = w.finish();
        assert_eq!(b.len(), 11);
        assert_eq!(&b[..2], &[9, 9]);
        let mut r = BitReader::new(&b[2..]);
        assert_eq!(r.read_bits(64).unwrap(), u64::MAX);
        assert!(r.read_bit().unwrap());
        r.expect_end().unwrap();
    }

    #[test]
    fn truncation_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(3).unwrap(), 0b111);
        let err = r.read_bits(6).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        assert_eq!(r.read_bits(5).unwrap(), 0b11111);
        assert!(r.read_bit().is_err());
        assert!(r.read_bits(65).is_err());
        assert!(BitReader::new(&[]).read_bits(1).is_err());
    }

    #[test]
    fn trailing_bytes_and_dirty_padding_are_errors() {
        assert!(BitReader::new(&[0, 0]).expect_end().is_err());
        let mut r = BitReader::new(&[0b1000_0001]);
        r.read_bit().unwrap();
        assert!(r.expect_end().is_err());
        let mut r = BitReader::new(&[0b1000_0000]);
        r.read_bit().unwrap();
        r.expect_end().unwrap();
    }

    proptest! {
        #[test]
        fn fields_round_trip(fields in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..200)) {
            let mut w = BitWriter::default();
            for &(v, n) in &fields {
                w.write_bits(v, n);
            }
            let b = w.finish();
            let total: u32 = fields.iter().map(|&(_, n)| n).sum();
            prop_assert_eq!(b.len(), total.div_ceil(8) as usize);
            let mut r = BitReader::new(&b);
            for &(v, n) in &fields {
                let want = if n == 64 { v } else { v & ((1u64 << n) - 1) };
                prop_assert_eq!(r.read_bits(n).unwrap(), want);
            }
            r.expect_end().unwrap();
        }

        #[test]
        fn reading_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40), ns in proptest::collection::vec(0u32..70, 0..60)) {
            let mut r = BitReader::new(&b);
            for n in ns {
                let _ = r.read_bits(n);
            }
            let _ = r.expect_end();
        }
    }
}
