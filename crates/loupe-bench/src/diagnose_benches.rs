//! Diagnosis: detector throughput on one core, and the fault-injection
//! suite's quality (precision, recall, rank of the true cause, delay).

use std::time::Instant;

use loupe_diagnose::DiagnoseConfig;
use loupe_diagnose::scenario::fleet::healthy_fleet;
use loupe_diagnose::scenario::quality::{run_suite, standard_suite};
use loupe_diagnose::scenario::{FaultKind, JobSpec, generate, replay};

#[derive(clap::Args, Clone, Debug)]
pub struct DiagnoseArgs {
    /// Repetitions of the standard suite (each adds every fault kind once
    /// per group size, and the healthy jobs), with different seeds.
    #[arg(long, default_value_t = 3)]
    pub scale: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Ranks of the job used for the throughput figure.
    #[arg(long, default_value_t = 64)]
    pub ranks: u32,
    /// Hosts (8 GPUs each) of the healthy fleet whose metrics, outside any
    /// run, make the second throughput figure.
    #[arg(long, default_value_t = 16)]
    pub hosts: u32,
}

pub fn run(a: &DiagnoseArgs) -> anyhow::Result<()> {
    // Throughput: a 64-rank job with a straggler, fed through one
    // Diagnoser on this thread; generation is not timed.
    let mut spec = JobSpec::new("throughput", a.ranks, 3000, a.seed);
    spec.fault = Some(FaultKind::ThermalStraggler);
    spec.fault_step = 2000;
    let sc = generate(&spec);
    let points = sc.points();
    let t = Instant::now();
    let incidents = replay(&sc, &DiagnoseConfig::default());
    let secs = t.elapsed().as_secs_f64();
    println!(
        "diagnose-throughput: {points} points of a {}-rank job (and {} ticks) in {secs:.2} s on one core: {:.2} M points/s (target >= 1 M/s); {} incident(s)",
        a.ranks,
        3000 + 400,
        points as f64 / secs / 1e6,
        incidents.len()
    );
    // Throughput of series outside runs: a healthy fleet's host and GPU
    // metrics at 1 Hz (what `loupe agent` or a Prometheus scrape sends).
    let seconds = 1800;
    let sc = healthy_fleet(a.hosts, 8, seconds, a.seed);
    let points = sc.points();
    let t = Instant::now();
    let incidents = replay(&sc, &DiagnoseConfig::default());
    let secs = t.elapsed().as_secs_f64();
    println!(
        "diagnose-throughput-sources: {points} points of {} hosts' metrics outside runs ({seconds} s at 1 Hz) in {secs:.2} s on one core: {:.2} M points/s (target >= 1 M/s); {} incident(s)",
        a.hosts,
        points as f64 / secs / 1e6,
        incidents.len()
    );
    // Quality.
    let specs = standard_suite(a.seed, a.scale);
    let t = Instant::now();
    let (report, _) = run_suite(&specs, &DiagnoseConfig::default());
    println!(
        "diagnose-quality: {} jobs, {} points, {:.1} s\n{}",
        specs.len(),
        report.points,
        t.elapsed().as_secs_f64(),
        report.table()
    );
    Ok(())
}
