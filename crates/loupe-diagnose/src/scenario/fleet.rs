//! A healthy GPU fleet's host and GPU metrics outside runs: the load of
//! the general detector's throughput figure and a check that healthy
//! hosts open no incident. Written here, alongside the detectors.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use super::{Event, Scenario};
use crate::finding::Scope;

/// A healthy GPU fleet's metrics outside runs, 1 Hz, sent 10 s at a time:
/// per GPU utilisation (busy, an evaluation dip every 10 minutes and a
/// checkpoint pause every 30), temperature following it, memory, SM clock;
/// per host CPU and memory. Moves for healthy reasons, no fault.
pub fn healthy_fleet(hosts: u32, gpus: u32, seconds: u32, seed: u64) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xF1EE7);
    let noise: Normal<f64> = Normal::new(0.0, 1.0).expect("valid normal");
    let mut sc = Scenario::default();
    let start = 1.7e9;
    for h in 0..hosts {
        let host = format!("node{h}");
        let source = format!("project=fleet,host={host}");
        let scope = Scope {
            project: Some("fleet".into()),
            host: Some(host),
            ..Default::default()
        };
        let mut names = Vec::new();
        for g in 0..gpus {
            for m in [
                "utilization",
                "temperature",
                "memory_used_bytes",
                "sm_clock_mhz",
            ] {
                names.push(format!("gpu/{g}/{m}"));
            }
        }
        names.push("sys/host.cpu_percent".into());
        names.push("sys/host.memory_used_bytes".into());
        let mut cols: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); names.len()];
        let mut temps = vec![60.0f64; gpus as usize];
        for i in 0..seconds {
            let t = start + i as f64;
            // One data-parallel job over the fleet: every host evaluates
            // and checkpoints at once (hosts out of step are what the
            // cohort rule is for).
            let eval = i % 600 < 40;
            let ckpt = i % 1800 >= 1770;
            let mut k = 0;
            let mut push = |cols: &mut Vec<(Vec<f64>, Vec<f64>)>, v: f64| {
                cols[k].0.push(t);
                cols[k].1.push(v);
                k += 1;
            };
            for temp in temps.iter_mut() {
                let util = if ckpt {
                    8.0 + 0.5 * noise.sample(&mut rng)
                } else if eval {
                    40.0 + 2.0 * noise.sample(&mut rng)
                } else {
                    (97.0 + 2.0 * noise.sample(&mut rng)).min(100.0)
                };
                *temp += 0.05 * (40.0 + 0.35 * util - *temp) + 0.3 * noise.sample(&mut rng);
                let mem = 60.0 * GIB
                    + if eval { 2.0 * GIB } else { 0.0 }
                    + 0.05 * GIB * noise.sample(&mut rng);
                let clock = 1980.0 - 20.0 * (*temp - 70.0).max(0.0) + 10.0 * noise.sample(&mut rng);
                for v in [util, *temp, mem, clock] {
                    push(&mut cols, v);
                }
            }
            let cpu = if ckpt { 90.0 } else { 35.0 } + 3.0 * noise.sample(&mut rng);
            let host_mem = 400.0 * GIB
                + if ckpt { 20.0 * GIB } else { 0.0 }
                + 0.5 * GIB * noise.sample(&mut rng);
            push(&mut cols, cpu.clamp(0.0, 100.0));
            push(&mut cols, host_mem);
            if i % 10 == 9 || i == seconds - 1 {
                for (name, col) in names.iter().zip(cols.iter_mut()) {
                    let (times, values) = std::mem::take(col);
                    sc.events.push(Event::SourcePoints {
                        source: source.clone(),
                        scope: scope.clone(),
                        series: name.clone(),
                        times,
                        values,
                    });
                }
            }
        }
    }
    sc.sort();
    sc
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
