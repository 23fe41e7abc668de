//! Runs: create or resume, list, read, update, delete.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use loupe_api::{
    CreateRun, LivePayload, LiveStatus, PatchRun, Project, ProjectList, RunListQuery, RunPage,
};
use loupe_meta::ProjectInfo;
use loupe_meta::{NewRun, RunPatch, RunQuery};
use loupe_model::{Role, Run, RunStatus};

use crate::auth::Principal;
use crate::diagnosis::DiagInput;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::http::{blocking, check_visible, json_body, meta_err, visible_run};
use crate::state::SharedState;

#[utoipa::path(post, path = "/api/v1/runs", request_body = CreateRun,
    responses((status = 201, description = "created", body = Run), (status = 200, description = "resumed", body = Run),
              (status = 404, description = "another project's run", body = loupe_api::ErrorBody)))]
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
    let status = LiveStatus {
        status: run.status,
        created: Some(created),
    };
    st.live.publish(&run.id, LivePayload::Status(status));
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

#[utoipa::path(get, path = "/api/v1/runs", params(RunListQuery), responses((status = 200, body = RunPage)))]
pub async fn list_runs(
    State(st): State<SharedState>,
    who: Principal,
    ApiQuery(p): ApiQuery<RunListQuery>,
) -> ApiResult<Json<RunPage>> {
    who.require(Role::Read)?;
    let Some(project) = who.list_project(p.project.as_deref()) else {
        return Ok(Json(RunPage {
            runs: Vec::new(),
            next_cursor: None,
        }));
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
    Ok(Json(RunPage {
        runs: page.runs,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", responses((status = 200, body = Run), (status = 404, body = loupe_api::ErrorBody)))]
pub async fn get_run(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Run>> {
    who.require(Role::Read)?;
    Ok(Json(visible_run(&st, &who, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/runs/{id}", request_body = PatchRun,
    responses((status = 200, body = Run), (status = 404, body = loupe_api::ErrorBody)))]
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
            .map(|(k, v)| (k, v.into()))
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
        let status = LiveStatus {
            status: run.status,
            created: None,
        };
        st.live.publish(&id, LivePayload::Status(status));
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
        s.ingest.delete_run_series(&id2).map_err(ApiError::from)?;
        s.meta.delete_run(&id2).map_err(meta_err)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/projects", responses((status = 200, body = ProjectList)))]
pub async fn list_projects(
    State(st): State<SharedState>,
    who: Principal,
) -> ApiResult<Json<ProjectList>> {
    who.require(Role::Read)?;
    let s = st.clone();
    let mut projects = blocking(move || s.meta.list_projects().map_err(meta_err)).await?;
    projects.retain(|p| who.sees(&p.name));
    Ok(Json(ProjectList {
        projects: projects.into_iter().map(project).collect(),
    }))
}

/// A project as the API shows it (every field named, so that a field the
/// store adds does not compile until the API has it too).
fn project(p: ProjectInfo) -> Project {
    let ProjectInfo {
        name,
        runs,
        running,
        failed,
        open_incidents,
        incidents,
        last_activity,
    } = p;
    Project {
        name,
        runs,
        running,
        failed,
        open_incidents,
        incidents,
        last_activity,
    }
}
