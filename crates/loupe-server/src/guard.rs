//! What keeps a browser page from another site out: the `Host`, `Origin`
//! and `Content-Type` checks every request passes before any route sees it
//! (the way local developer servers such as Vite, webpack-dev-server and
//! Jupyter guard against the same attacks).
//!
//! - **`Host`** (every request, reads included): an IP literal, `localhost`
//!   (or a `*.localhost` name), or a name the operator configured
//!   (`--allowed-host`). A DNS-rebinding page reaches the server under the
//!   attacker's own name, so its `Host` is that name and is refused. The port
//!   is not compared: SSH tunnels and proxies change it, and rebinding needs
//!   a name, never a port.
//! - **`Origin`** (state-changing methods): absent (not a browser), the
//!   origin the request was addressed to (same-origin: its host and port are
//!   the `Host` header's), or one the operator configured
//!   (`--allowed-origin`). Anything else, `null` included, is refused.
//! - **`Content-Type`** (state-changing methods): a type the API reads
//!   ([`API_CONTENT_TYPES`]), or an `X-Loupe-Client` or `Authorization`
//!   header (line protocol arrives as `text/plain` with a token header). A browser sends a
//!   cross-site request without asking first (no CORS pre-flight) only with
//!   `text/plain`, a form type or no type at all, so those are refused. A
//!   `PUT`, `PATCH` or `DELETE` without a body passes: a browser must ask
//!   first before sending any of these methods to another origin, and Loupe
//!   never says yes unless configured.
//!
//! CORS headers are sent only for the origins configured with
//! `--allowed-origin`, never `*`.
//!
//! Every refusal is counted in `/metrics` by its error code:
//! `loupe_http_refused_requests_total{reason="host_not_allowed"}` (and
//! `origin_not_allowed`, `unsupported_media_type`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::error::ApiError;

/// Media types the API reads in a request body. A decoder for a new
/// protocol adds its type here (Prometheus remote write and OTLP send
/// `application/x-protobuf`).
pub const API_CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "application/jsonl",
    "application/x-protobuf",
    "application/protobuf",
];

/// The header a client that sends another type may use instead
/// (a browser cannot add it to a cross-site request without asking first).
pub const CLIENT_HEADER: &str = "x-loupe-client";

/// Which hosts and origins the server answers.
#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    /// Names (besides IP literals and `localhost`) the server may be reached
    /// by: `loupe.example.com`, `.example.com` for it and its subdomains, or
    /// `*` for any (turns the `Host` check off).
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://dash.example.com`) whose pages may call the API:
    /// their state-changing requests pass and they get CORS headers.
    pub allowed_origins: Vec<String>,
}

impl GuardConfig {
    /// Normalises the configured names and origins (lower case, no trailing
    /// slash or dot); an origin that is not `scheme://host[:port]` is an
    /// error naming it.
    pub fn normalized(mut self) -> Result<Self, String> {
        for h in &mut self.allowed_hosts {
            *h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        }
        self.allowed_hosts.retain(|h| !h.is_empty());
        let mut origins = Vec::new();
        for o in &self.allowed_origins {
            let parsed = Origin::parse(o.trim().trim_end_matches('/')).ok_or_else(|| {
                format!("allowed origin {o:?}: expected scheme://host[:port], e.g. https://dash.example.com")
            })?;
            origins.push(parsed.to_string());
        }
        self.allowed_origins = origins;
        Ok(self)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        if host == "localhost" || host.ends_with(".localhost") || is_ip_literal(host) {
            return true;
        }
        self.allowed_hosts.iter().any(|a| {
            a == "*"
                || a == host
                || (a.starts_with('.') && (host.ends_with(a.as_str()) || host == &a[1..]))
        })
    }

    fn origin_configured(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

/// Why the guard refused a request: the error code of its answer, and the
/// `reason` label of its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    HostNotAllowed,
    OriginNotAllowed,
    UnsupportedMediaType,
}

impl Refusal {
    pub const ALL: [Refusal; 3] = [
        Refusal::HostNotAllowed,
        Refusal::OriginNotAllowed,
        Refusal::UnsupportedMediaType,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Refusal::HostNotAllowed => "host_not_allowed",
            Refusal::OriginNotAllowed => "origin_not_allowed",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
        }
    }
}

