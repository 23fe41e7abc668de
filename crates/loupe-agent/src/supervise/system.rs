//! The supervisor's system series: the collectors' samples renamed into
//! flat run series (a run's series carry no labels, so the device goes into
//! the name). The names are listed in the `supervise` module docs.

use crate::process::ProcessSample;
use crate::sample::Sample;

/// The process tree's figures as `(name, value)`.
pub fn process_series(p: &ProcessSample, out: &mut Vec<(String, f64)>) {
    out.extend([
        ("sys/proc.cpu_percent".to_owned(), p.cpu_percent),
        ("sys/proc.rss_bytes".to_owned(), p.rss_bytes as f64),
        ("sys/proc.threads".to_owned(), p.threads as f64),
        ("sys/proc.read_bytes".to_owned(), p.read_bytes as f64),
        ("sys/proc.write_bytes".to_owned(), p.write_bytes as f64),
        ("sys/proc.processes".to_owned(), f64::from(p.processes)),
    ]);
}

/// Host samples → `sys/host.*`: the whole-machine figures only (no per-core
/// CPU, per-mount usage); disk and network rates are summed over devices.
pub fn host_series(samples: &[Sample], out: &mut Vec<(String, f64)>) {
    let mut sums = [0.0f64; 4];
    let mut seen = [false; 4];
    for s in samples {
        let name = match s.name.as_str() {
            "host.cpu.percent" if s.label("cpu") == Some("total") => "sys/host.cpu_percent",
            "host.cpu.iowait_percent" if s.label("cpu") == Some("total") => {
                "sys/host.cpu_iowait_percent"
            }
            "host.load1" => "sys/host.load1",
            "host.memory.used_bytes" => "sys/host.memory_used_bytes",
            "host.memory.available_bytes" => "sys/host.memory_available_bytes",
            "host.memory.total_bytes" => "sys/host.memory_total_bytes",
            "host.swap.used_bytes" => "sys/host.swap_used_bytes",
            other => {
                let slot = match other {
                    "host.disk.read_bytes_per_s" => 0,
                    "host.disk.write_bytes_per_s" => 1,
                    "host.net.rx_bytes_per_s" => 2,
                    "host.net.tx_bytes_per_s" => 3,
                    _ => continue,
                };
                if s.value.is_finite() {
                    sums[slot] += s.value;
                    seen[slot] = true;
                }
                continue;
            }
        };
        out.push((name.to_owned(), s.value));
    }
    const SUMMED: [&str; 4] = [
        "sys/host.disk_read_bytes_per_s",
        "sys/host.disk_write_bytes_per_s",
        "sys/host.net_rx_bytes_per_s",
        "sys/host.net_tx_bytes_per_s",
    ];
    for i in 0..4 {
        if seen[i] {
            out.push((SUMMED[i].to_owned(), sums[i]));
        }
    }
}

/// GPU samples → `gpu/{index}/…`.
pub fn gpu_series(samples: &[Sample], out: &mut Vec<(String, f64)>) {
    for s in samples {
        let Some(gpu) = s.label("gpu") else { continue };
        let suffix = match s.name.as_str() {
            "gpu.utilization.gpu_percent" => "utilization",
            "gpu.utilization.memory_percent" => "memory_utilization",
            "gpu.memory.used_bytes" => "memory_used_bytes",
            "gpu.memory.total_bytes" => "memory_total_bytes",
            "gpu.temperature_celsius" => "temperature",
            "gpu.power.usage_watts" => "power_watts",
            "gpu.power.limit_watts" => "power_limit_watts",
            "gpu.clock.sm_mhz" => "sm_clock_mhz",
            "gpu.clock.memory_mhz" => "memory_clock_mhz",
            "gpu.throttle.reasons" => "throttle_reasons",
            "gpu.ecc.corrected_errors" => "ecc_corrected_errors",
            "gpu.ecc.uncorrected_errors" => "ecc_uncorrected_errors",
            "gpu.pcie.rx_bytes_per_s" => "pcie_rx_bytes_per_s",
            "gpu.pcie.tx_bytes_per_s" => "pcie_tx_bytes_per_s",
            "gpu.nvlink.rx_bytes_per_s" => "nvlink_rx_bytes_per_s",
            "gpu.nvlink.tx_bytes_per_s" => "nvlink_tx_bytes_per_s",
            "gpu.xid" => "xid",
            _ => continue,
        };
        out.push((format!("gpu/{gpu}/{suffix}"), s.value));
    }
}

/// GPU memory of the supervised tree per device: `(pid, gpu, bytes)` rows
/// whose pid descends from `root` are summed into
/// `gpu/{index}/process_memory_bytes`.
pub fn gpu_process_series(rows: &[(u32, u32, u64)], root: u32, out: &mut Vec<(String, f64)>) {
    let mut per_gpu: Vec<(u32, u64)> = Vec::new();
    for &(pid, gpu, bytes) in rows {
        if !descends_from(pid, root) {
            continue;
        }
        match per_gpu.iter_mut().find(|(g, _)| *g == gpu) {
            Some(slot) => slot.1 += bytes,
            None => per_gpu.push((gpu, bytes)),
        }
    }
    for (gpu, bytes) in per_gpu {
        out.push((format!("gpu/{gpu}/process_memory_bytes"), bytes as f64));
    }
}

/// Whether `pid` is `root` or one of its descendants (parent links from
/// `/proc/PID/stat`, at most 64 generations).
pub fn descends_from(mut pid: u32, root: u32) -> bool {
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        match parent_of(pid) {
            Some(p) => pid = p,
            None => return false,
        }
    }
    false
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces and ')': the
    // fields after the last ')' are "state ppid ...".
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames() {
        let host = vec![
            Sample::new("host.cpu.percent", &[("cpu", "total")], 12.0),
            Sample::new("host.cpu.percent", &[("cpu", "0")], 50.0),
            Sample::new("host.memory.used_bytes", &[], 1e9),
            Sample::new("host.net.rx_bytes_per_s", &[("iface", "eth0")], 10.0),
            Sample::new("host.net.rx_bytes_per_s", &[("iface", "eth1")], 5.0),
            Sample::new("host.fs.used_bytes", &[("mount", "/")], 5.0),
        ];
        let mut out = Vec::new();
        host_series(&host, &mut out);
        assert_eq!(
            out,
            vec![
                ("sys/host.cpu_percent".to_owned(), 12.0),
                ("sys/host.memory_used_bytes".to_owned(), 1e9),
                ("sys/host.net_rx_bytes_per_s".to_owned(), 15.0),
            ]
        );
        let mut out = Vec::new();
        gpu_series(
            &[Sample::new(
                "gpu.temperature_celsius",
                &[("gpu", "1"), ("uuid", "x")],
                61.0,
            )],
            &mut out,
        );
        assert_eq!(out, vec![("gpu/1/temperature".to_owned(), 61.0)]);
        let me = std::process::id();
        assert!(descends_from(me, me));
        assert!(descends_from(me, 1) || descends_from(me, std::os::unix::process::parent_id()));
        let mut out = Vec::new();
        gpu_process_series(&[(me, 0, 100), (me, 0, 50), (1, 1, 9)], me, &mut out);
        assert_eq!(out, vec![("gpu/0/process_memory_bytes".to_owned(), 150.0)]);
    }
}
