//! The authorisation matrix: every route of the OpenAPI document × every
//! role (no token, read, ingest, admin of project A) × A's own objects and
//! project B's. The routes come from the served document, so a route added
//! without a line in [`CASES`] fails this test until someone says who may
//! call it.
//!
//! What each cell must answer:
//! - no token: 401 (except the few open routes);
//! - a role the route does not allow: 403 (404 for B's objects is as good:
//!   neither says whether they exist);
//! - an allowed role on A's objects: 2xx;
//! - an allowed role on B's objects: 404 when the path names one, 403 when
//!   the body asks to write into B, and for listings an answer that holds
//!   nothing of B's.
//!
//! Every B object carries the marker `zzb` in its name, id or text, and
//! no successful answer to an A token may contain it.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Api, Resp, Server, create_token, wait_for};

/// Every B object's name holds it; no answer to A may.
const MARKER: &str = "zzb";
/// Project B's metric values, so that a read leaking B's points is caught
/// even where no name or label of B's comes back with them (a query over
/// values, an aggregate): no other value in the fixture prints like it.
const MARKER_VALUE: f64 = 4242.4242;

/// Project B's name holds the marker too: a per-project label is B's data.
const PROJECT_B: &str = "proj-zzb";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    /// Anyone, without a token.
    Open,
    Read,
    Ingest,
    Admin,
}

/// What an allowed caller from A gets for B's side of the route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Other {
    /// The path names B's object: 404.
    NotFound,
    /// The request asks to write into B: 403.
    Forbidden,
    /// A listing: 2xx with nothing of B's in it (or 404 when it was asked
    /// for B's project by name).
    Hidden,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Own,
    Other,
}

/// One request: method, path with its query, JSON body (a string body is
/// sent as line protocol; `raw` as Prometheus remote write).
struct Req {
    method: &'static str,
    path: String,
    body: Option<Value>,
    raw: Option<Vec<u8>>,
}

/// Each project's objects, made before the matrix runs.
struct Objects {
    project: &'static str,
    run: String,
    group: String,
    incident: String,
    cause: String,
}

struct Fixture {
    a: Objects,
    b: Objects,
    admin_a: Api,
    admin_b: Api,
    ingest_a: Api,
    ingest_b: Api,
    fresh: AtomicUsize,
}

impl Fixture {
    fn side(&self, side: Side) -> &Objects {
        match side {
            Side::Own => &self.a,
            Side::Other => &self.b,
        }
    }

    /// The writers of a side, to make objects the request will delete.
    fn owner(&self, side: Side) -> (&Api, &Api) {
        match side {
            Side::Own => (&self.admin_a, &self.ingest_a),
            Side::Other => (&self.admin_b, &self.ingest_b),
        }
    }

    /// A name not used before, holding the side's marker for B.
    fn fresh(&self, side: Side, what: &str) -> String {
        let n = self.fresh.fetch_add(1, Ordering::Relaxed);
        match side {
            Side::Own => format!("{what}-a-{n}"),
            Side::Other => format!("{what}-{MARKER}-{n}"),
        }
    }
}

type Build = fn(&Fixture, Side) -> Req;

struct Case {
    method: &'static str,
    path: &'static str,
    need: Need,
    other: Other,
    build: Build,
}

fn get(path: String) -> Req {
    Req {
        method: "get",
        path,
        body: None,
        raw: None,
    }
}

fn with_body(method: &'static str, path: String, body: Value) -> Req {
    Req {
        method,
        path,
        body: Some(body),
        raw: None,
    }
}

/// A Prometheus API POST: `form` as an `application/x-www-form-urlencoded` body.
fn prom_post(path: String, form: &str) -> Req {
    Req {
        method: "post",
        path,
        body: Some(json!({ FORM: form })),
        raw: None,
    }
}

/// The key marking a [`Req`] body as a form.
const FORM: &str = "__form__";

/// Every series, as a form value.
const ALL_SERIES_FORM: &str = "%7B__name__%3D~%22.%2B%22%7D";

/// `?project=B` for B's side of a listing.
fn project_q(f: &Fixture, side: Side, sep: char) -> String {
    match side {
        Side::Own => String::new(),
        Side::Other => format!("{sep}project={}", f.b.project),
    }
}

