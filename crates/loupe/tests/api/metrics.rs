//! Metrics: columnar batches in, exact points and M4 charts out.

use std::io::Write;

use serde_json::{Value, json};

use crate::support::{Api, Rng, Server, from_json, now_ns, same_value, to_json};

const T0_NS: i64 = 1_732_000_000_500_000_000;

fn new_run(api: &Api, id: &str) {
    api.create_run(json!({"id": id, "project": "metrics"}));
}

fn assert_points_exact(got: &crate::support::Points, steps: &[i64], values: &[f64]) {
    assert_eq!(got.len(), values.len(), "point count");
    for i in 0..values.len() {
        assert_eq!(got.step[i], Some(steps[i]), "step of point {i}");
        assert!(
            same_value(got.y[i], values[i]),
            "point {i} (step {}): sent {:e} ({:#x}), read {:e} ({:#x})",
            steps[i],
            values[i],
            values[i].to_bits(),
            got.y[i],
            got.y[i].to_bits()
        );
    }
}

#[test]
fn values_steps_and_times_round_trip_exactly() {
    let server = Server::start();
    let api = server.api();
    new_run(&api, "exact");

    let mut values = vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        0.1,
        1.0 / 3.0,
        f64::from_bits(0x000f_ffff_ffff_ffff), // largest subnormal
        9007199254740992.0,
        1e300,
        -2.5e-10,
    ];
    let mut rng = Rng::new(7);
    while values.len() < 3000 {
        values.push(rng.finite_f64());
    }
    let n = values.len();
    // Steps need not start at 0 or be dense; negative steps are allowed.
    let steps: Vec<i64> = (0..n as i64).map(|i| i * 3 - 100).collect();
    // Times exactly representable in seconds: nanoseconds come back exact.
    let times: Vec<f64> = (0..n).map(|i| 1_732_000_000.5 + i as f64 * 0.25).collect();
    let batch = json!({"series": [{
        "name": "exact/value",
        "step": steps,
        "time": times,
        "value": values.iter().map(|&v| to_json(v)).collect::<Vec<_>>(),
    }]});
    assert_eq!(api.post_metrics("exact", &batch), n as u64);

    let got = api.read_all("exact", "exact/value", "step", 10_000);
    assert_points_exact(&got, &steps, &values);
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(
            got.time_ns[i],
            T0_NS + i as i64 * 250_000_000,
            "time of {i}"
        );
        assert_eq!(got.x[i].as_i64(), Some(*step), "x is the step");
    }

    // Number spellings the decoder must round correctly (as Rust's parser does).
    let spellings = [
        "0.1",
        "1e-320",
        "2.2250738585072011e-308",
        "9007199254740993",
        "1.7976931348623157e308",
        "-0",
        "-0.0",
        "123456789012345678901234567890",
        "4.9406564584124654e-324",
        "1E2",
        "2.5e+3",
        "0.30000000000000004",
        "18446744073709551615",
        "-9223372036854775808",
        "\"+Infinity\"",
        "3",
    ];
    let body = format!(
        r#"{{"series":[{{"name":"spelled","step":[{}],"value":[{}]}}]}}"#,
        (0..spellings.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
        spellings.join(",")
    );
    api.post_raw(
        "/api/v1/runs/exact/metrics",
        body.as_bytes(),
        &[("Content-Type", "application/json")],
    )
    .expect(200);
    let expected: Vec<f64> = spellings
        .iter()
        .map(|s| match *s {
            "\"+Infinity\"" => f64::INFINITY,
            s => s.parse::<f64>().unwrap(),
        })
        .collect();
    let got = api.read_all("exact", "spelled", "step", 100);
    let steps: Vec<i64> = (0..spellings.len() as i64).collect();
    assert_points_exact(&got, &steps, &expected);

    // Names that need escaping in a query string.
    for name in ["a b&c=d/ü", "eval/acc@top-1 (%)", "x+y?z#w"] {
        api.post_metrics(
            "exact",
            &json!({"series": [{"name": name, "step": [7], "value": [7.5]}]}),
        );
        let got = api.read_all("exact", name, "step", 10);
        assert_eq!(got.y, vec![7.5], "{name}");
        assert!(api.series("exact").contains_key(name), "{name}");
    }

    // No time: the server's clock.
    let before = now_ns();
    api.post_metrics(
        "exact",
        &json!({"series": [{"name": "clock", "step": [1, 2, 3], "value": [1, 2, 3]}]}),
    );
    let after = now_ns();
    let got = api.read_all("exact", "clock", "step", 100);
    assert_eq!(got.len(), 3);
    for t in &got.time_ns {
        assert!(
            (before - 1_000_000..=after + 1_000_000).contains(t),
            "time {t} not between {before} and {after}"
        );
    }

    // No step: points are identified by time, and read back with a null step.
    api.post_metrics(
        "exact",
        &json!({"series": [{"name": "stepless", "time": [1732000000.0, 1732000001.0], "value": [0.5, "NaN"]}]}),
    );
    let got = api.read_all("exact", "stepless", "time", 100);
    assert_eq!(got.step, vec![None, None]);
    assert_eq!(
        got.time_ns,
        vec![1_732_000_000_000_000_000, 1_732_000_001_000_000_000]
    );
    assert_eq!(got.y[0], 0.5);
    assert!(got.y[1].is_nan());
    let s = &api.series("exact")["stepless"];
    assert!(s["last_step"].is_null());
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_and_zstd_bodies_and_series_summaries() {
    let server = Server::start();
    let api = server.api();
    new_run(&api, "enc");
    let batch = |name: &str, base: i64| {
        let steps: Vec<i64> = (base..base + 1000).collect();
        let values: Vec<Value> = steps.iter().map(|&s| json!(s as f64 * 0.5)).collect();
        serde_json::to_vec(&json!({"series": [{"name": name, "step": steps, "value": values}]}))
            .unwrap()
    };
    let plain = batch("gz", 0);
    let r = api.post_raw(
        "/api/v1/runs/enc/metrics",
        &gzip(&plain),
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
    );
    assert_eq!(r.expect(200)["accepted"], 1000);
    let plain = batch("zs", 10);
    let r = api.post_raw(
        "/api/v1/runs/enc/metrics",
        &zstd::encode_all(&plain[..], 3).unwrap(),
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "zstd"),
        ],
    );
    assert_eq!(r.expect(200)["accepted"], 1000);
    let gz = api.read_all("enc", "gz", "step", 10_000);
    assert_eq!(gz.len(), 1000);
    assert!(gz.y.iter().enumerate().all(|(i, &y)| y == i as f64 * 0.5));
    let zs = api.read_all("enc", "zs", "step", 10_000);
    assert_eq!(zs.step.first(), Some(&Some(10)));
    assert_eq!(zs.step.last(), Some(&Some(1009)));

    // Series list: counts and last/min/max, NaN ignored by min and max.
    api.post_metrics(
        "enc",
        &json!({"series": [
            {"name": "mixed", "step": [1, 2, 3, 4, 5], "value": [5, "NaN", -2, 7, 3]},
            {"name": "all-nan", "step": [1, 2], "value": ["NaN", "NaN"]},
            {"name": "inf", "step": [1, 2, 3], "value": [1, "Infinity", "-Infinity"]},
        ]}),
    );
    let series = api.series("enc");
    assert_eq!(
        series.keys().cloned().collect::<Vec<_>>(),
        vec!["all-nan", "gz", "inf", "mixed", "zs"]
    );
    let m = &series["mixed"];
    assert_eq!(m["count"], 5);
    assert_eq!(from_json(&m["last"]), 3.0);
    assert_eq!(from_json(&m["min"]), -2.0);
    assert_eq!(from_json(&m["max"]), 7.0);
    assert_eq!(m["first_step"], 1);
    assert_eq!(m["last_step"], 5);
    let a = &series["all-nan"];
    assert_eq!(a["count"], 2);
    assert!(from_json(&a["last"]).is_nan());
    assert!(from_json(&a["min"]).is_nan());
    let i = &series["inf"];
    assert_eq!(from_json(&i["max"]), f64::INFINITY);
    assert_eq!(from_json(&i["min"]), f64::NEG_INFINITY);
    assert_eq!(from_json(&i["last"]), f64::NEG_INFINITY);
    assert_eq!(series["gz"]["count"], 1000);
    assert_eq!(from_json(&series["gz"]["max"]), 999.0 * 0.5);
}

