//! Prometheus' HTTP query API, so Grafana's Prometheus data source,
//! `promtool query` and other Prometheus clients read Loupe unchanged:
//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`,
//! `/api/v1/labels`, `/api/v1/label/{name}/values`, `/api/v1/metadata`
//! and `/api/v1/status/buildinfo`.
//!
//! Each takes GET with a query string or POST with a form body (what
//! Grafana and promtool send), and answers in Prometheus' JSON:
//! `{"status":"success","data":…}` or
//! `{"status":"error","errorType":"bad_data","error":"…"}`. The project
//! queried is the `project` parameter (Grafana's "custom query
//! parameters"), else the token's, else `default`. Evaluation is
//! `loupe_promql`'s over [`ProjectSeries`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_meta::{MAX_RUN_LIMIT, RunQuery};
use loupe_model::Role;
use loupe_promql::{Labels, Value};
use serde_json::{Map, json};
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{blocking, meta_err, raw_body};
use crate::promql_source::{ProjectSeries, RunRef};
use crate::state::SharedState;

/// The parameters every endpoint reads (each reads the ones it needs).
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromParams {
    /// The PromQL expression.
    pub query: Option<String>,
    /// Evaluation time (instant query): RFC 3339 or Unix seconds; default now.
    pub time: Option<String>,
    /// Range start: RFC 3339 or Unix seconds.
    pub start: Option<String>,
    /// Range end: RFC 3339 or Unix seconds.
    pub end: Option<String>,
    /// Range step: float seconds or a duration (`15s`, `1m`).
    pub step: Option<String>,
    /// The Loupe project to query (default: the token's, else `default`).
    pub project: Option<String>,
    /// Series selectors (`/api/v1/series`, `/labels`, `/label/{name}/values`); repeatable.
    #[param(rename = "match[]")]
    pub matches: Vec<String>,
}

