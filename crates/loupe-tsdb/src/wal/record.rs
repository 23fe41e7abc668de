//! WAL record payloads: what one acknowledged append wrote.
//!
//! Columns are stored raw (little-endian), so encoding is a copy and replay is
//! a copy: the WAL is short-lived, and the segment codec does the compressing.
//!
//! ```text
//! u8 kind = 2 (seal)   u64 prev_id, u64 prev_len      the first frame of every WAL file
//! u8 kind = 1 (append)
//! u32 n_defs   { u64 series_id, bytes key }            new series first seen here
//! u32 n_series { u64 series_id, u32 n, u8 has_steps,
//!                i64 steps[n] if has_steps, i64 times[n], f64 values[n] }
//! ```

use loupe_model::{NO_STEP, SeriesKey};

use crate::codec::bytes::{ByteReader, ByteWriter};
use crate::types::{SeriesId, SeriesWrite};
use crate::{Error, Result};

const KIND_APPEND: u8 = 1;
const KIND_SEAL: u8 = 2;

/// One series' points as replayed from the WAL (steps filled with [`NO_STEP`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayedSeries {
    pub id: SeriesId,
    pub steps: Vec<i64>,
    pub times: Vec<i64>,
    pub values: Vec<f64>,
}

/// A decoded WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum WalRecord {
    Append {
        defs: Vec<(SeriesId, SeriesKey)>,
        series: Vec<ReplayedSeries>,
    },
    /// Opens every WAL file: WAL file `prev_id` ended, acknowledged, at byte
    /// `prev_len`. Replay checks the predecessor against it, so a cut or
    /// damaged sealed file is damage, not a torn tail.
    Seal { prev_id: u64, prev_len: u64 },
}

/// Encodes the seal record that starts a new WAL file.
pub fn encode_seal(prev_id: u64, prev_len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    out.put_u8(KIND_SEAL);
    out.put_u64(prev_id);
    out.put_u64(prev_len);
    out
}

/// Encodes an append: the definitions of series new in this batch, then each
/// series' columns.
/// Keys are given in their encoded form ([`SeriesKey::to_bytes`]).
pub fn encode_append(defs: &[(SeriesId, &[u8])], series: &[(SeriesId, &SeriesWrite)]) -> Vec<u8> {
    let bytes: usize =
        series.iter().map(|(_, s)| 13 + s.len() * 24).sum::<usize>() + defs.len() * 64 + 16;
    let mut out = Vec::with_capacity(bytes);
    out.put_u8(KIND_APPEND);
    out.put_u32(defs.len() as u32);
    for (id, key) in defs {
        out.put_u64(*id);
        out.put_bytes(key);
    }
    out.put_u32(series.len() as u32);
    for (id, s) in series {
        out.put_u64(*id);
        out.put_u32(s.len() as u32);
        match &s.steps {
            Some(steps) => {
                out.put_u8(1);
                extend_le(&mut out, steps.iter().map(|v| *v as u64));
            }
            None => out.put_u8(0),
        }
        extend_le(&mut out, s.times.iter().map(|v| *v as u64));
        extend_le(&mut out, s.values.iter().map(|v| v.to_bits()));
    }
    out
}

fn extend_le(out: &mut Vec<u8>, it: impl ExactSizeIterator<Item = u64>) {
    out.reserve(it.len() * 8);
    for v in it {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn read_column(r: &mut ByteReader<'_>, n: usize, what: &str) -> Result<Vec<u64>> {
    let raw = r.take(n * 8, what)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
        .collect())
}

/// Decodes a record payload; any damage is an error, never a panic.
pub fn decode_record(payload: &[u8]) -> Result<WalRecord> {
    let mut r = ByteReader::new(payload);
    match r.u8("record kind")? {
        KIND_APPEND => {
            let n_defs = r.count("series definitions", 12)?;
            let mut defs = Vec::with_capacity(n_defs);
            for _ in 0..n_defs {
                let id = r.u64("series id")?;
                let key = SeriesKey::from_bytes(r.bytes("series key")?)
                    .map_err(|e| Error::Codec(format!("series {id}: {e}")))?;
                defs.push((id, key));
            }
            let n_series = r.count("series", 13)?;
            let mut series = Vec::with_capacity(n_series);
            for _ in 0..n_series {
                let id = r.u64("series id")?;
                let n = r.count("points", 16)?;
                let has_steps = match r.u8("step flag")? {
                    0 => false,
                    1 => true,
                    f => return Err(Error::Codec(format!("step flag {f}"))),
                };
                let steps = if has_steps {
                    read_column(&mut r, n, "steps")?
                        .into_iter()
                        .map(|v| v as i64)
                        .collect()
                } else {
                    vec![NO_STEP; n]
                };
                let times = read_column(&mut r, n, "times")?
                    .into_iter()
                    .map(|v| v as i64)
                    .collect();
                let values = read_column(&mut r, n, "values")?
                    .into_iter()
                    .map(f64::from_bits)
                    .collect();
                series.push(ReplayedSeries {
                    id,
                    steps,
                    times,
                    values,
                });
            }
            if r.remaining() != 0 {
                return Err(Error::Codec(format!(
                    "{} bytes after the end of an append record",
                    r.remaining()
                )));
            }
            Ok(WalRecord::Append { defs, series })
        }
        KIND_SEAL => {
            let prev_id = r.u64("sealed file id")?;
            let prev_len = r.u64("sealed file length")?;
            if r.remaining() != 0 {
                return Err(Error::Codec("bytes after the end of a seal record".into()));
            }
            Ok(WalRecord::Seal { prev_id, prev_len })
        }
        k => Err(Error::Codec(format!("unknown WAL record kind {k}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn append_round_trips() {
        let k1 = SeriesKey::new("loss", [("run", "a")]).unwrap();
        let k2 = SeriesKey::named("cpu").unwrap();
        let w1 = SeriesWrite::new(
            k1.clone(),
            Some(vec![1, 2]),
            vec![10, 20],
            vec![f64::NAN, -0.0],
        );
        let w2 = SeriesWrite::new(k2.clone(), None, vec![5], vec![1.5]);
        let p = encode_append(&[(7, &k1.to_bytes())], &[(7, &w1), (9, &w2)]);
        let WalRecord::Append { defs, series } = decode_record(&p).unwrap() else {
            panic!("an append decodes as an append");
        };
        assert_eq!(defs, vec![(7, k1)]);
        assert_eq!(series[0].steps, vec![1, 2]);
        assert_eq!(series[0].values[0].to_bits(), f64::NAN.to_bits());
        assert_eq!(series[0].values[1].to_bits(), (-0.0f64).to_bits());
        assert_eq!(series[1].steps, vec![NO_STEP]);
        assert_eq!(series[1].times, vec![5]);
        for cut in 0..p.len() {
            assert!(decode_record(&p[..cut]).is_err());
        }
    }

    #[test]
    fn seal_round_trips() {
        let p = encode_seal(41, 123_456);
        assert_eq!(
            decode_record(&p).unwrap(),
            WalRecord::Seal {
                prev_id: 41,
                prev_len: 123_456
            }
        );
        for cut in 0..p.len() {
            assert!(decode_record(&p[..cut]).is_err());
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_record(&b);
        }
    }
}