/// A training-like curve: values in (0, 1) with noise.
fn curve(step: i64) -> f64 {
    let mut r = Rng::new(step as u64);
    0.5 + 0.3 * (step as f64 / 5000.0).sin() + 0.1 * (r.unit() - 0.5)
}

const SPIKE_STEP: i64 = 654_321;
const DIP_STEP: i64 = 123_457;
const N: i64 = 1_000_000;

fn million_value(step: i64) -> f64 {
    match step {
        SPIKE_STEP => 1.0e6,
        DIP_STEP => -1.0e6,
        s => curve(s),
    }
}

fn m4(api: &Api, run: &str, q: &[(&str, &str)]) -> (Vec<Value>, Vec<f64>, Value) {
    let mut q = q.to_vec();
    q.push(("name", "train/loss"));
    let body = api
        .get_q(&format!("/api/v1/runs/{run}/series/data"), &q)
        .expect(200);
    let x = body["x"].as_array().unwrap().clone();
    let y: Vec<f64> = body["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(from_json)
        .collect();
    assert_eq!(x.len(), y.len());
    (x, y, body)
}

#[test]
fn m4_keeps_extremes_of_a_million_points_and_raw_pages_return_all() {
    let server = Server::start();
    let api = server.api();
    new_run(&api, "big");
    // Times: one millisecond per step from T0.
    let t0_s = 1_732_000_000.0_f64;
    let chunk = 250_000;
    for c in 0..(N / chunk) {
        let steps: Vec<i64> = (c * chunk..(c + 1) * chunk).collect();
        let mut body = String::with_capacity(chunk as usize * 40);
        body.push_str(r#"{"series":[{"name":"train/loss","step":["#);
        for (i, s) in steps.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&s.to_string());
        }
        body.push_str(r#"],"time":["#);
        for (i, s) in steps.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            // Whole milliseconds: exact as decimal seconds, read back exactly.
            body.push_str(&format!("{}.{:03}", 1_732_000_000 + s / 1000, s % 1000));
        }
        body.push_str(r#"],"value":["#);
        for (i, s) in steps.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&serde_json::to_string(&million_value(*s)).unwrap());
        }
        body.push_str("]}]}");
        let r = api.post_raw(
            "/api/v1/runs/big/metrics",
            body.as_bytes(),
            &[("Content-Type", "application/json")],
        );
        assert_eq!(r.expect(200)["accepted"], chunk);
    }

    // The whole series in 800 pixel columns.
    let width = 800;
    let (x, y, body) = m4(&api, "big", &[("width", "800")]);
    assert_eq!(body["downsampled"], true);
    assert_eq!(body["count"], N);
    assert!(x.len() <= 4 * width, "{} points for width {width}", x.len());
    assert!(x.len() >= width, "too few points: {}", x.len());
    let xs: Vec<i64> = x.iter().map(|v| v.as_i64().unwrap()).collect();
    assert!(xs.windows(2).all(|w| w[0] < w[1]), "x not increasing");
    assert_eq!(xs[0], 0, "first point kept");
    assert_eq!(*xs.last().unwrap(), N - 1, "last point kept");
    for (i, &s) in xs.iter().enumerate() {
        assert!(
            same_value(y[i], million_value(s)),
            "M4 returned ({s}, {}) but the point is {}",
            y[i],
            million_value(s)
        );
    }
    let at = |s: i64| xs.iter().position(|&x| x == s);
    let spike = at(SPIKE_STEP).expect("the spike's step is drawn");
    assert_eq!(y[spike], 1.0e6);
    let dip = at(DIP_STEP).expect("the dip's step is drawn");
    assert_eq!(y[dip], -1.0e6);

    // A sub-range: count is the points in range; the spike is still there.
    let (x, y, body) = m4(
        &api,
        "big",
        &[("width", "50"), ("from", "600000"), ("to", "700000")],
    );
    assert_eq!(body["count"], 100_001);
    assert_eq!(body["downsampled"], true);
    assert!(x.len() <= 200);
    assert!(
        x.iter()
            .all(|v| (600_000..=700_000).contains(&v.as_i64().unwrap()))
    );
    let i = x
        .iter()
        .position(|v| v.as_i64() == Some(SPIKE_STEP))
        .expect("spike in range");
    assert_eq!(y[i], 1.0e6);
    assert!(!x.iter().any(|v| v.as_i64() == Some(DIP_STEP)));

    // By time: x is Unix seconds; the spike is at its time.
    let spike_t = t0_s + SPIKE_STEP as f64 / 1000.0;
    let (x, y, body) = m4(
        &api,
        "big",
        &[
            ("width", "100"),
            ("x", "time"),
            ("from", &(spike_t - 10.0005).to_string()),
            ("to", &(spike_t + 10.0005).to_string()),
        ],
    );
    assert_eq!(body["count"], 20_001);
    let i = y.iter().position(|&v| v == 1.0e6).expect("spike by time");
    assert!((x[i].as_f64().unwrap() - spike_t).abs() < 1e-3);

    // Fewer points than 4 × width: every point, not downsampled.
    let (x, _, body) = m4(
        &api,
        "big",
        &[("width", "100"), ("from", "10"), ("to", "109")],
    );
    assert_eq!(body["count"], 100);
    assert_eq!(x.len(), 100);
    assert_eq!(body["downsampled"], false);

    // Raw pages: every one of the million points exactly once, in order.
    let all = api.read_all("big", "train/loss", "step", 100_000);
    assert_eq!(all.pages, 10);
    assert_eq!(all.len(), N as usize);
    for (i, (s, y)) in all.step.iter().zip(&all.y).enumerate() {
        assert_eq!(*s, Some(i as i64));
        assert!(same_value(*y, million_value(i as i64)), "step {i}");
    }
    // Decimal seconds are stored as the nanosecond nearest their double.
    let want = T0_NS - 500_000_000 + SPIKE_STEP * 1_000_000;
    assert!((all.time_ns[SPIKE_STEP as usize] - want).abs() < 1_000);
}

