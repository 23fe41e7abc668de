//! Logs: batches in, search / filters / pages out; and the CLI commands
//! that read through the API (`loupe logs`, `export`, `runs`, `show`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Api, Rng, Server, from_json, run_cli, same_value, to_json, value_at};

const SEEDED: &str = "CUDA error: an illegal memory access was encountered (rank 3)";
const N_LINES: usize = 2500;

/// Posts `N_LINES` lines: mostly info on stdout, every 10th a warning on
/// stderr, every 250th an error on stderr, and the seeded line once.
/// Returns the (text, level, stream) of each, in order.
fn seed_logs(api: &Api, run: &str) -> Vec<(String, &'static str, &'static str)> {
    let mut lines = Vec::new();
    for i in 0..N_LINES {
        let (level, stream, text) = if i == 1234 {
            ("error", "stderr", SEEDED.to_string())
        } else if i % 250 == 0 {
            (
                "error",
                "stderr",
                format!("step {i}: gradient overflow, skipping"),
            )
        } else if i % 10 == 0 {
            (
                "warning",
                "stderr",
                format!("step {i}: slow dataloader worker"),
            )
        } else {
            (
                "info",
                "stdout",
                format!("step {i} loss {:.4}", 1.0 / (i + 1) as f64),
            )
        };
        lines.push((text, level, stream));
    }
    for chunk in lines.chunks(1000) {
        let records: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, (text, level, stream))| {
                json!({"time": 1_732_000_000.0 + i as f64, "level": level, "stream": stream, "text": text})
            })
            .collect();
        assert_eq!(
            api.post_logs(run, &json!({"records": records})),
            chunk.len() as u64
        );
    }
    lines
}