/// Refused requests by reason.
type RefusalCounts = Family<[(&'static str, &'static str); 1], Counter>;

/// The middleware's state: the configuration, its warnings' pacing and its
/// refusal counts.
pub struct Guard {
    cfg: GuardConfig,
    hosts_refused: Paced,
    origins_refused: Paced,
    refused: RefusalCounts,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Self {
        let refused = RefusalCounts::default();
        // Every reason has a series from the start, so a rate over it is
        // defined before the first refusal.
        for r in Refusal::ALL {
            let _ = refused.get_or_create(&[("reason", r.code())]);
        }
        Guard {
            cfg,
            hosts_refused: Paced::default(),
            origins_refused: Paced::default(),
            refused,
        }
    }

    /// Registers `loupe_http_refused_requests_total{reason}`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "loupe_http_refused_requests",
            "Requests the guard refused before any route, by reason (the answer's error code)",
            self.refused.clone(),
        );
    }

    fn count(&self, why: Refusal) {
        self.refused.get_or_create(&[("reason", why.code())]).inc();
    }
}

/// Refusals are logged one by one at `debug`; a warning says so at most
/// once per [`WARN_EVERY`] (with how many since the last), so a page that
/// hammers the server, or a fleet of agents missing an `--allowed-host`,
/// cannot flood the log.
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Paced(parking_lot::Mutex<(Option<Instant>, u64)>);

impl Paced {
    /// `Some(count since the last warning)` when a warning is due.
    fn due(&self) -> Option<u64> {
        let mut g = self.0.lock();
        g.1 += 1;
        if g.0.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return None;
        }
        g.0 = Some(Instant::now());
        Some(std::mem::take(&mut g.1))
    }
}

/// The middleware: refuses what fails a check with the API's JSON error, and
/// answers CORS for configured origins.
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let cfg = &guard.cfg;
    let headers = req.headers();
    let authority = request_authority(&req);
    if let Some(auth) = &authority
        && !cfg.host_allowed(&auth.host)
    {
        tracing::debug!(host = %auth.raw, path = %req.uri().path(), "refused a request for a host this server does not answer");
        guard.count(Refusal::HostNotAllowed);
        if let Some(n) = guard.hosts_refused.due() {
            tracing::warn!(host = %auth.raw, refused = n, "refused a request for a host this server does not answer (a DNS-rebinding page, or a name missing from --allowed-host)");
        }
        return ApiError::new(
            StatusCode::FORBIDDEN,
            Refusal::HostNotAllowed.code(),
            format!(
                "Host {:?} is not a name of this server: only IP addresses, localhost and the \
                 names given with --allowed-host are answered (this stops DNS-rebinding pages)",
                auth.raw
            ),
        )
        .into_response();
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let configured = origin
        .as_deref()
        .and_then(Origin::parse)
        .map(|o| o.to_string())
        .filter(|o| cfg.origin_configured(o));

    // A CORS pre-flight from a configured origin.
    if req.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        && let Some(o) = &configured
    {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        cors_headers(h, o);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "authorization, content-type, content-encoding, idempotency-key, x-loupe-client",
            ),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return resp;
    }

    if changes_state(req.method()) && !is_read_only_post(req.method(), req.uri().path()) {
        if let Some(o) = &origin
            && configured.is_none()
            && !same_origin(o, authority.as_ref())
        {
            tracing::debug!(origin = %o, method = %req.method(), path = %req.uri().path(), "refused a state-changing request from another origin");
            guard.count(Refusal::OriginNotAllowed);
            if let Some(n) = guard.origins_refused.due() {
                tracing::warn!(origin = %o, refused = n, "refused a state-changing request from another origin (a page from another site, or an origin missing from --allowed-origin)");
            }
            return ApiError::new(
                StatusCode::FORBIDDEN,
                Refusal::OriginNotAllowed.code(),
                format!(
                    "Origin {o:?} is not this server: a page from another site may not change \
                     anything here (an operator may allow it with --allowed-origin)"
                ),
            )
            .into_response();
        }
        if let Err(e) = content_type_ok(req.method(), headers) {
            guard.count(Refusal::UnsupportedMediaType);
            return e.into_response();
        }
    }

    let mut resp = next.run(req).await;
    if let Some(o) = &configured {
        cors_headers(resp.headers_mut(), o);
    }
    resp
}

