//! Live updates: `GET /api/v1/live` as Server-Sent Events.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, prom_sample};

/// An open event stream.
struct EventStream {
    reader: BufReader<ureq::BodyReader<'static>>,
}

impl EventStream {
    /// Opens the stream; panics unless it is `text/event-stream`.
    fn open(base: &str, query: &str) -> EventStream {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            // Bounds every read: a missing event fails the test, not hangs it.
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let resp = agent
            .get(format!("{base}/api/v1/live{query}"))
            .header("Accept", "text/event-stream")
            .call()
            .expect("GET /api/v1/live");
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "content type {ct:?}");
        EventStream {
            reader: BufReader::new(resp.into_body().into_reader()),
        }
    }

    /// The next event: its name and JSON data.
    fn next(&mut self) -> (String, Value) {
        let mut event = String::from("message");
        let mut data = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("reading the event stream (timed out waiting for an event?)");
            assert!(n > 0, "the event stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    continue; // a comment-only block (keep-alive)
                }
                let v = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"));
                return (event, v);
            }
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
    }

    /// Events until one named `kind` arrives (at most 50 events).
    fn until(&mut self, kind: &str) -> (Vec<(String, Value)>, Value) {
        let mut skipped = Vec::new();
        for _ in 0..50 {
            let (name, v) = self.next();
            if name == kind {
                return (skipped, v);
            }
            skipped.push((name, v));
        }
        panic!("no {kind} event among {skipped:?}");
    }
}

#[test]
fn live_stream_delivers_points_logs_and_status() {
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "live-1", "project": "live"}));
    api.create_run(json!({"id": "other", "project": "live"}));

    let mut one = EventStream::open(&server.base(), "?run=live-1");
    let mut all = EventStream::open(&server.base(), "");
    let prom = api.prometheus();
    assert!(prom_sample(&prom, "loupe_live_subscribers").unwrap() >= 2.0);

    // Another run's points: only the unfiltered stream sees them.
    api.post_metrics(
        "other",
        &json!({"series": [{"name": "noise", "step": [1], "value": [1]}]}),
    );
    api.post_metrics(
        "live-1",
        &json!({"series": [{"name": "loss", "step": [1, 2, 3], "value": [1.0, 0.5, 0.25]},
                           {"name": "acc", "step": [3], "value": ["NaN"]}]}),
    );
    api.post_logs(
        "live-1",
        &json!({"records": [{"text": "epoch 1 done"}, {"text": "oops", "level": "error", "stream": "stderr"}]}),
    );
    api.patch_json("/api/v1/runs/live-1", &json!({"status": "finished"}))
        .expect(200);

    let (skipped, points) = one.until("points");
    assert!(skipped.is_empty(), "unexpected events first: {skipped:?}");
    assert_eq!(points["run"], "live-1");
    assert_eq!(points["data"]["loss"]["count"], 3);
    assert_eq!(points["data"]["loss"]["last_step"], 3);
    assert_eq!(points["data"]["loss"]["last"], 0.25);
    assert_eq!(points["data"]["acc"]["last"], "NaN");
    let (skipped, logs) = one.until("logs");
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(logs["run"], "live-1");
    assert_eq!(logs["data"]["count"], 2);
    let recs = logs["data"]["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["text"], "epoch 1 done");
    assert_eq!(recs[1]["level"], "error");
    assert!(recs[1]["seq"].as_u64().unwrap() > recs[0]["seq"].as_u64().unwrap());
    let (skipped, status) = one.until("status");
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(status["run"], "live-1");
    assert_eq!(status["data"]["status"], "finished");

    // The unfiltered stream saw the other run first, then the same events.
    let (_, first) = all.until("points");
    assert_eq!(first["run"], "other");
    let (_, second) = all.until("points");
    assert_eq!(second["run"], "live-1");
    let (_, l) = all.until("logs");
    assert_eq!(l["run"], "live-1");
    let (_, s) = all.until("status");
    assert_eq!(s["data"]["status"], "finished");

    // A resume is a status event too; other runs never reach the filtered stream.
    api.patch_json("/api/v1/runs/other", &json!({"status": "killed"}))
        .expect(200);
    api.post_json("/api/v1/runs", &json!({"id": "live-1", "project": "live"}))
        .expect(200);
    let (name, ev) = one.next();
    assert_eq!(name, "status");
    assert_eq!(ev["run"], "live-1");
    assert_eq!(ev["data"]["status"], "running");

    // An unknown run is a 404, not an empty stream.
    api.get("/api/v1/live?run=ghost").expect_error(404, "ghost");
}
