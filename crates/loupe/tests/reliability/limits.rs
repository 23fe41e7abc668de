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

/// Waits (a generous 10 s at most) until the bytes of bodies in flight
/// reach `at_least`.
fn wait_for_inflight(api: &Api, at_least: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = sample(api, "loupe_http_inflight_body_bytes ");
        if now >= at_least {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bodies in flight stayed at {now} bytes, below {at_least}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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

    // A client holds the whole budget: all of its body but the last byte is
    // in (the budget is charged for bytes as they arrive).
    let mut holder = connect(server.addr);
    holder.write_all(&head(&server, MIB)).unwrap();
    holder.write_all(&vec![b' '; MIB - 1]).unwrap();
    wait_for_inflight(&api, (MIB - 1) as f64);

    // Another body, however small, does not fit beside it: 503 with
    // Retry-After, after the wait. (Small enough to be read whole: a body
    // left unread would make the server's close reset the connection.)
    let mut s = connect(server.addr);
    s.write_all(&head(&server, 10)).unwrap();
    s.write_all(b"{\"series\"}").unwrap();
    let r = raw::read_response(&mut s);
    r.expect_error(503, "overloaded");
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u32>().is_ok()),
        "{:?}",
        r.headers
    );

    // Declaring more than the whole budget: 413 at once, nothing read.
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

#[test]
fn a_hundred_slow_clients_hold_only_what_they_have_sent() {
    let server = Server::with_args(&["--max-inflight-body-mib", "1", "--body-budget-wait", "1"]);
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));
    // Each declares 900 KB, sends 4 KB and stalls: charged up front by what
    // they declared, any two of them would spend the whole budget.
    let slow: Vec<_> = (0..100)
        .map(|_| {
            let mut s = connect(server.addr);
            s.write_all(&head(&server, 900 * 1024)).unwrap();
            s.write_all(&[b' '; 4096]).unwrap();
            s
        })
        .collect();
    wait_for_inflight(&api, 100.0 * 4096.0);
    let held = sample(&api, "loupe_http_inflight_body_bytes ");
    assert!(
        held <= 100.0 * 4096.0,
        "the stalled clients hold {held} bytes, more than the 400 KiB they sent"
    );
    // Someone else's 300 KB body still gets in, without waiting for them.
    let body = big_batch(300 * 1024);
    let r = api.post_raw(
        "/api/v1/runs/r/metrics",
        &body,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    drop(slow);
}

/// `json` followed by spaces up to `len` bytes: still the same batch, and
/// it compresses well.
fn padded(mut json: Vec<u8>, len: usize) -> Vec<u8> {
    json.resize(len.max(json.len()), b' ');
    json
}

/// `bytes` gzip-compressed.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn a_compressed_body_is_charged_at_its_decompressed_size() {
    let server = Server::with_args(&["--max-inflight-body-mib", "4", "--max-body-mib", "3"]);
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));
    let plain = padded(big_batch(256 << 10), 1 << 20);
    let packed = gzip(&plain);
    assert!(packed.len() * 4 < plain.len(), "the batch compresses");
    let gz = [
        ("Content-Type", "application/json"),
        ("Content-Encoding", "gzip"),
    ];
    let r = api.post_raw("/api/v1/runs/r/metrics", &packed, &gz);
    assert_eq!(r.status, 200, "{}", r.text());
    // The charge was the wire bytes plus the decompressed ones, not the
    // wire bytes alone.
    let high = sample(&api, "loupe_http_inflight_body_bytes_max ");
    assert!(
        high >= (plain.len() + packed.len()) as f64,
        "a {} byte body ({} compressed) peaked at {high} bytes charged",
        plain.len(),
        packed.len()
    );
    assert_eq!(sample(&api, "loupe_http_inflight_body_bytes "), 0.0);

    // A bomb (64 MiB of zeros, about 64 KB gzipped) stops at --max-body-mib
    // with 413, having charged at most that much.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 200 << 10);
    api.post_raw("/api/v1/runs/r/metrics", &bomb, &gz)
        .expect_error(413, "body");
    let high = sample(&api, "loupe_http_inflight_body_bytes_max ");
    assert!(
        high <= (4 << 20) as f64,
        "the bomb was charged {high} bytes, past the 4 MiB budget"
    );
    assert_eq!(sample(&api, "loupe_http_inflight_body_bytes "), 0.0);

    // Decompressed past the whole budget (but within --max-body-mib): 413
    // naming the budget, where the compressed size alone would have passed.
    let server = Server::with_args(&["--max-inflight-body-mib", "1", "--max-body-mib", "3"]);
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));
    let plain = padded(big_batch(256 << 10), 2 << 20);
    let packed = gzip(&plain);
    assert!(packed.len() < 1 << 20);
    api.post_raw("/api/v1/runs/r/metrics", &packed, &gz)
        .expect_error(413, "--max-inflight-body-mib");
    assert!(
        sample(
            &api,
            "loupe_limit_refused_requests_total{reason=\"body_over_budget\"}"
        ) >= 1.0
    );
}

#[test]
fn a_request_past_the_request_timeout_gets_503_request_timeout() {
    let server = Server::with_args(&["--request-timeout", "1"]);
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));
    // A client that sends half its body and stalls keeps its handler
    // waiting (the body read timeout is a minute away).
    let mut s = connect(server.addr);
    s.write_all(&head(&server, 2048)).unwrap();
    s.write_all(&[b' '; 1024]).unwrap();
    let started = std::time::Instant::now();
    let r = raw::read_response(&mut s);
    let v = r.expect_error(503, "request_timeout");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("--request-timeout"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        sample(
            &api,
            "loupe_limit_refused_requests_total{reason=\"request_timeout\"}"
        ),
        1.0
    );
    // Quick requests are untouched; the live stream outlives the bound.
    api.get("/api/v1/runs/r").expect(200);
    let mut live = connect(server.addr);
    live.write_all(
        format!(
            "GET /api/v1/live?run=r HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    live.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = std::io::Read::read(&mut live, &mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        sample(
            &api,
            "loupe_limit_refused_requests_total{reason=\"request_timeout\"}"
        ),
        1.0,
        "the live stream was cut"
    );
}