#[test]
fn search_filters_and_pages() {
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "lg", "project": "logs"}));
    let lines = seed_logs(&api, "lg");

    // Search finds the one seeded line among thousands.
    for q in [
        "illegal",
        "CUDA illegal",
        "\"illegal memory access\"",
        "ILLEGAL",
    ] {
        let found = api.all_logs("lg", &[("q", q)]);
        assert_eq!(found.len(), 1, "q={q}: {found:?}");
        assert_eq!(found[0]["text"], SEEDED);
        assert_eq!(found[0]["level"], "error");
        assert_eq!(found[0]["stream"], "stderr");
        assert_eq!(found[0]["seq"], 1235);
    }
    assert!(
        api.all_logs("lg", &[("q", "\"memory illegal\"")])
            .is_empty()
    );
    assert!(api.all_logs("lg", &[("q", "nonexistentword")]).is_empty());
    assert_eq!(
        api.all_logs("lg", &[("q", "gradient overflow")]).len(),
        N_LINES / 250
    );

    // Level is a minimum; stream is exact.
    let count =
        |pred: &dyn Fn(&str, &str) -> bool| lines.iter().filter(|(_, l, s)| pred(l, s)).count();
    let errors = api.all_logs("lg", &[("level", "error")]);
    assert_eq!(errors.len(), count(&|l, _| l == "error"));
    assert!(errors.iter().all(|r| r["level"] == "error"));
    let warn_up = api.all_logs("lg", &[("level", "warning")]);
    assert_eq!(warn_up.len(), count(&|l, _| l != "info"));
    let stderr = api.all_logs("lg", &[("stream", "stderr")]);
    assert_eq!(stderr.len(), count(&|_, s| s == "stderr"));
    let stdout_warn = api.all_logs("lg", &[("stream", "stdout"), ("level", "warning")]);
    assert!(stdout_warn.is_empty());
    let err_search = api.all_logs("lg", &[("q", "step"), ("level", "error")]);
    assert_eq!(err_search.len(), N_LINES / 250);
    api.get_q("/api/v1/runs/lg/logs", &[("level", "loud")])
        .expect_error(400, "loud");
    api.get_q("/api/v1/runs/lg/logs", &[("stream", "tty")])
        .expect_error(400, "tty");
    api.get_q("/api/v1/runs/lg/logs", &[("cursor", "not-a-cursor")])
        .expect_error(400, "cursor");

    // Pages of 97: every line once, in order, seqs 1..=N.
    let all = api.all_logs("lg", &[("limit", "97")]);
    assert_eq!(all.len(), N_LINES);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r["seq"].as_u64(), Some(i as u64 + 1));
        assert_eq!(r["text"].as_str(), Some(lines[i].0.as_str()), "line {i}");
        assert_eq!(r["level"].as_str(), Some(lines[i].1));
    }
    // Search results page too.
    let searched = api.all_logs("lg", &[("q", "step"), ("limit", "50")]);
    assert_eq!(searched.len(), N_LINES - 1);
    let seqs: Vec<u64> = searched
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "search pages in order, once"
    );
    // Filtered pages too.
    let paged = api.all_logs("lg", &[("limit", "7"), ("stream", "stderr")]);
    assert_eq!(paged.len(), stderr.len());
    let seqs: Vec<u64> = paged.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    // Defaults, time and attributes.
    let before = crate::support::now_ns() as f64 / 1e9;
    api.post_logs(
        "lg",
        &json!({"records": [{"text": "with attrs", "attributes": {"epoch": 3, "phase": "eval", "ok": true}}]}),
    );
    let r = &api.all_logs("lg", &[("q", "attrs")])[0];
    assert_eq!(r["level"], "info");
    assert_eq!(r["stream"], "app");
    assert_eq!(
        r["attributes"],
        json!({"epoch": "3", "phase": "eval", "ok": "true"})
    );
    let t = r["time"].as_f64().unwrap();
    assert!((t - before).abs() < 60.0, "no time means now: {t}");
    let first = &all[0];
    assert_eq!(first["time"].as_f64(), Some(1_732_000_000.0));

    // A time window (seconds, inclusive): lines 10..=12 of each batch.
    let window = api.all_logs(
        "lg",
        &[
            ("from", "1732000010"),
            ("to", "1732000012"),
            ("limit", "10000"),
        ],
    );
    assert_eq!(window.len(), 3 * N_LINES.div_ceil(1000));

    // Unknown run.
    api.post_json(
        "/api/v1/runs/ghost/logs",
        &json!({"records": [{"text": "x"}]}),
    )
    .expect_error(404, "ghost");
}