impl PromParams {
    /// A POST's parameters: the query string and the form body, read under
    /// the server's body limit (the body budget is a layer around every route).
    fn from_form(
        st: &SharedState,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<PromParams, PromError> {
        let body = raw_body(st, body)?;
        Ok(PromParams::read(query, headers, &body))
    }

    /// From the query string and, for a form POST, the body.
    fn read(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> PromParams {
        let mut p = PromParams::default();
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        let mut pairs: Vec<(String, String)> =
            query.map(|q| url_pairs(q.as_bytes())).unwrap_or_default();
        if form {
            pairs.extend(url_pairs(body));
        }
        for (k, v) in pairs {
            match k.as_str() {
                "query" => p.query = Some(v),
                "time" => p.time = Some(v),
                "start" => p.start = Some(v),
                "end" => p.end = Some(v),
                "step" => p.step = Some(v),
                "project" => p.project = Some(v),
                "match[]" => p.matches.push(v),
                _ => {}
            }
        }
        p
    }
}

fn url_pairs(s: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(s)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A failure in Prometheus' shape.
pub struct PromError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl PromError {
    fn bad_data(message: impl Into<String>) -> Self {
        PromError {
            status: StatusCode::BAD_REQUEST,
            error_type: "bad_data",
            message: message.into(),
        }
    }
}

impl From<ApiError> for PromError {
    fn from(e: ApiError) -> Self {
        let error_type = match e.status {
            s if s.is_server_error() => "internal",
            StatusCode::NOT_FOUND => "not_found",
            _ => "bad_data",
        };
        PromError {
            status: e.status,
            error_type,
            message: e.message,
        }
    }
}

impl From<loupe_promql::Error> for PromError {
    fn from(e: loupe_promql::Error) -> Self {
        use loupe_promql::ErrorType;
        let t = e.error_type();
        let status = match t {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        PromError {
            status,
            error_type: t.as_str(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.error_type, "error": self.message});
        (self.status, Json(body)).into_response()
    }
}

type PromResult = Result<Json<serde_json::Value>, PromError>;

fn success(data: serde_json::Value) -> Json<serde_json::Value> {
    Json(json!({"status": "success", "data": data}))
}

/// A time parameter: Unix seconds (float) or RFC 3339, in Unix ms.
fn parse_time(name: &str, s: &str) -> Result<i64, PromError> {
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return Ok((f * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            PromError::bad_data(format!(
                "invalid parameter \"{name}\": cannot parse \"{s}\" to a valid timestamp"
            ))
        })
}

/// `step`: float seconds or a duration, in ms.
fn parse_step(s: &str) -> Result<i64, PromError> {
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        return Ok((f * 1000.0).round() as i64);
    }
    loupe_promql::parse_duration_ms(s).map_err(|_| {
        PromError::bad_data(format!(
            "invalid parameter \"step\": cannot parse \"{s}\" to a valid duration"
        ))
    })
}

fn now_ms() -> i64 {
    loupe_model::clock::now_ns().div_euclid(1_000_000)
}

/// Runs `f` over the project's series off the async runtime.
async fn with_project<T: Send + 'static>(
    st: &SharedState,
    who: Result<Principal, ApiError>,
    project: Option<String>,
    f: impl FnOnce(&ProjectSeries<'_>) -> Result<T, PromError> + Send + 'static,
) -> Result<T, PromError> {
    let who = who?;
    who.require(Role::Read)?;
    let project = who.read_project(project.as_deref().filter(|p| !p.is_empty()))?;
    let st = st.clone();

    blocking(move || {
        let runs = project_runs(&st, &project)?;
        let source = ProjectSeries {
            tsdb: &st.tsdb,
            project,
            runs,
        };
        Ok(f(&source))
    })
    .await?
}

/// Every run of the project, paged through the metadata store.
fn project_runs(st: &SharedState, project: &str) -> Result<Vec<RunRef>, ApiError> {
    let mut runs = Vec::new();
    let mut cursor = None;
    loop {
        let page = st
            .meta
            .list_runs(RunQuery {
                project: Some(project.to_string()),
                limit: Some(MAX_RUN_LIMIT),
                cursor,
                summary_series: Some(Vec::new()),
                ..RunQuery::default()
            })
            .map_err(meta_err)?;
        runs.extend(page.runs.into_iter().map(|r| RunRef {
            id: r.id,
            name: r.name,
        }));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(runs),
        }
    }
}

fn labels_json(l: &Labels) -> serde_json::Value {
    let mut m = Map::new();
    for (k, v) in l.iter() {
        m.insert(k.to_string(), json!(v));
    }
    serde_json::Value::Object(m)
}

/// A sample value as Prometheus writes it (Go's shortest `'f'` format).
fn value_str(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn point(t: i64, v: f64) -> serde_json::Value {
    json!([t as f64 / 1000.0, value_str(v)])
}

fn value_json(v: Value, t: i64) -> serde_json::Value {
    match v {
        Value::Scalar(x) => json!({"resultType": "scalar", "result": point(t, x)}),
        Value::String(s) => json!({"resultType": "string", "result": [t as f64 / 1000.0, s]}),
        Value::Vector(samples) => json!({"resultType": "vector", "result": samples.iter()
            .map(|s| json!({"metric": labels_json(&s.labels), "value": point(t, s.v)})).collect::<Vec<_>>()}),
        Value::Matrix(series) => json!({"resultType": "matrix", "result": series.iter()
            .map(|s| json!({"metric": labels_json(&s.labels),
                "values": s.points.iter().map(|(t, v)| point(*t, *v)).collect::<Vec<_>>()}))
            .collect::<Vec<_>>()}),
    }
}

#[utoipa::path(get, path = "/api/v1/query", params(PromParams),
    responses((status = 200, description = "`{\"status\":\"success\",\"data\":{\"resultType\",\"result\"}}`"),
        (status = 400, description = "`bad_data`: a malformed query or parameter"),
        (status = 422, description = "`execution`: evaluation refused the data (many-to-many matching, too many samples)"),
        (status = 503, description = "`timeout`: the query ran past its time")))]
pub async fn query_get(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    query(st, who, PromParams::read(q.as_deref(), &headers, &[]))
        .await
        .into_response()
}

#[utoipa::path(post, path = "/api/v1/query",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The GET parameters as a form"),
    responses((status = 200, description = "As GET"), (status = 400, description = "`bad_data`"),
        (status = 422, description = "`execution`"), (status = 503, description = "`timeout`")))]
