//! InfluxDB's write API on the real server: line protocol in, series out
//! through Loupe's own read API; errors shaped as InfluxDB's clients read
//! them; tokens in the schemes those clients send.

use std::io::Write;

use serde_json::json;

use crate::support::{Server, create_token, external_data as data};

const TEXT: (&str, &str) = ("content-type", "text/plain; charset=utf-8");

#[test]
fn line_protocol_lands_as_series_with_tags_as_labels() {
    let server = Server::start();
    let api = server.api();
    let body = "\
# Telegraf-style lines, two hosts, an integer, a boolean and a string field
gpu,host=n1,gpu=0 util=97.5,mem_used=7100000000i,throttled=f,model=\"H100\" 1733500000
gpu,host=n1,gpu=0 util=98.25,mem_used=7200000000i,throttled=t 1733500001
gpu,host=n2,gpu=0 util=12 1733500000
";
    let r = api.post_raw(
        "/api/v2/write?org=lab&bucket=fleet&precision=s",
        body.as_bytes(),
        &[TEXT, ("authorization", "Token any")],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());

    let util = data(&api, "fleet", "gpu_util", &[("host", "n1"), ("gpu", "0")]);
    assert_eq!(util["x"], json!([1733500000.0, 1733500001.0]));
    assert_eq!(util["y"], json!([97.5, 98.25]));
    let mem = data(
        &api,
        "fleet",
        "gpu_mem_used",
        &[("host", "n1"), ("gpu", "0")],
    );
    assert_eq!(mem["y"], json!([7.1e9, 7.2e9]));
    let thr = data(
        &api,
        "fleet",
        "gpu_throttled",
        &[("host", "n1"), ("gpu", "0")],
    );
    assert_eq!(thr["y"], json!([0.0, 1.0]));
    let n2 = data(&api, "fleet", "gpu_util", &[("host", "n2"), ("gpu", "0")]);
    assert_eq!(n2["y"], json!([12.0]));
    // The string field is not a series, and it was counted.
    let names: Vec<String> = api
        .get_q("/api/v1/metrics/series", &[("project", "fleet")])
        .expect(200)["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!names.iter().any(|n| n.contains("model")), "{names:?}");
    let metrics = api.get("/metrics").text();
    assert!(
        metrics.contains("loupe_ingest_skipped_string_fields_total 1"),
        "{metrics}"
    );

    // 1.x: `/write?db=`, gzip, default precision (nanoseconds).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"disk,host=n1 used=0.5 1733500002000000000\n")
        .unwrap();
    let r = api.post_raw(
        "/write?db=fleet",
        &gz.finish().unwrap(),
        &[TEXT, ("content-encoding", "gzip"), ("x-loupe-client", "t")],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let disk = data(&api, "fleet", "disk_used", &[("host", "n1")]);
    assert_eq!(disk["x"], json!([1733500002.0]));

    // Liveness, as the clients check it.
    let ping = api.get("/ping");
    assert_eq!(ping.status, 204);
}

#[test]
fn a_bad_line_refuses_the_batch_in_influxdbs_error_shapes() {
    let server = Server::start();
    let api = server.api();
    let body = "m v=1 1\nm v=abc 2\n";
    let r = api.post_raw(
        "/api/v2/write?bucket=p",
        body.as_bytes(),
        &[TEXT, ("authorization", "Token x")],
    );
    assert_eq!(r.status, 400);
    let e = r.json();
    assert_eq!(e["code"], "invalid");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("line 2") && msg.contains("unable to parse 'm v=abc 2'"),
        "{msg}"
    );
    // Nothing of the batch was stored: not even line 1.
    let listed = api
        .get_q("/api/v1/metrics/series", &[("project", "p")])
        .expect(200);
    assert_eq!(listed["series"], json!([]));

    let r = api.post_raw("/write?db=p", b"m", &[TEXT, ("x-loupe-client", "t")]);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("missing fields"),
        "{}",
        r.text()
    );
    let r = api.post_raw(
        "/api/v2/write?bucket=p&precision=weeks",
        b"m v=1",
        &[TEXT, ("x-loupe-client", "t")],
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("precision"), "{}", r.text());
    // A page from another site cannot post text here: no token header.
    let r = api.post_raw("/api/v2/write?bucket=p", b"m v=1", &[TEXT]);
    assert_eq!(r.status, 415, "{}", r.text());
}

#[test]
fn tokens_come_in_influxdbs_schemes_and_the_bucket_is_the_project() {
    let dir = Server::temp_data_dir();
    let ingest_a = create_token(dir.path(), "A", "ingest");
    let read_a = create_token(dir.path(), "A", "read");
    let server = Server::configured(
        "127.0.0.1:0",
        &["--require-auth"],
        Some(dir.path().to_path_buf()),
    );
    let api = server.api();
    let line = b"cpu,host=h load=0.5 1733500000";
    let post = |path: &str, auth: &str| {
        api.post_raw(
            path,
            line,
            &[TEXT, ("authorization", auth), ("x-loupe-client", "t")],
        )
    };
    let token = format!("Token {ingest_a}");
    assert_eq!(
        post("/api/v2/write?bucket=A&precision=s", &token).status,
        204
    );
    // The token's project when no bucket is named.
    assert_eq!(post("/api/v2/write?precision=s", &token).status, 204);
    // HTTP Basic, the token as password (1.x clients).
    let basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("telegraf:{ingest_a}").as_bytes())
    );
    assert_eq!(post("/write?db=A&precision=s", &basic).status, 204);

    let other = post("/api/v2/write?bucket=B&precision=s", &token);
    assert_eq!(other.status, 403);
    assert_eq!(other.json()["code"], "forbidden");
    let reader = post("/api/v2/write?bucket=A", &format!("Token {read_a}"));
    assert_eq!(reader.status, 403);
    let unknown = post("/api/v2/write?bucket=A", "Token nope");
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.json()["code"], "unauthorized");
    let v1 = post("/write?db=A", "Token nope");
    assert_eq!(v1.status, 401);
    assert!(v1.json()["error"].is_string());

    let read = api.with_token(&read_a);
    let d = data(&read, "A", "cpu_load", &[("host", "h")]);
    assert_eq!(d["y"], json!([0.5]));
}
