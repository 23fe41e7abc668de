//! Reading WAL files back on open.

use std::path::Path;

use super::{FRAME_HEADER, FRAME_MAGIC};
use crate::Error;

/// What reading one WAL file found.
#[derive(Debug, Default)]
pub struct ReplayOutcome {
    /// Payloads of the frames that passed their checksum, in order.
    pub payloads: Vec<(u64, Vec<u8>)>,
    /// A frame cut short at the end of the file: a write the crash interrupted,
    /// never acknowledged, and ignored.
    pub torn_tail: bool,
    /// Frames in the middle of the file that failed their checksum.
    pub damaged: Vec<Error>,
}

/// Frames `payload` as the WAL stores it.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + FRAME_HEADER);
    frame_into(&mut out, payload);
    out
}

/// Appends the frame of `payload` to `out`.
pub fn frame_into(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(&len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn frame_crc(len: &[u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), payload)
}

/// The frame at `pos`, if a whole, checksummed one starts there.
fn frame_at(bytes: &[u8], pos: usize) -> FrameAt<'_> {
    if bytes.len() - pos < FRAME_HEADER {
        return FrameAt::Truncated;
    }
    if bytes[pos..pos + 4] != FRAME_MAGIC {
        return FrameAt::Bad;
    }
    let len: [u8; 4] = bytes[pos + 4..pos + 8].try_into().expect("4 bytes");
    let crc = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().expect("4 bytes"));
    let start = pos + FRAME_HEADER;
    let Some(end) = start.checked_add(u32::from_le_bytes(len) as usize) else {
        return FrameAt::Bad;
    };
    if end > bytes.len() {
        return FrameAt::Truncated;
    }
    let payload = &bytes[start..end];
    if frame_crc(&len, payload) == crc {
        FrameAt::Good(payload, end)
    } else {
        FrameAt::Bad
    }
}

enum FrameAt<'a> {
    Good(&'a [u8], usize),
    /// Runs past the end of the file.
    Truncated,
    /// No marker, or a checksum mismatch.
    Bad,
}

/// Splits a WAL file's bytes into checked frames.
///
/// A frame cut short by the end of the file, or a bad frame with nothing
/// good after it, is a torn tail. A bad frame followed by good ones is
/// damage: it is reported with the file's name and skipped — the next frame
/// is found by its marker, in one pass — and everything readable is returned.
pub fn read_frames(path: &Path, bytes: &[u8]) -> ReplayOutcome {
    let mut out = ReplayOutcome::default();
    let mut pos = 0usize;
    while pos < bytes.len() {
        match frame_at(bytes, pos) {
            FrameAt::Good(payload, end) => {
                out.payloads.push((pos as u64, payload.to_vec()));
                pos = end;
            }
            FrameAt::Truncated | FrameAt::Bad => {
                match find_next_frame(bytes, pos + 1) {
                    Some(next) => {
                        out.damaged.push(Error::corrupt(
                        path,
                        format!("frame at byte {pos} is damaged; skipped {} bytes to the next frame", next - pos),
                    ));
                        pos = next;
                    }
                    None => {
                        // Nothing good follows: the write a crash interrupted.
                        out.torn_tail = true;
                        break;
                    }
                }
            }
        }
    }
    out
}

/// The first position at or after `from` where a whole, checksummed frame
/// starts. Only candidates carrying the frame marker are checked, so a scan
/// over a damaged file stays linear.
fn find_next_frame(bytes: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while pos + FRAME_HEADER <= bytes.len() {
        let rel = bytes[pos..].windows(4).position(|w| w == FRAME_MAGIC)?;
        pos += rel;
        if let FrameAt::Good(..) = frame_at(bytes, pos) {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_ignored() {
        let mut b = frame(b"one");
        b.extend(frame(b"two"));
        let full = b.len();
        b.extend(&frame(b"three-three")[..10]);
        let out = read_frames(Path::new("x.wal"), &b);
        assert_eq!(out.payloads.len(), 2);
        assert!(out.torn_tail);
        assert!(out.damaged.is_empty());
        let out = read_frames(Path::new("x.wal"), &b[..full]);
        assert!(!out.torn_tail);
    }

    #[test]
    fn damaged_middle_frame_is_reported_and_skipped() {
        let mut b = frame(b"first-frame");
        let second = b.len();
        b.extend(frame(b"second-frame"));
        b.extend(frame(b"third-frame"));
        b[second + FRAME_HEADER + 2] ^= 0x10;
        let out = read_frames(Path::new("/d/0001.wal"), &b);
        let got: Vec<&[u8]> = out.payloads.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(got, vec![&b"first-frame"[..], &b"third-frame"[..]]);
        assert_eq!(out.damaged.len(), 1);
        assert!(out.damaged[0].to_string().contains("/d/0001.wal"));
    }

    #[test]
    fn resync_after_damage_is_linear() {
        // Many large frames and a damaged first one: finding the next frame
        // must not checksum from every byte offset.
        let big = vec![7u8; 1 << 20];
        let mut b = Vec::new();
        for _ in 0..32 {
            b.extend(frame(&big));
        }
        b[5] ^= 0xff;
        let t = std::time::Instant::now();
        let out = read_frames(Path::new("w.wal"), &b);
        assert_eq!(out.payloads.len(), 31);
        assert_eq!(out.damaged.len(), 1);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn damaged_length_is_reported() {
        let mut b = frame(b"first-frame");
        let second = b.len();
        b.extend(frame(b"second-frame"));
        b.extend(frame(b"third-frame"));
        b[second + 7] = 0x7f; // huge length
        let out = read_frames(Path::new("w.wal"), &b);
        assert_eq!(out.payloads.len(), 2);
        assert_eq!(out.damaged.len(), 1);
    }
}
