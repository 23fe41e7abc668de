//! Bad input gets a clear 4xx in the API's error shape and writes nothing.

use std::io::Write;

use serde_json::json;

use crate::support::{Resp, Server, error_shape, prom_sample};

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// One bad request and what the server must answer.
struct Case {
    what: &'static str,
    path: String,
    body: Vec<u8>,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
    needle: &'static str,
}

fn case(
    what: &'static str,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
    needle: &'static str,
) -> Case {
    Case {
        what,
        path: path.to_string(),
        body: body.into(),
        headers: vec![JSON],
        status,
        needle,
    }
}

/// A batch whose first series is valid: a partial write would leave it.
fn with_good(bad_series: &str) -> String {
    format!(r#"{{"series":[{{"name":"good","step":[1,2],"value":[1.5,2.5]}},{bad_series}]}}"#)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn bad_batches_are_refused_whole_with_clear_errors() {
    let server = Server::with_args(&[
        "--max-series-per-request",
        "5",
        "--max-body-mib",
        "1",
        "--max-points-per-request",
        "1000",
        "--max-log-text-bytes",
        "100",
        "--max-log-records-per-request",
        "10",
    ]);
    let api = server.api();
    api.create_run(json!({"id": "victim", "project": "errors"}));
    let m = "/api/v1/runs/victim/metrics";
    let l = "/api/v1/runs/victim/logs";

    let long_name = "n".repeat(257);
    let deep = format!(
        r#"{{"series":[{{"name":"good","step":[1],"value":[1]}}],"extra":{}1{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let six: Vec<String> = (0..6)
        .map(|i| format!(r#"{{"name":"s{i}","value":[1]}}"#))
        .collect();
    // Valid JSON of ~2 MiB: over the 1 MiB limit as sent.
    let huge = with_good(&format!(
        r#"{{"name":"big","value":[{}]}}"#,
        vec!["0.123456789"; 200_000].join(",")
    ));
    assert!(huge.len() > 2 << 20);
    // Small when sent, 8 MiB once decompressed.
    let mut bomb_json = with_good(r#"{"name":"pad","value":[1]}"#).into_bytes();
    bomb_json.truncate(bomb_json.len() - 1);
    bomb_json.extend_from_slice(br#","pad":""#);
    bomb_json.extend(std::iter::repeat_n(b' ', 8 << 20));
    bomb_json.extend_from_slice(br#""}"#);
    let bomb = gzip(&bomb_json);
    assert!(bomb.len() < 1 << 20);
    let mut bad_utf8 = with_good(r#"{"name":"xx","value":[1]}"#).into_bytes();
    let at = bad_utf8.windows(4).position(|w| w == b"\"xx\"").unwrap();
    bad_utf8[at + 1] = 0xff;
    bad_utf8[at + 2] = 0xfe;

    let mut cases = vec![
        case(
            "column lengths differ",
            m,
            with_good(r#"{"name":"bad","step":[1,2],"value":[1,2,3]}"#),
            422,
            r#"series[1]: "step" has 2 entries but "value" has 3"#,
        ),
        case(
            "time column length differs",
            m,
            with_good(r#"{"name":"bad","time":[1732000000],"value":[1,2]}"#),
            422,
            r#""time" has 1 entries"#,
        ),
        case(
            "bad value string",
            m,
            with_good(r#"{"name":"bad","value":[1,"nan"]}"#),
            422,
            "series[1].value[1]",
        ),
        case(
            "value of the wrong type",
            m,
            with_good(r#"{"name":"bad","value":[true]}"#),
            422,
            "series[1].value[0]",
        ),
        case(
            "bare NaN is not JSON",
            m,
            with_good(r#"{"name":"bad","value":[NaN]}"#),
            400,
            r#"send the strings "NaN""#,
        ),
        case(
            "fractional step",
            m,
            with_good(r#"{"name":"bad","step":[3.5],"value":[1]}"#),
            422,
            "series[1].step[0]",
        ),
        case(
            "time out of range",
            m,
            with_good(r#"{"name":"bad","time":[1e12],"value":[1]}"#),
            422,
            "series[1].time[0]",
        ),
        case(
            "missing value",
            m,
            with_good(r#"{"name":"bad","step":[1]}"#),
            422,
            "value",
        ),
        case(
            "empty name",
            m,
            with_good(r#"{"name":"","value":[1]}"#),
            422,
            "empty",
        ),
        case(
            "name over 256 bytes",
            m,
            with_good(&format!(r#"{{"name":"{long_name}","value":[1]}}"#)),
            422,
            "257 bytes, over the limit of 256",
        ),
        case(
            "too many series",
            m,
            format!(r#"{{"series":[{}]}}"#, six.join(",")),
            422,
            "6 series, over the limit of 5",
        ),
        case(
            "too many points",
            m,
            with_good(&format!(
                r#"{{"name":"many","value":[{}]}}"#,
                vec!["1"; 999].join(",")
            )),
            422,
            "1000",
        ),
        case(
            "log text too long",
            l,
            format!(
                r#"{{"records":[{{"text":"ok"}},{{"text":"{}"}}]}}"#,
                "t".repeat(101)
            ),
            422,
            "101 bytes, over the limit of 100",
        ),
        case(
            "too many log records",
            l,
            format!(r#"{{"records":[{}]}}"#, [r#"{"text":"x"}"#; 11].join(",")),
            422,
            "10",
        ),
        case(
            "unknown run",
            "/api/v1/runs/nope/metrics",
            with_good(r#"{"name":"x","value":[1]}"#),
            404,
            "nope",
        ),
        case("body over the size limit", m, huge.clone(), 413, "limit"),
        case("invalid UTF-8", m, bad_utf8, 400, "invalid UTF-8 at byte"),
        case(
            "JSON nested too deep",
            m,
            deep,
            422,
            "nested deeper than 64",
        ),
        case(
            "truncated JSON",
            m,
            with_good("").trim_end_matches("]}").to_string(),
            400,
            "invalid JSON",
        ),
        case(
            "trailing garbage",
            m,
            format!("{} x", with_good(r#"{"name":"t","value":[1]}"#)),
            400,
            "invalid JSON",
        ),
        case("empty body", m, "", 400, "empty"),
        case("not an object", m, "[1,2,3]", 422, "series"),
        case(
            "logs: unknown level",
            l,
            r#"{"records":[{"text":"ok"},{"text":"x","level":"loud"}]}"#,
            422,
            "records[1].level",
        ),
        case(
            "logs: missing text",
            l,
            r#"{"records":[{"text":"ok"},{"level":"info"}]}"#,
            422,
            "text",
        ),
        case(
            "logs: bad stream",
            l,
            r#"{"records":[{"text":"ok"},{"text":"x","stream":"tty"}]}"#,
            422,
            "records[1].stream",
        ),
        case(
            "logs: unknown run",
            "/api/v1/runs/nope/logs",
            r#"{"records":[{"text":"x"}]}"#,
            404,
            "nope",
        ),
        case(
            "logs: malformed",
            l,
            r#"{"records":[{"text":"ok"}"#,
            400,
            "invalid JSON",
        ),
        case(
            "run: malformed JSON",
            "/api/v1/runs",
            r#"{"id": "x", "#,
            400,
            "",
        ),
        case(
            "run: wrong field type",
            "/api/v1/runs",
            r#"{"id": "x", "tags": "not-a-list"}"#,
            422,
            "tags",
        ),
        case(
            "run: bad id",
            "/api/v1/runs",
            r#"{"id": "has space/and slash"}"#,
            400,
            "",
        ),
    ];
    let mut enc =
        |what, headers: Vec<(&'static str, &'static str)>, body: Vec<u8>, status, needle| {
            let mut c = case(what, m, body, status, needle);
            c.headers = headers;
            cases.push(c);
        };
    let ok_batch = with_good(r#"{"name":"x","value":[1]}"#).into_bytes();
    enc(
        "gzip declared, plain sent",
        vec![JSON, ("Content-Encoding", "gzip")],
        ok_batch.clone(),
        400,
        "not valid gzip",
    );
    enc(
        "zstd declared, plain sent",
        vec![JSON, ("Content-Encoding", "zstd")],
        ok_batch.clone(),
        400,
        "not valid zstd",
    );
    enc(
        "unsupported encoding",
        vec![JSON, ("Content-Encoding", "br")],
        ok_batch.clone(),
        415,
        "\"br\"",
    );
    enc(
        "gzip bomb",
        vec![JSON, ("Content-Encoding", "gzip")],
        bomb,
        413,
        "once decompressed",
    );
    // A body with no Content-Type, or a form type (what `curl -d` sends), is
    // what any web page can send without asking first: refused with 415
    // naming what to send (see `guard.rs`), unless the client says who it is.
    for headers in [
        vec![],
        vec![("Content-Type", "application/x-www-form-urlencoded")],
        vec![("Content-Type", "text/plain")],
    ] {
        api.post_raw("/api/v1/runs", br#"{"id":"no-content-type"}"#, &headers)
            .expect_error(415, "Content-Type: application/json");
    }
    let created = api.post_raw(
        "/api/v1/runs",
        br#"{"id":"no-content-type"}"#,
        &[("X-Loupe-Client", "a-script")],
    );
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );

    let rejected_before = prom_sample(&api.prometheus(), "loupe_rejected_requests_total").unwrap();
    let mut failures = Vec::new();
    for c in &cases {
        let r = match api.try_post_raw(&c.path, &c.body, &c.headers) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: request failed: {e}", c.what));
                continue;
            }
        };
        if let Err(msg) = check(&r, c.status, c.needle) {
            failures.push(format!("{}: {msg}", c.what));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Nothing of any refused batch was written; the server still works.
    assert!(
        api.series("victim").is_empty(),
        "{:?}",
        api.series("victim")
    );
    assert!(api.all_logs("victim", &[]).is_empty());
    let prom = api.prometheus();
    assert_eq!(prom_sample(&prom, "loupe_ingest_points_total"), Some(0.0));
    let rejected = prom_sample(&prom, "loupe_rejected_requests_total").unwrap();
    assert!(
        rejected - rejected_before >= 20.0,
        "rejections counted: {rejected_before} -> {rejected}"
    );
    let runs = api
        .get_q("/api/v1/runs", &[("project", "errors")])
        .expect(200);
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        1,
        "no run was created"
    );
    assert_eq!(
        api.post_metrics("victim", &serde_json::from_slice(&ok_batch).unwrap()),
        3
    );
    assert_eq!(api.series("victim").len(), 2);
}

fn check(r: &Resp, status: u16, needle: &str) -> Result<(), String> {
    if r.status != status {
        return Err(format!(
            "HTTP {} (expected {status}): {}",
            r.status,
            crate::support::truncate(&r.text(), 300)
        ));
    }
    error_shape(r)?;
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    if !msg.contains(needle) {
        return Err(format!("message {msg:?} lacks {needle:?}"));
    }
    Ok(())
}

#[test]
fn bad_reads_are_refused_with_the_error_shape() {
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "errors"}));
    api.post_metrics(
        "r",
        &json!({"series": [{"name": "s", "step": [1, 2], "value": [1, 2]}]}),
    );
    let d = "/api/v1/runs/r/series/data";
    type Row<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let table: Vec<Row> = vec![
        ("bad axis", vec![("name", "s"), ("x", "wall")], 400, "wall"),
        ("width 0", vec![("name", "s"), ("width", "0")], 400, "width"),
        (
            "from after to",
            vec![("name", "s"), ("from", "10"), ("to", "5")],
            400,
            "after",
        ),
        (
            "bad cursor",
            vec![("name", "s"), ("cursor", "zzz")],
            400,
            "cursor",
        ),
        (
            "from NaN",
            vec![("name", "s"), ("from", "NaN")],
            400,
            "from",
        ),
        ("to inf", vec![("name", "s"), ("to", "inf")], 400, "to"),
        (
            "cursor skip near u64::MAX",
            vec![("name", "s"), ("cursor", "1:18446744073709551615")],
            400,
            "cursor",
        ),
        (
            "name too long",
            vec![("name", &*Box::leak("n".repeat(300).into_boxed_str()))],
            400,
            "name",
        ),
    ];
    for (what, q, status, needle) in table {
        let r = api.get_q(d, &q);
        assert_eq!(r.status, status, "{what}: {}", r.text());
        r.expect_error(status, needle);
    }
    api.get_q("/api/v1/runs/ghost/series/data", &[("name", "s")])
        .expect_error(404, "ghost");
    // An unknown series of a known run has no points.
    let empty = api.get_q(d, &[("name", "unknown")]).expect(200);
    assert_eq!(empty["x"], json!([]));
}

#[test]
fn framework_rejections_have_the_error_shape() {
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "r", "project": "errors"}));
    let cases: Vec<(&str, Resp)> = vec![
        (
            "query: limit not a number",
            api.get_q("/api/v1/runs", &[("limit", "many")]),
        ),
        (
            "query: series data without name",
            api.get("/api/v1/runs/r/series/data"),
        ),
        (
            "query: width not a number",
            api.get_q(
                "/api/v1/runs/r/series/data",
                &[("name", "s"), ("width", "wide")],
            ),
        ),
        ("unknown route", api.get("/api/v1/nothing-here")),
        ("wrong method", api.request("put", "/api/v1/runs/r")),
    ];
    let mut bad = Vec::new();
    for (what, r) in &cases {
        assert!((400..500).contains(&r.status), "{what}: {}", r.status);
        if let Err(msg) = error_shape(r) {
            bad.push(format!("{what}: {msg}"));
        }
    }
    assert!(
        bad.is_empty(),
        "errors not in the API's shape:\n{}",
        bad.join("\n")
    );
}
