//! Reading `spool.jsonl`: where its complete lines end (the torn tail is
//! what follows), the seq of its last readable line (found from the end,
//! without reading the file), and [`Entries`], the lines in order, read as
//! they are consumed.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::line::{Kind, LineError, decode_line};
use super::{Result, TornTail, io_error};

/// The longest line read: four times the server's default body limit
/// (64 MiB). A guard against a damaged file (gigabytes without a newline),
/// not a rule about requests; a longer line is a damaged one.
pub const MAX_LINE_BYTES: u64 = 256 << 20;

/// Damaged lines kept with their reasons; more are only counted.
const DAMAGED_KEPT: usize = 16;

/// Block size of the backward scans.
const BACKWARD_BLOCK: u64 = 64 << 10;

/// One request line of the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub kind: Kind,
    pub key: Option<String>,
    /// Byte offset of the line in `spool.jsonl`.
    pub offset: u64,
    /// Byte offset just past the line (its newline): what an
    /// acknowledgement of this line records.
    pub end: u64,
    line: Vec<u8>,
    body: Range<usize>,
}

impl Entry {
    /// An entry that was not read from a file (tests, benchmarks).
    pub fn new(seq: u64, kind: Kind, key: Option<String>, body: Vec<u8>, end: u64) -> Entry {
        let len = body.len();
        Entry {
            seq,
            kind,
            key,
            offset: end.saturating_sub(len as u64),
            end,
            line: body,
            body: 0..len,
        }
    }

    /// The request body, as written.
    pub fn body(&self) -> &[u8] {
        &self.line[self.body.clone()]
    }

    /// The body, taken out of the line without copying it elsewhere.
    pub fn into_body(mut self) -> Vec<u8> {
        self.line.truncate(self.body.end);
        self.line.drain(..self.body.start);
        self.line
    }
}

/// A complete line that is not an entry.
#[derive(Debug)]
pub struct DamagedLine {
    /// Byte offset of the line in `spool.jsonl`.
    pub offset: u64,
    /// Its length, newline included.
    pub len: u64,
    pub why: LineError,
}

impl fmt::Display for DamagedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the line at byte {} ({} bytes): {}",
            self.offset, self.len, self.why
        )
    }
}

/// What [`FileLayout::read`] learns from the end of the file.
pub(super) struct FileLayout {
    /// Bytes up to and including the last newline.
    pub complete: u64,
    pub torn: Option<TornTail>,
    /// Seq of the last complete line that decodes; 0 when none does.
    pub last_seq: u64,
}

impl FileLayout {
    /// A missing file is an empty spool.
    pub fn read(path: &Path) -> Result<FileLayout> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(FileLayout {
                    complete: 0,
                    torn: None,
                    last_seq: 0,
                });
            }
            Err(e) => return Err(io_error(path)(e)),
        };
        let read = || -> io::Result<FileLayout> {
            let size = file.metadata()?.len();
            let complete = rfind_newline(&file, size)?.map_or(0, |nl| nl + 1);
            let torn = (complete < size).then_some(TornTail {
                offset: complete,
                len: size - complete,
            });
            let last_seq = last_seq(&file, complete)?;
            Ok(FileLayout {
                complete,
                torn,
                last_seq,
            })
        };
        read().map_err(io_error(path))
    }
}

/// Offset of the last `\n` before byte `before`, reading backwards.
fn rfind_newline(file: &File, before: u64) -> io::Result<Option<u64>> {
    let mut block = vec![0u8; BACKWARD_BLOCK as usize];
    let mut hi = before;
    while hi > 0 {
        let lo = hi.saturating_sub(BACKWARD_BLOCK);
        let chunk = &mut block[..(hi - lo) as usize];
        file.read_exact_at(chunk, lo)?;
        if let Some(i) = chunk.iter().rposition(|&c| c == b'\n') {
            return Ok(Some(lo + i as u64));
        }
        hi = lo;
    }
    Ok(None)
}

/// Seq of the last line before `complete` that decodes, walking back line
/// by line (damaged lines at the end are passed over).
fn last_seq(file: &File, complete: u64) -> io::Result<u64> {
    let mut end = complete;
    let mut line = Vec::new();
    while end > 0 {
        let start = rfind_newline(file, end - 1)?.map_or(0, |nl| nl + 1);
        if end - start <= MAX_LINE_BYTES {
            line.resize((end - start) as usize, 0);
            file.read_exact_at(&mut line, start)?;
            if let Ok(l) = decode_line(&line) {
                return Ok(l.seq);
            }
        }
        end = start;
    }
    Ok(0)
}