pub async fn query_post(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let p = match PromParams::from_form(&st, q.as_deref(), &headers, body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    query(st, who, p).await.into_response()
}

async fn query(st: SharedState, who: Result<Principal, ApiError>, p: PromParams) -> PromResult {
    let q = p
        .query
        .filter(|q| !q.is_empty())
        .ok_or_else(|| PromError::bad_data("invalid parameter \"query\": query is empty"))?;
    let t = match &p.time {
        Some(s) if !s.is_empty() => parse_time("time", s)?,
        _ => now_ms(),
    };
    let engine = st.promql.clone();
    let data = with_project(&st, who, p.project, move |src| {
        let v = engine.instant(src, &q, t)?;
        Ok(value_json(v, t))
    })
    .await?;
    Ok(success(data))
}

#[utoipa::path(get, path = "/api/v1/query_range", params(PromParams),
    responses((status = 200, description = "`{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\"}}`"),
        (status = 400, description = "`bad_data`"), (status = 422, description = "`execution`"),
        (status = 503, description = "`timeout`")))]
pub async fn query_range_get(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    query_range(st, who, PromParams::read(q.as_deref(), &headers, &[]))
        .await
        .into_response()
}

#[utoipa::path(post, path = "/api/v1/query_range",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The GET parameters as a form"),
    responses((status = 200, description = "As GET"), (status = 400, description = "`bad_data`"),
        (status = 422, description = "`execution`"), (status = 503, description = "`timeout`")))]
pub async fn query_range_post(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let p = match PromParams::from_form(&st, q.as_deref(), &headers, body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    query_range(st, who, p).await.into_response()
}

async fn query_range(
    st: SharedState,
    who: Result<Principal, ApiError>,
    p: PromParams,
) -> PromResult {
    let q = p
        .query
        .filter(|q| !q.is_empty())
        .ok_or_else(|| PromError::bad_data("invalid parameter \"query\": query is empty"))?;
    let need = |name: &str, v: &Option<String>| {
        v.clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| PromError::bad_data(format!("invalid parameter \"{name}\": missing")))
    };
    let start = parse_time("start", &need("start", &p.start)?)?;
    let end = parse_time("end", &need("end", &p.end)?)?;
    let step = parse_step(&need("step", &p.step)?)?;
    let engine = st.promql.clone();
    let data = with_project(&st, who, p.project, move |src| {
        let v = engine.range(src, &q, start, end, step)?;
        Ok(value_json(v, end))
    })
    .await?;
    Ok(success(data))
}

/// The label sets of the series `match[]` selects (every series when none is given).
fn matched_labels(src: &ProjectSeries<'_>, matches: &[String]) -> Result<Vec<Labels>, PromError> {
    let mut groups = Vec::new();
    for m in matches {
        groups.extend(loupe_promql::selector_matchers(m)?);
    }
    if groups.is_empty() {
        groups.push(Vec::new());
    }
    let mut out: Vec<Labels> = groups
        .iter()
        .flat_map(|g| src.keys(g).into_iter().map(|(_, l)| l))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[utoipa::path(get, path = "/api/v1/series", params(PromParams),
    responses((status = 200, description = "`data`: the label sets of the series `match[]` selects"),
        (status = 400, description = "`bad_data`: no or a malformed `match[]`")))]
pub async fn series_get(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    series(st, who, PromParams::read(q.as_deref(), &headers, &[]))
        .await
        .into_response()
}

#[utoipa::path(post, path = "/api/v1/series",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The GET parameters as a form"),
    responses((status = 200, description = "As GET"), (status = 400, description = "`bad_data`")))]
