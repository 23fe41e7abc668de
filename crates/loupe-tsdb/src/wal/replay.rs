//! Reading WAL files back on open.

use std::path::{Path, PathBuf};

use super::{FRAME_HEADER, FRAME_MAGIC};
use crate::Error;

/// What reading one WAL file found, before anything is judged: which
/// frames passed their checksum and where the unreadable bytes are.
#[derive(Debug, Default)]
pub struct ReplayOutcome {
    /// Payloads of the frames that passed their checksum, in order, with the
    /// byte offset of their frame.
    pub payloads: Vec<(u64, Vec<u8>)>,
    /// Unreadable spans with good frames after them: `(offset, bytes)`.
    pub bad_spans: Vec<(u64, u64)>,
    /// Where an unreadable end of the file starts: nothing good follows it.
    pub tail_offset: Option<u64>,
    /// Frame markers in the unreadable tail (at least 1 when there is one).
    pub tail_frames: u64,
    /// The file's length in bytes.
    pub len: u64,
}

impl ReplayOutcome {
    /// True when every byte of the file belongs to a good frame.
    pub fn is_clean(&self) -> bool {
        self.bad_spans.is_empty() && self.tail_offset.is_none()
    }

    /// End of the last good frame before any unreadable tail: the length an
    /// append would have continued from.
    pub fn good_len(&self) -> u64 {
        self.tail_offset.unwrap_or(self.len)
    }
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
/// A bad frame followed by good ones is skipped — the next frame is found by
/// its marker, in one pass — and recorded as a bad span; a bad or cut-short
/// frame with nothing good after it is recorded as the unreadable tail.
/// Whether either is damage or a torn tail is [`judge`]'s call.
pub fn read_frames(bytes: &[u8]) -> ReplayOutcome {
    let mut out = ReplayOutcome {
        len: bytes.len() as u64,
        ..Default::default()
    };
    let mut pos = 0usize;
    while pos < bytes.len() {
        match frame_at(bytes, pos) {
            FrameAt::Good(payload, end) => {
                out.payloads.push((pos as u64, payload.to_vec()));
                pos = end;
            }
            FrameAt::Truncated | FrameAt::Bad => match find_next_frame(bytes, pos + 1) {
                Some(next) => {
                    out.bad_spans.push((pos as u64, (next - pos) as u64));
                    pos = next;
                }
                None => {
                    out.tail_offset = Some(pos as u64);
                    out.tail_frames = count_markers(&bytes[pos..]).max(1);
                    break;
                }
            },
        }
    }
    out
}

/// A WAL file's unreadable end that a crash explains: the frames of an
/// append whose write was cut short before its fsync, so never acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// Where the torn frames start.
    pub offset: u64,
    /// Bytes dropped from there to the end of the file.
    pub bytes: u64,
    /// Frame markers in the dropped bytes: how many appends, at most, the
    /// crash cut short (a group commit writes many frames at once).
    pub frames: u64,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "torn WAL tail in {}: dropped {} bytes ({} frame(s) started) from byte {}, \
             an append a crash cut short before it was acknowledged",
            self.path.display(),
            self.bytes,
            self.frames,
            self.offset
        )
    }
}

/// What a WAL file's problems mean.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Acknowledged frames that are damaged or missing, each naming the file
    /// and the bytes.
    pub damaged: Vec<Error>,
    /// The unacknowledged end of the newest file, cut short by a crash.
    pub torn: Option<TornTail>,
    /// Bytes after a sealed file's acknowledged length: frames of appends that
    /// failed (and were answered with an error), never replayed.
    pub unacknowledged_bytes: u64,
}

/// Judges a file's [`ReplayOutcome`] and drops the payloads that must not be
/// replayed.
///
/// `sealed_len` is the acknowledged length the next WAL file's seal record
/// gives for this one. A sealed file was complete when its successor was
/// created, so anything unreadable or missing below that length is damage to
/// acknowledged data; bytes after it belong to failed appends. An unsealed
/// file is the newest one: a crash can cut its last write short (group commit
/// acknowledges only after the fsync), so an unreadable end with nothing good
/// after it is a torn tail — logged, not damage. A bad span with good frames
/// after it is damage anywhere: a later frame was written after it, and
/// frames are fsync'd in order.
pub fn judge(path: &Path, outcome: &mut ReplayOutcome, sealed_len: Option<u64>) -> Verdict {
    let mut v = Verdict::default();
    let limit = sealed_len.unwrap_or(u64::MAX);
    for &(offset, bytes) in outcome.bad_spans.iter().filter(|(o, _)| *o < limit) {
        v.damaged.push(Error::corrupt(
            path,
            format!(
                "frame at byte {offset} is damaged; skipped {bytes} bytes of acknowledged \
                 records to the next good frame"
            ),
        ));
    }
    match sealed_len {
        Some(sealed) => {
            outcome.payloads.retain(|(offset, _)| *offset < sealed);
            let good = outcome.good_len();
            if good < sealed {
                v.damaged.push(Error::corrupt(
                    path,
                    format!(
                        "acknowledged records from byte {good} to {sealed} are unreadable or \
                         missing (the file has {} bytes; the next WAL file's seal says {sealed})",
                        outcome.len
                    ),
                ));
            }
            v.unacknowledged_bytes = outcome.len.saturating_sub(sealed);
        }
        None => {
            if let Some(offset) = outcome.tail_offset {
                v.torn = Some(TornTail {
                    path: path.to_path_buf(),
                    offset,
                    bytes: outcome.len - offset,
                    frames: outcome.tail_frames,
                });
            }
        }
    }
    v
}

