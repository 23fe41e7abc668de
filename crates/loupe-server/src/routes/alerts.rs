//! Alerts, alert rules and silences.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use loupe_alert::{RuleSpec, RulesError, Silence};
use loupe_model::Role;
use serde::Deserialize;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::{blocking, json_body};
use crate::state::SharedState;

fn invalid(e: RulesError) -> ApiError {
    ApiError::bad_request("invalid_rule", e.errors.join("; "))
}

fn store_err(e: loupe_alert::Error) -> ApiError {
    ApiError::internal(format!("alert store: {e}"))
}

/// Every rule: built-ins, the rules file's, and those added here.
#[utoipa::path(get, path = "/api/v1/alerts/rules",
    responses((status = 200, description = r#"{"rules":[{"source":"builtin|file|api","rule":{…}}]}"#, body = Object)))]
pub async fn list_rules(
    State(st): State<SharedState>,
    who: Principal,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    let rules: Vec<serde_json::Value> = st
        .alerts
        .rules()
        .into_iter()
        .map(|(src, spec)| serde_json::json!({"source": src, "rule": spec}))
        .collect();
    Ok(Json(serde_json::json!({ "rules": rules })))
}

/// Adds or replaces a rule (JSON, the same fields as a `[[rules]]` entry
/// of the rules file). Invalid rules get a 400 naming the field.
#[utoipa::path(post, path = "/api/v1/alerts/rules",
    request_body(content = Object, description = r#"{"name":"hot","kind":"threshold","expr":"gpu/0/temperature > 85","for":"5m"}"#),
    responses((status = 201, description = "the stored rule", body = Object), (status = 400, description = "invalid rule")))]
pub async fn post_rule(
    State(st): State<SharedState>,
    who: Principal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    who.require(Role::Admin)?;
    let spec: RuleSpec = json_body(body).map_err(|e| {
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            ApiError::bad_request("invalid_rule", e.message)
        } else {
            e
        }
    })?;
    let s = st.clone();
    let stored = blocking(move || s.alerts.put_rule(spec).map_err(invalid)).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"source": "api", "rule": stored})),
    ))
}

/// Removes a rule added through the API.
#[utoipa::path(delete, path = "/api/v1/alerts/rules/{name}",
    responses((status = 204, description = "removed"), (status = 404, description = "no such API rule")))]
pub async fn delete_rule(
    State(st): State<SharedState>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    let s = st.clone();
    let n = name.clone();
    let found = blocking(move || s.alerts.delete_rule(&n).map_err(store_err)).await?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("rule added through the API", &name))
    }
}

/// Current alerts (pending, firing, recently resolved) with their state,
/// and the delivery queue: recent notifications and per-channel counts.
#[utoipa::path(get, path = "/api/v1/alerts",
    responses((status = 200, description = r#"{"alerts":[…],"notifications":[…],"channels":{…}}"#, body = Object)))]
pub async fn list_alerts(
    State(st): State<SharedState>,
    who: Principal,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    let s = st.clone();
    let scoped = who.project.is_some();
    let (alerts, notes, counts) = blocking(move || {
        let (notes, counts) = s.alerts.deliveries(100).map_err(store_err)?;
        Ok((s.alerts.alerts(), notes, counts))
    })
    .await?;
    let alerts: Vec<_> = alerts
        .into_iter()
        .filter(|a| who.project.is_none() || a.labels.get("project").is_some_and(|p| who.sees(p)))
        .collect();
    // Deliveries may concern other projects; a scoped token sees only its alerts.
    let (notes, counts) = if scoped {
        (Vec::new(), Vec::new())
    } else {
        (notes, counts)
    };
    let channels: BTreeMap<String, _> = counts.into_iter().collect();
    Ok(Json(serde_json::json!({
        "alerts": alerts,
        "notifications": notes,
        "channels": channels,
    })))
}

/// A silence to create: label matchers and a window (`ends`, or
/// `duration` like "2h" from `starts`, which defaults to now).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub matchers: BTreeMap<String, String>,
    pub starts: Option<f64>,
    pub ends: Option<f64>,
    pub duration: Option<String>,
    #[serde(default)]
    pub comment: String,
    pub created_by: Option<String>,
}

/// Silences, active and scheduled.
#[utoipa::path(get, path = "/api/v1/silences",
    responses((status = 200, description = r#"{"silences":[…]}"#, body = Object)))]
pub async fn list_silences(
    State(st): State<SharedState>,
    who: Principal,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    Ok(Json(
        serde_json::json!({ "silences": st.alerts.silences() }),
    ))
}

/// Creates a silence: matching alerts keep their record but are not sent.
#[utoipa::path(post, path = "/api/v1/silences",
    request_body(content = Object, description = r#"{"matchers":{"run":"r-1"},"duration":"2h","comment":"…"}"#),
    responses((status = 201, description = "the silence", body = Object), (status = 400, description = "invalid silence")))]
pub async fn post_silence(
    State(st): State<SharedState>,
    who: Principal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    who.require(Role::Admin)?;
    let n: NewSilence = json_body(body)?;
    let now = loupe_alert::now_s();
    let starts = n.starts.unwrap_or(now);
    let ends = match (n.ends, &n.duration) {
        (Some(e), None) => e,
        (None, Some(d)) => {
            let d = loupe_alert::duration::parse(d)
                .map_err(|e| ApiError::bad_request("invalid_silence", format!("duration: {e}")))?;
            starts + d.as_secs_f64()
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_silence",
                "give either `ends` (Unix seconds) or `duration` (e.g. \"2h\")",
            ));
        }
    };
    let s = Silence {
        id: format!("sil-{:x}", (now * 1e6) as u64),
        matchers: n.matchers,
        starts,
        ends,
        comment: n.comment,
        created_by: n.created_by,
    };
    s.validate()
        .map_err(|e| ApiError::bad_request("invalid_silence", e.errors.join("; ")))?;
    let st2 = st.clone();
    let s2 = s.clone();
    blocking(move || st2.alerts.add_silence(s2).map_err(store_err)).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(&s).unwrap_or_default()),
    ))
}

/// Ends a silence.
#[utoipa::path(delete, path = "/api/v1/silences/{id}",
    responses((status = 204, description = "removed"), (status = 404, description = "no such silence")))]
pub async fn delete_silence(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    let s = st.clone();
    let i = id.clone();
    let found = blocking(move || s.alerts.remove_silence(&i).map_err(store_err)).await?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("silence", &id))
    }
}
