//! Reading a run's series: the list with summaries, and the data, raw or M4.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use loupe_api::{
    DataQuery, ErrorBody, SeriesData, SeriesInfo, SeriesList, SeriesListQuery, XColumn,
};
use loupe_model::label;
use loupe_model::{NO_STEP, Role, SeriesKey, SeriesMatcher};
use loupe_tsdb::XAxis;

use crate::auth::Principal;
use crate::counters::ServerMetrics;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::http::{blocking, check_visible};
use crate::state::SharedState;

mod page;

use page::{PageRequest, cursor_after};

fn opt_step(s: i64) -> Option<i64> {
    (s != NO_STEP).then_some(s)
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/series", params(SeriesListQuery),
    responses((status = 200, body = SeriesList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_series(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SeriesListQuery>,
) -> ApiResult<Json<SeriesList>> {
    who.require(Role::Read)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    check_visible(&st, &who, &id).await?;
    let m = SeriesMatcher::any().label_eq(label::RUN, &id);
    let s2 = st.clone();
    blocking(move || {
        list_page(&s2, &m, page, |key, s| {
            series_entry(key, s, (s.first_time, s.last_time))
        })
    })
    .await
    .map(Json)
}

/// One page of the series `m` matches, each with its summary.
fn list_page(
    st: &SharedState,
    m: &SeriesMatcher,
    page: PageRequest,
    entry: impl Fn(&SeriesKey, &loupe_tsdb::Summary) -> SeriesInfo,
) -> ApiResult<SeriesList> {
    let (infos, more) = st.tsdb.series_page(m, page.after.as_ref(), page.limit);
    let mut series = Vec::with_capacity(infos.len());
    for info in &infos {
        if let Some(s) = st.tsdb.summary(&info.key).map_err(ApiError::from)? {
            series.push(entry(&info.key, &s));
        }
    }
    // The cursor follows the last key of the page, listed or not (a series
    // without points has no summary and is left out).
    let next_cursor = more
        .then(|| infos.last().map(|i| cursor_after(&i.key)))
        .flatten();
    Ok(SeriesList {
        series,
        next_cursor,
    })
}

/// One series in a listing: its name, point count, step and time extent
/// (`times`, in ns), and last/min/max.
fn series_entry(key: &SeriesKey, s: &loupe_tsdb::Summary, times: (i64, i64)) -> SeriesInfo {
    SeriesInfo {
        name: key.name().to_string(),
        count: s.count,
        first_step: opt_step(s.first_step),
        last_step: opt_step(s.last_step),
        first_time: times.0 as f64 / 1e9,
        last_time: times.1 as f64 / 1e9,
        last: s.last,
        min: s.min,
        max: s.max,
        labels: None,
    }
}

/// Run series are drawn by step; series outside runs have only times.
fn default_axis(key: &SeriesKey) -> &'static str {
    if key.run().is_some() { "step" } else { "time" }
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/series/data", params(DataQuery),
    responses((status = 200, body = SeriesData), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn series_data(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<DataQuery>,
) -> ApiResult<Json<SeriesData>> {
    who.require(Role::Read)?;
    check_visible(&st, &who, &id).await?;
    let key = SeriesKey::for_run(p.name.clone(), &id)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("name: {e}")))?;
    series_data_of(st, key, p).await
}

/// The data of one series: M4 with `width`, raw pages without.
pub async fn series_data_of(
    st: SharedState,
    key: SeriesKey,
    p: DataQuery,
) -> ApiResult<Json<SeriesData>> {
    ServerMetrics::add(&st.metrics.query_requests, 1);
    let axis = match p.x.as_deref().unwrap_or(default_axis(&key)) {
        "step" => XAxis::Step,
        "time" => XAxis::Time,
        other => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("x={other:?}: expected step or time"),
            ));
        }
    };
    let window = Window::of(&p, axis)?;
    let width = p.width;
    let s2 = st.clone();
    let body = blocking(move || match width {
        Some(width) => m4_page(&s2, &key, axis, &window, width),
        None => raw_page(&s2, &key, axis, &window),
    })
    .await?;
    Ok(Json(body))
}

/// What a data request asks for on its x axis: the range, and for raw
/// pages where to resume and how many points.
struct Window {
    from: i64,
    to: i64,
    /// Points at `from` the previous page already returned.
    skip: usize,
    limit: usize,
    /// `skip + limit + 1`: one more than a page, to know whether more follow.
    read_limit: usize,
}

