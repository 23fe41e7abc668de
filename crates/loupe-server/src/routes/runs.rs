//! Runs: create or resume, list, read, update, delete.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use loupe_meta::{NewRun, RunPatch, RunQuery};
use loupe_model::label;
use loupe_model::{Role, Run, RunStatus, SeriesMatcher};
use serde::Deserialize;

use crate::auth::Principal;
use crate::diagnosis::DiagInput;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::http::{blocking, check_visible, json_body, meta_err, visible_run};
use crate::state::SharedState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateRun {
    /// Resume this run if it exists; create it with this id otherwise.
    pub id: Option<String>,
    /// Defaults to the token's project, or `default`.
    pub project: Option<String>,
    pub name: Option<String>,
    pub group: Option<String>,
    pub rank: Option<u32>,
    pub world_size: Option<u32>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub config: Option<serde_json::Value>,
    pub host: Option<String>,
    pub command: Option<String>,
    pub git_commit: Option<String>,
    pub notes: Option<String>,
    /// Resuming from a checkpoint at this step.
    pub resume_step: Option<i64>,
    /// When the run started (Unix seconds), for runs uploaded later from a
    /// client's spool; the server's clock otherwise.
    pub start_time: Option<f64>,
    /// The working directory the command was started in.
    pub cwd: Option<String>,
    /// Whether the git work tree had uncommitted changes.
    pub git_dirty: Option<bool>,
}

/// One series' summary as a client sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SummaryIn {
    #[serde(deserialize_with = "loupe_model::nonfinite::deserialize")]
    pub last: f64,
    #[serde(deserialize_with = "loupe_model::nonfinite::deserialize")]
    pub min: f64,
    #[serde(deserialize_with = "loupe_model::nonfinite::deserialize")]
    pub max: f64,
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub last_step: Option<i64>,
}