const CASES: &[Case] = &[
    Case {
        method: "get",
        path: "/healthz",
        need: Need::Open,
        other: Other::Hidden,
        build: |_, _| get("/healthz".into()),
    },
    Case {
        method: "get",
        path: "/api/v1/openapi.json",
        need: Need::Open,
        other: Other::Hidden,
        build: |_, _| get("/api/v1/openapi.json".into()),
    },
    Case {
        method: "get",
        path: "/metrics",
        need: Need::Read,
        other: Other::Hidden,
        build: |_, _| get("/metrics".into()),
    },
    Case {
        method: "get",
        path: "/api/v1/projects",
        need: Need::Read,
        other: Other::Hidden,
        build: |_, _| get("/api/v1/projects".into()),
    },
    Case {
        method: "get",
        path: "/api/v1/projects/{project}/feedback",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/projects/{}/feedback", f.side(s).project)),
    },
    Case {
        method: "get",
        path: "/api/v1/runs",
        need: Need::Read,
        other: Other::Hidden,
        build: |f, s| get(format!("/api/v1/runs{}", project_q(f, s, '?'))),
    },
    Case {
        method: "post",
        path: "/api/v1/runs",
        need: Need::Ingest,
        other: Other::Forbidden,
        build: |f, s| {
            with_body(
                "post",
                "/api/v1/runs".into(),
                json!({"id": f.fresh(s, "run"), "project": f.side(s).project}),
            )
        },
    },
    Case {
        method: "get",
        path: "/api/v1/runs/{id}",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/runs/{}", f.side(s).run)),
    },
    Case {
        method: "patch",
        path: "/api/v1/runs/{id}",
        need: Need::Ingest,
        other: Other::NotFound,
        build: |f, s| {
            with_body(
                "patch",
                format!("/api/v1/runs/{}", f.side(s).run),
                json!({"tags": ["checked"]}),
            )
        },
    },
    Case {
        method: "delete",
        path: "/api/v1/runs/{id}",
        need: Need::Admin,
        other: Other::NotFound,
        build: |f, s| {
            let (_, ingest) = f.owner(s);
            let id = f.fresh(s, "run");
            ingest
                .post_json(
                    "/api/v1/runs",
                    &json!({"id": id, "project": f.side(s).project}),
                )
                .expect(201);
            Req {
                method: "delete",
                path: format!("/api/v1/runs/{id}"),
                body: None,
                raw: None,
            }
        },
    },
    Case {
        method: "get",
        path: "/api/v1/runs/{id}/health",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/runs/{}/health", f.side(s).run)),
    },
    Case {
        method: "get",
        path: "/api/v1/runs/{id}/incidents",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/runs/{}/incidents", f.side(s).run)),
    },
    Case {
        method: "get",
        path: "/api/v1/runs/{id}/logs",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/runs/{}/logs", f.side(s).run)),
    },
    Case {
        method: "post",
        path: "/api/v1/runs/{id}/logs",
        need: Need::Ingest,
        other: Other::NotFound,
        build: |f, s| {
            with_body(
                "post",
                format!("/api/v1/runs/{}/logs", f.side(s).run),
                json!({"records": [{"text": "one more line", "stream": "stdout"}]}),
            )
        },
    },
    Case {
        method: "post",
        path: "/api/v1/runs/{id}/metrics",
        need: Need::Ingest,
        other: Other::NotFound,
        build: |f, s| {
            with_body(
                "post",
                format!("/api/v1/runs/{}/metrics", f.side(s).run),
                json!({"series": [{"name": "loss", "step": [100], "value": [0.5]}]}),
            )
        },
    },
    Case {
        method: "get",
        path: "/api/v1/runs/{id}/series",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/runs/{}/series", f.side(s).run)),
    },
    Case {
        method: "get",
        path: "/api/v1/runs/{id}/series/data",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| {
            get(format!(
                "/api/v1/runs/{}/series/data?name=loss",
                f.side(s).run
            ))
        },
    },
    Case {
        method: "get",
        path: "/api/v1/groups/{group}/health",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| {
            get(format!(
                "/api/v1/groups/{}/health{}",
                f.side(s).group,
                project_q(f, s, '?')
            ))
        },
    },
    Case {
        method: "post",
        path: "/api/v1/metrics",
        need: Need::Ingest,
        other: Other::Forbidden,
        build: |f, s| {
            with_body(
                "post",
                format!("/api/v1/metrics?project={}", f.side(s).project),
                json!({"series": [{"name": "gpu/0/util", "labels": {"host": f.fresh(s, "host")},
                                   "value": [50.0]}]}),
            )
        },
    },
    Case {
        method: "post",
        path: "/api/v2/write",
        need: Need::Ingest,
        other: Other::Forbidden,
        build: |f, s| {
            let host = f.fresh(s, "host");
            with_body(
                "post",
                format!("/api/v2/write?bucket={}&precision=s", f.side(s).project),
                Value::String(format!("gpu,host={host} util=50 1733500000")),
            )
        },
    },
    Case {
        method: "post",
        path: "/write",
        need: Need::Ingest,
        other: Other::Forbidden,
        build: |f, s| {
            let host = f.fresh(s, "host");
            with_body(
                "post",
                format!("/write?db={}", f.side(s).project),
                Value::String(format!("gpu,host={host} util=50")),
            )
        },
    },
    Case {
        method: "post",
        path: "/api/v1/write",
        need: Need::Ingest,
        other: Other::Forbidden,
        build: |f, s| Req {
            method: "post",
            path: format!("/api/v1/write?project={}", f.side(s).project),
            body: None,
            raw: Some(crate::remote_write::v1_body(&[(
                &[("__name__", "gpu_util"), ("host", &f.fresh(s, "host"))],
                &[(1_733_500_000_000, 50.0)],
            )])),
        },
    },
    Case {
        method: "post",
        path: "/v1/metrics",
        need: Need::Ingest,
        other: Other::Forbidden,
        build: |f, s| {
            let host = f.fresh(s, "host");
            with_body(
                "post",
                format!("/v1/metrics?project={}", f.side(s).project),
                json!({"resourceMetrics": [{
                    "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": host}}]},
                    "scopeMetrics": [{"metrics": [{"name": "gpu.util", "gauge": {"dataPoints": [
                        {"timeUnixNano": "1733500000000000000", "asDouble": 50.0}]}}]}]}]}),
            )
        },
    },
    Case {
        method: "post",
        path: "/v1/logs",
        need: Need::Ingest,
        other: Other::Forbidden,
        build: |f, s| {
            with_body(
                "post",
                format!("/v1/logs?project={}", f.side(s).project),
                json!({"resourceLogs": [{
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "authz"}}]},
                    "scopeLogs": [{"logRecords": [{"body": {"stringValue": "hello"}}]}]}]}),
            )
        },
    },
    Case {
        method: "get",
        path: "/api/v1/query",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| {
            get(format!(
                "/api/v1/query?query={{__name__=~\".+\"}}{}",
                project_q(f, s, '&')
            ))
        },
    },
    Case {
        method: "post",
        path: "/api/v1/query",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| {
            prom_post(
                format!("/api/v1/query{}", project_q(f, s, '?')),
                &format!("query={ALL_SERIES_FORM}"),
            )
        },
    },
    Case {
        method: "get",
        path: "/api/v1/query_range",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| {
            get(format!(
                "/api/v1/query_range?query={{__name__=~\".+\"}}&start=0&end=2000000000&step=1000000{}",
                project_q(f, s, '&')
            ))
        },
    },
    Case {
        method: "post",
        path: "/api/v1/query_range",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| {
            prom_post(
                format!("/api/v1/query_range{}", project_q(f, s, '?')),
                &format!("query={ALL_SERIES_FORM}&start=0&end=2000000000&step=1000000"),
            )
        },
    },
    Case {
        method: "get",
        path: "/api/v1/series",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| {
            get(format!(
                "/api/v1/series?match[]={{__name__=~\".+\"}}{}",
                project_q(f, s, '&')
            ))
        },
    },
    Case {
        method: "post",
        path: "/api/v1/series",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| {
            prom_post(
                format!("/api/v1/series{}", project_q(f, s, '?')),
                &format!("match%5B%5D={ALL_SERIES_FORM}"),
            )
        },
    },
    Case {
        method: "get",
        path: "/api/v1/labels",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/labels{}", project_q(f, s, '?'))),
    },
    Case {
        method: "post",
        path: "/api/v1/labels",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| prom_post(format!("/api/v1/labels{}", project_q(f, s, '?')), ""),
    },
    Case {
        method: "get",
        path: "/api/v1/label/{name}/values",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/label/host/values{}", project_q(f, s, '?'))),
    },
    Case {
        method: "get",
        path: "/api/v1/metadata",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/metadata{}", project_q(f, s, '?'))),
    },
    Case {
        method: "get",
        path: "/api/v1/status/buildinfo",
        need: Need::Open,
        other: Other::Hidden,
        build: |_, _| get("/api/v1/status/buildinfo".into()),
    },
    Case {
        method: "get",
        path: "/ping",
        need: Need::Open,
        other: Other::Hidden,
        build: |_, _| get("/ping".into()),
    },
    Case {
        method: "get",
        path: "/api/v1/metrics/series",
        need: Need::Read,
        other: Other::Hidden,
        build: |f, s| get(format!("/api/v1/metrics/series{}", project_q(f, s, '?'))),
    },
    Case {
        method: "get",
        path: "/api/v1/metrics/data",
        need: Need::Read,
        other: Other::Hidden,
        build: |f, s| {
            get(format!(
                "/api/v1/metrics/data?name=gpu/0/util{}",
                project_q(f, s, '&')
            ))
        },
    },
    Case {
        method: "get",
        path: "/api/v1/live",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/live?run={}", f.side(s).run)),
    },
    Case {
        method: "get",
        path: "/api/v1/incidents",
        need: Need::Read,
        other: Other::Hidden,
        build: |f, s| get(format!("/api/v1/incidents{}", project_q(f, s, '?'))),
    },
    Case {
        method: "get",
        path: "/api/v1/incidents/{id}",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/incidents/{}", f.side(s).incident)),
    },
    Case {
        method: "get",
        path: "/api/v1/incidents/{id}/feedback",
        need: Need::Read,
        other: Other::NotFound,
        build: |f, s| get(format!("/api/v1/incidents/{}/feedback", f.side(s).incident)),
    },
    Case {
        method: "post",
        path: "/api/v1/incidents/{id}/feedback",
        need: Need::Ingest,
        other: Other::NotFound,
        build: |f, s| {
            let o = f.side(s);
            with_body(
                "post",
                format!("/api/v1/incidents/{}/feedback", o.incident),
                json!({"cause": o.cause, "verdict": "confirmed"}),
            )
        },
    },
    Case {
        method: "get",
        path: "/api/v1/alerts",
        need: Need::Read,
        other: Other::Hidden,
        build: |_, _| get("/api/v1/alerts".into()),
    },
    Case {
        method: "get",
        path: "/api/v1/alerts/rules",
        need: Need::Read,
        other: Other::Hidden,
        build: |_, _| get("/api/v1/alerts/rules".into()),
    },
    Case {
        method: "post",
        path: "/api/v1/alerts/rules",
        need: Need::Admin,
        other: Other::Forbidden,
        build: |f, s| {
            with_body(
                "post",
                "/api/v1/alerts/rules".into(),
                json!({"name": f.fresh(s, "rule"), "kind": "incident",
                       "project": f.side(s).project}),
            )
        },
    },
    Case {
        method: "delete",
        path: "/api/v1/alerts/rules/{name}",
        need: Need::Admin,
        other: Other::NotFound,
        build: |f, s| {
            let (admin, _) = f.owner(s);
            let name = f.fresh(s, "rule");
            admin
                .post_json(
                    "/api/v1/alerts/rules",
                    &json!({"name": name, "kind": "incident"}),
                )
                .expect(201);
            Req {
                method: "delete",
                path: format!("/api/v1/alerts/rules/{name}"),
                body: None,
                raw: None,
            }
        },
    },
    Case {
        method: "get",
        path: "/api/v1/silences",
        need: Need::Read,
        other: Other::Hidden,
        build: |_, _| get("/api/v1/silences".into()),
    },
    Case {
        method: "post",
        path: "/api/v1/silences",
        need: Need::Admin,
        other: Other::Forbidden,
        build: |f, s| {
            with_body(
                "post",
                "/api/v1/silences".into(),
                json!({"matchers": {"alertname": "x", "project": f.side(s).project},
                       "duration": "1h", "comment": f.fresh(s, "why")}),
            )
        },
    },
    Case {
        method: "delete",
        path: "/api/v1/silences/{id}",
        need: Need::Admin,
        other: Other::NotFound,
        build: |f, s| {
            let (admin, _) = f.owner(s);
            let made = admin
                .post_json(
                    "/api/v1/silences",
                    &json!({"matchers": {"alertname": "x"}, "duration": "1h",
                            "comment": f.fresh(s, "why")}),
                )
                .expect(201);
            Req {
                method: "delete",
                path: format!("/api/v1/silences/{}", made["id"].as_str().unwrap()),
                body: None,
                raw: None,
            }
        },
    },
];

