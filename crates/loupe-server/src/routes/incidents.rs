//! Incidents found by diagnosis, and run health scores.

use axum::Json;
use axum::extract::{Path, State};
use loupe_api::{
    ErrorBody, GroupHealth, GroupHealthQuery, GroupMember, HealthItem, Incident, IncidentPage,
    IncidentQuery, RunHealth,
};
use loupe_meta::MAX_INCIDENT_LIMIT;
use loupe_model::Role;

use crate::auth::Principal;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::http::{blocking, check_visible, meta_err};
use crate::state::SharedState;

/// A stored incident (the diagnoser's JSON) as the API serves it.
fn incident(body: &str) -> ApiResult<Incident> {
    serde_json::from_str(body)
        .map_err(|e| ApiError::internal(format!("stored incident does not decode: {e}")))
}

fn page(rows: Vec<(String, String)>, limit: usize) -> ApiResult<IncidentPage> {
    let incidents = rows
        .iter()
        .map(|(body, _)| incident(body))
        .collect::<ApiResult<Vec<_>>>()?;
    let next_before = (incidents.len() == limit)
        .then(|| incidents.last().map(|i| i.opened))
        .flatten();
    Ok(IncidentPage {
        incidents,
        next_before,
    })
}

/// Incidents, newest first, filtered.
#[utoipa::path(get, path = "/api/v1/incidents", params(IncidentQuery),
    responses((status = 200, body = IncidentPage), (status = 400, body = ErrorBody)))]
pub async fn list_incidents(
    State(st): State<SharedState>,
    who: Principal,
    ApiQuery(p): ApiQuery<IncidentQuery>,
) -> ApiResult<Json<IncidentPage>> {
    who.require(Role::Read)?;
    let Some(project) = who.list_project(p.project.as_deref()) else {
        return Ok(Json(IncidentPage {
            incidents: Vec::new(),
            next_before: None,
        }));
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
    let q = loupe_meta::IncidentQuery {
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
    Ok(Json(page(rows, limit)?))
}

/// The incidents that touch a run (its own and its job's), newest first.
#[utoipa::path(get, path = "/api/v1/runs/{id}/incidents", params(IncidentQuery),
    responses((status = 200, body = IncidentPage), (status = 404, body = ErrorBody)))]
pub async fn run_incidents(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<IncidentQuery>,
) -> ApiResult<Json<IncidentPage>> {
    who.require(Role::Read)?;
    check_visible(&st, &who, &id).await?;
    let limit = p.limit.unwrap_or(100).clamp(1, MAX_INCIDENT_LIMIT);
    let q = loupe_meta::IncidentQuery {
        run: Some(id),
        state: p.state,
        before: p.before,
        limit,
        ..Default::default()
    };
    let s = st.clone();
    let rows = blocking(move || s.meta.list_incidents(&q).map_err(meta_err)).await?;
    Ok(Json(page(rows, limit)?))
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}",
    responses((status = 200, body = Incident), (status = 404, body = ErrorBody)))]
pub async fn get_incident(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Incident>> {
    who.require(Role::Read)?;
    let s = st.clone();
    let id2 = id.clone();
    let (body, project) = blocking(move || s.meta.get_incident(&id2).map_err(meta_err)).await?;
    if !who.sees(&project) {
        return Err(ApiError::not_found("incident", &id));
    }
    Ok(Json(incident(&body)?))
}

/// The run's health score (0–100) and its breakdown; `score` is null until
/// diagnosis has judged the run.
#[utoipa::path(get, path = "/api/v1/runs/{id}/health",
    responses((status = 200, body = RunHealth), (status = 404, body = ErrorBody)))]
pub async fn run_health(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<RunHealth>> {
    who.require(Role::Read)?;
    check_visible(&st, &who, &id).await?;
    let s = st.clone();
    let h = blocking(move || s.meta.run_health(&id).map_err(meta_err)).await?;
    Ok(Json(match h {
        Some((score, detail)) => RunHealth {
            score: Some(score),
            // The diagnoser's breakdown, stored as JSON; unreadable: none.
            breakdown: serde_json::from_str::<Vec<HealthItem>>(&detail).unwrap_or_default(),
        },
        None => RunHealth {
            score: None,
            breakdown: Vec::new(),
        },
    }))
}

/// A job's health: the mean and the worst of its ranks' scores, and each
/// rank's, worst first.
#[utoipa::path(get, path = "/api/v1/groups/{group}/health", params(GroupHealthQuery),
    responses((status = 200, body = GroupHealth), (status = 404, body = ErrorBody)))]
