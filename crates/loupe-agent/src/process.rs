//! [`ProcessTreeSampler`]: CPU, memory, threads and IO of a process and all
//! its descendants, read from `/proc`.
//!
//! Each [`ProcessTreeSampler::sample`] walks `/proc` once, reading every
//! `/proc/PID/stat` (the only place the parent pid of an arbitrary process
//! is cheap to get), builds the tree under the root, and then reads
//! `/proc/PID/io` for the tree's members only.
//!
//! CPU % is computed per process from `utime + stime` deltas, so a child that
//! exits between two samples does not make the total go backwards: processes
//! are matched by `(pid, start time)` and a process first seen in this round
//! contributes the ticks it used since it started (it was not there at the
//! previous walk). 100 means one core busy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::procfs::{clock_ticks_per_sec, page_size, read_into, stat_fields};
use crate::sample::Sample;

/// The root process and its descendants, added up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// CPU time used since the previous sample, as a percentage of one core.
    pub cpu_percent: f64,
    /// Resident memory of all processes in the tree (shared pages are
    /// counted once per process, as `ps` and `top` do).
    pub rss_bytes: u64,
    pub threads: u64,
    /// Bytes the live processes have caused to be read from storage since
    /// they started (`read_bytes` of `/proc/PID/io`; 0 where unreadable).
    pub read_bytes: u64,
    /// Bytes the live processes have caused to be written to storage.
    pub write_bytes: u64,
    /// How many processes the tree has, the root included.
    pub processes: u32,
}

impl ProcessSample {
    /// The figures as series named `process.*`:
    /// `process.cpu.percent`, `process.memory.rss_bytes`, `process.threads`,
    /// `process.io.read_bytes`, `process.io.write_bytes` (cumulative),
    /// `process.count`.
    pub fn to_samples(&self) -> Vec<Sample> {
        vec![
            Sample::new("process.cpu.percent", &[], self.cpu_percent),
            Sample::new("process.memory.rss_bytes", &[], self.rss_bytes as f64),
            Sample::new("process.threads", &[], self.threads as f64),
            Sample::new("process.io.read_bytes", &[], self.read_bytes as f64),
            Sample::new("process.io.write_bytes", &[], self.write_bytes as f64),
            Sample::new("process.count", &[], f64::from(self.processes)),
        ]
    }
}

/// What one `/proc/PID/stat` line says about a process.
#[derive(Debug, Clone, Copy)]
struct StatLine {
    ppid: u32,
    state: u8,
    ticks: u64,
    threads: u64,
    start: u64,
    rss_pages: u64,
}

fn parse_stat(text: &str) -> Option<StatLine> {
    let mut f = stat_fields(text)?;
    // Indices are relative to field 3 (state) of proc(5).
    let state = *f.next()?.as_bytes().first()?;
    let ppid = f.next()?.parse().ok()?;
    let mut f = f.skip(9); // fields 5..=13
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    let mut f = f.skip(4); // 16..=19
    let threads = f.next()?.parse().ok()?;
    let mut f = f.skip(1); // 21
    let start = f.next()?.parse().ok()?;
    let mut f = f.skip(1); // 23 vsize
    let rss_pages: i64 = f.next()?.parse().ok()?;
    Some(StatLine {
        ppid,
        state,
        ticks: utime.saturating_add(stime),
        threads,
        start,
        rss_pages: rss_pages.max(0) as u64,
    })
}

/// Samples a process tree; see the module docs.
pub struct ProcessTreeSampler {
    root: u32,
    root_start: Option<u64>,
    proc_dir: PathBuf,
    tick_hz: f64,
    page: u64,
    /// Ticks of each tree member at the previous sample, by (pid, start).
    prev: HashMap<(u32, u64), u64>,
    prev_at: Option<Instant>,
    buf: String,
}

impl ProcessTreeSampler {
    /// A sampler of `root_pid` and its descendants. The first
    /// [`sample`](Self::sample) measures CPU since this call.
    pub fn new(root_pid: u32) -> ProcessTreeSampler {
        let mut s = ProcessTreeSampler {
            root: root_pid,
            root_start: None,
            proc_dir: PathBuf::from("/proc"),
            tick_hz: clock_ticks_per_sec(),
            page: page_size(),
            prev: HashMap::new(),
            prev_at: None,
            buf: String::new(),
        };
        // A baseline, so that the first sample has a CPU delta to report.
        let _ = s.sample();
        s
    }

