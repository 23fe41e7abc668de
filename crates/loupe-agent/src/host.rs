//! [`HostCollector`]: the machine's CPU, load, memory, disks and network,
//! read straight from `/proc`, `/sys/block` and `statvfs(3)`.
//!
//! Series (labels in braces; the agent adds `host`):
//!
//! | name | unit | source |
//! |---|---|---|
//! | `host.cpu.percent{cpu}` | % busy, `cpu` = `total` or `0`..`N-1` | `/proc/stat` deltas (rate) |
//! | `host.cpu.iowait_percent{cpu="total"}` | % of time idle waiting on IO | `/proc/stat` deltas (rate) |
//! | `host.cpu.count` | online CPUs | `/proc/stat` |
//! | `host.load1`, `host.load5`, `host.load15` | run-queue average | `/proc/loadavg` |
//! | `host.memory.total_bytes`, `.available_bytes`, `.used_bytes` | bytes; used = total − available | `/proc/meminfo` |
//! | `host.memory.available_percent` | % | `/proc/meminfo` |
//! | `host.swap.total_bytes`, `host.swap.used_bytes` | bytes | `/proc/meminfo` |
//! | `host.disk.read_bytes_per_s{device}`, `.write_bytes_per_s{device}` | bytes/s | `/proc/diskstats` (rate) |
//! | `host.disk.busy_percent{device}` | % of time with IO in flight | `/proc/diskstats` (rate) |
//! | `host.fs.total_bytes{mount}`, `.used_bytes{mount}`, `.available_bytes{mount}` | bytes | `statvfs` |
//! | `host.net.rx_bytes_per_s{iface}`, `.tx_bytes_per_s{iface}` | bytes/s | `/proc/net/dev` (rate) |
//! | `host.net.rx_errors_per_s{iface}`, `.tx_errors_per_s{iface}` | errors + drops /s | `/proc/net/dev` (rate) |
//!
//! Rates need two readings: the first [`HostCollector::sample`] emits the
//! gauges only. A counter that goes backwards (a device reset, a wrap) skips
//! that one rate.
//!
//! What is left out, and why:
//! - disks: `loop*`, `ram*`, `zram*` (memory, not storage), `sr*`, `fd*`,
//!   and partitions (only whole devices, those listed in `/sys/block`, so a
//!   disk's bytes are not counted twice);
//! - filesystems: pseudo filesystems (proc, sysfs, tmpfs, cgroup, overlay
//!   lower layers' helpers …), and network filesystems (NFS, CIFS, Lustre,
//!   …): `statvfs` on a hung network mount blocks in the kernel, and the
//!   agent must never hang. A filesystem mounted in several places (bind
//!   mounts) is reported once, at its first mount point;
//! - network: `lo`.
//!
//! Every file is parsed defensively: a line or field that does not parse is
//! skipped, never a panic.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use crate::procfs::{ProcFile, field_u64};
use crate::sample::Sample;

/// CPU jiffies split the way the percentages need them.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    total: u64,
    idle: u64,
    iowait: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct DiskCounters {
    read_sectors: u64,
    write_sectors: u64,
    io_ms: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct NetCounters {
    rx_bytes: u64,
    tx_bytes: u64,
    rx_errors: u64,
    tx_errors: u64,
}

/// The previous reading of every counter, for rates.
#[derive(Default)]
struct Previous {
    at: Option<Instant>,
    cpus: HashMap<String, CpuTimes>,
    disks: HashMap<String, DiskCounters>,
    nets: HashMap<String, NetCounters>,
}

/// Mount points worth a `statvfs`, refreshed now and then (mounts change
/// rarely and `/proc/self/mounts` can be long in containers).
struct Mounts {
    list: Vec<String>,
    read_at: Option<Instant>,
}

/// How often the list of mounts and whole-disk devices is reread.
const REFRESH: Duration = Duration::from_secs(30);

/// Filesystem types that hold no user data, or whose `statvfs` can hang.
const SKIPPED_FS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "ramfs",
    "securityfs",
    "cgroup",
    "cgroup2",
    "pstore",
    "bpf",
    "tracefs",
    "debugfs",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "efivarfs",
    "selinuxfs",
    "squashfs",
    "iso9660",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "lustre",
    "9p",
    "afs",
];

