//! Alerts, alert rules and silences.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use loupe_alert::{RuleSpec, RulesError, Silence};
use loupe_api::{AlertsView, ErrorBody, NewSilence, RuleEntry, RuleList, RuleSource, SilenceList};
use loupe_model::Role;

use crate::alerting;
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
        .map(|(src, spec)| RuleEntry {
            source: source(src),
            rule: rule(spec),
        })
        .collect();
    Ok(Json(RuleList { rules }))
}

/// Adds or replaces a rule (JSON, the same fields as a `[[rules]]` entry
/// of the rules file). Invalid rules get a 400 naming the field.
#[utoipa::path(post, path = "/api/v1/alerts/rules", request_body = loupe_api::RuleSpec,
    responses((status = 201, description = "the stored rule", body = RuleEntry),
              (status = 400, description = "invalid rule", body = ErrorBody)))]
pub async fn post_rule(
    State(st): State<SharedState>,
    who: Principal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<RuleEntry>)> {
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
        Json(RuleEntry {
            source: RuleSource::Api,
            rule: rule(stored),
        }),
    ))
}

/// Removes a rule added through the API.
#[utoipa::path(delete, path = "/api/v1/alerts/rules/{name}",
    responses((status = 204, description = "removed"), (status = 404, description = "no such API rule", body = ErrorBody)))]
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
        .filter(|a| who.project.is_none() || a.labels.get("project").is_some_and(|p| who.sees(p)))
        .map(alert)
        .collect();
    // Deliveries may concern other projects; a scoped token sees only its alerts.
    let (notes, counts) = if scoped {
        (Vec::new(), Vec::new())
    } else {
        (notes, counts)
    };
    let channels: BTreeMap<String, _> = counts
        .into_iter()
        .map(|(name, c)| (name, channel_counts(c)))
        .collect();
    Ok(Json(AlertsView {
        alerts,
        notifications: notes.into_iter().map(delivery).collect(),
        channels,
    }))
}

/// Silences, active and scheduled.
#[utoipa::path(get, path = "/api/v1/silences", responses((status = 200, body = SilenceList)))]
pub async fn list_silences(
    State(st): State<SharedState>,
    who: Principal,
) -> ApiResult<Json<SilenceList>> {
    who.require(Role::Read)?;
    Ok(Json(SilenceList {
        silences: st.alerts.silences().into_iter().map(silence).collect(),
    }))
}

/// Creates a silence: matching alerts keep their record but are not sent.
#[utoipa::path(post, path = "/api/v1/silences", request_body = NewSilence,
    responses((status = 201, description = "the silence", body = loupe_api::Silence),
              (status = 400, description = "invalid silence", body = ErrorBody)))]
pub async fn post_silence(
    State(st): State<SharedState>,
    who: Principal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<loupe_api::Silence>)> {
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
    Ok((StatusCode::CREATED, Json(silence(s))))
}

/// Ends a silence.
#[utoipa::path(delete, path = "/api/v1/silences/{id}",
    responses((status = 204, description = "removed"), (status = 404, description = "no such silence", body = ErrorBody)))]
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

// Alerting's types as the API shows them. Every field is named (no `..`),
// so a field added on either side does not compile until the other has it.

fn source(s: alerting::RuleSource) -> RuleSource {
    match s {
        alerting::RuleSource::Builtin => RuleSource::Builtin,
        alerting::RuleSource::File => RuleSource::File,
        alerting::RuleSource::Api => RuleSource::Api,
    }
}

fn rule(r: RuleSpec) -> loupe_api::RuleSpec {
    let RuleSpec {
        name,
        kind,
        severity,
        for_,
        channels,
        repeat_interval,
        summary,
        min_severity,
        causes,
        project,
        run,
        group,
        expr,
        labels,
        states,
        errors,
        total,
        objective,
        windows,
        counter,
    } = r;
    loupe_api::RuleSpec {
        name,
        kind,
        severity,
        for_,
        channels,
        repeat_interval,
        summary,
        min_severity,
        causes,
        project,
        run,
        group,
        expr,
        labels,
        states,
        errors,
        total,
        objective,
        windows: windows.map(|w| w.into_iter().map(window).collect()),
        counter,
    }
}

fn window(w: loupe_alert::rules::WindowSpec) -> loupe_api::WindowSpec {
    let loupe_alert::rules::WindowSpec {
        long,
        short,
        factor,
        severity,
    } = w;
    loupe_api::WindowSpec {
        long,
        short,
        factor,
        severity,
    }
}

fn alert(a: loupe_alert::Alert) -> loupe_api::Alert {
    let loupe_alert::Alert {
        id,
        rule,
        severity,
        state,
        labels,
        summary,
        value,
        series,
        active_since,
        fired_at,
        resolved_at,
        updated,
        last_sent,
        sent_firing,
        sent_resolved,
        silenced_by,
        inhibited_by,
        sticky,
    } = a;
    loupe_api::Alert {
        id,
        rule,
        severity,
        state: match state {
            loupe_alert::AlertState::Pending => loupe_api::AlertState::Pending,
            loupe_alert::AlertState::Firing => loupe_api::AlertState::Firing,
            loupe_alert::AlertState::Resolved => loupe_api::AlertState::Resolved,
        },
        labels,
        summary,
        value,
        series,
        active_since,
        fired_at,
        resolved_at,
        updated,
        last_sent,
        sent_firing,
        sent_resolved,
        silenced_by,
        inhibited_by,
        sticky,
    }
}

fn delivery(q: loupe_alert::queue::QueuedItem) -> loupe_api::Delivery {
    let loupe_alert::queue::QueuedItem {
        seq,
        id,
        channel,
        state,
        attempts,
        created,
        next_attempt,
        delivered,
        last_error,
        title,
    } = q;
    loupe_api::Delivery {
        seq,
        id,
        channel,
        state,
        attempts,
        created,
        next_attempt,
        delivered,
        last_error,
        title,
    }
}

fn channel_counts(c: loupe_alert::queue::ChannelCounts) -> loupe_api::ChannelCounts {
    let loupe_alert::queue::ChannelCounts {
        pending,
        delivered,
        failed,
    } = c;
    loupe_api::ChannelCounts {
        pending,
        delivered,
        failed,
    }
}

fn silence(s: Silence) -> loupe_api::Silence {
    let Silence {
        id,
        matchers,
        starts,
        ends,
        comment,
        created_by,
    } = s;
    loupe_api::Silence {
        id,
        matchers,
        starts,
        ends,
        comment,
        created_by,
    }
}
