//! OTLP/gRPC (`loupe serve --otlp-grpc-listen ADDR`, off by default): the
//! `MetricsService/Export` and `LogsService/Export` methods, served by
//! tonic on a listener of their own (gRPC needs HTTP/2; the API's listener
//! speaks HTTP/1).
//!
//! Each method is the HTTP route's twin: the same token check (the
//! `authorization` metadata, `Bearer <token>`, resolved by the same
//! extractor as the API's header), the same project rule (`x-loupe-project`
//! metadata, else the token's project), the same limit on a message's size
//! (`--max-body-mib`, enforced by tonic while decoding), the same ingest
//! service, and OTLP's partial success in the response. Errors carry the
//! gRPC code OTLP pairs with the HTTP status (`routes::otlp::grpc_code`).
//!
//! Adding a signal (traces, issue 16) is one more `impl` and one more
//! `add_service` in [`serve`].
//!
//! The listener is plaintext (no TLS): put it on loopback or behind a
//! proxy that terminates TLS. With tokens off (a loopback HTTP listener)
//! it refuses to listen anywhere but loopback, unless
//! `--insecure-no-auth` says so.

use std::net::SocketAddr;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use loupe_ingest::otlp::proto::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use loupe_ingest::otlp::proto::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use loupe_ingest::otlp::proto::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use loupe_ingest::otlp::proto::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use loupe_model::Role;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::blocking;
use crate::ingest::OtlpOutcome;
use crate::routes::otlp::{PROJECT_HEADER, grpc_code};
use crate::state::SharedState;

/// The OTLP collector services over the server's shared state.
#[derive(Clone)]
pub struct OtlpGrpc {
    st: SharedState,
}

impl OtlpGrpc {
    /// The caller's project, after the token check.
    async fn project<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let mut parts = axum::http::Request::new(()).into_parts().0;
        parts.headers = request.metadata().clone().into_headers();
        let who = Principal::from_request_parts(&mut parts, &self.st)
            .await
            .map_err(status)?;
        who.require(Role::Ingest).map_err(status)?;
        let asked = request
            .metadata()
            .get(PROJECT_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|p| !p.is_empty());
        who.write_project(asked).map_err(status)
    }

    async fn ingest<T: Send + 'static>(
        &self,
        request: Request<T>,
        write: fn(
            &crate::ingest::Ingest,
            &str,
            &T,
        ) -> Result<OtlpOutcome, crate::ingest::IngestError>,
    ) -> Result<OtlpOutcome, Status> {
        let project = self.project(&request).await?;
        let message = request.into_inner();
        let ingest = self.st.ingest.clone();
        blocking(move || Ok(write(&ingest, &project, &message)?))
            .await
            .map_err(status)
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let outcome = self
            .ingest(request, |i, p, m| i.otlp_metrics_message(p, m))
            .await?;
        let rejected = outcome.rejected.count as i64;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: outcome.rejected.message(),
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let outcome = self
            .ingest(request, |i, p, m| i.otlp_logs_message(p, m))
            .await?;
        let rejected = outcome.rejected.count as i64;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: outcome.rejected.message(),
            }),
        }))
    }
}

/// Loupe's error as a gRPC status; OTLP exporters retry `UNAVAILABLE` and
/// `RESOURCE_EXHAUSTED` only.
fn status(e: ApiError) -> Status {
    let status = match e.status {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    };
    Status::new(
        Code::from_i32(grpc_code(status)),
        format!("{} ({})", e.message, e.code),
    )
}

/// Serves the OTLP gRPC services on `listener` until `shutdown` resolves;
/// requests in progress then finish (each is one bounded export).
pub async fn serve(
    listener: tokio::net::TcpListener,
    st: SharedState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let max = st.limits.max_body_bytes;
    let svc = OtlpGrpc { st };
    let metrics = MetricsServiceServer::new(svc.clone())
        .max_decoding_message_size(max)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let logs = LogsServiceServer::new(svc)
        .max_decoding_message_size(max)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(metrics)
        .add_service(logs)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Whether `addr` may take OTLP/gRPC without tokens.
pub fn check_open_addr(
    addr: SocketAddr,
    tokens: bool,
    insecure_no_auth: bool,
) -> Result<(), String> {
    if tokens || insecure_no_auth || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "--otlp-grpc-listen {addr}: tokens are off (the API listens on loopback), so OTLP/gRPC may only listen on loopback; add --require-auth, or --insecure-no-auth to serve it open"
        ))
    }
}
