//! Users' verdicts on incidents: a cause marked confirmed or wrong, a fix
//! marked as the one that worked. Stored per project; diagnosis weighs the
//! project's next incidents with them (see `docs/diagnosis.md`, Feedback).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use loupe_api::{
    CauseWeight, ErrorBody, FeedbackEntry, FeedbackRequest, FeedbackVerdict, FixWeight,
    IncidentFeedback, ProjectFeedback,
};
use loupe_diagnose::Incident;
use loupe_diagnose::incident::feedback::cause_key;
use loupe_meta::{MAX_FEEDBACK_LIMIT, NewFeedback};
use loupe_model::Role;

use crate::auth::Principal;
use crate::diagnosis::DiagInput;
use crate::error::{ApiError, ApiResult};
use crate::http::{blocking, json_body, meta_err};
use crate::state::SharedState;

/// Verdicts listed with a project's weights.
const LISTED: usize = 1000;

/// Marks a cause of an incident as confirmed or wrong, or a fix as the one
/// that worked. Needs the project's write (ingest) role.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/feedback", request_body = FeedbackRequest,
    responses((status = 201, body = FeedbackEntry),
              (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn post_feedback(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<FeedbackEntry>)> {
    let req: FeedbackRequest = json_body(body)?;
    let (incident, project) = load_incident(&st, &who, &id).await?;
    who.require(Role::Ingest)?;
    check_target(&incident, &req)?;
    let new = NewFeedback {
        project: project.clone(),
        incident: id,
        cause: req.cause,
        fix: req.fix.filter(|_| req.verdict == FeedbackVerdict::Worked),
        verdict: req.verdict.as_str().to_string(),
        who: who.who.clone(),
    };
    let s = st.clone();
    let stored = blocking(move || s.meta.add_feedback(&new).map_err(meta_err)).await?;
    st.diagnosis.submit(DiagInput::FeedbackChanged { project });
    Ok((StatusCode::CREATED, Json(stored)))
}

/// The verdicts on an incident, oldest first.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/feedback",
    responses((status = 200, body = IncidentFeedback), (status = 404, body = ErrorBody)))]
pub async fn incident_feedback(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<IncidentFeedback>> {
    who.require(Role::Read)?;
    load_incident(&st, &who, &id).await?;
    let s = st.clone();
    let rows = blocking(move || s.meta.incident_feedback(&id).map_err(meta_err)).await?;
    Ok(Json(IncidentFeedback { feedback: rows }))
}

/// A project's feedback weights and its newest verdicts.
#[utoipa::path(get, path = "/api/v1/projects/{project}/feedback",
    responses((status = 200, body = ProjectFeedback), (status = 404, body = ErrorBody)))]
pub async fn project_feedback(
    State(st): State<SharedState>,
    who: Principal,
    Path(project): Path<String>,
) -> ApiResult<Json<ProjectFeedback>> {
    who.require(Role::Read)?;
    let project = who.read_project(Some(&project))?;
    let s = st.clone();
    let p = project.clone();
    let rows = blocking(move || {
        s.meta
            .project_feedback(&p, MAX_FEEDBACK_LIMIT)
            .map_err(meta_err)
    })
    .await?;
    let w = crate::diagnosis::feedback::weights_of(&rows);
    let causes = w
        .cause_weights()
        .map(|(cause, t, weight)| CauseWeight {
            cause: cause.to_string(),
            confirmed: t.confirmed,
            wrong: t.wrong,
            weight,
        })
        .collect();
    let fixes = w
        .fix_weights()
        .map(|(cause, fix, worked, weight)| FixWeight {
            cause: cause.to_string(),
            fix: fix.to_string(),
            worked,
            weight,
        })
        .collect();
    let skip = rows.len().saturating_sub(LISTED);
    Ok(Json(ProjectFeedback {
        project,
        causes,
        fixes,
        feedback: rows.into_iter().skip(skip).collect(),
    }))
}

/// The incident and its project, or 404 when the caller may not see it.
async fn load_incident(
    st: &SharedState,
    who: &Principal,
    id: &str,
) -> ApiResult<(Incident, String)> {
    let s = st.clone();
    let id2 = id.to_string();
    let (body, project) = blocking(move || s.meta.get_incident(&id2).map_err(meta_err)).await?;
    if !who.sees(&project) {
        return Err(ApiError::not_found("incident", id));
    }
    let inc: Incident = serde_json::from_str(&body)
        .map_err(|e| ApiError::internal(format!("stored incident {id} does not decode: {e}")))?;
    Ok((inc, project))
}

/// The verdict must name one of the incident's causes, and for `worked`
/// one of that cause's fixes.
fn check_target(inc: &Incident, req: &FeedbackRequest) -> ApiResult<()> {
    let bad = |msg: String| Err(ApiError::bad_request("invalid_feedback", msg));
    let Some(cause) = inc.causes.iter().find(|c| cause_key(c.kind) == req.cause) else {
        let kinds: Vec<String> = inc.causes.iter().map(|c| cause_key(c.kind)).collect();
        return bad(format!(
            "incident {} has no cause {:?} (its causes: {})",
            inc.id,
            req.cause,
            kinds.join(", ")
        ));
    };
    match (req.verdict, req.fix.as_deref()) {
        (FeedbackVerdict::Worked, None) => {
            bad("verdict \"worked\" needs `fix`: the fix that worked".into())
        }
        (FeedbackVerdict::Worked, Some(fix)) if !cause.fixes.iter().any(|f| f == fix) => {
            bad(format!(
                "cause {:?} of incident {} has no fix {fix:?}",
                req.cause, inc.id
            ))
        }
        (FeedbackVerdict::Confirmed | FeedbackVerdict::Wrong, Some(_)) => bad(format!(
            "verdict {:?} is about the cause: leave out `fix` (mark a fix with \"worked\")",
            req.verdict.as_str()
        )),
        _ => Ok(()),
    }
}
