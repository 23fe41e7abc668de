//! Acknowledged means durable: a client writes through the API while the
//! server is SIGKILLed at random moments and restarted on the same data.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Api, Rng, Server, same_value, to_json, value_at};

/// Steps per series per batch.
const B: i64 = 150;
const SERIES: [(&str, u64); 2] = [("crash/loss", 11), ("crash/grad_norm", 12)];
const LINES: usize = 4;

fn metrics_batch(k: i64) -> Value {
    let steps: Vec<i64> = (k * B..(k + 1) * B).collect();
    let times: Vec<f64> = steps
        .iter()
        .map(|&s| 1_732_000_000.0 + s as f64 * 0.25)
        .collect();
    let series: Vec<Value> = SERIES
        .iter()
        .map(|(name, seed)| {
            json!({"name": name, "step": steps, "time": times,
                   "value": steps.iter().map(|&s| to_json(value_at(*seed, s))).collect::<Vec<_>>()})
        })
        .collect();
    json!({ "series": series })
}

fn line(k: i64, j: usize) -> String {
    format!("batch {k} line {j} of the crash test")
}

fn logs_batch(k: i64) -> Value {
    json!({"records": (0..LINES).map(|j| json!({"text": line(k, j), "level": if j == 0 { "warning" } else { "info" }})).collect::<Vec<_>>()})
}

#[derive(Default)]
struct Acked {
    metrics: BTreeSet<i64>,
    logs: BTreeSet<i64>,
    attempted: i64,
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let rounds: usize = std::env::var("LOUPE_API_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut server = Server::start();
    server
        .api()
        .create_run(json!({"id": "crash", "project": "p"}));

    let base = Arc::new(Mutex::new(server.base()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let client = {
        let (base, stop, acked) = (base.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut k = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let api = Api::new(&base.lock().unwrap()).with_timeout(Duration::from_secs(10));
                acked.lock().unwrap().attempted = k + 1;
                let m = api.try_post_json("/api/v1/runs/crash/metrics", &metrics_batch(k));
                match m {
                    Ok(r) if r.status == 200 => {
                        assert_eq!(r.json()["accepted"], B * SERIES.len() as i64);
                        acked.lock().unwrap().metrics.insert(k);
                    }
                    Ok(r) if r.status >= 500 => {}
                    Ok(r) => panic!("batch {k}: HTTP {} {}", r.status, r.text()),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
                let l = api.try_post_json("/api/v1/runs/crash/logs", &logs_batch(k));
                match l {
                    Ok(r) if r.status == 200 => {
                        acked.lock().unwrap().logs.insert(k);
                    }
                    Ok(r) if r.status >= 500 => {}
                    Ok(r) => panic!("logs {k}: HTTP {} {}", r.status, r.text()),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
                k += 1;
            }
        })
    };

    let mut rng = Rng::new(0xC0FFEE ^ rounds as u64);
    let started = Instant::now();
    for round in 0..rounds {
        // Let some writes through, then kill at a random moment.
        let before = acked.lock().unwrap().metrics.len();
        let deadline = Instant::now() + Duration::from_secs(10);
        while acked.lock().unwrap().metrics.len() < before + 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.range(0, 250)));
        server.kill9();
        server.start_again();
        *base.lock().unwrap() = server.base();
        assert!(
            !server.stderr().contains("damaged"),
            "round {round}: damage reported on open:\n{}",
            server.stderr()
        );
    }
    // A little more traffic on the last server, then stop the client.
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    client.join().expect("client thread");
    // One more crash with nothing in flight, for the final check.
    server.crash_and_restart();
    let api = server.api();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.metrics.len() >= rounds,
        "too little was acknowledged to test anything: {} batches",
        acked.metrics.len()
    );

    // Every acknowledged point, bit-exact; nothing else but points that
    // were sent (an unacknowledged batch may or may not be there, whole).
    for (name, seed) in SERIES {
        let got = api.read_all("crash", name, "step", 100_000);
        let mut by_step = BTreeMap::new();
        for i in 0..got.len() {
            let step = got.step[i].expect("stepped");
            assert!(
                same_value(got.y[i], value_at(seed, step)),
                "{name} step {step}: read {:e}, never sent",
                got.y[i]
            );
            assert!(
                by_step.insert(step, ()).is_none(),
                "{name}: step {step} twice"
            );
            assert_eq!(
                got.time_ns[i],
                1_732_000_000_000_000_000 + step * 250_000_000
            );
        }
        for &k in &acked.metrics {
            for s in k * B..(k + 1) * B {
                assert!(
                    by_step.contains_key(&s),
                    "{name}: acknowledged step {s} (batch {k}) lost"
                );
            }
        }
    }
    let texts: BTreeSet<String> = api
        .all_logs("crash", &[("limit", "10000")])
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    for &k in &acked.logs {
        for j in 0..LINES {
            assert!(
                texts.contains(&line(k, j)),
                "acknowledged log line lost: {}",
                line(k, j)
            );
        }
    }
    let valid: BTreeSet<String> = (0..acked.attempted)
        .flat_map(|k| (0..LINES).map(move |j| line(k, j)))
        .collect();
    assert!(texts.is_subset(&valid), "a log line that was never sent");
    assert!(!server.stderr().contains("damaged"));
    eprintln!(
        "crash test: {rounds} rounds in {:?}, {} metric batches and {} log batches acknowledged of {}",
        started.elapsed(),
        acked.metrics.len(),
        acked.logs.len(),
        acked.attempted
    );
}

#[test]
fn run_summary_survives_kill9() {
    // The runs table sorts and shows `summary` (last/min/max per series);
    // it is buffered in memory and written about once a second.
    let mut server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "s", "project": "p"}));
    api.post_metrics(
        "s",
        &json!({"series": [{"name": "loss", "step": [1, 2, 3], "time": [1732000000, 1732000001, 1732000002], "value": [3.0, 2.0, 1.0]}]}),
    );
    server.crash_and_restart();
    let api = server.api();
    assert_eq!(api.series("s")["loss"]["count"], 3, "the points survived");
    let summary = crate::support::wait_for(Duration::from_secs(5), "the run summary", || {
        let run = api.run("s");
        (!run["summary"]["loss"].is_null()).then(|| run["summary"]["loss"].clone())
    });
    assert_eq!(summary["last"], 1.0);
    assert_eq!(summary["count"], 3);
}
