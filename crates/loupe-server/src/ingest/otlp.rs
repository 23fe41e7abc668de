//! OTLP metrics and logs through the one write path, for both transports:
//! OTLP/HTTP hands over a body ([`Ingest::otlp_metrics`],
//! [`Ingest::otlp_logs`]), OTLP/gRPC a message tonic already decoded
//! ([`Ingest::otlp_metrics_message`], [`Ingest::otlp_logs_message`]).
//!
//! Metrics are series outside runs, stored as line protocol's are.
//! Logs have no run, and Loupe's log store keeps lines per run (their rowids
//! are per-run ranges, which every read and search is built on); so each
//! service gets one run of its own to hold its lines — created on the first
//! batch, named after the service, tagged `otlp` and `service-logs`, its
//! heartbeat renewed by every batch. That way a service's lines are read and
//! searched through the same API as a run's (`GET /api/v1/runs/{id}/logs?q=`)
//! and go to the log-signature diagnosis like any run's.

use loupe_ingest::otlp::proto::collector::logs::v1::ExportLogsServiceRequest;
use loupe_ingest::otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use loupe_ingest::otlp::{self, OtlpEncoding, OtlpLogs, OtlpMetrics, Rejections, ServiceLog};
use loupe_meta::NewRun;
use loupe_model::clock;

use super::{Ingest, IngestError, RawBody};

/// Tags of a service's log run.
pub const SERVICE_LOG_TAGS: [&str; 2] = ["otlp", "service-logs"];

/// What an OTLP export stored and refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtlpOutcome {
    /// Loupe points (metrics) or log lines stored.
    pub stored: u64,
    /// OTLP data points or log records refused: OTLP's partial success.
    pub rejected: Rejections,
}

impl Ingest {
    /// An OTLP/HTTP metrics body into `project`'s series outside runs.
    pub fn otlp_metrics(
        &self,
        project: &str,
        body: RawBody<'_>,
        encoding: OtlpEncoding,
    ) -> Result<OtlpOutcome, IngestError> {
        self.counted_otlp(|| {
            let batch = self.decode(body, |bytes, _now, limits| {
                otlp::decode_otlp_metrics(bytes, encoding, limits)
            })?;
            self.store_otlp_metrics(project, batch)
        })
    }

    /// A decoded OTLP metrics message (gRPC).
    pub fn otlp_metrics_message(
        &self,
        project: &str,
        request: &ExportMetricsServiceRequest,
    ) -> Result<OtlpOutcome, IngestError> {
        self.counted_otlp(|| {
            let batch = otlp::metrics::otlp_metrics(request, &self.limits)?;
            self.store_otlp_metrics(project, batch)
        })
    }

    fn store_otlp_metrics(
        &self,
        project: &str,
        batch: OtlpMetrics,
    ) -> Result<OtlpOutcome, IngestError> {
        let stored = if batch.series.is_empty() {
            0
        } else {
            self.store_source_series(project, batch.series)?.accepted
        };
        Ok(OtlpOutcome {
            stored,
            rejected: batch.rejected,
        })
    }

    /// An OTLP/HTTP logs body into each service's log run in `project`.
    pub fn otlp_logs(
        &self,
        project: &str,
        body: RawBody<'_>,
        encoding: OtlpEncoding,
    ) -> Result<OtlpOutcome, IngestError> {
        self.counted_otlp(|| {
            let logs = self.decode(body, |bytes, now, limits| {
                otlp::decode_otlp_logs(bytes, encoding, now, limits)
            })?;
            self.store_otlp_logs(project, logs)
        })
    }

    /// A decoded OTLP logs message (gRPC).
    pub fn otlp_logs_message(
        &self,
        project: &str,
        request: &ExportLogsServiceRequest,
    ) -> Result<OtlpOutcome, IngestError> {
        self.counted_otlp(|| {
            let logs = otlp::logs::otlp_logs(request, clock::now_ns(), &self.limits)?;
            self.store_otlp_logs(project, logs)
        })
    }

    fn store_otlp_logs(&self, project: &str, logs: OtlpLogs) -> Result<OtlpOutcome, IngestError> {
        let mut stored = 0;
        for service in &logs.services {
            let run = self.service_log_run(project, service)?;
            let first_seq = self.stores.meta.append_logs(&run, &service.records)?;
            self.fanout.run_logs(&run, first_seq, &service.records);
            stored += service.records.len() as u64;
        }
        Ok(OtlpOutcome {
            stored,
            rejected: logs.rejected,
        })
    }

    /// The run holding `service`'s lines in `project`: renews its heartbeat,
    /// creating it on first use.
    fn service_log_run(&self, project: &str, service: &ServiceLog) -> Result<String, IngestError> {
        let id = service_log_run_id(project, &service.service);
        match self.stores.meta.run_project(&id) {
            Ok(owner) if owner == project => {
                self.stores.meta.heartbeat(&id)?;
            }
            Ok(owner) => {
                // Only a client choosing this id on purpose gets here.
                return Err(loupe_meta::Error::Conflict(format!(
                    "run {id:?} (the log run of service {:?}) belongs to project {owner:?}",
                    service.service
                ))
                .into());
            }
            Err(loupe_meta::Error::NotFound { .. }) => {
                let config = serde_json::json!({
                    "otlp": {"resource": service.resource.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>()}
                });
                self.stores.meta.create_or_resume_run(NewRun {
                    id: Some(id.clone()),
                    project: project.to_string(),
                    name: Some(service.service.clone()),
                    tags: Some(SERVICE_LOG_TAGS.iter().map(|t| t.to_string()).collect()),
                    config: Some(config),
                    host: service.host().map(str::to_string),
                    ..Default::default()
                })?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(id)
    }

    /// Counts a client's mistake once, as [`Ingest::counted`] does.
    fn counted_otlp(
        &self,
        write: impl FnOnce() -> Result<OtlpOutcome, IngestError>,
    ) -> Result<OtlpOutcome, IngestError> {
        // A partial success is a success: the request was taken, and the
        // exporter is told what was refused in the answer.
        let result = write();
        if let Err(e) = &result
            && e.is_rejection()
        {
            self.fanout.rejected();
        }
        result
    }
}

/// The id of `service`'s log run in `project`: `svc-{service}-{hash}`, the
/// service's name cut to the characters and length a run id allows, and 16
/// hex digits of FNV-1a over `project\0service` so that two services whose
/// names cut alike, or one service in two projects, never share a run.
/// FNV-1a is written out here because the id must never change: it names
/// stored runs.
pub fn service_log_run_id(project: &str, service: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in project.bytes().chain([0]).chain(service.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let readable: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("svc-{readable}-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::service_log_run_id;

    #[test]
    fn service_log_run_ids_are_stable_valid_and_distinct() {
        // Pinned: this id names stored runs.
        assert_eq!(
            service_log_run_id("p", "checkout"),
            service_log_run_id("p", "checkout")
        );
        let a = service_log_run_id("p", "a b");
        let b = service_log_run_id("p", "a_b");
        assert_ne!(a, b);
        assert!(a.starts_with("svc-a_b-"));
        assert_ne!(service_log_run_id("p", "x"), service_log_run_id("q", "x"));
        let long = service_log_run_id("p", &"é".repeat(300));
        assert!(long.len() <= 64, "{long}");
    }
}
