//! The general detector in live diagnosis: series outside runs (a host's
//! GPUs, a service, an external metric) that go unusual for themselves
//! make one finding per unusual stretch, with the likelihood in the
//! evidence; healthy ones, however noisy or periodic, open nothing.

use loupe_diagnose::scenario::fleet::healthy_fleet;
use loupe_diagnose::scenario::replay;
use loupe_diagnose::{DiagnoseConfig, Diagnoser, Finding, FindingKind, Incident, Scope, Severity};

/// Deterministic, uncorrelated, roughly normal noise (unit variance).
fn noise(i: u64) -> f64 {
    let u = |k: u64| {
        let mut z = (i * 4 + k)
            .wrapping_add(7)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    ((u(0) + u(1) + u(2) + u(3)) - 2.0) * 3f64.sqrt()
}

/// Feeds series of one source, 10 points per batch, ticking every
/// second; returns every finding and the incidents.
fn feed(
    scope: Scope,
    series: &[(&str, Vec<f64>)],
    interval_s: f64,
) -> (Vec<Finding>, Vec<Incident>) {
    let mut d = Diagnoser::new(DiagnoseConfig::default(), "t");
    d.record_findings();
    let source = format!("host={}", scope.host.clone().unwrap_or_default());
    let n = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let t0 = 1.7e9;
    let mut incidents = std::collections::BTreeMap::new();
    for start in (0..n).step_by(10) {
        let end = (start + 10).min(n);
        let times: Vec<f64> = (start..end).map(|i| t0 + interval_s * i as f64).collect();
        let now = *times.last().unwrap();
        for (name, values) in series {
            d.observe_source_points(
                &source,
                scope.clone(),
                name,
                &times,
                &values[start..end],
                now,
            );
        }
        for i in d.tick(now) {
            incidents.insert(i.id.clone(), i);
        }
    }
    (d.take_findings(), incidents.into_values().collect())
}

fn unusual(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.kind == FindingKind::Unusual)
        .collect()
}

fn service() -> Scope {
    Scope {
        project: Some("p".into()),
        service: Some("chat".into()),
        host: Some("chat-host".into()),
        ..Default::default()
    }
}

fn host() -> Scope {
    Scope {
        project: Some("p".into()),
        host: Some("node7".into()),
        ..Default::default()
    }
}

#[test]
fn a_latency_step_is_found_once_with_its_likelihood_as_evidence() {
    // A service's time to first token, 1 Hz: 0.25 s ± 8%, then 0.6 s
    // from t = 3000 on; requests steady.
    let ttft: Vec<f64> = (0..5400u64)
        .map(|i| if i < 3000 { 0.25 } else { 0.6 } * (1.0 + 0.08 * noise(i)))
        .collect();
    let rps: Vec<f64> = (0..5400u64)
        .map(|i| 120.0 + 4.0 * noise(i + 99_999))
        .collect();
    let (findings, incidents) = feed(
        service(),
        &[("llm.ttft_seconds", ttft), ("llm.requests_per_s", rps)],
        1.0,
    );
    let u = unusual(&findings);
    assert_eq!(u.len(), 1, "{u:#?}");
    let f = u[0];
    println!("{}", f.detail);
    assert_eq!(f.series.as_deref(), Some("llm.ttft_seconds"));
    assert!((f.time - 1.7e9 - 3000.0).abs() < 5.0, "{}", f.time);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.attributes.contains_key("likelihood_score"), "{f:?}");
    assert!(
        // In the series' unit (seconds read as ms), the change as a factor.
        f.detail.starts_with("unusual for this series: ")
            && f.detail.contains(" ms against about ")
            && f.detail.contains("usually (×")
            && f.detail.contains("anomaly likelihood score"),
        "{}",
        f.detail
    );
    // One incident, with the unusual series among its evidence.
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    assert!(
        inc.anomalies
            .iter()
            .any(|a| a.detector == "unusual" && a.detail.contains("likelihood")),
        "{:#?}",
        inc.anomalies
    );
}

#[test]
fn a_gpu_step_and_spike_are_found_once_each_as_evidence() {
    // GPU 0's temperature, 1 Hz: 66 °C ± 0.4, one reading of 83 °C at
    // t = 2000, then 8 °C hotter from t = 4000 (a fan failing).
    let temp: Vec<f64> = (0..6000u64)
        .map(|i| match i {
            2000 => 83.0,
            i if i >= 4000 => 74.0 + 0.4 * noise(i),
            _ => 66.0 + 0.4 * noise(i),
        })
        .collect();
    let (findings, incidents) = feed(host(), &[("gpu/0/temperature", temp)], 1.0);
    let u = unusual(&findings);
    let at: Vec<f64> = u.iter().map(|f| f.time - 1.7e9).collect();
    assert_eq!(at.len(), 2, "{u:#?}");
    assert_eq!(at[0], 2000.0);
    assert!((4000.0..4005.0).contains(&at[1]), "{at:?}");
    // A host's GPUs change regime whenever a job starts or ends: the
    // finding is evidence, and opens nothing by itself (85 °C would).
    assert!(u.iter().all(|f| f.severity == Severity::Info));
    assert!(incidents.is_empty(), "{incidents:#?}");
}

#[test]
fn noisy_periodic_healthy_series_open_nothing() {
    // A service at 1 Hz for 8 hours: requests on a 1-hour cycle with
    // heavy noise and short bursts, latency following the load.
    let n = 28_800u64;
    let rps: Vec<f64> = (0..n)
        .map(|i| {
            let cycle = (i as f64 / 3600.0 * std::f64::consts::TAU).sin();
            let burst = if i % 997 < 3 { 20.0 } else { 0.0 };
            120.0 + 30.0 * cycle + burst + 8.0 * noise(i)
        })
        .collect();
    let lat: Vec<f64> = rps
        .iter()
        .enumerate()
        .map(|(i, r)| 0.5 + 0.004 * r + 0.05 * noise(i as u64 + 7_777_777))
        .collect();
    let errors: Vec<f64> = (0..n)
        .map(|i| if i % 613 == 5 { 1.0 } else { 0.0 })
        .collect();
    let (findings, incidents) = feed(
        service(),
        &[
            ("llm.requests_per_s", rps),
            ("llm.latency_p95_seconds", lat),
            ("llm.errors_per_s", errors),
        ],
        1.0,
    );
    assert!(incidents.is_empty(), "{incidents:#?}");
    assert!(
        unusual(&findings)
            .iter()
            .all(|f| f.severity == Severity::Info),
        "{:#?}",
        unusual(&findings)
    );
    // Five-minute samples of an external metric for four weeks: a daily
    // cycle, noise, quieter weekends.
    let daily: Vec<f64> = (0..8064u64)
        .map(|i| {
            let day = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            let weekend = if (i / 288) % 7 >= 5 { 0.6 } else { 1.0 };
            weekend * (500.0 + 200.0 * day.sin()) + 25.0 * noise(i)
        })
        .collect();
    let (_, incidents) = feed(host(), &[("shop.orders", daily)], 300.0);
    assert!(incidents.is_empty(), "{incidents:#?}");
}

#[test]
fn a_healthy_gpu_fleet_opens_nothing() {
    // Four hosts of eight GPUs, an hour at 1 Hz: busy, evaluation dips,
    // a checkpoint pause, temperatures and clocks following.
    let sc = healthy_fleet(4, 8, 3600, 11);
    let incidents = replay(&sc, &DiagnoseConfig::default());
    assert!(incidents.is_empty(), "{incidents:#?}");
}