/// A project's run (in a group, with a series and an NCCL failure in its
/// logs), its incident, a rule and a silence. B's all carry the marker.
fn make_objects(admin: &Api, ingest: &Api, project: &'static str, tag: &str) -> Objects {
    let run = format!("run-{tag}");
    let group = format!("grp-{tag}");
    let (loss, util) = if tag == MARKER {
        ([MARKER_VALUE, MARKER_VALUE], MARKER_VALUE)
    } else {
        ([0.9, 0.8], 40.0)
    };
    ingest
        .post_json(
            "/api/v1/runs",
            &json!({"id": run, "project": project, "group": group, "rank": 0, "world_size": 1}),
        )
        .expect(201);
    ingest
        .post_json(
            &format!("/api/v1/runs/{run}/metrics"),
            &json!({"series": [{"name": "loss", "step": [1, 2], "value": loss}]}),
        )
        .expect(200);
    ingest
        .post_json(
            &format!("/api/v1/metrics?project={project}"),
            &json!({"series": [{"name": "gpu/0/util", "labels": {"host": format!("host-{tag}")},
                               "value": [util]}]}),
        )
        .expect(200);
    let lines = [
        format!(
            "[rank0]:[E501 12:10:03.123456 ProcessGroupNCCL.cpp:563] [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=9, OpType=ALLREDUCE, NumelIn=1048576, NumelOut=1048576, Timeout(ms)=600000) ran for 600027 milliseconds before timing out. {tag}"
        ),
        format!(
            "node-{tag}:12345:12399 [0] NCCL WARN NET/IB : Got completion from peer 10.0.0.2<47346> with error 12, opcode 0, len 0, vendor err 129 (Recv)"
        ),
    ];
    let records: Vec<Value> = lines
        .iter()
        .map(|t| json!({"text": t, "stream": "stderr", "level": "error"}))
        .collect();
    ingest
        .post_json(
            &format!("/api/v1/runs/{run}/logs"),
            &json!({"records": records}),
        )
        .expect(200);
    let incident = wait_for(Duration::from_secs(15), "the run's incident", || {
        admin.get(&format!("/api/v1/runs/{run}/incidents")).json()["incidents"]
            .as_array()?
            .first()
            .cloned()
    });
    admin
        .post_json(
            "/api/v1/alerts/rules",
            &json!({"name": format!("rule-{tag}"), "kind": "incident",
                    "summary": format!("incident in {tag}")}),
        )
        .expect(201);
    admin
        .post_json(
            "/api/v1/silences",
            &json!({"matchers": {"alertname": format!("rule-{tag}")}, "duration": "1h",
                    "comment": format!("quiet please, {tag}")}),
        )
        .expect(201);
    Objects {
        project,
        run,
        group,
        incident: incident["id"].as_str().unwrap().to_string(),
        cause: incident["causes"][0]["kind"].as_str().unwrap().to_string(),
    }
}

