//! Small helpers for reading `/proc` files cheaply and defensively.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

/// A `/proc` file kept open and reread from the start on every sample.
///
/// procfs regenerates a file's text on each read from offset 0, so keeping
/// the descriptor saves an `open`/`close` pair per sample, and the buffer is
/// reused so a steady-state read allocates nothing.
pub(crate) struct ProcFile {
    file: Option<File>,
    path: &'static str,
    buf: String,
}

impl ProcFile {
    pub(crate) fn new(path: &'static str) -> ProcFile {
        ProcFile {
            file: None,
            path,
            buf: String::new(),
        }
    }

    /// The file's current text. Reopens once if the kept descriptor fails
    /// (it should not, but a failed read must not disable a collector).
    pub(crate) fn read(&mut self) -> io::Result<&str> {
        for attempt in 0..2 {
            if self.file.is_none() {
                self.file = Some(File::open(self.path)?);
            }
            let Some(f) = self.file.as_mut() else {
                continue;
            };
            self.buf.clear();
            let r = f.rewind().and_then(|_| f.read_to_string(&mut self.buf));
            match r {
                Ok(_) => return Ok(&self.buf),
                Err(e) if attempt == 1 => return Err(e),
                Err(_) => self.file = None,
            }
        }
        Err(io::Error::other("unreachable: read loop ended"))
    }
}

/// Reads a small file into `buf` (cleared first).
pub(crate) fn read_into(path: &Path, buf: &mut String) -> io::Result<()> {
    buf.clear();
    File::open(path)?.read_to_string(buf)?;
    Ok(())
}

/// The value after `key` in `Key:   123 kB` style files (meminfo, status),
/// as a number of the file's unit; `None` when absent or unparsable.
pub(crate) fn field_u64(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `sysconf` values that never change while we run.
pub(crate) fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// The fields of `/proc/PID/stat` after the command name, which is in
/// parentheses and may itself contain spaces and parentheses: index 0 is
/// field 3 (`state`) of proc(5).
pub(crate) fn stat_fields(stat: &str) -> Option<impl Iterator<Item = &str>> {
    let close = stat.rfind(')')?;
    Some(stat.get(close + 1..)?.split_ascii_whitespace())
}
