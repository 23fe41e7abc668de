//! Server-wide limits: series per run and per project (a batch past one is
//! refused whole with 422 `series_limit`, existing series still take
//! points, the counts survive a restart), and the budget of request bodies
//! in flight (bodies past it wait, then get 503 with `Retry-After`; never
//! more than the budget is admitted at once).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::raw::{self, connect};
use crate::support::{Api, Server};

/// A batch of one point in each of `names`.
fn batch(names: &[String]) -> Value {
    let series: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "step": [1], "value": [1.0]}))
        .collect();
    json!({ "series": series })
}

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

fn post(api: &Api, run: &str, names: &[String]) -> crate::support::Resp {
    api.post_json(&format!("/api/v1/runs/{run}/metrics"), &batch(names))
}

/// Asserts a 422 `series_limit` answer naming `flag`; returns its message.
fn refused(r: crate::support::Resp, flag: &str) -> String {
    let v = r.expect_error(422, flag);
    assert_eq!(v["error"]["code"], "series_limit", "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

const RUN_FLAG: &str = "--max-series-per-run";
const PROJECT_FLAG: &str = "--max-series-per-project";

/// The value of one sample of the server's `/metrics` (0 when absent).
fn sample(api: &Api, line_start: &str) -> f64 {
    api.prometheus()
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_run_past_its_series_limit_is_refused_whole_and_the_limit_survives_a_restart() {
    let mut server =
        Server::with_args(&["--max-series-per-run", "5", "--max-series-per-project", "8"]);
    let api = server.api();
    api.create_run(json!({"id": "r1", "project": "p"}));
    api.create_run(json!({"id": "r2", "project": "p"}));
    api.create_run(json!({"id": "r3", "project": "p"}));
    assert_eq!(api.post_metrics("r1", &batch(&names("a", 0..3))), 3);

    // Two existing series and three new ones: 6 > 5, refused whole.
    let mut mixed = names("a", 0..2);
    mixed.extend(names("b", 0..3));
    let msg = refused(post(&api, "r1", &mixed), RUN_FLAG);
    assert!(
        msg.contains("\"r1\"") && msg.contains("limit is 5"),
        "{msg}"
    );
    let series = api.series("r1");
    assert_eq!(series.len(), 3, "nothing of the refused batch: {series:?}");
    assert_eq!(api.read_all("r1", "a0", "step", 100).len(), 1);

    // Existing series always take points; up to the limit, new ones too.
    assert_eq!(api.post_metrics("r1", &batch(&names("a", 0..3))), 3);
    assert_eq!(api.post_metrics("r1", &batch(&names("b", 0..2))), 2);
    refused(post(&api, "r1", &names("c", 0..1)), RUN_FLAG);

    // Another run has its own count, within the project's 8.
    assert_eq!(api.post_metrics("r2", &batch(&names("a", 0..3))), 3);
    // The project is full: another run, and series outside runs, refused.
    let msg = refused(post(&api, "r3", &names("a", 0..1)), PROJECT_FLAG);
    assert!(msg.contains("\"p\"") && msg.contains("limit is 8"), "{msg}");
    let host = json!({"series": [{"name": "cpu", "labels": {"host": "n1"}, "value": [1.0]}]});
    refused(
        api.post_json("/api/v1/metrics?project=p", &host),
        PROJECT_FLAG,
    );
    // Another project is unaffected.
    api.post_json("/api/v1/metrics?project=q", &host)
        .expect(200);
    assert!(
        sample(
            &api,
            "loupe_limit_refused_requests_total{reason=\"series_per_run\"}"
        ) >= 2.0
    );
    assert!(
        sample(
            &api,
            "loupe_limit_refused_requests_total{reason=\"series_per_project\"}"
        ) >= 2.0
    );

    // After a restart the counts are seeded from the store.
    assert!(server.sigterm().success());
    server.start_again();
    let api = server.api();
    refused(post(&api, "r1", &names("d", 0..1)), RUN_FLAG);
    refused(post(&api, "r3", &names("a", 0..1)), PROJECT_FLAG);
    assert_eq!(api.post_metrics("r1", &batch(&names("a", 0..3))), 3);

    // Deleting a run frees its share of the project.
    api.delete("/api/v1/runs/r2");
    assert_eq!(api.post_metrics("r3", &batch(&names("a", 0..3))), 3);
}

#[test]
fn concurrent_batches_racing_at_the_limit_never_pass_it() {
    const LIMIT: usize = 40;
    let server = Server::with_args(&["--max-series-per-run", "40"]);
    let api = server.api();
    api.create_run(json!({"id": "race", "project": "p"}));
    let accepted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (api, accepted) = (api.clone(), accepted.clone());
            std::thread::spawn(move || {
                for b in 0..6 {
                    // Batches overlap between threads (same names), so
                    // some keys are created by two batches at once.
                    let start = (t % 3) * 20 + b * 3;
                    let r = post(&api, "race", &names("m", start..start + 4));
                    match r.status {
                        200 => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        422 => {
                            refused(r, RUN_FLAG);
                        }
                        s => panic!("HTTP {s}: {}", r.text()),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n = api.series("race").len();
    assert!(n <= LIMIT, "{n} series past a limit of {LIMIT}");
    assert!(accepted.load(Ordering::Relaxed) > 0);
    // The count kept is the truth: filling up to the limit works exactly.
    let room = LIMIT - n;
    if room > 0 {
        assert_eq!(
            api.post_metrics("race", &batch(&names("fill", 0..room))),
            room as u64
        );
    }
    refused(post(&api, "race", &names("over", 0..1)), RUN_FLAG);
}

/// A POST head whose body (of `len` bytes) has not been sent yet.
fn head(server: &Server, len: usize) -> Vec<u8> {
    format!(
        "POST /api/v1/runs/r/metrics HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .into_bytes()
}

/// A metrics batch of about `bytes` bytes of JSON.
fn big_batch(bytes: usize) -> Vec<u8> {
    let n = bytes / 24;
    let steps: Vec<usize> = (0..n).collect();
    let values: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
    serde_json::to_vec(&json!({"series": [{"name": "big", "step": steps, "value": values}]}))
        .unwrap()
}

#[test]
fn bodies_past_the_in_flight_budget_wait_then_get_503_never_all_at_once() {
    const MIB: usize = 1 << 20;
    let server = Server::with_args(&["--max-inflight-body-mib", "1", "--body-budget-wait", "1"]);
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));

    // A client holds 900 KB of the budget: its head is in, its body is not.
    let mut holder = connect(server.addr);
    holder.write_all(&head(&server, 900 * 1024)).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // Another body does not fit beside it: 503 with Retry-After, after the
    // wait. (Heads only: a refused body is never read.)
    let mut s = connect(server.addr);
    s.write_all(&head(&server, 400 * 1024)).unwrap();
    let r = raw::read_response(&mut s);
    r.expect_error(503, "overloaded");
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u32>().is_ok()),
        "{:?}",
        r.headers
    );

    // Larger than the whole budget: 413 at once.
    let mut s = connect(server.addr);
    s.write_all(&head(&server, MIB + 64 * 1024)).unwrap();
    raw::read_response(&mut s).expect_error(413, "body_too_large");

    // The holder goes away: its share is given back.
    drop(holder);
    std::thread::sleep(Duration::from_millis(300));

    // Concurrent bodies, three of which fit at once, are served as room
    // frees up (or told to retry), never admitted past the budget.
    let body = big_batch(300 * 1024);
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (api, body) = (api.clone(), body.clone());
            std::thread::spawn(move || {
                api.try_post_raw(
                    "/api/v1/runs/r/metrics",
                    &body,
                    &[("Content-Type", "application/json")],
                )
            })
        })
        .collect();
    let mut ok = 0;
    for t in threads {
        match t.join().unwrap() {
            Ok(r) if r.status == 200 => ok += 1,
            Ok(r) => {
                let v = r.expect_error(503, "--max-inflight-body-mib");
                assert_eq!(v["error"]["code"], "overloaded", "{v}");
            }
            // Refused before its body was read: the connection may be
            // reset under the client's feet.
            Err(_) => {}
        }
    }
    assert!(ok >= 1, "none of the bodies was served");
    let high = sample(&api, "loupe_http_inflight_body_bytes_max ");
    assert!(
        high > 0.0 && high <= MIB as f64,
        "in-flight body bytes peaked at {high}, past the 1 MiB budget"
    );
    assert_eq!(sample(&api, "loupe_http_inflight_body_bytes "), 0.0);
    assert!(
        sample(
            &api,
            "loupe_limit_refused_requests_total{reason=\"body_budget_timeout\"}"
        ) >= 1.0
    );
}