#[test]
fn cli_reads_through_the_api() {
    let server = Server::start();
    let api = server.api();
    let url = server.base();
    api.create_run(
        json!({"id": "cli-run", "project": "cli", "name": "cli-visible-name",
                          "config": {"lr": 0.001}}),
    );
    api.create_run(json!({"id": "other", "project": "cli2"}));
    let lines = seed_logs(&api, "cli-run");

    // loupe logs -q
    let out = run_cli(&["logs", "cli-run", "-q", "illegal", "--server", &url]);
    let printed: Vec<&str> = out.lines().collect();
    assert_eq!(printed.len(), 1, "{out}");
    assert!(printed[0].contains(SEEDED), "{out}");
    assert!(printed[0].contains("error"), "{out}");
    let out = run_cli(&[
        "logs", "cli-run", "--level", "error", "--json", "--server", &url,
    ]);
    let recs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("--json prints JSON lines"))
        .collect();
    assert_eq!(recs.len(), N_LINES / 250 + 1);

    // Series to export: specials, random bits, a comma in a name, more
    // points than one export page, and a series without steps.
    let mut expected: BTreeMap<String, Vec<(Option<i64>, i64, f64)>> = BTreeMap::new();
    let mut rng = Rng::new(99);
    let big = 150_000i64;
    let steps: Vec<i64> = (0..big).collect();
    let values: Vec<f64> = steps.iter().map(|&s| value_at(5, s)).collect();
    let times: Vec<i64> = steps.iter().map(|&s| 1_732_000_000 + s).collect();
    api.post_metrics(
        "cli-run",
        &json!({"series": [{"name": "train/loss", "step": steps, "time": times,
                            "value": values.iter().map(|&v| to_json(v)).collect::<Vec<_>>()}]}),
    );
    expected.insert(
        "train/loss".into(),
        (0..big as usize)
            .map(|i| (Some(steps[i]), times[i] * 1_000_000_000, values[i]))
            .collect(),
    );
    let odd: Vec<f64> = vec![
        -0.0,
        5e-324,
        f64::MAX,
        f64::NAN,
        f64::NEG_INFINITY,
        rng.finite_f64(),
        rng.finite_f64(),
    ];
    api.post_metrics(
        "cli-run",
        &json!({"series": [{"name": "eval,acc \"top1\"", "step": [-3, -2, -1, 0, 1, 2, 3],
                            "time": [1732000000, 1732000001, 1732000002, 1732000003, 1732000004, 1732000005, 1732000006],
                            "value": odd.iter().map(|&v| to_json(v)).collect::<Vec<_>>()}]}),
    );
    expected.insert(
        "eval,acc \"top1\"".into(),
        (0..7)
            .map(|i| {
                (
                    Some(i as i64 - 3),
                    (1_732_000_000 + i as i64) * 1_000_000_000,
                    odd[i],
                )
            })
            .collect(),
    );
    api.post_metrics(
        "cli-run",
        &json!({"series": [{"name": "gpu/util", "time": [1732000000.25, 1732000000.5], "value": [97.5, 12]}]}),
    );
    expected.insert(
        "gpu/util".into(),
        vec![
            (None, 1_732_000_000_250_000_000, 97.5),
            (None, 1_732_000_000_500_000_000, 12.0),
        ],
    );

    // loupe export --format csv: every point, exactly.
    let csv = run_cli(&["export", "cli-run", "--format", "csv", "--server", &url]);
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("series,step,time_ns,value"));
    let mut got: BTreeMap<String, Vec<(Option<i64>, i64, f64)>> = BTreeMap::new();
    for row in rows {
        let (name, rest) = split_csv_name(row);
        let f: Vec<&str> = rest.split(',').collect();
        assert_eq!(f.len(), 3, "row {row:?}");
        let step = if f[0].is_empty() {
            None
        } else {
            Some(f[0].parse::<i64>().unwrap())
        };
        let t = f[1].parse::<i64>().unwrap();
        let v = f[2]
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("value {:?}", f[2]));
        got.entry(name).or_default().push((step, t, v));
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (name, want) in &expected {
        let have = &got[name];
        assert_eq!(have.len(), want.len(), "{name}: point count");
        for (i, (h, w)) in have.iter().zip(want).enumerate() {
            assert_eq!(h.0, w.0, "{name}[{i}] step");
            assert_eq!(h.1, w.1, "{name}[{i}] time");
            assert!(
                same_value(h.2, w.2),
                "{name}[{i}]: exported {:e}, sent {:e}",
                h.2,
                w.2
            );
        }
    }
    // jsonl: the same count.
    let jsonl = run_cli(&["export", "cli-run", "--format", "jsonl", "--server", &url]);
    let total: usize = expected.values().map(Vec::len).sum();
    assert_eq!(jsonl.lines().count(), total);
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert!(first["series"].is_string() && first["time_ns"].is_i64());

    // loupe runs --json
    let out = run_cli(&["runs", "--json", "--server", &url]);
    let body: Value = serde_json::from_str(&out).expect("runs --json prints JSON");
    let ids: Vec<&str> = body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"cli-run") && ids.contains(&"other"),
        "{ids:?}"
    );
    let out = run_cli(&["runs", "--json", "--project", "cli2", "--server", &url]);
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["runs"].as_array().unwrap().len(), 1);
    let table = run_cli(&["runs", "--server", &url]);
    assert!(
        table.contains("cli-run") && table.contains("cli-visible-name"),
        "{table}"
    );

    // loupe show
    let out = run_cli(&["show", "cli-run", "--server", &url]);
    assert!(
        out.contains("cli-visible-name") && out.contains("cli-run"),
        "{out}"
    );
    assert!(
        out.contains("train/loss") && out.contains("gpu/util"),
        "{out}"
    );
    assert!(out.contains("150000"), "point count shown: {out}");
    let out = run_cli(&["show", "cli-run", "--json", "--server", &url]);
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["run"]["config"]["lr"], 0.001);
    assert_eq!(body["series"].as_array().unwrap().len(), 3);
    let loss = body["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "train/loss")
        .unwrap();
    assert_eq!(loss["count"], big);
    assert!(same_value(from_json(&loss["last"]), value_at(5, big - 1)));

    // The CLI reports an unknown run as an error.
    let out = crate::support::loupe_cmd()
        .args(["show", "ghost", "--server", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    drop(lines);
}

/// Splits a CSV row's first field (quoted when it holds a comma or quote).
fn split_csv_name(row: &str) -> (String, &str) {
    if let Some(rest) = row.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if let Some((_, '"')) = chars.peek() {
                    name.push('"');
                    chars.next();
                } else {
                    let after = &rest[i + 1..];
                    return (name, after.strip_prefix(',').expect("comma after name"));
                }
            } else {
                name.push(c);
            }
        }
        panic!("unterminated quoted name in {row:?}");
    }
    let (name, rest) = row.split_once(',').expect("comma");
    (name.to_string(), rest)
}

