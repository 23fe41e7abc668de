//! Live diagnosis through the public API: data in, incidents with ranked
//! causes out, health scores, the `diagnose` and `detect` commands.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Api, Server, run_cli, wait_for};

/// Posts `steps` of a training run in batches of 50 steps (like an SDK):
/// a decaying loss with a small deterministic wiggle, a grad norm and a
/// warm-up learning rate; at `spike` the grad norm jumps and the loss
/// follows one step later.
fn post_training(api: &Api, run: &str, steps: i64, spike: Option<i64>) {
    let t0 = 1_767_225_600.0;
    for chunk in (0..steps).collect::<Vec<_>>().chunks(50) {
        let mut loss = Vec::new();
        let mut grad = Vec::new();
        let mut lr = Vec::new();
        let mut times = Vec::new();
        for &s in chunk {
            let wiggle = ((s * 7919) % 13) as f64 / 13.0 - 0.5;
            let mut l = 2.0 + 4.0 * (-(s as f64) / 300.0).exp() + 0.02 * wiggle;
            let mut g = 1.0 + 0.05 * wiggle;
            if Some(s) == spike.map(|x| x - 1) {
                g *= 10.0;
            }
            if Some(s) == spike {
                l *= 2.0;
            }
            loss.push(l);
            grad.push(g);
            lr.push(3e-4 * ((s + 1) as f64 / 200.0).min(1.0));
            times.push(t0 + s as f64);
        }
        let body = json!({"series": [
            {"name": "train/loss", "step": chunk, "time": times, "value": loss},
            {"name": "train/grad_norm", "step": chunk, "time": times, "value": grad},
            {"name": "train/lr", "step": chunk, "time": times, "value": lr},
        ]});
        api.post_json(&format!("/api/v1/runs/{run}/metrics"), &body)
            .expect(200);
    }
}