pub async fn group_health(
    State(st): State<SharedState>,
    who: Principal,
    Path(group): Path<String>,
    ApiQuery(p): ApiQuery<GroupHealthQuery>,
) -> ApiResult<Json<GroupHealth>> {
    who.require(Role::Read)?;
    let project = who.read_project(p.project.as_deref())?;
    let s = st.clone();
    let g = blocking(move || s.meta.group_health(&project, &group).map_err(meta_err)).await?;
    let scores: Vec<f64> = g.members.iter().map(|m| m.2).collect();
    let mean = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
    let worst = scores.first().copied();
    let members = g
        .members
        .into_iter()
        .map(|(run, rank, score)| GroupMember { run, rank, score })
        .collect();
    Ok(Json(GroupHealth {
        score: mean,
        worst,
        members,
        unjudged: g.unjudged as u64,
    }))
}

#[cfg(test)]
mod tests {
    use loupe_diagnose::incident::feedback::WeightedCause;
    use loupe_diagnose::incident::{Anomaly, FeedbackRanking};
    use loupe_diagnose::{Cause, CauseKind, Evidence, HealthItem, Incident};
    use loupe_model::{IncidentState, Severity};

    /// Every field and variant the diagnoser stores, each set. A struct
    /// literal (no `..`) and an exhaustive match, so that a new field or
    /// evidence kind does not compile here until it is set, and the test
    /// below then fails until the API's types carry it.
    fn stored_incident() -> Incident {
        let evidence = vec![
            Evidence::Series {
                run: Some("r1".into()),
                series: Some("train/loss".into()),
                step: Some(12),
                time: 1765000000.25,
                value: Some(f64::NAN),
                detail: "the value is NaN".into(),
            },
            Evidence::Series {
                run: None,
                series: None,
                step: None,
                time: 1765000001.0,
                value: None,
                detail: "no value".into(),
            },
            Evidence::Log {
                run: Some("r2".into()),
                seq: 7,
                time: 1765000002.5,
                text: "CUDA out of memory".into(),
            },
        ];
        for e in &evidence {
            match e {
                Evidence::Series { .. } | Evidence::Log { .. } => {}
            }
        }
        Incident {
            id: "inc-1".into(),
            project: Some("p".into()),
            run: Some("r1".into()),
            group: Some("g".into()),
            host: Some("n1".into()),
            service: None,
            state: IncidentState::Resolved,
            severity: Severity::Critical,
            kind: "non_finite_loss".into(),
            title: "the loss became NaN".into(),
            opened: 1765000003.5,
            updated: 1765000004.0,
            resolved: Some(1765000005.0),
            start_time: 1765000000.0,
            end_time: Some(1765000002.0),
            start_step: Some(10),
            end_step: None,
            causes: vec![Cause {
                kind: CauseKind::NonFiniteLoss,
                title: "fp overflow".into(),
                score: 0.75,
                explanation: "why".into(),
                fixes: vec!["lower the learning rate".into()],
                evidence,
            }],
            anomalies: vec![Anomaly {
                run: Some("r1".into()),
                series: Some("train/loss".into()),
                detector: "non_finite".into(),
                start_step: Some(2),
                end_step: None,
                start_time: 1765000000.0,
                end_time: 1765000001.0,
                score: 1.0,
                severity: Severity::Warning,
                detail: "the value is NaN".into(),
                count: 3,
            }],
            runs: vec!["r1".into(), "r2".into()],
            feedback: Some(FeedbackRanking {
                causes: vec![WeightedCause {
                    kind: CauseKind::CudaOutOfMemory,
                    rule_score: 0.5,
                    weight: 1.5,
                    ranked_score: 0.75,
                }],
                fixes_reordered: 1,
            }),
        }
    }

    #[test]
    fn a_stored_incident_is_served_unchanged() {
        let stored = serde_json::to_string(&stored_incident()).unwrap();
        let served = serde_json::to_string(&super::incident(&stored).unwrap()).unwrap();
        let a: serde_json::Value = serde_json::from_str(&stored).unwrap();
        let b: serde_json::Value = serde_json::from_str(&served).unwrap();
        assert_eq!(a, b, "\nstored: {stored}\nserved: {served}");
        // And without the feedback ranking, which is then left out.
        let mut plain = stored_incident();
        plain.feedback = None;
        let stored = serde_json::to_string(&plain).unwrap();
        let served = serde_json::to_string(&super::incident(&stored).unwrap()).unwrap();
        assert!(!served.contains("\"feedback\""));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
            serde_json::from_str::<serde_json::Value>(&served).unwrap()
        );
    }

    #[test]
    fn a_stored_health_breakdown_is_served_unchanged() {
        let items = vec![HealthItem {
            indicator: "open incidents".into(),
            penalty: 35.0,
            detail: "1 critical".into(),
        }];
        let stored = serde_json::to_value(&items).unwrap();
        let served: Vec<loupe_api::HealthItem> = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(serde_json::to_value(&served).unwrap(), stored);
    }
}
