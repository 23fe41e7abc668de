//! Little-endian byte writing and bounds-checked reading for the on-disk formats.
//!
//! Every decoder in the engine reads through [`ByteReader`], so a truncated or
//! damaged input becomes an error that says what was being read, never a panic.

use crate::{Error, Result};

/// Appends little-endian integers and length-prefixed byte strings.
pub(crate) trait ByteWriter {
    fn put_u8(&mut self, v: u8);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_i64(&mut self, v: i64) {
        self.put_u64(v as u64);
    }
    fn put_f64(&mut self, v: f64) {
        self.put_u64(v.to_bits());
    }
    /// A u32 length followed by the bytes.
    fn put_bytes(&mut self, b: &[u8]);
}

impl ByteWriter for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_bytes(&mut self, b: &[u8]) {
        self.put_u32(b.len() as u32);
        self.extend_from_slice(b);
    }
}

/// Reads what [`ByteWriter`] wrote; every read is bounds-checked.
pub(crate) struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(Error::Codec(format!(
                "truncated {what}: needs {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(self.u64(what)? as i64)
    }
    pub(crate) fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_bits(self.u64(what)?))
    }
    pub(crate) fn bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    /// A count of items each at least `min_item_bytes` long; refuses counts
    /// the remaining input cannot hold, so a damaged count cannot make the
    /// decoder allocate gigabytes.
    pub(crate) fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item_bytes.max(1)) > self.remaining() {
            return Err(Error::Codec(format!(
                "{what} count {n} does not fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut b = Vec::new();
        b.put_u8(7);
        b.put_u32(123456);
        b.put_f64(f64::NAN);
        b.put_bytes(b"hello");
        let mut r = ByteReader::new(&b);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u32("b").unwrap(), 123456);
        assert_eq!(r.f64("c").unwrap().to_bits(), f64::NAN.to_bits());
        assert_eq!(r.bytes("d").unwrap(), b"hello");
        assert!(r.u8("e").is_err());
        let mut r = ByteReader::new(&b[..3]);
        r.u8("a").unwrap();
        let err = r.u32("the count").unwrap_err().to_string();
        assert!(err.contains("the count"), "{err}");
    }
}