/// The status of a request whose answer may never end (the live stream):
/// only the status line is read.
fn status_only(api: &Api, path: &str, token: Option<&str>) -> u16 {
    let host = api.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 64];
    let n = s.read(&mut head).unwrap();
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in {line:?}"))
}

fn send(api: &Api, token: Option<&str>, req: &Req) -> Resp {
    let api = match token {
        Some(t) => api.with_token(t),
        None => api.clone(),
    };
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let query: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap())
        .collect();
    if let Some(raw) = &req.raw {
        return api.post_raw(&req.path, raw, crate::remote_write::HEADERS_V1);
    }
    match (req.method, &req.body) {
        ("get", _) => api.get_q(path, &query),
        ("delete", _) => api.delete(&req.path),
        // Line protocol: text, as InfluxDB's clients send it.
        ("post", Some(Value::String(text))) => api.post_raw(
            &req.path,
            text.as_bytes(),
            &[
                ("content-type", "text/plain; charset=utf-8"),
                ("x-loupe-client", "authz"),
            ],
        ),
        // Prometheus' query API: a form POST.
        ("post", Some(b)) if b.get(FORM).is_some() => api.post_raw(
            &req.path,
            b[FORM].as_str().unwrap().as_bytes(),
            &[("content-type", "application/x-www-form-urlencoded")],
        ),
        ("post", Some(b)) => api.post_json(&req.path, b),
        ("patch", Some(b)) => api.patch_json(&req.path, b),
        (m, _) => panic!("no way to send {m} {}", req.path),
    }
}