fn cors_headers(h: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("origin"));
}

/// Prometheus' query API takes its parameters as a form POST (Grafana and
/// promtool send one for long queries): such a POST reads and changes
/// nothing, and a page from another site cannot read the answer (no CORS
/// header is sent to it), so the cross-site checks do not apply.
fn is_read_only_post(m: &Method, path: &str) -> bool {
    *m == Method::POST
        && matches!(
            path,
            "/api/v1/query" | "/api/v1/query_range" | "/api/v1/series" | "/api/v1/labels"
        )
}

/// Every method but the safe ones may change something.
fn changes_state(m: &Method) -> bool {
    !matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The media type without parameters, in lower case.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?;
    let s = String::from_utf8_lossy(v.as_bytes());
    let t = s
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (!t.is_empty()).then_some(t)
}

fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().map_or(true, |s| s.trim() != "0"),
        None => false,
    }
}

fn content_type_ok(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    // A browser adds neither header to a cross-site request without asking
    // first; Loupe never asks for Basic credentials, so none are cached.
    let carries = |name| {
        headers
            .get(name)
            .is_some_and(|v: &HeaderValue| !v.as_bytes().is_empty())
    };
    if carries(CLIENT_HEADER) || carries(header::AUTHORIZATION.as_str()) {
        return Ok(());
    }
    let ty = media_type(headers);
    if let Some(t) = &ty
        && (API_CONTENT_TYPES.contains(&t.as_str()) || t.ends_with("+json"))
    {
        return Ok(());
    }
    if *method != Method::POST && !has_body(headers) {
        return Ok(());
    }
    let sent = match &ty {
        Some(t) => format!("this request has {t:?}"),
        None => "this request has none".to_string(),
    };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Refusal::UnsupportedMediaType.code(),
        format!(
            "{method} needs Content-Type: application/json ({sent}); text/plain, form types and \
             none are what any web page can send here, so they are refused. A client that sends \
             another type adds an X-Loupe-Client header"
        ),
    ))
}

/// The host the request was addressed to: `Host`, or the URI's authority
/// (HTTP/2, absolute-form requests). `None` for an HTTP/1.0 request without
/// one, which no browser sends.
fn request_authority(req: &Request) -> Option<Authority> {
    let raw = match req.headers().get(header::HOST) {
        Some(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        None => req.uri().authority()?.as_str().to_string(),
    };
    Some(Authority::parse(&raw))
}

/// A `host[:port]` as sent, split.
struct Authority {
    raw: String,
    /// Lower case; an IPv6 address keeps its brackets.
    host: String,
    port: Option<u16>,
}

impl Authority {
    fn parse(raw: &str) -> Authority {
        let lower = raw.trim().to_ascii_lowercase();
        let (host, port) = split_host_port(&lower);
        Authority {
            raw: raw.to_string(),
            host: host.to_string(),
            port,
        }
    }
}

/// `host:port` → (`host`, port); `[v6]:port` keeps the brackets. A port
/// that is not a number leaves the whole text as the host (and so it is
/// refused unless configured as it is).
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => (&s[..=end], s[end + 1..].strip_prefix(':')),
            None => (s, None),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) => (host, Some(n)),
            Err(_) => (s, None),
        },
        None => (host, None),
    }
}

