//! A generated LLM service: requests, errors, latency and time to first
//! token per second, with a burst of errors when it is faulted.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use super::{Event, Fault, FaultKind, JobSpec, Scenario};
use crate::finding::Scope;

/// Generates one service (`spec.service`): a `ServingErrors` fault bursts
/// its errors and latency for a minute.
pub(super) fn generate_service(spec: &JobSpec) -> Scenario {
    let mut sc = Scenario::default();
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let service = spec.name.clone();
    let scope = Scope {
        project: Some(spec.project.clone()),
        service: Some(service.clone()),
        host: Some(format!("{service}-host")),
        ..Default::default()
    };
    let source = format!("service={service}");
    let fault_time = spec.start_time + spec.fault_step as f64;
    if spec.fault == Some(FaultKind::ServingErrors) {
        sc.faults.push(Fault {
            kind: FaultKind::ServingErrors,
            job: service.clone(),
            run: None,
            group: None,
            service: Some(service.clone()),
            start_time: fault_time,
            start_step: None,
        });
    }
    let names = [
        "llm.requests_per_s",
        "llm.errors_per_s",
        "llm.latency_p95_seconds",
        "llm.ttft_seconds",
    ];
    let mut cols: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); names.len()];
    let noise = Normal::new(0.0, 1.0).expect("valid normal");
    for i in 0..spec.steps {
        let t = spec.start_time + i as f64;
        let burst = spec.fault == Some(FaultKind::ServingErrors)
            && (spec.fault_step..spec.fault_step + 60).contains(&i);
        let diurnal = 1.0 + 0.1 * (i as f64 / 600.0).sin();
        let rps = 120.0 * diurnal * (1.0 + 0.05 * noise.sample(&mut rng));
        let errors = if burst {
            45.0 + 5.0 * noise.sample(&mut rng)
        } else {
            (2.0 + 1.2 * noise.sample(&mut rng)).max(0.0)
        };
        let lat = if burst { 2.4 } else { 0.9 } * (1.0 + 0.06 * noise.sample(&mut rng));
        let ttft = if burst { 0.6 } else { 0.25 } * (1.0 + 0.08 * noise.sample(&mut rng));
        for (k, v) in [rps, errors, lat, ttft].into_iter().enumerate() {
            cols[k].0.push(t);
            cols[k].1.push(v);
        }
        if i % 10 == 9 || i == spec.steps - 1 {
            for (k, name) in names.iter().enumerate() {
                let (times, values) = std::mem::take(&mut cols[k]);
                sc.events.push(Event::SourcePoints {
                    source: source.clone(),
                    scope: scope.clone(),
                    series: name.to_string(),
                    times,
                    values,
                });
            }
        }
    }
    sc.sort();
    sc
}
