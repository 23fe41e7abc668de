//! [`Client`]: requests, answers, and the typed calls of the API.

use std::io::Write as _;
use std::time::Duration;

use loupe_api::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// How a client connects.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Sent as `Authorization: Bearer …`.
    pub token: Option<String>,
    /// The most a whole request may take (connecting, sending, reading the
    /// answer); none: no limit.
    pub timeout: Option<Duration>,
    /// The most connecting may take.
    pub connect_timeout: Option<Duration>,
}

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

/// How [`Client::send`] puts a body on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As it is.
    Identity,
    /// Gzipped, with `Content-Encoding: gzip` (fast level: bodies of
    /// numbers shrink ~4× at little CPU).
    Gzip,
}

/// A request whose body is JSON text already, sent byte for byte: a spool
/// line, a buffered record, a saved update.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a> {
    pub method: Method,
    /// From the server's root: `/api/v1/runs/r1/metrics`.
    pub path: &'a str,
    pub body: &'a [u8],
    pub encoding: Encoding,
    /// Sent as the `Idempotency-Key` header.
    pub idempotency_key: Option<&'a str>,
}

/// A blocking client of one Loupe server. Cheap to share by reference;
/// connections are pooled and reused.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

/// What a success's body may weigh (a page of 100 000 points with every
/// coordinate is ~6 MB).
const MAX_ANSWER_BYTES: u64 = 1 << 30;
/// What an error's body may weigh.
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// One path segment (a run id, an incident id), percent-encoded.
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query pairs from a query struct: its fields as strings, `None`s left out.
fn pairs(query: &impl Serialize) -> Result<Vec<(String, String)>, Error> {
    let v = serde_json::to_value(query).map_err(|e| Error::Request(e.to_string()))?;
    let serde_json::Value::Object(m) = v else {
        return Err(Error::Request("a query must be a struct".into()));
    };
    Ok(m.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect())
}