/// Counts frame markers in `bytes`: a torn tail's fragments of frames.
fn count_markers(bytes: &[u8]) -> u64 {
    bytes.windows(4).filter(|w| *w == FRAME_MAGIC).count() as u64
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

    fn three_frames() -> (Vec<u8>, usize, usize) {
        let mut b = frame(b"first-frame");
        let second = b.len();
        b.extend(frame(b"second-frame"));
        let third = b.len();
        b.extend(frame(b"third-frame"));
        (b, second, third)
    }

    #[test]
    fn torn_tail_of_the_newest_file_is_logged_not_damage() {
        let mut b = frame(b"one");
        b.extend(frame(b"two"));
        let full = b.len();
        b.extend(&frame(b"three-three")[..10]);
        let mut out = read_frames(&b);
        assert_eq!(out.payloads.len(), 2);
        assert_eq!(out.tail_offset, Some(full as u64));
        let v = judge(Path::new("x.wal"), &mut out, None);
        assert!(v.damaged.is_empty());
        let torn = v.torn.expect("a torn tail");
        assert_eq!((torn.offset, torn.bytes, torn.frames), (full as u64, 10, 1));
        assert!(torn.to_string().contains("dropped 10 bytes"), "{torn}");
        assert!(read_frames(&b[..full]).is_clean());
    }

    #[test]
    fn a_cut_sealed_file_is_damage() {
        let (b, _, third) = three_frames();
        // The successor's seal says all three frames were acknowledged; the
        // file was cut inside the third.
        let mut out = read_frames(&b[..third + 5]);
        let v = judge(Path::new("/d/7.wal"), &mut out, Some(b.len() as u64));
        assert!(v.torn.is_none());
        assert_eq!(v.damaged.len(), 1);
        let msg = v.damaged[0].to_string();
        assert!(
            msg.contains("/d/7.wal") && msg.contains(&format!("byte {third}")),
            "{msg}"
        );
        // A file shorter than its seal, cut exactly between frames, too.
        let mut out = read_frames(&b[..third]);
        let v = judge(Path::new("/d/7.wal"), &mut out, Some(b.len() as u64));
        assert_eq!(v.damaged.len(), 1);
    }

    #[test]
    fn bytes_after_the_seal_are_failed_appends_and_not_replayed() {
        let (b, _, third) = three_frames();
        let mut out = read_frames(&b);
        let v = judge(Path::new("w.wal"), &mut out, Some(third as u64));
        assert!(v.damaged.is_empty() && v.torn.is_none());
        assert_eq!(v.unacknowledged_bytes, (b.len() - third) as u64);
        assert_eq!(out.payloads.len(), 2);
    }

    #[test]
    fn damaged_middle_frame_is_reported_and_skipped() {
        let (mut b, second, _) = three_frames();
        b[second + FRAME_HEADER + 2] ^= 0x10;
        let mut out = read_frames(&b);
        let got: Vec<&[u8]> = out.payloads.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(got, vec![&b"first-frame"[..], &b"third-frame"[..]]);
        let v = judge(Path::new("/d/0001.wal"), &mut out, None);
        assert_eq!(v.damaged.len(), 1);
        assert!(v.damaged[0].to_string().contains("/d/0001.wal"));
        assert!(v.torn.is_none());
    }

    #[test]
    fn a_bad_last_frame_of_a_sealed_file_is_damage() {
        let (mut b, _, third) = three_frames();
        b[third + FRAME_HEADER + 1] ^= 0x01;
        let mut out = read_frames(&b);
        assert_eq!(out.tail_offset, Some(third as u64));
        let v = judge(Path::new("w.wal"), &mut out, Some(b.len() as u64));
        assert_eq!(v.damaged.len(), 1);
        let mut out = read_frames(&b);
        let v = judge(Path::new("w.wal"), &mut out, None);
        assert!(v.damaged.is_empty() && v.torn.is_some());
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
        let out = read_frames(&b);
        assert_eq!(out.payloads.len(), 31);
        assert_eq!(out.bad_spans.len(), 1);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn damaged_length_is_reported() {
        let (mut b, second, _) = three_frames();
        b[second + 7] = 0x7f; // huge length
        let out = read_frames(&b);
        assert_eq!(out.payloads.len(), 2);
        assert_eq!(out.bad_spans.len(), 1);
    }
}