    /// The pid this sampler follows.
    pub fn root_pid(&self) -> u32 {
        self.root
    }

    /// The tree's figures now, or `None` once the root has exited (it is gone
    /// from `/proc`, a zombie, or its pid now names another process).
    pub fn sample(&mut self) -> Option<ProcessSample> {
        let now = Instant::now();
        let stats = self.walk();
        let root = stats.get(&self.root)?;
        if matches!(root.state, b'Z' | b'X') {
            return None;
        }
        match self.root_start {
            None => self.root_start = Some(root.start),
            Some(s) if s != root.start => return None,
            Some(_) => {}
        }

        // Children of each pid, then the tree under the root.
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, st) in &stats {
            if pid != self.root {
                children.entry(st.ppid).or_default().push(pid);
            }
        }
        let mut tree = vec![self.root];
        let mut i = 0;
        while i < tree.len() {
            if let Some(c) = children.get(&tree[i]) {
                tree.extend_from_slice(c);
            }
            i += 1;
            // A pid cycle cannot happen in a real /proc, but a bounded walk
            // costs nothing and rules out looping on odd contents.
            if tree.len() > stats.len() {
                break;
            }
        }

        let mut out = ProcessSample::default();
        let mut ticks_used = 0u64;
        let mut next_prev = HashMap::with_capacity(tree.len());
        for &pid in &tree {
            let Some(st) = stats.get(&pid) else { continue };
            out.processes += 1;
            out.threads += st.threads;
            out.rss_bytes += st.rss_pages.saturating_mul(self.page);
            let id = (pid, st.start);
            ticks_used += match self.prev.get(&id) {
                Some(&before) => st.ticks.saturating_sub(before),
                // New since the last walk: all its ticks were used since then
                // (on the baseline walk there is no "since", so count none).
                None if self.prev_at.is_some() => st.ticks,
                None => 0,
            };
            next_prev.insert(id, st.ticks);
            let (r, w) = self.io_of(pid);
            out.read_bytes += r;
            out.write_bytes += w;
        }
        if let Some(before) = self.prev_at {
            let dt = now.duration_since(before).as_secs_f64();
            if dt > 0.0 {
                out.cpu_percent = ticks_used as f64 / self.tick_hz / dt * 100.0;
            }
        }
        self.prev = next_prev;
        self.prev_at = Some(now);
        Some(out)
    }

    /// Every process's stat line, by pid. Processes that vanish during the
    /// walk, and lines that do not parse, are skipped.
    fn walk(&mut self) -> HashMap<u32, StatLine> {
        let mut out = HashMap::new();
        let Ok(dir) = std::fs::read_dir(&self.proc_dir) else {
            return out;
        };
        let mut path = self.proc_dir.clone();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            path.push(&name);
            path.push("stat");
            if read_into(&path, &mut self.buf).is_ok()
                && let Some(st) = parse_stat(&self.buf)
            {
                out.insert(pid, st);
            }
            path.pop();
            path.pop();
        }
        out
    }

    /// `read_bytes` and `write_bytes` of `/proc/PID/io`; (0, 0) when it
    /// cannot be read (another user's process, or hardened `/proc`).
    fn io_of(&mut self, pid: u32) -> (u64, u64) {
        let path = self.proc_dir.join(pid.to_string()).join("io");
        if read_into(&path, &mut self.buf).is_err() {
            return (0, 0);
        }
        let get = |k| crate::procfs::field_u64(&self.buf, k).unwrap_or(0);
        (get("read_bytes"), get("write_bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_odd_command_names() {
        let line = "4242 (we(ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 7 0 123456 1000000 300 18446744073709551615";
        let st = parse_stat(line).expect("parses");
        assert_eq!(st.ppid, 1);
        assert_eq!(st.state, b'S');
        assert_eq!(st.ticks, 300);
        assert_eq!(st.threads, 7);
        assert_eq!(st.start, 123456);
        assert_eq!(st.rss_pages, 300);
    }

    #[test]
    fn garbage_stat_lines_are_skipped() {
        assert!(parse_stat("").is_none());
        assert!(parse_stat("12 (x) S notanumber").is_none());
        assert!(parse_stat("12 (x").is_none());
    }
}