#[test]
fn series_pages_list_every_series_exactly_once_in_bounded_pages() {
    const N: usize = 30_000;
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));
    api.create_run(json!({"id": "other", "project": "p"}));
    // Names inserted out of key order, some prefixes of others.
    for chunk in (0..N).collect::<Vec<_>>().chunks(5_000) {
        let names: Vec<String> = chunk
            .iter()
            .map(|i| format!("s/{}", (i * 7919) % N))
            .collect();
        assert_eq!(api.post_metrics("r", &batch(&names)), names.len() as u64);
    }
    api.post_metrics("other", &batch(&names("s/", 0..10)));

    let path = "/api/v1/runs/r/series";
    for limit in [None, Some(1), Some(777), Some(10_000)] {
        let pages = if limit == Some(1) {
            // One series a page: just the first few hundred pages' worth.
            let mut q = vec![("limit".to_string(), "1".to_string())];
            let mut seen = Vec::new();
            for _ in 0..300 {
                let qq: Vec<(&str, &str)> =
                    q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let p = api.get_q(path, &qq).expect(200);
                assert_eq!(p["series"].as_array().unwrap().len(), 1);
                seen.push(p["series"][0]["name"].as_str().unwrap().to_string());
                q = vec![
                    ("limit".to_string(), "1".to_string()),
                    (
                        "cursor".to_string(),
                        p["next_cursor"].as_str().unwrap().to_string(),
                    ),
                ];
            }
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, seen, "one-series pages in key order, none twice");
            continue;
        } else {
            api.series_pages(path, &[], limit)
        };
        let max = limit.unwrap_or(1_000);
        assert!(
            pages.iter().all(|p| p.len() <= max),
            "a page past its limit of {max}"
        );
        assert_eq!(pages.len(), N.div_ceil(max), "pages of {max}");
        let listed: Vec<String> = pages
            .iter()
            .flatten()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        let mut sorted = listed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(listed.len(), N, "limit {max}");
        assert_eq!(sorted, listed, "limit {max}: in key order, none twice");
    }

    // Out-of-range limits and cursors this server did not give: 400 naming them.
    for (q, name) in [
        (("limit", "0"), "limit"),
        (("limit", "10001"), "limit"),
        (("cursor", "not-a-cursor"), "cursor"),
        (("cursor", "00ff"), "cursor"),
    ] {
        let v = api.get_q(path, &[q]).expect_error(400, name);
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
    }
}

/// The server's resident memory, in bytes (`VmRSS` of /proc/<pid>/status).
fn rss(server: &Server) -> f64 {
    proc_status(server, "VmRSS:")
}

/// A size field of the server's /proc/<pid>/status, in bytes.
fn proc_status(server: &Server, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc status"));
    kb * 1024.0
}

/// What RSS may stay above idle once a burst is over: the allocator's
/// arenas keep some pages, and the stores' caches warm up. The burst
/// itself is four times larger.
const RSS_MARGIN: f64 = 96.0 * (1 << 20) as f64;

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_returns_near_idle_after_a_burst_of_large_bodies() {
    // One series a run at most: the burst's bodies (two series each) are
    // decoded whole, then refused, so nothing of them is kept.
    let server = Server::with_args(&["--max-series-per-run", "1"]);
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "p"}));
    std::thread::sleep(Duration::from_secs(6));
    let idle = rss(&server);

    let body = {
        let n = 1_000_000usize;
        let steps: Vec<usize> = (0..n).collect();
        let values: Vec<f64> = (0..n).map(|i| i as f64 * 0.123_456_789).collect();
        let one = json!({"step": steps, "value": values});
        let mut a = one.clone();
        a["name"] = json!("a");
        let mut b = one;
        b["name"] = json!("b");
        serde_json::to_vec(&json!({"series": [a, b]})).unwrap()
    };
    assert!(body.len() > 40 << 20, "{} bytes", body.len());
    let body = Arc::new(body);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (api, body) = (api.clone(), body.clone());
            std::thread::spawn(move || {
                api.post_raw(
                    "/api/v1/runs/r/metrics",
                    &body,
                    &[("Content-Type", "application/json")],
                )
            })
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        r.expect_error(422, RUN_FLAG);
    }
    let after = rss(&server);
    let peak = proc_status(&server, "VmHWM:");
    assert!(
        peak > idle + 2.0 * RSS_MARGIN,
        "the burst did not show in RSS (idle {idle}, peak {peak}): the test measures nothing"
    );
    // Freed memory is given back every 5 s: within 15 s RSS is near idle.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut settled = rss(&server);
    while settled > idle + RSS_MARGIN && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        settled = rss(&server);
    }
    let mb = |b: f64| b / (1 << 20) as f64;
    eprintln!(
        "RSS idle {:.0} MB, peak {:.0} MB, just after the burst {:.0} MB, settled {:.0} MB",
        mb(idle),
        mb(peak),
        mb(after),
        mb(settled)
    );
    assert!(
        settled <= idle + RSS_MARGIN,
        "RSS stayed at {:.0} MB after the burst, idle was {:.0} MB",
        mb(settled),
        mb(idle)
    );
}
