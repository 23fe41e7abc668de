//! `loupe agent` end to end: the real `loupe serve` and `loupe agent`
//! binaries, host series read back through the API and checked against
//! /proc, a server outage bridged by the agent's disk buffer, and a prompt,
//! clean exit on SIGTERM.

#[path = "api/support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{Api, Server, loupe_cmd, wait_for};

const HOST: &str = "e2e-agent-host";

/// A running `loupe agent`, killed when dropped.
struct Agent {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    _buffer: tempfile::TempDir,
}

impl Agent {
    fn start(server: &str, extra: &[&str]) -> Agent {
        let buffer = tempfile::tempdir().expect("tmp");
        let mut cmd = loupe_cmd();
        cmd.args(["agent", "--server", server, "--host", HOST, "--no-gpu"])
            .arg("--buffer-dir")
            .arg(buffer.path())
            .args(extra)
            .env("LOUPE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn loupe agent");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = l2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Agent {
            child: Some(child),
            log,
            _buffer: buffer,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM; the exit status and how long the exit took.
    fn sigterm(&mut self) -> (ExitStatus, Duration) {
        let mut c = self.child.take().expect("running");
        let t = Instant::now();
        // SAFETY: kill(2) of our own child.
        assert_eq!(unsafe { libc::kill(c.id() as i32, libc::SIGTERM) }, 0);
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return (st, t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = c.kill();
                panic!("loupe agent ignored SIGTERM for 30 s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn mem_total_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kib: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("MemTotal");
    (kib * 1024) as f64
}

/// The agent's series as the server lists them, by name and labels.
fn host_series(api: &Api) -> Vec<Value> {
    let v = api
        .get_q("/api/v1/metrics/series", &[("label.host", HOST)])
        .expect(200);
    v["series"].as_array().cloned().unwrap_or_default()
}

/// Every point's time of one host series.
fn times_of(api: &Api, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let mut q: Vec<(String, String)> = vec![
        ("name".into(), name.into()),
        ("label.host".into(), HOST.into()),
        ("limit".into(), "100000".into()),
    ];
    for (k, v) in labels {
        q.push((format!("label.{k}"), v.to_string()));
    }
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let v = api.get_q("/api/v1/metrics/data", &q).expect(200);
    v["x"]
        .as_array()
        .expect("x")
        .iter()
        .map(|x| x.as_f64().expect("time"))
        .collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

#[test]
fn agent_ships_host_series_bridges_an_outage_and_stops_on_sigterm() {
    let port = free_port();
    let mut server = Server::configured(&format!("127.0.0.1:{port}"), &[], None);
    let api = server.api();
    let mut agent = Agent::start(
        &server.base(),
        &["--interval", "200ms", "--send-every", "500ms"],
    );

    // Host series arrive, labelled with the host, and memory total equals
    // /proc/meminfo's.
    let series = wait_for(Duration::from_secs(20), "the agent's first batches", || {
        let s = host_series(&api);
        let has = |n: &str| s.iter().any(|x| x["name"] == n);
        (has("host.memory.total_bytes") && has("host.cpu.percent") && has("host.load1"))
            .then_some(s)
    });
    let mem = series
        .iter()
        .find(|x| x["name"] == "host.memory.total_bytes")
        .expect("memory total");
    assert_eq!(mem["last"].as_f64(), Some(mem_total_bytes()), "{mem}");
    assert_eq!(mem["labels"]["host"], HOST);
    let cpu_total = series
        .iter()
        .find(|x| x["name"] == "host.cpu.percent" && x["labels"]["cpu"] == "total")
        .expect("cpu total");
    let pct = cpu_total["last"].as_f64().expect("number");
    assert!((0.0..=100.0).contains(&pct), "{cpu_total}");
    let ncpu = std::fs::read_to_string("/proc/stat")
        .expect("stat")
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    let per_core = series
        .iter()
        .filter(|x| x["name"] == "host.cpu.percent" && x["labels"]["cpu"] != "total")
        .count();
    assert_eq!(per_core, ncpu);
    for name in [
        "host.load1",
        "host.memory.available_bytes",
        "host.swap.total_bytes",
    ] {
        assert!(series.iter().any(|x| x["name"] == name), "{name} missing");
    }
    assert!(
        series
            .iter()
            .any(|x| x["name"] == "host.fs.total_bytes" && x["labels"]["mount"] == "/"),
        "no / filesystem"
    );

    // The server goes away for a few seconds; the agent keeps sampling into
    // its disk buffer.
    std::thread::sleep(Duration::from_secs(1));
    server.kill9();
    let down_from = unix_now();
    std::thread::sleep(Duration::from_secs(4));
    let down_to = unix_now();
    server.start_again();
    let api = server.api();

    // Everything sampled during the outage arrives: no gap wider than a few
    // intervals anywhere in the buffered range.
    let times = wait_for(Duration::from_secs(30), "the buffered points", || {
        let t = times_of(&api, "host.load1", &[]);
        t.iter().any(|&x| x > down_to + 1.0).then_some(t)
    });
    let inside: Vec<f64> = times
        .iter()
        .copied()
        .filter(|&t| t >= down_from - 1.0 && t <= down_to + 1.0)
        .collect();
    assert!(
        inside.len() >= 20,
        "only {} points in the {:.1} s outage window",
        inside.len(),
        down_to - down_from + 2.0
    );
    let widest = inside.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(widest < 1.0, "a {widest:.2} s gap in the buffered range");
    assert!(
        times.windows(2).all(|w| w[1] > w[0]),
        "times not increasing"
    );
    // The memory series has every point of load1 too (one round = one time).
    let mem_times = times_of(&api, "host.memory.total_bytes", &[]);
    assert!(mem_times.len() + 5 >= times.len());
    let log = agent.log();
    assert!(log.contains("buffering to disk"), "{log}");

    // SIGTERM: a prompt, clean exit.
    let (status, took) = agent.sigterm();
    assert!(status.success(), "{status:?}; log:\n{}", agent.log());
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    drop(server);
}

#[test]
fn agent_without_a_server_buffers_and_exits_within_its_bound() {
    // Nobody listens: the agent must run, buffer, and still stop promptly.
    let port = free_port();
    let mut agent = Agent::start(
        &format!("http://127.0.0.1:{port}"),
        &[
            "--interval",
            "100ms",
            "--send-every",
            "200ms",
            "--shutdown-timeout",
            "1s",
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    let (status, took) = agent.sigterm();
    assert!(status.success(), "{status:?}; log:\n{}", agent.log());
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    let log = agent.log();
    assert!(log.contains("cannot send"), "{log}");
    // The buffer holds what was not sent.
    let segs = std::fs::read_dir(agent._buffer.path())
        .expect("buffer dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .count();
    assert!(segs > 0, "nothing buffered; log:\n{log}");
}