impl Client {
    /// A client of the server at `server` (`http://127.0.0.1:7070`).
    pub fn new(server: &str, opts: ClientOptions) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(opts.timeout)
            .timeout_connect(opts.connect_timeout)
            .build()
            .into();
        Client {
            agent,
            base: server.trim_end_matches('/').to_string(),
            auth: opts.token.map(|t| format!("Bearer {t}")),
        }
    }

    /// The server's address, as given.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// Sends a request and reads the answer: the body of a 2xx, or the
    /// [`Error`] it came to.
    fn exchange(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<(&[u8], Encoding)>,
        idempotency_key: Option<&str>,
    ) -> Result<Vec<u8>, Error> {
        let url = format!("{}{path}", self.base);
        let gz;
        let body = match body {
            Some((b, Encoding::Gzip)) => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(b.len() / 4 + 64),
                    flate2::Compression::fast(),
                );
                gz = enc
                    .write_all(b)
                    .and_then(|_| enc.finish())
                    .map_err(|e| Error::Request(format!("gzip: {e}")))?;
                Some((&gz[..], Encoding::Gzip))
            }
            other => other,
        };
        macro_rules! prepare {
            ($rb:expr) => {{
                let mut rb = $rb;
                for (k, v) in query {
                    rb = rb.query(k, v);
                }
                if let Some(a) = &self.auth {
                    rb = rb.header("Authorization", a);
                }
                if let Some(k) = idempotency_key {
                    rb = rb.header("Idempotency-Key", k);
                }
                rb
            }};
        }
        let sent = match method {
            Method::Get => prepare!(self.agent.get(&url)).call(),
            Method::Delete => prepare!(self.agent.delete(&url)).call(),
            Method::Post | Method::Patch => {
                let rb = match method {
                    Method::Post => self.agent.post(&url),
                    _ => self.agent.patch(&url),
                };
                let mut rb = prepare!(rb).header("Content-Type", "application/json");
                let bytes = match body {
                    Some((b, enc)) => {
                        if enc == Encoding::Gzip {
                            rb = rb.header("Content-Encoding", "gzip");
                        }
                        b
                    }
                    None => &b""[..],
                };
                rb.send(bytes)
            }
        };
        let mut resp = sent.map_err(|e| Error::Unreachable {
            server: self.base.clone(),
            why: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return resp
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_to_vec()
                .map_err(|e| Error::Unreachable {
                    server: self.base.clone(),
                    why: format!("reading the answer: {e}"),
                });
        }
        // Read the refusal whole (up to a limit), so the connection is reused.
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ERROR_BYTES)
            .read_to_string()
            .unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => Error::Refused {
                status,
                code: b.error.code,
                message: b.error.message,
            },
            Err(_) => Error::Refused {
                status,
                code: String::new(),
                message: text.trim().chars().take(300).collect(),
            },
        })
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::NotLoupe {
            server: self.base.clone(),
            status: 200,
            why: e.to_string(),
        })
    }

    /// Sends a body that is JSON text already; the answer's body on a 2xx.
    pub fn send(&self, raw: Raw<'_>) -> Result<Vec<u8>, Error> {
        self.exchange(
            raw.method,
            raw.path,
            &[],
            Some((raw.body, raw.encoding)),
            raw.idempotency_key,
        )
    }

    /// `GET path?query` read as `T`. `query` is a query struct of
    /// `loupe-api` (or `()` for none).
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &impl Serialize) -> Result<T, Error> {
        let q = match serde_json::to_value(query) {
            Ok(serde_json::Value::Null) => Vec::new(),
            _ => pairs(query)?,
        };
        self.get_with(path, &q)
    }

    /// `GET path` with query pairs given one by one (`label.host=n1`).
    pub fn get_with<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T, Error> {
        let bytes = self.exchange(Method::Get, path, query, None, None)?;
        self.decode(&bytes)
    }

    /// A JSON body to `path`, the answer read as `T`.
    pub fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Request(e.to_string()))?;
        let answer = self.exchange(method, path, &[], Some((&bytes, Encoding::Identity)), None)?;
        self.decode(&answer)
    }

    fn delete(&self, path: &str) -> Result<(), Error> {
        self.exchange(Method::Delete, path, &[], None, None)
            .map(|_| ())
    }

    // The API, call by call.

    /// `GET /healthz`.
    pub fn health(&self) -> Result<ServerHealth, Error> {
        self.get("/healthz", &())
    }

    /// `GET /api/v1/projects`.
    pub fn projects(&self) -> Result<ProjectList, Error> {
        self.get("/api/v1/projects", &())
    }

    /// `POST /api/v1/runs`: creates the run, or resumes it.
    pub fn create_run(&self, req: &CreateRun) -> Result<Run, Error> {
        self.send_json(Method::Post, "/api/v1/runs", req)
    }

    /// `GET /api/v1/runs`.
    pub fn list_runs(&self, q: &RunListQuery) -> Result<RunPage, Error> {
        self.get("/api/v1/runs", q)
    }

    /// `GET /api/v1/runs/{id}`.
    pub fn run(&self, id: &str) -> Result<Run, Error> {
        self.get(&format!("/api/v1/runs/{}", seg(id)), &())
    }

    /// `PATCH /api/v1/runs/{id}`.
    pub fn patch_run(&self, id: &str, patch: &PatchRun) -> Result<Run, Error> {
        self.send_json(Method::Patch, &format!("/api/v1/runs/{}", seg(id)), patch)
    }

    /// `DELETE /api/v1/runs/{id}` (admin).
    pub fn delete_run(&self, id: &str) -> Result<(), Error> {
        self.delete(&format!("/api/v1/runs/{}", seg(id)))
    }

    /// `POST /api/v1/runs/{id}/metrics`, gzipped.
    pub fn post_run_metrics(&self, id: &str, batch: &MetricsBatch) -> Result<Accepted, Error> {
        self.post_gzip(&format!("/api/v1/runs/{}/metrics", seg(id)), batch, None)
    }

    /// `POST /api/v1/metrics?project=…`: series outside runs, gzipped.
    pub fn post_metrics(
        &self,
        project: Option<&str>,
        batch: &MetricsBatch,
    ) -> Result<Accepted, Error> {
        let path = match project {
            Some(p) => format!("/api/v1/metrics?project={}", seg(p)),
            None => "/api/v1/metrics".to_string(),
        };
        self.post_gzip(&path, batch, None)
    }

    /// `POST /api/v1/runs/{id}/logs`, gzipped, stored once per
    /// `idempotency_key`.
    pub fn post_logs(
        &self,
        id: &str,
        batch: &LogBatch,
        idempotency_key: Option<&str>,
    ) -> Result<Accepted, Error> {
        self.post_gzip(
            &format!("/api/v1/runs/{}/logs", seg(id)),
            batch,
            idempotency_key,
        )
    }

    fn post_gzip(
        &self,
        path: &str,
        body: &impl Serialize,
        idempotency_key: Option<&str>,
    ) -> Result<Accepted, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Request(e.to_string()))?;
        let answer = self.send(Raw {
            method: Method::Post,
            path,
            body: &bytes,
            encoding: Encoding::Gzip,
            idempotency_key,
        })?;
        self.decode(&answer)
    }

    /// Every series of a run: `GET /api/v1/runs/{id}/series`, following
    /// `next_cursor` page by page.
    pub fn run_series(&self, id: &str) -> Result<SeriesList, Error> {
        let mut all = self.run_series_page(id, &SeriesListQuery::default())?;
        let mut cursor = all.next_cursor.take();
        while let Some(c) = cursor {
            let q = SeriesListQuery {
                limit: None,
                cursor: Some(c),
            };
            let mut page = self.run_series_page(id, &q)?;
            all.series.append(&mut page.series);
            cursor = page.next_cursor;
        }
        Ok(all)
    }

    /// One page of a run's series: `GET /api/v1/runs/{id}/series`.
    pub fn run_series_page(&self, id: &str, q: &SeriesListQuery) -> Result<SeriesList, Error> {
        self.get(&format!("/api/v1/runs/{}/series", seg(id)), q)
    }

    /// `GET /api/v1/runs/{id}/series/data`.
    pub fn series_data(&self, id: &str, q: &DataQuery) -> Result<SeriesData, Error> {
        self.get(&format!("/api/v1/runs/{}/series/data", seg(id)), q)
    }

    /// `GET /api/v1/runs/{id}/logs`.
    pub fn logs(&self, id: &str, q: &LogQuery) -> Result<LogPage, Error> {
        self.get(&format!("/api/v1/runs/{}/logs", seg(id)), q)
    }

    /// `GET /api/v1/incidents`.
    pub fn incidents(&self, q: &IncidentQuery) -> Result<IncidentPage, Error> {
        self.get("/api/v1/incidents", q)
    }

    /// `GET /api/v1/runs/{id}/incidents`.
    pub fn run_incidents(&self, id: &str, q: &IncidentQuery) -> Result<IncidentPage, Error> {
        self.get(&format!("/api/v1/runs/{}/incidents", seg(id)), q)
    }

    /// `GET /api/v1/incidents/{id}`.
    pub fn incident(&self, id: &str) -> Result<Incident, Error> {
        self.get(&format!("/api/v1/incidents/{}", seg(id)), &())
    }

    /// `GET /api/v1/runs/{id}/health`.
    pub fn run_health(&self, id: &str) -> Result<RunHealth, Error> {
        self.get(&format!("/api/v1/runs/{}/health", seg(id)), &())
    }

    /// `GET /api/v1/alerts`.
    pub fn alerts(&self) -> Result<AlertsView, Error> {
        self.get("/api/v1/alerts", &())
    }

    /// `GET /api/v1/silences`.
    pub fn silences(&self) -> Result<SilenceList, Error> {
        self.get("/api/v1/silences", &())
    }

    /// `POST /api/v1/silences` (admin).
    pub fn create_silence(&self, s: &NewSilence) -> Result<Silence, Error> {
        self.send_json(Method::Post, "/api/v1/silences", s)
    }

    /// `DELETE /api/v1/silences/{id}` (admin).
    pub fn delete_silence(&self, id: &str) -> Result<(), Error> {
        self.delete(&format!("/api/v1/silences/{}", seg(id)))
    }
}