/// The entries of `spool.jsonl` between two offsets, in file order, read
/// as they are consumed; damaged lines are skipped and recorded.
pub struct Entries {
    path: PathBuf,
    /// `None` for a spool file that does not exist (an empty spool).
    reader: Option<BufReader<io::Take<File>>>,
    /// Offset of the next byte `reader` yields.
    pos: u64,
    /// Entries with a seq up to this one are acknowledged: not yielded.
    skip_through_seq: u64,
    max_line: u64,
    damaged: Vec<DamagedLine>,
    damaged_count: u64,
}

/// What one bounded line read found.
enum LineRead {
    /// A whole line of this many bytes (newline included) is in the buffer.
    Line(u64),
    /// A line of this many bytes was longer than allowed and was skipped.
    TooLong(u64),
    /// No whole line is left.
    End,
}

impl Entries {
    /// Entries of the lines in `from..to` (`to` at a line end) with a seq
    /// above `skip_through_seq`.
    pub(super) fn open(path: &Path, from: u64, to: u64, skip_through_seq: u64) -> Result<Entries> {
        Self::with_max_line(path, from, to, skip_through_seq, MAX_LINE_BYTES)
    }

    pub(super) fn with_max_line(
        path: &Path,
        from: u64,
        to: u64,
        skip_through_seq: u64,
        max_line: u64,
    ) -> Result<Entries> {
        let reader = match File::open(path) {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(from)).map_err(io_error(path))?;
                let range = file.take(to.saturating_sub(from));
                Some(BufReader::with_capacity(256 << 10, range))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && to == 0 => None,
            Err(e) => return Err(io_error(path)(e)),
        };
        Ok(Entries {
            path: path.to_path_buf(),
            reader,
            pos: from,
            skip_through_seq,
            max_line,
            damaged: Vec::new(),
            damaged_count: 0,
        })
    }

    /// Whether reading starts at the start of a line.
    pub(super) fn starts_a_line(&self) -> Result<bool> {
        let Some(reader) = self.reader.as_ref().filter(|_| self.pos > 0) else {
            return Ok(true);
        };
        let mut before = [0u8];
        let file = reader.get_ref().get_ref();
        file.read_exact_at(&mut before, self.pos - 1)
            .map_err(io_error(&self.path))?;
        Ok(before[0] == b'\n')
    }

    /// The first damaged lines passed over so far, with their reasons.
    pub fn damaged(&self) -> &[DamagedLine] {
        &self.damaged
    }

    /// How many damaged lines were passed over so far.
    pub fn damaged_count(&self) -> u64 {
        self.damaged_count
    }

    fn record_damage(&mut self, offset: u64, len: u64, why: LineError) {
        self.damaged_count += 1;
        if self.damaged.len() < DAMAGED_KEPT {
            self.damaged.push(DamagedLine { offset, len, why });
        }
    }

    /// Reads the next line into `buf`, holding at most `max_line` bytes.
    fn read_line(&mut self, buf: &mut Vec<u8>) -> io::Result<LineRead> {
        buf.clear();
        let Some(reader) = self.reader.as_mut() else {
            return Ok(LineRead::End);
        };
        let n = reader.take(self.max_line + 1).read_until(b'\n', buf)? as u64;
        if buf.last() == Some(&b'\n') {
            return Ok(LineRead::Line(n));
        }
        if n <= self.max_line {
            // The range ends at a line end, so only a file cut short
            // under us gets here.
            return Ok(LineRead::End);
        }
        buf.clear();
        let mut skipped = n;
        loop {
            let avail = reader.fill_buf()?;
            if avail.is_empty() {
                return Ok(LineRead::End);
            }
            if let Some(i) = avail.iter().position(|&c| c == b'\n') {
                reader.consume(i + 1);
                return Ok(LineRead::TooLong(skipped + i as u64 + 1));
            }
            let len = avail.len();
            reader.consume(len);
            skipped += len as u64;
        }
    }
}

impl Iterator for Entries {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            let offset = self.pos;
            let mut line = Vec::new();
            let len = match self.read_line(&mut line) {
                Ok(LineRead::Line(len)) => len,
                Ok(LineRead::TooLong(len)) => {
                    self.pos += len;
                    let max = self.max_line;
                    self.record_damage(offset, len, LineError::TooLong { len, max });
                    continue;
                }
                Ok(LineRead::End) => return None,
                Err(e) => return Some(Err(io_error(&self.path)(e))),
            };
            self.pos += len;
            let decoded = decode_line(&line).map(|l| {
                let start = l.body.as_ptr() as usize - line.as_ptr() as usize;
                (
                    l.seq,
                    l.kind,
                    l.key.map(Cow::into_owned),
                    start..start + l.body.len(),
                )
            });
            match decoded {
                Ok((seq, ..)) if seq <= self.skip_through_seq => {}
                Ok((seq, kind, key, body)) => {
                    return Some(Ok(Entry {
                        seq,
                        kind,
                        key,
                        offset,
                        end: self.pos,
                        line,
                        body,
                    }));
                }
                Err(why) => self.record_damage(offset, len, why),
            }
        }
    }
}
