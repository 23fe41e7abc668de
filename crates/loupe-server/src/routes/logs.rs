//! Log records of a run, and the live event stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use loupe_api::{
    ErrorBody, LiveEvent, LiveLagged, LivePayload, LiveQuery, LogBatch, LogEntry, LogPage,
};
use loupe_model::{LogLevel, LogStream, Role};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::auth::Principal;
use crate::body_budget::Metered;
use crate::counters::ServerMetrics;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::http::{blocking, check_visible, encoded_body, meta_err, raw_body};
use crate::live::LiveFrame;
use crate::state::SharedState;
use loupe_api::Accepted;

/// A batch sent with an `Idempotency-Key` header (1–128 characters of
/// `[A-Za-z0-9_.:-]`) is stored once per run and key; resending it answers
/// `{"accepted": 0, "duplicate": true}`.
#[utoipa::path(post, path = "/api/v1/runs/{id}/logs",
    request_body(content = LogBatch, description = "Log lines; gzip or zstd bodies accepted"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Stores the batch once per run and key")),
    responses((status = 200, body = Accepted), (status = 400, body = ErrorBody)))]
pub async fn post_logs(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Metered(charge): Metered,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Accepted>> {
    who.require(Role::Ingest)?;
    check_visible(&st, &who, &id).await?;
    let bytes = raw_body(&st, body)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_request",
                        "the Idempotency-Key header is not ASCII text",
                    )
                })?
                .to_string(),
        ),
    };
    let ingest = st.ingest.clone();
    let accepted = blocking(move || {
        Ok(ingest.run_logs(
            &id,
            encoded_body(&headers, &bytes, charge.as_ref()),
            key.as_deref(),
        )?)
    })
    .await?;
    Ok(Json(accepted))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}/logs", params(loupe_api::LogQuery),
    responses((status = 200, body = LogPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_logs(
    State(st): State<SharedState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<loupe_api::LogQuery>,
) -> ApiResult<Json<LogPage>> {
    who.require(Role::Read)?;
    check_visible(&st, &who, &id).await?;
    ServerMetrics::add(&st.metrics.query_requests, 1);
    let bad = |e: String| ApiError::bad_request("invalid_request", e);
    let q = loupe_meta::LogQuery {
        q: p.q,
        level: p
            .level
            .map(|l| l.parse::<LogLevel>())
            .transpose()
            .map_err(bad)?,
        stream: p
            .stream
            .map(|s| s.parse::<LogStream>())
            .transpose()
            .map_err(bad)?,
        from: p.from,
        to: p.to,
        limit: p.limit,
        cursor: p
            .cursor
            .map(|c| c.parse::<u64>())
            .transpose()
            .map_err(|_| {
                ApiError::bad_request("invalid_request", "cursor: not one this server gave")
            })?,
        order: Default::default(),
    };
    let s2 = st.clone();
    let page = blocking(move || s2.meta.query_logs(&id, q).map_err(meta_err)).await?;
    let records = page
        .records
        .into_iter()
        .map(|(seq, r)| {
            let loupe_model::LogRecord {
                time,
                stream,
                level,
                text,
                attributes,
            } = r;
            LogEntry {
                seq,
                time,
                stream,
                level,
                text,
                attributes,
            }
        })
        .collect();
    Ok(Json(LogPage {
        records,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// Server-Sent Events about runs: each event's name is its `kind`, its
/// data a `LiveEvent` in JSON.
#[utoipa::path(get, path = "/api/v1/live", params(LiveQuery),
    responses((status = 200, content_type = "text/event-stream", body = LiveEvent,
               description = "`points`, `logs`, `status`, `incident`, `alert` and `lagged` events")))]
pub async fn live(
    State(st): State<SharedState>,
    who: Principal,
    ApiQuery(p): ApiQuery<LiveQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    who.require(Role::Read)?;
    if let Some(run) = &p.run {
        check_visible(&st, &who, run).await?;
    }
    // A token scoped to a project must name a run: events carry no project.
    if p.run.is_none() && who.project.is_some() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "run: required with a project-scoped token",
        ));
    }
    let rx = st.live.subscribe();
    let filter = p.run;
    let stream = BroadcastStream::new(rx).filter_map(move |item| match item {
        Ok(ev) => {
            if filter.as_deref().is_some_and(|r| r != ev.event.run) {
                return None;
            }
            Some(Ok(sse_event(&ev)))
        }
        Err(BroadcastStreamRecvError::Lagged(skipped)) => {
            Some(Ok(sse_event(&LiveFrame::new(LiveEvent {
                run: String::new(),
                payload: LivePayload::Lagged(LiveLagged { skipped }),
            }))))
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// One SSE frame: the kind as the event name, the whole event (encoded
/// once, when published) as data.
fn sse_event(frame: &LiveFrame) -> Event {
    Event::default()
        .event(frame.event.payload.kind())
        .data(&frame.json)
}