impl SummaryIn {
    fn into_summary(self) -> loupe_model::SeriesSummary {
        loupe_model::SeriesSummary {
            last: self.last,
            min: self.min,
            max: self.max,
            count: self.count,
            last_step: self.last_step,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/runs", request_body = CreateRun,
    responses((status = 201, description = "created", body = Object), (status = 200, description = "resumed", body = Object)))]
pub async fn create_run(
    State(st): State<SharedState>,
    who: Principal,
    req: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    who.require(Role::Ingest)?;
    let req: CreateRun = json_body(req)?;
    let project = who.write_project(req.project.as_deref())?;
    if let Some(id) = &req.id {
        // Resuming someone else's run is refused as if it did not exist.
        let s = st.clone();
        let id2 = id.clone();
        let existing = blocking(move || match s.meta.run_project(&id2) {
            Ok(p) => Ok(Some(p)),
            Err(loupe_meta::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(meta_err(e)),
        })
        .await?;
        if let Some(existing) = existing
            && (!who.sees(&existing) || existing != project)
        {
            return Err(ApiError::not_found("run", id));
        }
    }
    let new = NewRun {
        id: req.id,
        project,
        name: req.name,
        group: req.group,
        rank: req.rank,
        world_size: req.world_size,
        tags: Some(req.tags).filter(|t| !t.is_empty()),
        config: req.config,
        host: req.host,
        command: req.command,
        git_commit: req.git_commit,
        notes: req.notes,
        resume_step: req.resume_step,
        start_time: req.start_time,
        cwd: req.cwd,
        git_dirty: req.git_dirty,
    };
    let s = st.clone();
    let (run, created) =
        blocking(move || s.meta.create_or_resume_run(new).map_err(meta_err)).await?;
    st.live.publish(
        &run.id,
        "status",
        serde_json::json!({"status": run.status, "created": created}),
    );
    if !created {
        st.diagnosis.submit(DiagInput::Status {
            run: run.id.clone(),
            status: run.status,
            exit_code: run.exit_code,
        });
    }
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(run)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    pub project: Option<String>,
    /// One status, or several separated by commas.
    pub status: Option<String>,
    pub tag: Option<String>,
    /// Substring of the name, id or group.
    pub q: Option<String>,
    /// `start_time` (default), `name`, `status`, `heartbeat`, or
    /// `summary.<series>.<last|min|max>`; prefix `-` for descending.
    pub sort: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/runs", params(ListParams), responses((status = 200, body = Object)))]
pub async fn list_runs(
    State(st): State<SharedState>,
    who: Principal,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    let Some(project) = who.list_project(p.project.as_deref()) else {
        return Ok(Json(serde_json::json!({"runs": [], "next_cursor": null})));
    };
    let status = match &p.status {
        None => None,
        Some(s) => Some(
            s.split(',')
                .map(|x| x.trim().parse::<RunStatus>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?,
        ),
    };
    let sort = p
        .sort
        .as_deref()
        .unwrap_or("-start_time")
        .parse()
        .map_err(|e: loupe_meta::Error| ApiError::bad_request("invalid_request", e.to_string()))?;
    let q = RunQuery {
        project,
        status,
        tag: p.tag,
        q: p.q,
        sort,
        limit: p.limit,
        cursor: p.cursor,
        summary_series: None,
    };
    let s = st.clone();
    let page = blocking(move || s.meta.list_runs(q).map_err(meta_err)).await?;
    Ok(Json(
        serde_json::json!({"runs": page.runs, "next_cursor": page.next_cursor}),
    ))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_run(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Run>> {
    who.require(Role::Read)?;
    Ok(Json(visible_run(&st, &who, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PatchRun {
    #[schema(value_type = Option<String>)]
    pub status: Option<RunStatus>,
    /// Merged into the run's config (objects deep-merged).
    #[schema(value_type = Object)]
    pub config: Option<serde_json::Value>,
    /// Per series: `{"last","min","max","count","last_step"}`; values are
    /// numbers or "NaN", "Infinity", "-Infinity".
    #[schema(value_type = Object)]
    pub summary: Option<std::collections::BTreeMap<String, SummaryIn>>,
    /// Rename the run.
    pub name: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Just say "still alive".
    #[serde(default)]
    pub heartbeat: bool,
    pub exit_code: Option<i32>,
    pub end_time: Option<f64>,
    pub notes: Option<String>,
    /// Why the run failed: `{"exception_type","message","signal","stderr_tail","traceback"}`.
    #[schema(value_type = Object)]
    pub failure: Option<loupe_model::RunFailure>,
}

#[utoipa::path(patch, path = "/api/v1/runs/{id}", request_body = PatchRun, responses((status = 200, body = Object)))]
pub async fn patch_run(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    req: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Run>> {
    who.require(Role::Ingest)?;
    let req: PatchRun = json_body(req)?;
    check_visible(&st, &who, &id).await?;
    let summary = req.summary.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, v.into_summary()))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    let patch = RunPatch {
        name: req.name,
        status: req.status,
        config_merge: req.config,
        summary,
        tags: req.tags,
        heartbeat: req.heartbeat,
        exit_code: req.exit_code,
        end_time: req.end_time,
        notes: req.notes,
        failure: req.failure,
    };
    let s = st.clone();
    let id2 = id.clone();
    let run = blocking(move || s.meta.update_run(&id2, patch).map_err(meta_err)).await?;
    if req.status.is_some() {
        st.live
            .publish(&id, "status", serde_json::json!({"status": run.status}));
        st.diagnosis.submit(DiagInput::Status {
            run: id.clone(),
            status: run.status,
            exit_code: run.exit_code,
        });
    } else if req.heartbeat {
        st.diagnosis
            .submit(DiagInput::Heartbeat { run: id.clone() });
    }
    Ok(Json(run))
}

#[utoipa::path(delete, path = "/api/v1/runs/{id}", responses((status = 204)))]
pub async fn delete_run(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Role::Admin)?;
    visible_run(&st, &who, &id).await?;
    let s = st.clone();
    let id2 = id.clone();
    blocking(move || {
        s.tsdb
            .delete_series(&SeriesMatcher::any().label_eq(label::RUN, &id2))
            .map_err(ApiError::from)?;
        s.meta.delete_run(&id2).map_err(meta_err)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/projects", responses((status = 200, body = Object)))]
pub async fn list_projects(
    State(st): State<SharedState>,
    who: Principal,
) -> ApiResult<Json<serde_json::Value>> {
    who.require(Role::Read)?;
    let s = st.clone();
    let mut projects = blocking(move || s.meta.list_projects().map_err(meta_err)).await?;
    projects.retain(|p| who.sees(&p.name));
    Ok(Json(serde_json::json!({ "projects": projects })))
}