impl Window {
    fn of(p: &DataQuery, axis: XAxis) -> ApiResult<Window> {
        let to_x = |v: f64| -> i64 {
            match axis {
                XAxis::Step => v.round().clamp(i64::MIN as f64 + 1.0, i64::MAX as f64) as i64,
                XAxis::Time => (v * 1e9).round().clamp(i64::MIN as f64, i64::MAX as f64) as i64,
            }
        };
        // NaN would otherwise read as 0 (and ±inf as an end of the axis).
        for (what, v) in [("from", p.from), ("to", p.to)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    format!("{what}: must be a finite number"),
                ));
            }
        }
        let mut from = p.from.map(to_x).unwrap_or(i64::MIN + 1);
        let to = p.to.map(to_x).unwrap_or(i64::MAX);
        // A cursor is `x:skip`: resume at x, past the first `skip` points there
        // (several points can share a time).
        let bad = || ApiError::bad_request("invalid_request", "cursor: not one this server gave");
        let mut skip = 0usize;
        if let Some(c) = &p.cursor {
            let (x, k) = c.split_once(':').ok_or_else(bad)?;
            from = x.parse::<i64>().map_err(|_| bad())?;
            skip = k.parse::<usize>().map_err(|_| bad())?;
        }
        let limit = p.limit.unwrap_or(10_000).clamp(1, 100_000);
        // `skip + limit` must not wrap: a wrapped read limit ends paging early.
        let read_limit = skip.checked_add(limit + 1).ok_or_else(bad)?;
        if from > to {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("from ({from}) is after to ({to})"),
            ));
        }
        Ok(Window {
            from,
            to,
            skip,
            limit,
            read_limit,
        })
    }
}

fn out_x(axis: XAxis, xs: &[i64]) -> XColumn {
    match axis {
        XAxis::Step => XColumn::Steps(xs.to_vec()),
        XAxis::Time => XColumn::Seconds(xs.iter().map(|&x| x as f64 / 1e9).collect()),
    }
}

/// At most 4 × `width` points (M4) over the window; an open end is the
/// series' own extent, so the columns span the data.
fn m4_page(
    st: &SharedState,
    key: &SeriesKey,
    axis: XAxis,
    w: &Window,
    width: u32,
) -> ApiResult<SeriesData> {
    if width == 0 || width > 100_000 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "width: 1 to 100000",
        ));
    }
    let (mut lo, mut hi) = (w.from, w.to);
    if (lo == i64::MIN + 1 || hi == i64::MAX)
        && let Some(s) = st.tsdb.summary(key).map_err(ApiError::from)?
    {
        let (a, b) = match axis {
            XAxis::Step => (s.first_step, s.last_step),
            XAxis::Time => (s.min_time, s.max_time),
        };
        if lo == i64::MIN + 1 && a != NO_STEP {
            lo = a;
        }
        if hi == i64::MAX && b != NO_STEP {
            hi = b;
        }
    }
    if lo > hi {
        return Ok(SeriesData {
            x: XColumn::Steps(Vec::new()),
            y: Vec::new(),
            count: 0,
            downsampled: false,
            next_cursor: None,
            step: None,
            time_ns: None,
        });
    }
    let m = st
        .tsdb
        .m4(key, axis, lo, hi, width)
        .map_err(ApiError::from)?;
    Ok(SeriesData {
        x: out_x(axis, &m.x),
        y: m.y,
        count: m.count,
        downsampled: m.downsampled,
        next_cursor: None,
        step: None,
        time_ns: None,
    })
}

/// One page of raw points, with the cursor of the next.
fn raw_page(st: &SharedState, key: &SeriesKey, axis: XAxis, w: &Window) -> ApiResult<SeriesData> {
    let pts = st
        .tsdb
        .read_range(key, axis, w.from, w.to, Some(w.read_limit))
        .map_err(ApiError::from)?;
    // Skip the points at `from` the previous page already returned.
    let start = (0..pts.len().min(w.skip))
        .take_while(|&i| pts.x(axis, i) == w.from)
        .count();
    let avail = pts.len() - start;
    let more = avail > w.limit;
    let n = avail.min(w.limit);
    let range = start..start + n;
    let xs: Vec<i64> = range.clone().map(|i| pts.x(axis, i)).collect();
    let next = if more {
        let last = xs[n - 1];
        let mut at_last = xs.iter().rev().take_while(|&&x| x == last).count();
        if last == w.from {
            at_last += start;
        }
        Some(format!("{last}:{at_last}"))
    } else {
        None
    };
    Ok(SeriesData {
        x: out_x(axis, &xs),
        y: pts.values[range.clone()].to_vec(),
        count: n as u64,
        downsampled: false,
        next_cursor: Some(next),
        // Raw pages carry every coordinate exactly, for export.
        step: Some(
            pts.steps[range.clone()]
                .iter()
                .map(|&s| opt_step(s))
                .collect(),
        ),
        time_ns: Some(pts.times[range].to_vec()),
    })
}