#[test]
fn raw_pages_by_step_and_time_and_rewinds() {
    let mut server = Server::start();
    let api = server.api();
    new_run(&api, "pg");
    let n = 10_007;
    let steps: Vec<i64> = (0..n).collect();
    let times: Vec<f64> = (0..n).map(|i| 1_732_000_000.0 + i as f64 * 0.5).collect();
    let values: Vec<f64> = (0..n).map(|i| i as f64).collect();
    api.post_metrics(
        "pg",
        &json!({"series": [{"name": "s", "step": steps, "time": times, "value": values}]}),
    );
    for (x, limit) in [("step", 333), ("time", 333), ("step", 7), ("time", 10_007)] {
        let got = api.read_all("pg", "s", x, limit);
        assert_eq!(got.len(), n as usize, "x={x} limit={limit}");
        assert_eq!(got.pages, (n as usize).div_ceil(limit).max(1), "pages");
        for i in 0..n as usize {
            assert_eq!(got.step[i], Some(i as i64), "x={x} point {i}");
            assert_eq!(got.y[i], i as f64);
        }
        if x == "time" {
            // x is Unix seconds.
            assert_eq!(got.x[3].as_f64(), Some(1_732_000_001.5));
        }
    }
    // A time window in seconds, inclusive.
    let page = api
        .get_q(
            "/api/v1/runs/pg/series/data",
            &[
                ("name", "s"),
                ("x", "time"),
                ("from", "1732000010"),
                ("to", "1732000012"),
            ],
        )
        .expect(200);
    let ys: Vec<f64> = page["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(from_json)
        .collect();
    assert_eq!(ys, vec![20.0, 21.0, 22.0, 23.0, 24.0]);
    assert!(page["next_cursor"].is_null());
    // A step window.
    let page = api
        .get_q(
            "/api/v1/runs/pg/series/data",
            &[("name", "s"), ("from", "100"), ("to", "104")],
        )
        .expect(200);
    assert_eq!(page["x"], json!([100, 101, 102, 103, 104]));

    // Rewind: a resumed run re-logs steps 50..60 with new values; the newest
    // write wins, in the head and after the old points are on disk.
    new_run(&api, "rw");
    let first: Vec<i64> = (0..100).collect();
    api.post_metrics(
        "rw",
        &json!({"series": [{"name": "loss", "step": first, "value": first.iter().map(|&s| s as f64).collect::<Vec<_>>()}]}),
    );
    let check = |api: &Api, rewound: &[i64], round: &str| {
        let got = api.read_all("rw", "loss", "step", 1000);
        assert_eq!(got.len(), 100, "{round}: one point per step");
        for (i, (s, y)) in got.step.iter().zip(&got.y).enumerate() {
            assert_eq!(*s, Some(i as i64), "{round}");
            let want = if rewound.contains(&(i as i64)) {
                1000.0 + i as f64
            } else {
                i as f64
            };
            assert_eq!(*y, want, "{round}: step {i}");
        }
        let s = &api.series("rw")["loss"];
        assert_eq!(s["count"], 100, "{round}: series count");
        assert_eq!(
            from_json(&s["last"]),
            99.0,
            "{round}: last is the highest step"
        );
        assert_eq!(s["last_step"], 99);
    };
    let rewind = |api: &Api, steps: std::ops::Range<i64>| {
        let steps: Vec<i64> = steps.collect();
        let values: Vec<f64> = steps.iter().map(|&s| 1000.0 + s as f64).collect();
        api.post_metrics(
            "rw",
            &json!({"series": [{"name": "loss", "step": steps, "value": values}]}),
        );
    };
    rewind(&api, 50..55);
    let mut rewound: Vec<i64> = (50..55).collect();
    check(&api, &rewound, "in memory");
    // Flushed to disk by a clean shutdown, then rewound again on top.
    assert!(server.sigterm().success());
    server.start_again();
    let api = server.api();
    check(&api, &rewound, "after restart");
    rewind(&api, 55..61);
    rewound.extend(55..61);
    check(&api, &rewound, "rewound over flushed points");
    server.crash_and_restart();
    let api = server.api();
    check(&api, &rewound, "after kill -9");
}

#[test]
fn time_pages_with_shared_timestamps() {
    // Points sent without times all get the server's "now": several points
    // share one timestamp. Paging by time must still return each once.
    let server = Server::start();
    let api = server.api();
    new_run(&api, "same-t");
    let steps: Vec<i64> = (0..10).collect();
    api.post_metrics(
        "same-t",
        &json!({"series": [{"name": "s", "step": steps, "value": steps}]}),
    );
    let all = api.read_all("same-t", "s", "time", 100);
    assert_eq!(all.len(), 10);
    let paged = api.read_all("same-t", "s", "time", 3);
    assert_eq!(
        paged.len(),
        10,
        "x=time pages lose points that share a timestamp: got steps {:?}",
        paged.step
    );
}

#[test]
fn constant_columns_read_after_flush() {
    // A constant learning rate, and points sent without times (all "now"):
    // both give a column of one repeated value.
    let mut server = Server::start();
    let api = server.api();
    new_run(&api, "const");
    let steps: Vec<i64> = (0..1000).collect();
    let times: Vec<i64> = steps.iter().map(|&s| 1_732_000_000 + s).collect();
    let curve: Vec<f64> = steps.iter().map(|&s| curve(s)).collect();
    api.post_metrics(
        "const",
        &json!({"series": [
            {"name": "lr", "step": steps, "time": times, "value": vec![0.001; 1000]},
            {"name": "no-time", "step": steps, "value": curve},
        ]}),
    );
    // A clean shutdown flushes the head to a segment.
    assert!(server.sigterm().success());
    server.start_again();
    let api = server.api();
    let mut failures = Vec::new();
    for name in ["lr", "no-time"] {
        for q in [
            vec![("x", "step")],
            vec![("x", "time")],
            vec![("x", "step"), ("width", "100")],
            vec![("x", "time"), ("width", "100")],
        ] {
            let mut q = q.clone();
            q.push(("name", name));
            let r = api.get_q("/api/v1/runs/const/series/data", &q);
            if r.status != 200 {
                failures.push(format!(
                    "{q:?}: HTTP {} {}",
                    r.status,
                    crate::support::truncate(&r.text(), 200)
                ));
            } else if q.iter().all(|(k, _)| *k != "width") {
                assert_eq!(r.json()["count"], 1000, "{q:?}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "reads failed after flush:\n{}",
        failures.join("\n")
    );
}

#[test]
fn series_outside_runs_by_labels() {
    let server = Server::start();
    let api = server.api();
    let body = json!({"series": [
        {"name": "gpu/util", "labels": {"host": "n1", "gpu": 0}, "time": [1732000000, 1732000001], "value": [97.5, "NaN"]},
        {"name": "gpu/util", "labels": {"host": "n1", "gpu": 1}, "time": [1732000000], "value": [12]},
        {"name": "host/load", "labels": {"host": "n2"}, "time": [1732000000.5], "value": [0.75]},
    ]});
    let r = api
        .post_json("/api/v1/metrics?project=fleet", &body)
        .expect(200);
    assert_eq!(r["accepted"], 4);
    // The server sets `run` and `project`; a client may not.
    api.post_json(
        "/api/v1/metrics",
        &json!({"series": [{"name": "x", "labels": {"run": "r1"}, "value": [1]}]}),
    )
    .expect_error(422, "run");

    let list = api
        .get_q(
            "/api/v1/metrics/series",
            &[("project", "fleet"), ("prefix", "gpu/")],
        )
        .expect(200);
    let series = list["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{list}");
    assert!(
        series
            .iter()
            .all(|s| s["labels"]["host"] == "n1" && s["labels"].get("project").is_none())
    );
    let gpu0 = series
        .iter()
        .find(|s| s["labels"]["gpu"] == "0")
        .expect("gpu 0");
    assert_eq!(gpu0["count"], 2);
    assert_eq!(gpu0["max"], 97.5);
    let by_label = api
        .get_q(
            "/api/v1/metrics/series",
            &[("project", "fleet"), ("label.host", "n2")],
        )
        .expect(200);
    assert_eq!(by_label["series"].as_array().unwrap().len(), 1);
    assert!(
        api.get_q("/api/v1/metrics/series", &[("project", "other")])
            .expect(200)["series"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let data = api
        .get_q(
            "/api/v1/metrics/data",
            &[
                ("project", "fleet"),
                ("name", "gpu/util"),
                ("label.host", "n1"),
                ("label.gpu", "0"),
            ],
        )
        .expect(200);
    assert_eq!(
        data["x"],
        json!([1732000000.0, 1732000001.0]),
        "x is time by default"
    );
    assert_eq!(data["y"], json!([97.5, "NaN"]));
    assert_eq!(data["step"], json!([null, null]));
    api.get_q("/api/v1/metrics/data", &[("project", "fleet")])
        .expect_error(400, "name");
}
