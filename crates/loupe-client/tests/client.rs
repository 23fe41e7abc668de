//! The client against a real server, in this process: every typed call
//! reads what the server answers, and failures come out as the errors the
//! callers act on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use loupe_client::api::*;
use loupe_client::{Client, ClientOptions, Encoding, Error, Method, Raw};

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg =
            loupe_server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().into());
        cfg.diagnose = None;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(loupe_server::serve(
                cfg,
                async move {
                    let _ = stop_rx.await;
                },
                move |a| {
                    let _ = ready_tx.send(a);
                },
            ))
            .unwrap();
        });
        let addr = ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Server {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn client(&self) -> Client {
        Client::new(
            &format!("http://{}/", self.addr),
            ClientOptions {
                timeout: Some(Duration::from_secs(10)),
                ..Default::default()
            },
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn typed_calls_round_trip() {
    let server = Server::start();
    let c = server.client();
    assert_eq!(c.health().unwrap().status, "ok");

    let run = c
        .create_run(&CreateRun {
            id: Some("r.1".into()),
            project: Some("p".into()),
            tags: vec!["a".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!((run.id.as_str(), run.status), ("r.1", RunStatus::Running));

    let batch = MetricsBatch {
        series: vec![SeriesColumns {
            name: "train/loss".into(),
            step: Some(vec![0, 1, 2]),
            time: Some(vec![1765000000.0, 1765000001.0, 1765000002.0]),
            value: vec![1.5, f64::NAN, f64::NEG_INFINITY],
            labels: None,
        }],
    };
    assert_eq!(c.post_run_metrics("r.1", &batch).unwrap().accepted, 3);
    let list = c.run_series("r.1").unwrap();
    assert_eq!(list.series.len(), 1);
    assert_eq!(list.series[0].min, f64::NEG_INFINITY);
    let data = c
        .series_data(
            "r.1",
            &DataQuery {
                name: "train/loss".into(),
                limit: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(data.x, XColumn::Steps(vec![0, 1]));
    assert!(data.y[0] == 1.5 && data.y[1].is_nan());
    assert_eq!(data.step, Some(vec![Some(0), Some(1)]));
    let next = data.next_cursor().expect("a second page").to_string();
    let last = c
        .series_data(
            "r.1",
            &DataQuery {
                name: "train/loss".into(),
                cursor: Some(next),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((last.y[0], last.next_cursor()), (f64::NEG_INFINITY, None));

    let mut host = BTreeMap::new();
    host.insert("host".to_string(), "n1".to_string());
    let outside = MetricsBatch {
        series: vec![SeriesColumns {
            name: "gpu/util".into(),
            value: vec![50.0],
            labels: Some(host),
            ..Default::default()
        }],
    };
    assert_eq!(c.post_metrics(Some("p"), &outside).unwrap().accepted, 1);

    let logs = LogBatch {
        records: vec![LogLine {
            text: "hello".into(),
            level: Some(LogLevel::Warning),
            ..Default::default()
        }],
    };
    assert_eq!(c.post_logs("r.1", &logs, Some("k1")).unwrap().accepted, 1);
    let again = c.post_logs("r.1", &logs, Some("k1")).unwrap();
    assert!(again.duplicate && again.accepted == 0);
    let page = c.logs("r.1", &LogQuery::default()).unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].level, LogLevel::Warning);

    let patched = c
        .patch_run(
            "r.1",
            &PatchRun {
                status: Some(RunStatus::Finished),
                exit_code: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(patched.status, RunStatus::Finished);
    let runs = c
        .list_runs(&RunListQuery {
            project: Some("p".into()),
            status: Some("finished".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(runs.runs.len(), 1);
    assert_eq!(c.projects().unwrap().projects[0].name, "p");
    assert!(
        c.run_incidents("r.1", &IncidentQuery::default())
            .unwrap()
            .incidents
            .is_empty()
    );
    assert_eq!(c.run_health("r.1").unwrap().score, None);

    let mut matchers = BTreeMap::new();
    matchers.insert("run".to_string(), "r.1".to_string());
    let s = c
        .create_silence(&NewSilence {
            matchers,
            duration: Some("1h".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(c.silences().unwrap().silences, vec![s.clone()]);
    c.delete_silence(&s.id).unwrap();
    assert!(c.silences().unwrap().silences.is_empty());
    c.delete_run("r.1").unwrap();
}

#[test]
fn raw_bodies_go_as_they_are() {
    let server = Server::start();
    let c = server.client();
    c.send(Raw {
        method: Method::Post,
        path: "/api/v1/runs",
        body: br#"{"id":"r2"}"#,
        encoding: Encoding::Identity,
        idempotency_key: None,
    })
    .unwrap();
    let answer = c
        .send(Raw {
            method: Method::Post,
            path: "/api/v1/runs/r2/metrics",
            body: br#"{"series":[{"name":"a","value":[1,"Infinity"]}]}"#,
            encoding: Encoding::Gzip,
            idempotency_key: None,
        })
        .unwrap();
    let accepted: Accepted = serde_json::from_slice(&answer).unwrap();
    assert_eq!(accepted.accepted, 2);
}

#[test]
fn failures_say_whether_to_retry() {
    let server = Server::start();
    let c = server.client();
    // The API's refusal, in its words; a later attempt cannot help.
    match c.run("nope") {
        Err(e @ Error::Refused { status: 404, .. }) => {
            assert!(!e.is_retryable());
            assert_eq!(e.to_string(), "run \"nope\" not found");
        }
        other => panic!("{other:?}"),
    }
    let bad = c.send(Raw {
        method: Method::Post,
        path: "/api/v1/runs",
        body: b"{",
        encoding: Encoding::Identity,
        idempotency_key: None,
    });
    assert!(
        matches!(&bad, Err(Error::Refused { status: 400, code, .. }) if code == "invalid_request"),
        "{bad:?}"
    );
    // No server: worth retrying.
    let addr = server.addr;
    drop(server);
    let gone = Client::new(&format!("http://{addr}"), ClientOptions::default()).health();
    match gone {
        Err(e @ Error::Unreachable { .. }) => assert!(e.is_retryable()),
        other => panic!("{other:?}"),
    }
}
