//! Alerts, alert rules and silences, each seen and changed only by the
//! project it belongs to (see [`owner`]).

mod owner;

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use loupe_alert::{RulesError, SilenceRules};
use loupe_api::{
    AlertsView, ErrorBody, NewSilence, RuleEntry, RuleList, RuleSource, RuleSpec, Silence,
    SilenceList,
};
use loupe_model::Role;

use self::owner::{Owner, claim, claim_matchers, rule_listed};
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

/// Every rule: built-ins, the rules file's, and those added here. A
/// project's token lists the built-ins and its project's rules.
#[utoipa::path(get, path = "/api/v1/alerts/rules", responses((status = 200, body = RuleList)))]
pub async fn list_rules(
    State(st): State<SharedState>,
    who: Principal,
) -> ApiResult<Json<RuleList>> {
    who.require(Role::Read)?;
    let rules = st
        .alerts
        .rules()
        .into_iter()
        .filter(|(source, rule)| rule_listed(&who, *source, rule))
        .map(|(source, rule)| RuleEntry { source, rule })
        .collect();
    Ok(Json(RuleList { rules }))
}

/// Adds or replaces a rule (JSON, the same fields as a `[[rules]]` entry
/// of the rules file). Invalid rules get a 400 naming the field. A
/// project's token makes rules for its project only (`project` is filled
/// in when left out) and cannot replace another project's rule.
#[utoipa::path(post, path = "/api/v1/alerts/rules", request_body = RuleSpec,
    responses((status = 201, description = "the stored rule", body = RuleEntry),
              (status = 400, description = "invalid rule", body = ErrorBody),
              (status = 403, description = "a rule for another project", body = ErrorBody),
              (status = 409, description = "the name is another project's rule", body = ErrorBody)))]
pub async fn post_rule(
    State(st): State<SharedState>,
    who: Principal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<RuleEntry>)> {
    who.require(Role::Admin)?;
    let mut spec: RuleSpec = json_body(body).map_err(|e| {
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            ApiError::bad_request("invalid_rule", e.message)
        } else {
            e
        }
    })?;
    claim(&who, &mut spec.project, "rule").map_err(ApiError::forbidden)?;
    let taken = st.alerts.rules().into_iter().any(|(source, r)| {
        source == RuleSource::Api && r.name == spec.name && !Owner::of_rule(&r).visible_to(&who)
    });
    if taken {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "another project has a rule named {:?}: choose another name",
                spec.name
            ),
        ));
    }
    let s = st.clone();
    let stored = blocking(move || s.alerts.put_rule(spec).map_err(invalid)).await?;
    Ok((
        StatusCode::CREATED,
        Json(RuleEntry {
            source: RuleSource::Api,
            rule: stored,
        }),
    ))
}

/// Removes a rule added through the API (a project's token: one of its
/// project's).
#[utoipa::path(delete, path = "/api/v1/alerts/rules/{name}",
    responses((status = 204, description = "removed"), (status = 404, description = "no such API rule", body = ErrorBody)))]
pub async fn delete_rule(
    State(st): State<SharedState>,
    who: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    let mine = st.alerts.rules().into_iter().any(|(source, r)| {
        source == RuleSource::Api && r.name == name && Owner::of_rule(&r).visible_to(&who)
    });
    if !mine {
        return Err(ApiError::not_found("rule added through the API", &name));
    }
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
#[utoipa::path(get, path = "/api/v1/alerts", responses((status = 200, body = AlertsView)))]
pub async fn list_alerts(
    State(st): State<SharedState>,
    who: Principal,
) -> ApiResult<Json<AlertsView>> {
    who.require(Role::Read)?;
    let s = st.clone();
    let scoped = who.project.is_some();
    let (alerts, notes, counts) = blocking(move || {
        let (notes, counts) = s.alerts.deliveries(100).map_err(store_err)?;
        Ok((s.alerts.alerts(), notes, counts))
    })
    .await?;
    let alerts = alerts
        .into_iter()
        .filter(|a| Owner::of_alert(a).visible_to(&who))
        .collect();
    // Deliveries may concern other projects; a scoped token sees only its alerts.
    let (notes, counts) = if scoped {
        (Vec::new(), Vec::new())
    } else {
        (notes, counts)
    };
    Ok(Json(AlertsView {
        alerts,
        notifications: notes,
        channels: counts.into_iter().collect::<BTreeMap<_, _>>(),
    }))
}

/// Silences, active and scheduled (a project's token: its project's).
#[utoipa::path(get, path = "/api/v1/silences", responses((status = 200, body = SilenceList)))]
pub async fn list_silences(
    State(st): State<SharedState>,
    who: Principal,
) -> ApiResult<Json<SilenceList>> {
    who.require(Role::Read)?;
    Ok(Json(SilenceList {
        silences: st
            .alerts
            .silences()
            .into_iter()
            .filter(|s| Owner::of_silence(s).visible_to(&who))
            .collect(),
    }))
}

/// Creates a silence: matching alerts keep their record but are not sent.
/// A project's token silences its project only (a `project` matcher is
/// added when left out).
#[utoipa::path(post, path = "/api/v1/silences", request_body = NewSilence,
    responses((status = 201, description = "the silence", body = Silence),
              (status = 400, description = "invalid silence", body = ErrorBody),
              (status = 403, description = "a silence for another project", body = ErrorBody)))]
pub async fn post_silence(
    State(st): State<SharedState>,
    who: Principal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Silence>)> {
    who.require(Role::Admin)?;
    let mut n: NewSilence = json_body(body)?;
    claim_matchers(&who, &mut n.matchers).map_err(ApiError::forbidden)?;
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
    Ok((StatusCode::CREATED, Json(s)))
}

/// Ends a silence (a project's token: one of its project's).
#[utoipa::path(delete, path = "/api/v1/silences/{id}",
    responses((status = 204, description = "removed"), (status = 404, description = "no such silence", body = ErrorBody)))]
pub async fn delete_silence(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    let mine = st
        .alerts
        .silences()
        .iter()
        .any(|s| s.id == id && Owner::of_silence(s).visible_to(&who));
    if !mine {
        return Err(ApiError::not_found("silence", &id));
    }
    let s = st.clone();
    let i = id.clone();
    let found = blocking(move || s.alerts.remove_silence(&i).map_err(store_err)).await?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("silence", &id))
    }
}