/// What the cell must answer; `Err` says why the answer is wrong.
fn judge(
    case: &Case,
    role: Option<&str>,
    side: Side,
    status: u16,
    body: &str,
) -> Result<(), String> {
    let allowed = match (case.need, role) {
        (Need::Open, _) => true,
        (_, None) => return expect(status, &[401]),
        (Need::Read, Some(r)) => matches!(r, "read" | "admin"),
        (Need::Ingest, Some(r)) => matches!(r, "ingest" | "admin"),
        (Need::Admin, Some(r)) => r == "admin",
    };
    if (200..300).contains(&status)
        && (body.contains(MARKER) || body.contains(&MARKER_VALUE.to_string()))
    {
        return Err(format!(
            "answered {status} with project B's data: {}",
            clip(body)
        ));
    }
    match (allowed, side, case.other) {
        (false, Side::Own, _) => expect(status, &[403]),
        (false, Side::Other, _) => expect(status, &[403, 404]),
        (true, Side::Own, _) => expect_ok(status),
        (true, Side::Other, Other::NotFound) => expect(status, &[404]),
        (true, Side::Other, Other::Forbidden) => expect(status, &[403]),
        (true, Side::Other, Other::Hidden) => {
            if status == 404 || (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!(
                    "status {status}, wanted 2xx without B's data or 404"
                ))
            }
        }
    }
}