fn is_ip_literal(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// A parsed `Origin`: `scheme://host[:port]`.
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(s: &str) -> Option<Origin> {
        let lower = s.trim().to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://")?;
        if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
            return None;
        }
        let (host, port) = split_host_port(rest);
        if host.contains(':') && !host.starts_with('[') {
            return None;
        }
        Some(Origin {
            scheme: scheme.to_string(),
            host: host.to_string(),
            port,
        })
    }

    fn default_port(&self) -> u16 {
        if self.scheme == "https" { 443 } else { 80 }
    }

    fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.default_port())
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(p) if p != self.default_port() => write!(f, ":{p}"),
            _ => Ok(()),
        }
    }
}

/// The page's origin is the one the request was addressed to. A `Host`
/// without a port was addressed to the scheme's default port.
fn same_origin(origin: &str, authority: Option<&Authority>) -> bool {
    let (Some(o), Some(a)) = (Origin::parse(origin), authority) else {
        return false;
    };
    o.host == a.host && o.effective_port() == a.port.unwrap_or(o.default_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hosts: &[&str]) -> GuardConfig {
        GuardConfig {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            allowed_origins: vec![],
        }
        .normalized()
        .unwrap()
    }

    #[test]
    fn hosts() {
        let c = cfg(&["Loupe.Example.com.", ".corp.internal"]);
        for ok in [
            "127.0.0.1",
            "10.1.2.3",
            "[::1]",
            "localhost",
            "app.localhost",
            "loupe.example.com",
            "gpu1.corp.internal",
            "corp.internal",
        ] {
            assert!(c.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "example.com",
            "[::1",
            "xcorp.internal",
        ] {
            assert!(!c.host_allowed(bad), "{bad}");
        }
        assert!(cfg(&["*"]).host_allowed("anything.example"));
    }

    #[test]
    fn authorities() {
        let a = Authority::parse("[::1]:7070");
        assert_eq!((a.host.as_str(), a.port), ("[::1]", Some(7070)));
        let a = Authority::parse("LocalHost:80");
        assert_eq!((a.host.as_str(), a.port), ("localhost", Some(80)));
        let a = Authority::parse("evil.example:x");
        assert_eq!((a.host.as_str(), a.port), ("evil.example:x", None));
    }

    #[test]
    fn origins() {
        let a = Authority::parse("127.0.0.1:7070");
        assert!(same_origin("http://127.0.0.1:7070", Some(&a)));
        assert!(!same_origin("http://127.0.0.1:8000", Some(&a)));
        assert!(!same_origin("http://localhost:7070", Some(&a)));
        assert!(!same_origin("null", Some(&a)));
        let a = Authority::parse("loupe.example.com");
        assert!(same_origin("https://loupe.example.com", Some(&a)));
        assert!(same_origin("http://loupe.example.com:80", Some(&a)));
        assert!(!same_origin("https://evil.example", Some(&a)));
        assert!(!same_origin("http://127.0.0.1:7070", None));
        let c = GuardConfig {
            allowed_hosts: vec![],
            allowed_origins: vec!["HTTPS://Dash.example.com:443/".into()],
        }
        .normalized()
        .unwrap();
        assert_eq!(c.allowed_origins, ["https://dash.example.com"]);
        assert!(
            GuardConfig {
                allowed_hosts: vec![],
                allowed_origins: vec!["dash.example.com".into()],
            }
            .normalized()
            .is_err()
        );
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(content_type_ok(&Method::POST, &h).is_err());
        assert!(content_type_ok(&Method::DELETE, &h).is_ok());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        assert!(content_type_ok(&Method::DELETE, &h).is_err());
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
            "application/x-protobuf",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ok).unwrap());
            assert!(content_type_ok(&Method::POST, &h).is_ok(), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(bad).unwrap());
            assert!(content_type_ok(&Method::POST, &h).is_err(), "{bad}");
        }
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Token abc"));
        assert!(content_type_ok(&Method::POST, &h).is_ok());
        h.remove(header::AUTHORIZATION);
        h.insert(CLIENT_HEADER, HeaderValue::from_static("curl"));
        assert!(content_type_ok(&Method::POST, &h).is_ok());
    }
}