fn skip_fs(fstype: &str) -> bool {
    // FUSE filesystems are user-space and often remote (sshfs, s3fs, lxcfs);
    // a stuck daemon would stall statvfs.
    SKIPPED_FS.contains(&fstype) || fstype.starts_with("fuse")
}

fn skip_disk(name: &str) -> bool {
    ["loop", "ram", "zram", "sr", "fd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Collects host figures; see the module docs for the series.
pub struct HostCollector {
    stat: ProcFile,
    loadavg: ProcFile,
    meminfo: ProcFile,
    diskstats: ProcFile,
    netdev: ProcFile,
    mounts_file: ProcFile,
    mounts: Mounts,
    disks: HashSet<String>,
    disks_read_at: Option<Instant>,
    prev: Previous,
}

impl Default for HostCollector {
    fn default() -> Self {
        HostCollector::new()
    }
}

impl HostCollector {
    pub fn new() -> HostCollector {
        HostCollector {
            stat: ProcFile::new("/proc/stat"),
            loadavg: ProcFile::new("/proc/loadavg"),
            meminfo: ProcFile::new("/proc/meminfo"),
            diskstats: ProcFile::new("/proc/diskstats"),
            netdev: ProcFile::new("/proc/net/dev"),
            mounts_file: ProcFile::new("/proc/self/mounts"),
            mounts: Mounts {
                list: Vec::new(),
                read_at: None,
            },
            disks: HashSet::new(),
            disks_read_at: None,
            prev: Previous::default(),
        }
    }

    /// Every series readable now.
    pub fn sample(&mut self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(64);
        self.collect_into(&mut out);
        out
    }

    /// Appends every series readable now to `out`. A source that cannot be
    /// read this time (a file missing in a sandbox) is skipped.
    pub fn collect_into(&mut self, out: &mut Vec<Sample>) {
        let now = Instant::now();
        let dt = self
            .prev
            .at
            .map(|t| now.duration_since(t).as_secs_f64())
            .filter(|d| *d > 0.0);
        self.cpu(out);
        self.load(out);
        self.memory(out);
        self.disk_io(out, dt, now);
        self.filesystems(out, now);
        self.network(out, dt);
        self.prev.at = Some(now);
    }

    fn cpu(&mut self, out: &mut Vec<Sample>) {
        let Ok(text) = self.stat.read() else { return };
        let mut count = 0u32;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("cpu") else {
                // The cpu lines come first; nothing after them is ours.
                if count > 0 {
                    break;
                }
                continue;
            };
            let mut it = rest.split_ascii_whitespace();
            let id = match it.clone().next() {
                // "cpu  …" (the total) has no number right after "cpu".
                Some(_) if rest.starts_with(' ') => "total".to_string(),
                Some(first) => {
                    it.next();
                    match first.parse::<u32>() {
                        Ok(n) => {
                            count += 1;
                            n.to_string()
                        }
                        Err(_) => continue,
                    }
                }
                None => continue,
            };
            // user nice system idle iowait irq softirq steal (guest time is
            // already inside user and nice).
            let nums: Vec<u64> = it.take(8).map_while(|v| v.parse().ok()).collect();
            if nums.len() < 5 {
                continue;
            }
            let now = CpuTimes {
                total: nums.iter().sum(),
                idle: nums[3],
                iowait: nums[4],
            };
            if let Some(before) = self.prev.cpus.get(&id) {
                let dt = now.total.saturating_sub(before.total);
                if dt > 0 && now.total >= before.total {
                    let idle = now.idle.saturating_sub(before.idle);
                    let iowait = now.iowait.saturating_sub(before.iowait);
                    let busy = dt.saturating_sub(idle + iowait);
                    let pct = busy as f64 / dt as f64 * 100.0;
                    out.push(Sample::new("host.cpu.percent", &[("cpu", &id)], pct));
                    if id == "total" {
                        let w = iowait as f64 / dt as f64 * 100.0;
                        out.push(Sample::new(
                            "host.cpu.iowait_percent",
                            &[("cpu", "total")],
                            w,
                        ));
                    }
                }
            }
            self.prev.cpus.insert(id, now);
        }
        if count > 0 {
            out.push(Sample::new("host.cpu.count", &[], f64::from(count)));
        }
    }

    fn load(&mut self, out: &mut Vec<Sample>) {
        let Ok(text) = self.loadavg.read() else {
            return;
        };
        for (name, v) in ["host.load1", "host.load5", "host.load15"]
            .into_iter()
            .zip(text.split_ascii_whitespace())
        {
            if let Ok(v) = v.parse::<f64>() {
                out.push(Sample::new(name, &[], v));
            }
        }
    }

    fn memory(&mut self, out: &mut Vec<Sample>) {
        let Ok(text) = self.meminfo.read() else {
            return;
        };
        let kib = |k| field_u64(text, k).map(|v| v.saturating_mul(1024));
        if let Some(total) = kib("MemTotal") {
            // MemAvailable exists since Linux 3.14; before that, estimate it
            // the way `free` did.
            let avail = kib("MemAvailable").or_else(|| {
                Some(kib("MemFree")? + kib("Buffers").unwrap_or(0) + kib("Cached").unwrap_or(0))
            });
            out.push(Sample::new("host.memory.total_bytes", &[], total as f64));
            if let Some(a) = avail {
                let a = a.min(total);
                out.push(Sample::new("host.memory.available_bytes", &[], a as f64));
                out.push(Sample::new(
                    "host.memory.used_bytes",
                    &[],
                    (total - a) as f64,
                ));
                if total > 0 {
                    out.push(Sample::new(
                        "host.memory.available_percent",
                        &[],
                        a as f64 / total as f64 * 100.0,
                    ));
                }
            }
        }
        if let (Some(t), Some(f)) = (kib("SwapTotal"), kib("SwapFree")) {
            out.push(Sample::new("host.swap.total_bytes", &[], t as f64));
            out.push(Sample::new(
                "host.swap.used_bytes",
                &[],
                t.saturating_sub(f) as f64,
            ));
        }
    }

    fn refresh_disks(&mut self, now: Instant) {
        if self
            .disks_read_at
            .is_some_and(|t| now.duration_since(t) < REFRESH)
        {
            return;
        }
        self.disks_read_at = Some(now);
        let Ok(dir) = std::fs::read_dir("/sys/block") else {
            return;
        };
        self.disks = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !skip_disk(n))
            .collect();
    }

    fn disk_io(&mut self, out: &mut Vec<Sample>, dt: Option<f64>, now: Instant) {
        self.refresh_disks(now);
        let Ok(text) = self.diskstats.read() else {
            return;
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            // major minor name reads merged sectors_read ms writes merged
            // sectors_written ms in_flight io_ms …
            if f.len() < 13 || !self.disks.contains(f[2]) {
                continue;
            }
            let num = |i: usize| f[i].parse::<u64>().ok();
            let (Some(r), Some(w), Some(io)) = (num(5), num(9), num(12)) else {
                continue;
            };
            let now_c = DiskCounters {
                read_sectors: r,
                write_sectors: w,
                io_ms: io,
            };
            let dev = f[2];
            if let (Some(dt), Some(b)) = (dt, self.prev.disks.get(dev)) {
                // /proc/diskstats counts 512-byte sectors whatever the
                // device's real sector size.
                if r >= b.read_sectors && w >= b.write_sectors && io >= b.io_ms {
                    let l = [("device", dev)];
                    let rate = |a: u64, b: u64| (a - b) as f64 * 512.0 / dt;
                    out.push(Sample::new(
                        "host.disk.read_bytes_per_s",
                        &l,
                        rate(r, b.read_sectors),
                    ));
                    out.push(Sample::new(
                        "host.disk.write_bytes_per_s",
                        &l,
                        rate(w, b.write_sectors),
                    ));
                    let busy = ((io - b.io_ms) as f64 / 1000.0 / dt * 100.0).min(100.0);
                    out.push(Sample::new("host.disk.busy_percent", &l, busy));
                }
            }
            self.prev.disks.insert(dev.to_string(), now_c);
        }
    }

    fn refresh_mounts(&mut self, now: Instant) {
        if self
            .mounts
            .read_at
            .is_some_and(|t| now.duration_since(t) < REFRESH)
        {
            return;
        }
        self.mounts.read_at = Some(now);
        let Ok(text) = self.mounts_file.read() else {
            return;
        };
        let mut seen_dev = HashSet::new();
        let mut list = Vec::new();
        for line in text.lines() {
            let mut f = line.split_ascii_whitespace();
            let (Some(_src), Some(target), Some(fstype)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if skip_fs(fstype) {
                continue;
            }
            let target = unescape_mount(target);
            // One report per filesystem: bind mounts (and a container's
            // bind-mounted /etc/hosts) share the device of the real mount.
            let Ok(md) = std::fs::metadata(&target) else {
                continue;
            };
            if !md.is_dir() {
                continue;
            }
            use std::os::unix::fs::MetadataExt;
            if seen_dev.insert(md.dev()) {
                list.push(target);
            }
        }
        self.mounts.list = list;
    }

    fn filesystems(&mut self, out: &mut Vec<Sample>, now: Instant) {
        self.refresh_mounts(now);
        for mount in &self.mounts.list {
            let Some(st) = statvfs(mount) else { continue };
            let l = [("mount", mount.as_str())];
            out.push(Sample::new("host.fs.total_bytes", &l, st.total as f64));
            out.push(Sample::new("host.fs.used_bytes", &l, st.used as f64));
            out.push(Sample::new(
                "host.fs.available_bytes",
                &l,
                st.available as f64,
            ));
        }
    }

    fn network(&mut self, out: &mut Vec<Sample>, dt: Option<f64>) {
        let Ok(text) = self.netdev.read() else { return };
        for line in text.lines() {
            // "  eth0: 123 4 0 0 0 0 0 0 567 8 0 0 …"; the two header lines
            // have no colon before their fields.
            let Some((iface, rest)) = line.split_once(':') else {
                continue;
            };
            let iface = iface.trim();
            if iface == "lo" || iface.is_empty() || iface.contains('|') {
                continue;
            }
            let f: Vec<u64> = rest
                .split_ascii_whitespace()
                .map_while(|v| v.parse().ok())
                .collect();
            if f.len() < 12 {
                continue;
            }
            let now_c = NetCounters {
                rx_bytes: f[0],
                rx_errors: f[2].saturating_add(f[3]),
                tx_bytes: f[8],
                tx_errors: f[10].saturating_add(f[11]),
            };
            if let (Some(dt), Some(b)) = (dt, self.prev.nets.get(iface)) {
                let l = [("iface", iface)];
                let mut rate = |name: &str, a: u64, b: u64| {
                    if a >= b {
                        out.push(Sample::new(name, &l, (a - b) as f64 / dt));
                    }
                };
                rate("host.net.rx_bytes_per_s", now_c.rx_bytes, b.rx_bytes);
                rate("host.net.tx_bytes_per_s", now_c.tx_bytes, b.tx_bytes);
                rate("host.net.rx_errors_per_s", now_c.rx_errors, b.rx_errors);
                rate("host.net.tx_errors_per_s", now_c.tx_errors, b.tx_errors);
            }
            self.prev.nets.insert(iface.to_string(), now_c);
        }
    }
}

/// `/proc/self/mounts` writes space, tab, newline and backslash in paths as
/// octal escapes (`\040`).
fn unescape_mount(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..=i + 3].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sizes of one filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    pub total: u64,
    /// `total − free`, as `df` counts it (blocks reserved for root are used).
    pub used: u64,
    /// What an unprivileged user can still write.
    pub available: u64,
}

/// `statvfs(3)` of `path`; `None` if it fails.
pub fn statvfs(path: &str) -> Option<FsUsage> {
    let c = CString::new(std::path::Path::new(path).as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the struct we own; a zeroed statvfs is a
    // valid value of that plain-data struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string, `st` a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    let total = (st.f_blocks as u64).saturating_mul(frsize);
    let free = (st.f_bfree as u64).saturating_mul(frsize);
    let available = (st.f_bavail as u64).saturating_mul(frsize);
    Some(FsUsage {
        total,
        used: total.saturating_sub(free),
        available,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/odd\\04"), "/odd\\04");
    }

    #[test]
    fn pseudo_and_network_filesystems_are_skipped() {
        for t in [
            "proc",
            "tmpfs",
            "cgroup2",
            "nfs4",
            "fuse.sshfs",
            "fuse.lxcfs",
        ] {
            assert!(skip_fs(t), "{t}");
        }
        for t in ["ext4", "xfs", "btrfs", "overlay", "zfs"] {
            assert!(!skip_fs(t), "{t}");
        }
        assert!(skip_disk("loop0") && skip_disk("zram0") && !skip_disk("nvme0n1"));
    }
}