fn incidents(api: &Api, run: &str) -> Vec<Value> {
    api.get(&format!("/api/v1/runs/{run}/incidents"))
        .expect(200)["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_loss_spike_becomes_an_incident_with_its_cause_and_fixes() {
    let server = Server::start();
    let api = server.api();
    let run = api
        .post_json(
            "/api/v1/runs",
            &json!({"name": "spiky", "config": {"lr": 3e-4}}),
        )
        .expect(201);
    let id = run["id"].as_str().unwrap().to_string();
    let healthy = api
        .post_json("/api/v1/runs", &json!({"name": "calm"}))
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    post_training(&api, &healthy, 600, None);
    let posted = Instant::now();
    post_training(&api, &id, 600, Some(400));
    let found = wait_for(Duration::from_secs(10), "an incident", || {
        incidents(&api, &id).into_iter().next()
    });
    eprintln!(
        "incident visible {:?} after the last batch was acknowledged",
        posted.elapsed()
    );
    assert_eq!(found["state"], "open");
    assert_eq!(found["kind"], "learning_rate_too_high", "{found:#}");
    let top = &found["causes"][0];
    assert!(top["score"].as_f64().unwrap() > 0.5);
    assert!(
        top["fixes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("Clip")),
        "{top:#}"
    );
    let evidence = top["evidence"].as_array().unwrap();
    assert!(
        evidence
            .iter()
            .any(|e| e["series"] == "train/loss" && e["step"] == 400),
        "{top:#}"
    );
    assert!(
        evidence
            .iter()
            .any(|e| e["series"] == "train/grad_norm" && e["step"] == 399),
        "{top:#}"
    );
    assert_eq!(found["start_step"], 399);
    // Listed by project and state, counted on the run, weighing on health.
    let listed = api
        .get_q(
            "/api/v1/incidents",
            &[("project", "default"), ("state", "open")],
        )
        .expect(200);
    assert!(
        listed["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == found["id"])
    );
    let one = api
        .get(&format!(
            "/api/v1/incidents/{}",
            found["id"].as_str().unwrap()
        ))
        .expect(200);
    assert_eq!(one["id"], found["id"]);
    let run_now = wait_for(Duration::from_secs(10), "the open-incident count", || {
        let r = api.get(&format!("/api/v1/runs/{id}")).expect(200);
        (r["open_incidents"].as_u64() >= Some(1)).then_some(r)
    });
    assert!(run_now["open_incidents"].as_u64().unwrap() >= 1);
    let health = wait_for(Duration::from_secs(10), "a health score", || {
        let h = api.get(&format!("/api/v1/runs/{id}/health")).expect(200);
        h["score"].as_f64().map(|_| h)
    });
    assert!(health["score"].as_f64().unwrap() < 100.0, "{health}");
    assert!(!health["breakdown"].as_array().unwrap().is_empty());
    // The healthy run has none.
    assert!(incidents(&api, &healthy).is_empty());
    // The CLI shows it; a replay with a much higher spike threshold does not find it.
    let text = run_cli(&["diagnose", &id, "--server", &server.base()]);
    assert!(text.contains("Learning rate too high"), "{text}");
    assert!(text.contains("health "), "{text}");
    let replayed = run_cli(&[
        "diagnose",
        &id,
        "--replay",
        "--json",
        "--server",
        &server.base(),
    ]);
    let replayed: Value = serde_json::from_str(&replayed).unwrap();
    assert_eq!(
        replayed[0]["kind"], "learning_rate_too_high",
        "{replayed:#}"
    );
    let strict = run_cli(&[
        "diagnose",
        &id,
        "--replay",
        "--json",
        "--set",
        "spike.z=1000",
        "--server",
        &server.base(),
    ]);
    let strict: Value = serde_json::from_str(&strict).unwrap();
    assert!(
        strict
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] != "learning_rate_too_high"),
        "{strict:#}"
    );
    let metrics = api.get("/metrics").text();
    let points = metrics
        .lines()
        .find_map(|l| l.strip_prefix("loupe_diagnosis_points_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(points >= 3600.0, "{points}");
}

#[test]
fn a_cuda_oom_traceback_in_the_logs_is_an_incident() {
    let server = Server::start();
    let api = server.api();
    let id = api
        .post_json("/api/v1/runs", &json!({"name": "oom"}))
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines = [
        "Traceback (most recent call last):",
        "  File \"train.py\", line 88, in <module>",
        "    out = model(batch)",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which 1.12 GiB is free.",
    ];
    let records: Vec<Value> = lines
        .iter()
        .map(|t| json!({"text": t, "stream": "stderr", "level": "error"}))
        .collect();
    api.post_json(
        &format!("/api/v1/runs/{id}/logs"),
        &json!({"records": records}),
    )
    .expect(200);
    let found = wait_for(Duration::from_secs(10), "an incident", || {
        incidents(&api, &id).into_iter().next()
    });
    assert_eq!(found["kind"], "cuda_out_of_memory", "{found:#}");
    let ev = &found["causes"][0]["evidence"][0];
    assert_eq!(ev["kind"], "log");
    assert!(ev["text"].as_str().unwrap().contains("CUDA out of memory"));
}

#[test]
fn detect_labels_the_rows_of_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loss.csv");
    let mut csv = String::from("timestamp,train/loss\n");
    for i in 0..400 {
        let v = if i == 300 {
            9.0
        } else {
            2.0 + 0.01 * ((i * 7919) % 17) as f64
        };
        if i % 2 == 0 {
            csv.push_str(&format!("{},{v}\n", 1_767_225_600 + i));
        } else {
            let t = chrono_free_iso(1_767_225_600 + i);
            csv.push_str(&format!("{t},{v}\n"));
        }
    }
    std::fs::write(&path, csv).unwrap();
    let out = run_cli(&["detect", path.to_str().unwrap()]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,train/loss,anomaly_score,label")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 400);
    let labelled: Vec<usize> = (0..400).filter(|&i| rows[i][3] == "1").collect();
    assert_eq!(labelled, vec![300]);
    for r in &rows {
        let s: f64 = r[2].parse().unwrap();
        assert!((0.0..=1.0).contains(&s));
    }
}

/// `2026-01-01T00:00:05Z`-style text for Unix seconds (days from the epoch
/// by the civil-from-days algorithm; the test avoids a date dependency).
fn chrono_free_iso(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// One rank of a four-rank job runs hot and slow: the job's incident names
/// it as a thermal straggler, touches every rank, and the job's health is
/// served per rank.
#[test]
fn a_hot_slow_rank_is_named_as_a_thermal_straggler() {
    let server = Server::start();
    let api = server.api();
    let ids: Vec<String> = (0..4)
        .map(|r| {
            api.post_json(
                "/api/v1/runs",
                &json!({"name": format!("r{r}"), "group": "job-7", "rank": r, "world_size": 4}),
            )
            .expect(201)["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let t0 = 1_767_225_600.0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut step = 0i64;
    let found = loop {
        for (r, id) in ids.iter().enumerate() {
            let steps: Vec<i64> = (step..step + 20).collect();
            let times: Vec<f64> = steps.iter().map(|s| t0 + *s as f64).collect();
            let wiggle = |s: i64| ((s * 7919 + r as i64 * 31) % 13) as f64 / 13.0 - 0.5;
            let (slow, hot) = if r == 2 {
                (1.4, 90.0)
            } else {
                (1.0, 66.0 + r as f64)
            };
            let st: Vec<f64> = steps
                .iter()
                .map(|&s| slow * (1.3 + 0.02 * wiggle(s)))
                .collect();
            let temp: Vec<f64> = steps.iter().map(|&s| hot + 0.5 * wiggle(s)).collect();
            let body = json!({"series": [
                {"name": "perf/step_time", "step": steps, "time": times, "value": st},
                {"name": "gpu/0/temperature", "step": steps, "time": times, "value": temp},
            ]});
            api.post_json(&format!("/api/v1/runs/{id}/metrics"), &body)
                .expect(200);
        }
        step += 20;
        let list = api
            .get_q("/api/v1/incidents", &[("group", "job-7")])
            .expect(200);
        // A hot GPU opens the incident at once; the slowness of its rank
        // makes it a thermal straggler a few checks later.
        if let Some(i) = list["incidents"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["kind"] == "thermal_straggler").cloned())
        {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no straggler incident for the job: {list:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(found["kind"], "thermal_straggler", "{found:#}");
    assert!(
        found["title"].as_str().unwrap().contains("rank 2"),
        "{found:#}"
    );
    // Listed for every rank's run it touches (the straggler's at least).
    assert!(!incidents(&api, &ids[2]).is_empty());
    let health = wait_for(Duration::from_secs(10), "the job's health", || {
        let h = api.get("/api/v1/groups/job-7/health").expect(200);
        h["score"].as_f64().map(|_| h)
    });
    assert_eq!(
        health["members"].as_array().unwrap().len() + health["unjudged"].as_u64().unwrap() as usize,
        4
    );
    api.get("/api/v1/groups/nope/health").expect(404);
}

/// A diagnoser that falls behind never slows ingestion: batches that do
/// not fit in its queue are counted as dropped, and the worker reads them
/// back from the stores — the incident is still found, with the same cause.
#[test]
fn a_diagnoser_that_falls_behind_catches_up_from_the_stores() {
    let server = Server::with_args(&["--diagnose-queue", "2", "--diagnose-pause-ms", "3000"]);
    let api = server.api();
    let id = api
        .post_json("/api/v1/runs", &json!({"name": "behind"}))
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let posted = Instant::now();
    post_training(&api, &id, 600, Some(400));
    let lines: Vec<Value> = (0..30)
        .map(|i| json!({"text": format!("epoch {i} done"), "stream": "stdout"}))
        .chain(std::iter::once(json!({
            "text": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
            "stream": "stderr", "level": "error"
        })))
        .collect();
    for chunk in lines.chunks(4) {
        api.post_json(
            &format!("/api/v1/runs/{id}/logs"),
            &json!({"records": chunk}),
        )
        .expect(200);
    }
    // Ingest did not wait for the paused diagnoser.
    assert!(
        posted.elapsed() < Duration::from_secs(3),
        "{:?}",
        posted.elapsed()
    );
    let found = wait_for(
        Duration::from_secs(20),
        "incidents after the catch-up",
        || {
            let list = incidents(&api, &id);
            let kinds: Vec<Value> = list
                .iter()
                .flat_map(|i| i["causes"].as_array().cloned().unwrap_or_default())
                .map(|c| c["kind"].clone())
                .collect();
            (kinds.contains(&json!("learning_rate_too_high"))
                && kinds.contains(&json!("cuda_out_of_memory")))
            .then_some(list)
        },
    );
    assert!(!found.is_empty());
    let metrics = api.get("/metrics").text();
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        metric("loupe_diagnosis_dropped_batches_total") > 0.0,
        "{metrics}"
    );
    assert!(
        // Every point of the run (600 steps × 3 series) was read back.
        metric("loupe_diagnosis_caught_up_points_total") >= 1800.0,
        "{metrics}"
    );
}