pub async fn series_post(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let p = match PromParams::from_form(&st, q.as_deref(), &headers, body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    series(st, who, p).await.into_response()
}

async fn series(st: SharedState, who: Result<Principal, ApiError>, p: PromParams) -> PromResult {
    if p.matches.is_empty() {
        return Err(PromError::bad_data("no match[] parameter provided"));
    }
    let matches = p.matches;
    let data = with_project(&st, who, p.project, move |src| {
        let sets = matched_labels(src, &matches)?;
        Ok(serde_json::Value::Array(
            sets.iter().map(labels_json).collect(),
        ))
    })
    .await?;
    Ok(success(data))
}

#[utoipa::path(get, path = "/api/v1/labels", params(PromParams),
    responses((status = 200, description = "`data`: label names, sorted"), (status = 400, description = "`bad_data`")))]
pub async fn labels_get(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    label_names(st, who, PromParams::read(q.as_deref(), &headers, &[]))
        .await
        .into_response()
}

#[utoipa::path(post, path = "/api/v1/labels",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The GET parameters as a form"),
    responses((status = 200, description = "As GET"), (status = 400, description = "`bad_data`")))]
pub async fn labels_post(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let p = match PromParams::from_form(&st, q.as_deref(), &headers, body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    label_names(st, who, p).await.into_response()
}

async fn label_names(
    st: SharedState,
    who: Result<Principal, ApiError>,
    p: PromParams,
) -> PromResult {
    let matches = p.matches;
    let data = with_project(&st, who, p.project, move |src| {
        let mut names: Vec<String> = matched_labels(src, &matches)?
            .iter()
            .flat_map(|l| l.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(json!(names))
    })
    .await?;
    Ok(success(data))
}

#[utoipa::path(get, path = "/api/v1/label/{name}/values", params(("name" = String, Path, description = "The label (`__name__` for metric names)"), PromParams),
    responses((status = 200, description = "`data`: the label's values, sorted"), (status = 400, description = "`bad_data`")))]
pub async fn label_values(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = PromParams::read(q.as_deref(), &headers, &[]);
    let matches = p.matches;
    let result: PromResult = async {
        let data = with_project(&st, who, p.project, move |src| {
            let mut values: Vec<String> = matched_labels(src, &matches)?
                .iter()
                .filter_map(|l| l.get(&name).map(str::to_string))
                .collect();
            values.sort();
            values.dedup();
            Ok(json!(values))
        })
        .await?;
        Ok(success(data))
    }
    .await;
    result.into_response()
}

#[utoipa::path(get, path = "/api/v1/metadata", params(PromParams),
    responses((status = 200, description = "`data`: each metric name with type `unknown` (Loupe keeps no metric types)")))]
pub async fn metadata(
    State(st): State<SharedState>,
    who: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = PromParams::read(q.as_deref(), &headers, &[]);
    let result: PromResult = async {
        let data = with_project(&st, who, p.project, move |src| {
            let mut m = Map::new();
            for l in matched_labels(src, &[])? {
                if let Some(n) = l.get(loupe_promql::METRIC_NAME) {
                    m.entry(n.to_string())
                        .or_insert_with(|| json!([{"type": "unknown", "help": "", "unit": ""}]));
                }
            }
            Ok(serde_json::Value::Object(m))
        })
        .await?;
        Ok(success(data))
    }
    .await;
    result.into_response()
}

/// The Prometheus version whose query API Loupe answers as (Grafana picks
/// its features by it); the comparison test runs against this version.
pub const PROMETHEUS_API_VERSION: &str = "2.42.0";

#[utoipa::path(get, path = "/api/v1/status/buildinfo",
    responses((status = 200, description = "`data.version`: the Prometheus API version answered as")))]
pub async fn buildinfo() -> Json<serde_json::Value> {
    success(json!({
        "version": PROMETHEUS_API_VERSION,
        "revision": concat!("loupe-", env!("CARGO_PKG_VERSION")),
        "branch": "", "buildUser": "", "buildDate": "", "goVersion": "",
    }))
}
