//! Many clients at once: each writes its own run and reads it back.

use std::time::Duration;

use serde_json::json;

use crate::support::{Api, Server, prom_sample};

const CLIENTS: usize = 50;
const ROUNDS: i64 = 6;
const POINTS: i64 = 40;
const LINES: usize = 3;

/// One client's loop; returns what it had acknowledged.
fn client(api: Api, i: usize) -> Result<(i64, usize), String> {
    let run = format!("c{i}");
    let r = api.post_json(
        "/api/v1/runs",
        &json!({"id": run, "project": "conc", "tags": [format!("t{}", i % 5)]}),
    );
    if r.status != 201 {
        return Err(format!("{run}: create: HTTP {} {}", r.status, r.text()));
    }
    let (mut points, mut lines) = (0i64, 0usize);
    for round in 0..ROUNDS {
        let steps: Vec<i64> = (round * POINTS..(round + 1) * POINTS).collect();
        let times: Vec<f64> = steps.iter().map(|&s| 1_732_000_000.0 + s as f64).collect();
        let batch = json!({"series": [
            {"name": "a", "step": steps, "time": times, "value": steps.iter().map(|&s| (s * i as i64) as f64).collect::<Vec<_>>()},
            {"name": "b", "step": steps, "time": times, "value": steps.iter().map(|&s| -(s as f64)).collect::<Vec<_>>()},
        ]});
        let r = api.post_json(&format!("/api/v1/runs/{run}/metrics"), &batch);
        if r.status != 200 || r.json()["accepted"] != 2 * POINTS {
            return Err(format!("{run}: metrics: HTTP {} {}", r.status, r.text()));
        }
        points += POINTS;
        let recs: Vec<_> = (0..LINES)
            .map(|j| json!({"text": format!("{run} round {round} line {j}")}))
            .collect();
        let r = api.post_json(
            &format!("/api/v1/runs/{run}/logs"),
            &json!({"records": recs}),
        );
        if r.status != 200 {
            return Err(format!("{run}: logs: HTTP {} {}", r.status, r.text()));
        }
        lines += LINES;

        // Read back: what was acknowledged is visible, and nothing else.
        let series = api.series(&run);
        for name in ["a", "b"] {
            let count = series.get(name).map(|s| s["count"].as_i64().unwrap());
            if count != Some(points) {
                return Err(format!(
                    "{run}: series {name} count {count:?}, acknowledged {points}"
                ));
            }
        }
        let data = api.read_all(&run, "a", "step", 10_000);
        if data.len() as i64 != points {
            return Err(format!(
                "{run}: read {} points, acknowledged {points}",
                data.len()
            ));
        }
        for (k, (s, y)) in data.step.iter().zip(&data.y).enumerate() {
            if *s != Some(k as i64) || *y != (k as i64 * i as i64) as f64 {
                return Err(format!(
                    "{run}: point {k} is ({s:?}, {y}): another run's data?"
                ));
            }
        }
        let logs = api.all_logs(&run, &[("limit", "1000")]);
        if logs.len() != lines {
            return Err(format!(
                "{run}: {} log lines, acknowledged {lines}",
                logs.len()
            ));
        }
        if !logs
            .iter()
            .all(|r| r["text"].as_str().unwrap().starts_with(&format!("{run} ")))
        {
            return Err(format!("{run}: another run's log line"));
        }
    }
    Ok((points, lines))
}

#[test]
fn fifty_clients_write_and_read_their_own_runs() {
    let server = Server::start();
    let api = server.api().with_timeout(Duration::from_secs(30));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let api = api.clone();
            std::thread::Builder::new()
                .name(format!("client-{i}"))
                .spawn(move || client(api, i))
                .unwrap()
        })
        .collect();
    let mut errors = Vec::new();
    let mut acked = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(v)) => acked.push(v),
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push(format!("client {i} panicked")),
        }
    }
    assert!(
        errors.is_empty(),
        "{} clients failed:\n{}",
        errors.len(),
        errors.join("\n")
    );

    // At the end: every run, with exactly what was acknowledged.
    let runs = api
        .get_q("/api/v1/runs", &[("project", "conc"), ("limit", "1000")])
        .expect(200);
    assert_eq!(runs["runs"].as_array().unwrap().len(), CLIENTS);
    let tagged = api
        .get_q("/api/v1/runs", &[("tag", "t3"), ("limit", "1000")])
        .expect(200);
    assert_eq!(tagged["runs"].as_array().unwrap().len(), CLIENTS / 5);
    for (i, (points, lines)) in acked.iter().enumerate() {
        let run = format!("c{i}");
        let s = api.series(&run);
        assert_eq!(s["a"]["count"].as_i64(), Some(*points), "{run}");
        assert_eq!(s["b"]["count"].as_i64(), Some(*points), "{run}");
        assert_eq!(
            api.all_logs(&run, &[("limit", "1000")]).len(),
            *lines,
            "{run}"
        );
    }
    let prom = api.prometheus();
    assert_eq!(
        prom_sample(&prom, "loupe_ingest_points_total"),
        Some((CLIENTS as i64 * ROUNDS * POINTS * 2) as f64)
    );
    assert_eq!(
        prom_sample(&prom, "loupe_ingest_log_records_total"),
        Some((CLIENTS * ROUNDS as usize * LINES) as f64)
    );
}