fn expect(status: u16, want: &[u16]) -> Result<(), String> {
    if want.contains(&status) {
        Ok(())
    } else {
        Err(format!("status {status}, wanted {want:?}"))
    }
}

fn expect_ok(status: u16) -> Result<(), String> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("status {status}, wanted 2xx"))
    }
}

fn clip(s: &str) -> &str {
    crate::support::truncate(s, 300)
}

#[test]
fn every_route_answers_every_role_of_every_project_as_it_should() {
    let dir = Server::temp_data_dir();
    let tokens: Vec<(&str, String)> = ["read", "ingest", "admin"]
        .into_iter()
        .map(|r| (r, create_token(dir.path(), "A", r)))
        .collect();
    let admin_b = create_token(dir.path(), PROJECT_B, "admin");
    let ingest_b = create_token(dir.path(), PROJECT_B, "ingest");
    let server = Server::configured("127.0.0.1:0", &["--require-auth"], Some(dir.path().into()));
    let api = server.api();
    let token = |role: &str| tokens.iter().find(|(r, _)| *r == role).unwrap().1.clone();
    let admin_a = api.with_token(&token("admin"));
    let ingest_a = api.with_token(&token("ingest"));
    let (admin_b, ingest_b) = (api.with_token(&admin_b), api.with_token(&ingest_b));
    let f = Fixture {
        a: make_objects(&admin_a, &ingest_a, "A", "a"),
        b: make_objects(&admin_b, &ingest_b, PROJECT_B, MARKER),
        admin_a,
        admin_b,
        ingest_a,
        ingest_b,
        fresh: AtomicUsize::new(0),
    };

    // The table covers the served document exactly.
    let doc = api.get("/api/v1/openapi.json").expect(200);
    let served: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let listed: BTreeSet<(String, String)> = CASES
        .iter()
        .map(|c| (c.method.to_string(), c.path.to_string()))
        .collect();
    assert_eq!(
        served.difference(&listed).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes without a line in the authorisation matrix"
    );
    assert_eq!(
        listed.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "matrix lines for routes the server no longer has"
    );

    let mut wrong = Vec::new();
    let mut cells = 0;
    for case in CASES {
        for role in [None, Some("read"), Some("ingest"), Some("admin")] {
            let secret = role.map(token);
            for side in [Side::Own, Side::Other] {
                let req = (case.build)(&f, side);
                let (status, body) = if case.path == "/api/v1/live" {
                    (
                        status_only(&api, &req.path, secret.as_deref()),
                        String::new(),
                    )
                } else {
                    let r = send(&api, secret.as_deref(), &req);
                    (r.status, r.text())
                };
                cells += 1;
                if let Err(why) = judge(case, role, side, status, &body) {
                    let side = if side == Side::Own { "A's" } else { "B's" };
                    wrong.push(format!(
                        "{} {} as {} on {side}: {why}",
                        req.method,
                        req.path,
                        role.unwrap_or("no token")
                    ));
                }
            }
        }
    }
    assert!(cells >= CASES.len() * 8);
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A project's threshold rule watches that project's runs only, and an
/// alert on a run's series belongs to the run's project: its `project`
/// label is what the alert listing scopes by.
#[test]
fn a_projects_rule_alerts_on_its_own_runs_only() {
    let dir = Server::temp_data_dir();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[settings]\nevaluation_interval = \"300ms\"\n[defaults]\nstalled_run = false\n",
    )
    .unwrap();
    let [admin_a, ingest_a, read_a, ingest_b, read_b] = [
        ("A", "admin"),
        ("A", "ingest"),
        ("A", "read"),
        (PROJECT_B, "ingest"),
        (PROJECT_B, "read"),
    ]
    .map(|(p, r)| create_token(dir.path(), p, r));
    let server = Server::configured(
        "127.0.0.1:0",
        &["--require-auth", "--rules", rules.to_str().unwrap()],
        Some(dir.path().into()),
    );
    let api = server.api();
    let made = api
        .with_token(&admin_a)
        .post_json(
            "/api/v1/alerts/rules",
            &json!({"name": "hot-loss", "kind": "threshold", "expr": "loss > 10"}),
        )
        .expect(201);
    assert_eq!(
        made["rule"]["project"], "A",
        "claimed for the token's project"
    );
    for (token, run) in [(&ingest_a, "run-a"), (&ingest_b, "run-zzb")] {
        let ingest = api.with_token(token);
        ingest
            .post_json("/api/v1/runs", &json!({"id": run}))
            .expect(201);
        ingest
            .post_json(
                &format!("/api/v1/runs/{run}/metrics"),
                &json!({"series": [{"name": "loss", "step": [1], "value": [50.0]}]}),
            )
            .expect(200);
    }
    let alerts = |token: &str| -> Vec<Value> {
        api.with_token(token).get("/api/v1/alerts").expect(200)["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule"] == "hot-loss")
            .cloned()
            .collect()
    };
    let seen = wait_for(Duration::from_secs(10), "A's alert", || {
        let a = alerts(&read_a);
        (!a.is_empty()).then_some(a)
    });
    std::thread::sleep(Duration::from_millis(900));
    let seen_again = alerts(&read_a);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen_again.len(),
        1,
        "B's run never trips A's rule: {seen_again:?}"
    );
    assert_eq!(seen[0]["labels"]["run"], "run-a");
    assert_eq!(seen[0]["labels"]["project"], "A");
    assert!(alerts(&read_b).is_empty(), "B sees none of A's alerts");
}