/// Splits `label.<name>=<value>` query pairs from the others.
fn label_pairs(q: &[(String, String)]) -> Vec<(String, String)> {
    q.iter()
        .filter_map(|(k, v)| k.strip_prefix("label.").map(|l| (l.to_string(), v.clone())))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Series outside runs (host, GPU and scraped metrics) of a project, with
/// summaries, a page at a time. Filters: `name`, `prefix`, and
/// `label.<name>=<value>`.
#[utoipa::path(get, path = "/api/v1/metrics/series",
    params(("project" = Option<String>, Query), ("name" = Option<String>, Query), ("prefix" = Option<String>, Query),
           ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = SeriesList), (status = 400, body = ErrorBody)))]
pub async fn list_external_series(
    State(st): State<SharedState>,
    who: Principal,
    ApiQuery(q): ApiQuery<Vec<(String, String)>>,
) -> ApiResult<Json<SeriesList>> {
    who.require(Role::Read)?;
    let project = who.read_project(param(&q, "project"))?;
    let limit = param(&q, "limit")
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| ApiError::bad_request("invalid_request", "limit: not a whole number"))
        })
        .transpose()?;
    let page = PageRequest::parse(limit, param(&q, "cursor"))?;
    let mut m = SeriesMatcher::any().label_eq("project", project);
    if let Some(n) = param(&q, "name") {
        m = m.name_eq(n);
    }
    if let Some(p) = param(&q, "prefix") {
        m = m.name_prefix(p);
    }
    for (k, v) in label_pairs(&q) {
        m = m.label_eq(k, v);
    }
    let s2 = st.clone();
    blocking(move || {
        list_page(&s2, &m, page, |key, s| {
            let labels: BTreeMap<String, String> = key
                .labels()
                .iter()
                .filter(|(k, _)| k != label::PROJECT)
                .cloned()
                .collect();
            let mut entry = series_entry(key, s, (s.min_time, s.max_time));
            entry.labels = Some(labels);
            entry
        })
    })
    .await
    .map(Json)
}

/// The data of one series outside runs, named by `name` and every label as
/// `label.<name>=<value>`; the other parameters are those of a run series.
#[utoipa::path(get, path = "/api/v1/metrics/data",
    params(("name" = String, Query), ("project" = Option<String>, Query), ("x" = Option<String>, Query),
           ("from" = Option<f64>, Query), ("to" = Option<f64>, Query), ("width" = Option<u32>, Query),
           ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = SeriesData), (status = 400, body = ErrorBody)))]
pub async fn external_series_data(
    State(st): State<SharedState>,
    who: Principal,
    ApiQuery(q): ApiQuery<Vec<(String, String)>>,
) -> ApiResult<Json<SeriesData>> {
    who.require(Role::Read)?;
    let project = who.read_project(param(&q, "project"))?;
    let bad = |m: String| ApiError::bad_request("invalid_request", m);
    let name = param(&q, "name").ok_or_else(|| bad("name: required".into()))?;
    let mut labels = label_pairs(&q);
    labels.push(("project".into(), project));
    let key = SeriesKey::new(name, labels).map_err(|e| bad(format!("series: {e}")))?;
    let num = |k: &str| -> ApiResult<Option<f64>> {
        param(&q, k)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| bad(format!("{k}: not a number")))
            })
            .transpose()
    };
    let p = DataQuery {
        name: name.to_string(),
        x: param(&q, "x").map(str::to_string),
        from: num("from")?,
        to: num("to")?,
        width: num("width")?.map(|w| w as u32),
        limit: num("limit")?.map(|l| l as usize),
        cursor: param(&q, "cursor").map(str::to_string),
    };
    series_data_of(st, key, p).await
}
