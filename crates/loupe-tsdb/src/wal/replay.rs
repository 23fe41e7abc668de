//! Reading WAL files back on open.

use std::path::Path;

use super::FRAME_HEADER;
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
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a WAL file's bytes into checked frames.
///
/// A frame that runs past the end of the file, or a bad last frame, is a torn
/// tail. A bad frame followed by good ones is damage: it is reported with the
/// file's name, skipped when the next frame can be found, and everything that
/// can be read is returned.
pub fn read_frames(path: &Path, bytes: &[u8]) -> ReplayOutcome {
    let mut out = ReplayOutcome::default();
    let mut pos = 0usize;
    while pos < bytes.len() {
        if bytes.len() - pos < FRAME_HEADER {
            out.torn_tail = true;
            break;
        }
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let start = pos + FRAME_HEADER;
        let end = start.saturating_add(len);
        if end > bytes.len() {
            // Either the last write was cut short, or the length itself is
            // damaged; look for a later good frame to tell them apart.
            match find_next_frame(bytes, pos + 1) {
                Some(next) => {
                    out.damaged.push(Error::corrupt(
                        path,
                        format!("frame at byte {pos} has a damaged length; skipped to byte {next}"),
                    ));
                    pos = next;
                    continue;
                }
                None => {
                    out.torn_tail = true;
                    break;
                }
            }
        }
        let payload = &bytes[start..end];
        if crc32c::crc32c(payload) == crc {
            out.payloads.push((pos as u64, payload.to_vec()));
            pos = end;
            continue;
        }
        if end == bytes.len() {
            out.torn_tail = true;
            break;
        }
        match find_next_frame(bytes, end).or_else(|| find_next_frame(bytes, pos + 1)) {
            Some(next) => {
                out.damaged.push(Error::corrupt(
                    path,
                    format!("frame at byte {pos} ({len} bytes) fails its checksum; skipped"),
                ));
                pos = next;
            }
            None => {
                out.damaged.push(Error::corrupt(
                    path,
                    format!(
                        "frame at byte {pos} fails its checksum; the {} bytes after it are unreadable",
                        bytes.len() - pos
                    ),
                ));
                break;
            }
        }
    }
    out
}

/// The offset of the first position at or after `from` where a frame with a
/// valid checksum starts, if any. Only used on damaged files.
fn find_next_frame(bytes: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while pos + FRAME_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let start = pos + FRAME_HEADER;
        if len > 0
            && start + len <= bytes.len()
            && crc32c::crc32c(&bytes[start..start + len]) == crc
        {
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
    fn damaged_length_is_reported() {
        let mut b = frame(b"first-frame");
        let second = b.len();
        b.extend(frame(b"second-frame"));
        b.extend(frame(b"third-frame"));
        b[second + 3] = 0x7f; // huge length
        let out = read_frames(Path::new("w.wal"), &b);
        assert_eq!(out.payloads.len(), 2);
        assert_eq!(out.damaged.len(), 1);
    }
}
