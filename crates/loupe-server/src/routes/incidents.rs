//! Incidents found by diagnosis, and run health scores.

use axum::Json;
use axum::extract::{Path, State};
use loupe_meta::{IncidentQuery, MAX_INCIDENT_LIMIT};
use loupe_model::Role;
use serde::Deserialize;

use crate::auth::Principal;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::http::{blocking, check_visible, meta_err};
use crate::state::SharedState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct IncidentParams {
    pub project: Option<String>,
    /// `open` or `resolved`.
    pub state: Option<String>,
    pub host: Option<String>,
    pub group: Option<String>,
    pub run: Option<String>,
    /// Incidents opened before this time (Unix seconds): the next page.
    pub before: Option<f64>,
    /// Default 100, at most 1000.
    pub limit: Option<usize>,
}

fn bodies(rows: Vec<(String, String)>) -> ApiResult<Vec<serde_json::Value>> {
    rows.into_iter()
        .map(|(body, _)| {
            serde_json::from_str(&body)
                .map_err(|e| ApiError::internal(format!("stored incident is not JSON: {e}")))
        })
        .collect()
}

fn page(items: Vec<serde_json::Value>, limit: usize) -> serde_json::Value {
    let next = (items.len() == limit)
        .then(|| items.last().and_then(|i| i.get("opened").cloned()))
        .flatten();
    serde_json::json!({"incidents": items, "next_before": next})
}

/// Incidents, newest first, filtered.
#[utoipa::path(get, path = "/api/v1/incidents", params(IncidentParams),
    responses((status = 200, description = r#"{"incidents":[…],"next_before":…}"#, body = Object)))]
pub async fn list_incidents(
    State(st): State<SharedState>,
    who: Principal,
    ApiQuery(p): ApiQuery<IncidentParams>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    let Some(project) = who.list_project(p.project.as_deref()) else {
        return Ok(Json(
            serde_json::json!({"incidents": [], "next_before": null}),
        ));
    };
    if let Some(s) = &p.state
        && !matches!(s.as_str(), "open" | "resolved")
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("state must be \"open\" or \"resolved\", not {s:?}"),
        ));
    }
    let limit = p.limit.unwrap_or(100).clamp(1, MAX_INCIDENT_LIMIT);
    let q = IncidentQuery {
        project,
        state: p.state,
        host: p.host,
        group: p.group,
        run: p.run,
        before: p.before,
        limit,
    };
    let s = st.clone();
    let rows = blocking(move || s.meta.list_incidents(&q).map_err(meta_err)).await?;
    Ok(Json(page(bodies(rows)?, limit)))
}

/// The incidents that touch a run (its own and its job's), newest first.
#[utoipa::path(get, path = "/api/v1/runs/{id}/incidents", params(IncidentParams),
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn run_incidents(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<IncidentParams>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    check_visible(&st, &who, &id).await?;
    let limit = p.limit.unwrap_or(100).clamp(1, MAX_INCIDENT_LIMIT);
    let q = IncidentQuery {
        run: Some(id),
        state: p.state,
        before: p.before,
        limit,
        ..Default::default()
    };
    let s = st.clone();
    let rows = blocking(move || s.meta.list_incidents(&q).map_err(meta_err)).await?;
    Ok(Json(page(bodies(rows)?, limit)))
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}",
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_incident(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    let s = st.clone();
    let id2 = id.clone();
    let (body, project) = blocking(move || s.meta.get_incident(&id2).map_err(meta_err)).await?;
    if !who.sees(&project) {
        return Err(ApiError::not_found("incident", &id));
    }
    let mut v = bodies(vec![(body, project)])?;
    Ok(Json(v.pop().unwrap_or_default()))
}

/// The run's health score (0–100) and its breakdown; `score` is null until
/// diagnosis has judged the run.
#[utoipa::path(get, path = "/api/v1/runs/{id}/health",
    responses((status = 200, description = r#"{"score":…,"breakdown":[{"indicator","penalty","detail"}]}"#, body = Object)))]
pub async fn run_health(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    check_visible(&st, &who, &id).await?;
    let s = st.clone();
    let h = blocking(move || s.meta.run_health(&id).map_err(meta_err)).await?;
    Ok(Json(match h {
        Some((score, detail)) => {
            let breakdown: serde_json::Value =
                serde_json::from_str(&detail).unwrap_or_else(|_| serde_json::json!([]));
            serde_json::json!({"score": score, "breakdown": breakdown})
        }
        None => serde_json::json!({"score": null, "breakdown": []}),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct GroupHealthParams {
    /// Defaults to the token's project, or `default`.
    pub project: Option<String>,
}

/// A job's health: the mean and the worst of its ranks' scores, and each
/// rank's, worst first.
#[utoipa::path(get, path = "/api/v1/groups/{group}/health", params(GroupHealthParams),
    responses((status = 200, description = r#"{"score":…,"worst":…,"members":[{"run","rank","score"}],"unjudged":…}"#, body = Object),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn group_health(
    State(st): State<SharedState>,
    who: Principal,
    Path(group): Path<String>,
    ApiQuery(p): ApiQuery<GroupHealthParams>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    let project = who.read_project(p.project.as_deref())?;
    let s = st.clone();
    let g = blocking(move || s.meta.group_health(&project, &group).map_err(meta_err)).await?;
    let scores: Vec<f64> = g.members.iter().map(|m| m.2).collect();
    let mean = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
    let members: Vec<serde_json::Value> = g
        .members
        .iter()
        .map(|(run, rank, score)| serde_json::json!({"run": run, "rank": rank, "score": score}))
        .collect();
    Ok(Json(serde_json::json!({
        "score": mean,
        "worst": scores.first(),
        "members": members,
        "unjudged": g.unjudged,
    })))
}
