//! Baselines from a project's history, end to end: three healthy finished
//! runs of one config family, then runs compared with them step for step.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Api, Server, wait_for};

const STEPS: i64 = 1000;

/// Creates a run of project `P` with `config` and posts a decaying loss
/// `offset` above the common curve, with a small deterministic wiggle
/// that differs per `seed`, in batches of 100 steps. Returns its id.
fn post_run(api: &Api, config: Value, offset: f64, seed: i64) -> String {
    let run = api
        .post_json("/api/v1/runs", &json!({"project": "P", "config": config}))
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let t0 = 1_767_225_600.0;
    for chunk in (0..STEPS).collect::<Vec<_>>().chunks(100) {
        let loss: Vec<f64> = chunk
            .iter()
            .map(|&s| {
                let wiggle = ((s * 7919 + seed * 104_729) % 13) as f64 / 13.0 - 0.5;
                2.0 + 4.0 * (-(s as f64) / 300.0).exp() + offset + 0.02 * wiggle
            })
            .collect();
        let times: Vec<f64> = chunk.iter().map(|&s| t0 + s as f64).collect();
        let body = json!({"series": [
            {"name": "train/loss", "step": chunk, "time": times, "value": loss},
        ]});
        api.post_json(&format!("/api/v1/runs/{run}/metrics"), &body)
            .expect(200);
    }
    run
}

fn finish(api: &Api, run: &str) {
    api.patch_json(
        &format!("/api/v1/runs/{run}"),
        &json!({"status": "finished"}),
    )
    .expect(200);
}

fn incidents(api: &Api, run: &str) -> Vec<Value> {
    api.get(&format!("/api/v1/runs/{run}/incidents"))
        .expect(200)["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until diagnosis has handled everything posted so far: a run's
/// CUDA OOM line becomes an incident (one worker, first in first out).
fn settle(api: &Api) {
    let run = api
        .post_json("/api/v1/runs", &json!({"project": "S", "name": "sentinel"}))
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.";
    api.post_json(
        &format!("/api/v1/runs/{run}/logs"),
        &json!({"records": [{"text": text, "stream": "stderr", "level": "error"}]}),
    )
    .expect(200);
    wait_for(Duration::from_secs(10), "the sentinel incident", || {
        incidents(api, &run).into_iter().next()
    });
}

fn family(seed: i64, lr: f64) -> Value {
    json!({"model": "tiny-llama", "batch_size": 32, "optimizer": {"name": "adamw"},
           "seed": seed, "lr": lr, "output_dir": format!("/tmp/out-{seed}")})
}

#[test]
fn a_run_is_compared_with_the_healthy_runs_of_its_config_family() {
    let server = Server::start();
    let api = server.api();
    let mut healthy = Vec::new();
    for (seed, offset) in [(1, 0.0), (2, 0.03), (3, -0.03)] {
        let run = post_run(&api, family(seed, 3e-4), offset, seed);
        finish(&api, &run);
        healthy.push(run);
    }
    settle(&api);
    for run in &healthy {
        assert!(
            incidents(&api, run).is_empty(),
            "healthy run {run} has incidents"
        );
    }

    // Within the envelope: nothing.
    let fine = post_run(&api, family(4, 3e-4), 0.01, 4);
    // Another family, far above: not compared.
    let mut other_cfg = family(5, 3e-4);
    other_cfg["model"] = json!("big-llama");
    let other = post_run(&api, other_cfg, 1.0, 5);
    // The same family with a ten times larger learning rate, well above.
    let bad = post_run(&api, family(6, 3e-3), 1.0, 6);

    let found = wait_for(Duration::from_secs(10), "a baseline incident", || {
        incidents(&api, &bad)
            .into_iter()
            .find(|i| i["kind"] == "baseline_regression")
    });
    let cause = &found["causes"][0];
    assert_eq!(cause["kind"], "baseline_regression", "{found:#}");
    let expl = cause["explanation"].as_str().unwrap();
    // The newest baseline runs first.
    let named = format!(
        "Baseline runs: {}, {}, {}.",
        healthy[2], healthy[1], healthy[0]
    );
    assert!(expl.contains(&named), "{expl}");
    assert!(expl.contains("σ above the median"), "{expl}");
    let fixes: Vec<&str> = cause["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let closest = &healthy[2];
    assert!(
        fixes.iter().any(|f| f.contains(&format!(
            "Set lr back as in run {closest}: 0.003 (was 0.0003)"
        ))),
        "{fixes:#?}"
    );
    assert!(
        fixes
            .iter()
            .all(|f| !f.contains("seed") && !f.contains("output_dir")),
        "seeds and output directories are not config changes worth naming: {fixes:#?}"
    );
    assert_eq!(cause["evidence"][0]["series"], "train/loss");

    settle(&api);
    for (run, what) in [
        (&fine, "within the envelope"),
        (&other, "of another family"),
    ] {
        let found = incidents(&api, run);
        assert!(
            found.iter().all(|i| i["kind"] != "baseline_regression"),
            "a run {what} was called worse than the baseline: {found:#?}"
        );
    }
    assert!(incidents(&api, &fine).is_empty());
}
