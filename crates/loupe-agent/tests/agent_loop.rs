//! `run_agent` against the scripted test server: batches carry the host
//! label and one time per round, an open incident on the host tightens the
//! interval, and a stop flushes everything.

#[path = "support/test_server.rs"]
mod test_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use loupe_agent::{AgentConfig, run_agent};
use serde_json::Value;
use test_server::TestServer;

/// Every (name, labels, times, values) the server received, in order.
fn points(server: &TestServer) -> Vec<(String, Value, Vec<f64>, Vec<f64>)> {
    let mut out = Vec::new();
    for r in server.got.lock().unwrap().iter() {
        assert_eq!(r.path, "/api/v1/metrics");
        let v: Value = serde_json::from_slice(&r.body).expect("JSON batch");
        for s in v["series"].as_array().expect("series") {
            let nums = |k: &str| -> Vec<f64> {
                s[k].as_array()
                    .expect("column")
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN))
                    .collect()
            };
            out.push((
                s["name"].as_str().expect("name").to_string(),
                s["labels"].clone(),
                nums("time"),
                nums("value"),
            ));
        }
    }
    out
}

fn config(server: &TestServer, dir: &std::path::Path) -> AgentConfig {
    let mut cfg = AgentConfig::new(&server.url(), "test-host", dir.to_path_buf());
    cfg.gpu = false;
    cfg.interval = Duration::from_millis(300);
    cfg.fast_interval = Duration::from_millis(50);
    cfg.send_every = Duration::from_millis(200);
    cfg.incident_poll = Duration::from_millis(100);
    cfg
}

fn run_for(cfg: AgentConfig, d: Duration) -> loupe_agent::AgentSummary {
    let stop: Arc<AtomicBool> = cfg.stop.clone();
    let h = std::thread::spawn(move || run_agent(cfg));
    std::thread::sleep(d);
    stop.store(true, Ordering::SeqCst);
    h.join().expect("agent thread").expect("run_agent")
}

#[test]
fn batches_carry_the_host_and_quiet_hosts_sample_at_the_base_interval() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tmp");
    let summary = run_for(config(&server, dir.path()), Duration::from_millis(1500));
    assert!(summary.flushed, "{summary:?}");
    let pts = points(&server);
    assert!(!pts.is_empty());
    for (name, labels, times, values) in &pts {
        assert_eq!(labels["host"], "test-host", "{name}");
        assert_eq!(times.len(), values.len());
    }
    // The server answered 404 to the incidents query ("none known"), so
    // the interval stayed at the base: 1.5 s / 0.3 s ≈ 5 rounds.
    let intervals: Vec<f64> = pts
        .iter()
        .filter(|p| p.0 == "agent.interval_seconds")
        .flat_map(|p| p.3.clone())
        .collect();
    assert!(
        intervals.iter().all(|&v| (v - 0.3).abs() < 1e-9),
        "{intervals:?}"
    );
    assert!(
        (3..=7).contains(&intervals.len()),
        "{} rounds",
        intervals.len()
    );
    // All series of a round share its time.
    let load_times: Vec<f64> = pts
        .iter()
        .filter(|p| p.0 == "host.load1")
        .flat_map(|p| p.2.clone())
        .collect();
    let mem_times: Vec<f64> = pts
        .iter()
        .filter(|p| p.0 == "host.memory.total_bytes")
        .flat_map(|p| p.2.clone())
        .collect();
    assert_eq!(load_times, mem_times);
    assert!(server.attempts.lock().unwrap().iter().any(|p| {
        p.starts_with("/api/v1/incidents?")
            && p.contains("host=test-host")
            && p.contains("state=open")
    }));
}

#[test]
fn an_open_incident_on_the_host_tightens_the_interval() {
    let server = TestServer::start();
    *server.script.get_body.lock().unwrap() =
        Some(r#"{"incidents":[{"id":"inc-1","state":"open"}]}"#.into());
    let dir = tempfile::tempdir().expect("tmp");
    run_for(config(&server, dir.path()), Duration::from_millis(1500));
    let intervals: Vec<f64> = points(&server)
        .into_iter()
        .filter(|p| p.0 == "agent.interval_seconds")
        .flat_map(|p| p.3)
        .collect();
    let fast = intervals
        .iter()
        .filter(|&&v| (v - 0.05).abs() < 1e-9)
        .count();
    // Once the poller has seen the incident, every round is fast: many more
    // rounds than the ~5 a quiet host gets.
    assert!(fast >= 10, "{fast} fast rounds of {}", intervals.len());
    assert_eq!(intervals.last().copied(), Some(0.05));
}