#[test]
fn cli_logs_prints_every_line_past_one_page() {
    // `loupe logs` reads 1000 lines per request and must follow the cursor.
    let server = Server::start();
    let api = server.api();
    api.create_run(json!({"id": "many", "project": "cli"}));
    let lines = seed_logs(&api, "many");
    let out = run_cli(&["logs", "many", "--server", &server.base()]);
    assert_eq!(
        out.lines().count(),
        lines.len(),
        "`loupe logs` printed {} of {} lines",
        out.lines().count(),
        lines.len()
    );
}

/// A log batch resent under the same `Idempotency-Key` (the client lost the
/// first answer) is acknowledged and not stored twice; another key is a
/// new batch; a bad key is refused with a message that names it.
#[test]
fn idempotency_key_stores_a_batch_once() {
    let server = Server::start();
    let api = server.api();
    let run = api
        .post_json("/api/v1/runs", &json!({"name": "idem"}))
        .expect(201);
    let id = run["id"].as_str().unwrap();
    let path = format!("/api/v1/runs/{id}/logs");
    let body = json!({"records": [{"text": "first line"}, {"text": "second line"}]});
    let raw = serde_json::to_vec(&body).unwrap();
    let key = [
        ("Idempotency-Key", "sdk:abc:1"),
        ("Content-Type", "application/json"),
    ];
    let first = api.post_raw(&path, &raw, &key).expect(200);
    assert_eq!(first["accepted"], 2);
    assert!(first.get("duplicate").is_none(), "{first}");
    let again = api.post_raw(&path, &raw, &key).expect(200);
    assert_eq!(again["accepted"], 0);
    assert_eq!(again["duplicate"], true);
    let other = api
        .post_raw(
            &path,
            &raw,
            &[
                ("Idempotency-Key", "sdk:abc:2"),
                ("Content-Type", "application/json"),
            ],
        )
        .expect(200);
    assert_eq!(other["accepted"], 2);
    let page = api.get(&path).expect(200);
    let texts: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["first line", "second line", "first line", "second line"]
    );
    api.post_raw(
        &path,
        &raw,
        &[
            ("Idempotency-Key", "has space"),
            ("Content-Type", "application/json"),
        ],
    )
    .expect_error(400, "idempotency key");
}
