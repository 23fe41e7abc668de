//! The one write path. Every protocol's handler — a run's metrics, series
//! outside runs, log lines, and every protocol to come — calls [`Ingest`]:
//!
//! ```text
//! body ─► undo Content-Encoding ─► decode ─► keys ─► series limits ─► append (durable) ─► Fanout
//!                                                                                  counters, summaries,
//!                                                                                  live events, diagnosis
//! ```
//!
//! The series limits ([`series_limits`]) sit here so that every protocol,
//! present and future, is held to them without knowing they exist.
//!
//! A new protocol is a decoder plus one method here, never a new fan-out.
//! **Threading:** every method is blocking CPU and disk work (decompression
//! and decoding are proportional to the body); callers run it off the async
//! runtime (`http::blocking`). **Durability:** the fan-out hears only of what
//! the stores acknowledged, so diagnosis and live clients never see data a
//! crash could take back.

mod fanout;
mod otlp;
pub mod series_limits;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use fanout::{Fanout, LatestPoint};
pub use otlp::{OtlpOutcome, SERVICE_LOG_TAGS, service_log_run_id};
pub use series_limits::{SeriesCounter, SeriesLimitError, SeriesLimits, SeriesOwner, SeriesSeed};

use loupe_ingest::{BodyError, DecodeError, Limits, SeriesColumns};
use loupe_model::{KeyError, LogRecord, SeriesKey, clock, label};
use loupe_tsdb::{SeriesWrite, WriteBatch};

use crate::diagnosis::SeriesIn;
use crate::stores::Stores;

pub use loupe_api::Accepted;

/// Why a write was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body's encoding or size (a client error).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The body's content (a client error naming the place).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A series name or label set that is not a valid key (a client error).
    #[error("series[{index}]{field}: {source}")]
    Key {
        index: usize,
        /// `.name` when only the name can be at fault.
        field: &'static str,
        source: KeyError,
    },
    /// The batch would create series past a run's or project's limit.
    #[error(transparent)]
    SeriesLimit(#[from] SeriesLimitError),
    #[error(transparent)]
    Tsdb(#[from] loupe_tsdb::Error),
    #[error(transparent)]
    Meta(#[from] loupe_meta::Error),
}

impl IngestError {
    /// True when the client sent something wrong (counted as a rejection).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            IngestError::Body(_)
                | IngestError::Decode(_)
                | IngestError::Key { .. }
                | IngestError::SeriesLimit(_)
        )
    }
}

/// A request body as it arrived: bytes and their `Content-Encoding`.
pub struct RawBody<'a> {
    pub bytes: &'a [u8],
    pub encoding: Option<&'a str>,
    /// The request's share of the body budget, charged for the bytes
    /// decompression produces; `None`: not metered.
    pub charge: Option<&'a crate::body_budget::BodyCharge>,
}

/// What a remote-write request carried, for its response headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteWriteCounts {
    pub samples: u64,
    pub histograms: u64,
    pub exemplars_dropped: u64,
    pub histogram_buckets_dropped: u64,
}

/// The write path's service: decode → keys → append → fan-out.
#[derive(Clone)]
pub struct Ingest {
    stores: Stores,
    limits: Limits,
    fanout: Fanout,
    series: Arc<SeriesCounter>,
}

impl Ingest {
    /// The service over `stores`; the series counts are seeded from what
    /// the stores hold (one pass over the engine's label index).
    pub fn new(
        stores: Stores,
        limits: Limits,
        series_limits: SeriesLimits,
        fanout: Fanout,
    ) -> Result<Self, IngestError> {
        let seed = series_seed(&stores)?;
        let series = Arc::new(SeriesCounter::new(
            series_limits,
            Arc::new(stores.tsdb.clone()),
            seed,
        ));
        Ok(Ingest {
            stores,
            limits,
            fanout,
            series,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Series counts per run and project, and their limits.
    pub fn series_counter(&self) -> &Arc<SeriesCounter> {
        &self.series
    }

    /// Deletes a run's series from the engine, and their count.
    pub fn delete_run_series(&self, run: &str) -> Result<usize, IngestError> {
        let n = self
            .stores
            .tsdb
            .delete_series(&loupe_model::SeriesMatcher::any().label_eq(label::RUN, run))?;
        self.series.forget_run(run);
        Ok(n)
    }

    /// Appends a batch once its new series, if any, fit `owner`'s limits;
    /// the reservation is held until the append has returned. `project`
    /// is asked for only when a batch creates series.
    fn append_within_limits(
        &self,
        wb: WriteBatch,
        owner: impl FnOnce() -> Result<(Option<String>, String), IngestError>,
    ) -> Result<(), IngestError> {
        let new = self.series.unknown(wb.series.iter().map(|s| &s.key));
        let _reservation = if new.is_empty() {
            None
        } else {
            let (run, project) = owner()?;
            let owner = match &run {
                Some(run) => SeriesOwner::Run {
                    run,
                    project: &project,
                },
                None => SeriesOwner::Project(&project),
            };
            match self.series.reserve(owner, &new) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.fanout.counters.limit_refused(e.reason());
                    return Err(e.into());
                }
            }
        };
        self.stores.tsdb.append(wb)?;
        Ok(())
    }

    /// A run's columnar metrics: `{"series":[{"name","step","time","value"}]}`,
    /// each series keyed `name{run=RUN}`.
    pub fn run_metrics(&self, run: &str, body: RawBody<'_>) -> Result<Accepted, IngestError> {
        self.counted(|| {
            let batch = self.decode(body, loupe_ingest::decode_metrics)?;
            let diagnose = self.fanout.diagnoses();
            let mut wb = WriteBatch::new();
            let mut latest = Vec::with_capacity(batch.series.len());
            let mut diag = Vec::new();
            for (index, s) in batch.series.into_iter().enumerate() {
                let key =
                    SeriesKey::for_run(s.name.clone(), run).map_err(|source| IngestError::Key {
                        index,
                        field: ".name",
                        source,
                    })?;
                if diagnose {
                    diag.push(diag_columns(&s));
                }
                if let Some(l) = LatestPoint::of(s.steps.as_deref(), &s.values) {
                    latest.push((s.name, l));
                }
                wb.push(SeriesWrite::new(key, s.steps, s.times_ns, s.values));
            }
            let points = wb.points() as u64;
            self.append_within_limits(wb, || {
                let project = self.stores.meta.run_project(run)?;
                Ok((Some(run.to_string()), project))
            })?;
            self.fanout.run_points(run, points, latest, diag);
            Ok(Accepted::stored(points))
        })
    }

    /// Series outside runs (hosts, services): each keyed by its own labels
    /// plus `project=PROJECT`.
    pub fn source_metrics(
        &self,
        project: &str,
        body: RawBody<'_>,
    ) -> Result<Accepted, IngestError> {
        self.counted(|| {
            let series = self.decode(body, loupe_ingest::decode_external_metrics)?;
            self.store_source_series(project, series)
        })
    }

    /// InfluxDB line protocol into series outside runs, as
    /// [`Ingest::source_metrics`] stores them; `ns_per_unit` is the
    /// request's timestamp precision. String fields are not stored (they
    /// are not numbers); their count is returned beside the answer.
    pub fn line_protocol(
        &self,
        project: &str,
        body: RawBody<'_>,
        ns_per_unit: i64,
    ) -> Result<(Accepted, u64), IngestError> {
        let mut strings = 0;
        let accepted = self.counted(|| {
            let batch = self.decode(body, |bytes, now, limits| {
                loupe_ingest::decode_line_protocol(bytes, ns_per_unit, now, limits)
            })?;
            strings = batch.string_fields;
            self.store_source_series(project, batch.series)
        })?;
        if strings > 0 {
            self.fanout.counters.string_fields_skipped(strings);
        }
        Ok((accepted, strings))
    }

    /// Prometheus remote write (1.0 or 2.0, by `version`) into series
    /// outside runs, as [`Ingest::source_metrics`] stores them. Returns the
    /// decoded batch's counts beside the answer (the 2.0 response reports
    /// them); exemplars and histogram buckets not stored are counted.
    pub fn remote_write(
        &self,
        project: &str,
        body: RawBody<'_>,
        version: loupe_ingest::RemoteWriteVersion,
    ) -> Result<(Accepted, RemoteWriteCounts), IngestError> {
        let mut counts = RemoteWriteCounts::default();
        let accepted = self.counted(|| {
            let batch = self.decode(body, |bytes, _now, limits| {
                loupe_ingest::decode_remote_write(bytes, version, limits)
            })?;
            counts = RemoteWriteCounts {
                samples: batch.samples,
                histograms: batch.histograms,
                exemplars_dropped: batch.exemplars_dropped,
                histogram_buckets_dropped: batch.histogram_buckets_dropped,
            };
            self.store_source_series(project, batch.series)
        })?;
        let c = &self.fanout.counters;
        c.not_stored("exemplars", counts.exemplars_dropped);
        c.not_stored("native_histogram_buckets", counts.histogram_buckets_dropped);
        Ok((accepted, counts))
    }

    /// A scrape's series (already keyed and labelled by the scraper, see
    /// `crate::scrape`), stored as series outside runs under `project`,
    /// stale markers included.
    pub fn scraped(
        &self,
        project: &str,
        series: Vec<(SeriesKey, SeriesColumns)>,
    ) -> Result<Accepted, IngestError> {
        self.counted(|| self.store_source_series(project, series))
    }

    /// Keys decoded external series under `project` and stores them.
    fn store_source_series(
        &self,
        project: &str,
        series: Vec<(SeriesKey, SeriesColumns)>,
    ) -> Result<Accepted, IngestError> {
        let diagnose = self.fanout.diagnoses();
        let mut wb = WriteBatch::new();
        let mut diag = Vec::new();
        for (index, (key, cols)) in series.into_iter().enumerate() {
            if diagnose {
                // A staleness marker says "no value here": diagnosis must
                // not read it as a NaN loss or a value.
                let live = diag_columns_without_stale(&cols);
                if !live.values.is_empty() {
                    diag.push((key.labels().to_vec(), live));
                }
            }
            let mut labels = key.labels().to_vec();
            labels.push((label::PROJECT.into(), project.to_string()));
            let key = SeriesKey::new(key.name(), labels).map_err(|source| IngestError::Key {
                index,
                field: "",
                source,
            })?;
            wb.push(SeriesWrite::new(
                key,
                cols.steps,
                cols.times_ns,
                cols.values,
            ));
        }
        let points = wb.points() as u64;
        self.append_within_limits(wb, || Ok((None, project.to_string())))?;
        self.fanout.source_points(project, points, diag);
        Ok(Accepted::stored(points))
    }

    /// A run's log records; with an idempotency key, a batch is stored once
    /// per run and key (a resend answers `duplicate`).
    pub fn run_logs(
        &self,
        run: &str,
        body: RawBody<'_>,
        idempotency_key: Option<&str>,
    ) -> Result<Accepted, IngestError> {
        self.counted(|| {
            let records: Vec<LogRecord> = self.decode(body, loupe_ingest::decode_logs)?;
            let Some(first_seq) =
                self.stores
                    .meta
                    .append_logs_once(run, idempotency_key, &records)?
            else {
                // Stored before under this key: the client lost our answer.
                return Ok(Accepted {
                    accepted: 0,
                    duplicate: true,
                });
            };
            self.fanout.run_logs(run, first_seq, &records);
            Ok(Accepted::stored(records.len() as u64))
        })
    }

    /// Undoes the body's encoding, then decodes it with the server's clock
    /// as "now" for points that carry no time.
    fn decode<T>(
        &self,
        body: RawBody<'_>,
        decoder: impl FnOnce(&[u8], i64, &Limits) -> Result<T, DecodeError>,
    ) -> Result<T, IngestError> {
        let mut meter = |n: usize| body.charge.is_none_or(|c| c.grow_blocking(n));
        let bytes =
            loupe_ingest::decode_body_metered(body.bytes, body.encoding, &self.limits, &mut meter)?;
        Ok(decoder(&bytes, clock::now_ns(), &self.limits)?)
    }

    /// Counts a client's mistake once, whatever the protocol.
    fn counted(
        &self,
        write: impl FnOnce() -> Result<Accepted, IngestError>,
    ) -> Result<Accepted, IngestError> {
        let result = write();
        if let Err(e) = &result
            && e.is_rejection()
        {
            self.fanout.rejected();
        }
        result
    }
}

/// The series counts the stores hold: per run (from the engine's `run`
/// label index, each run's project from the metadata store) and per
/// project outside runs (the `project` label; such series never carry a
/// run label, and a run's series never a project label).
fn series_seed(stores: &Stores) -> Result<SeriesSeed, IngestError> {
    let mut runs = Vec::new();
    for (run, n) in stores.tsdb.series_count_by_label(label::RUN) {
        let project = match stores.meta.run_project(&run) {
            Ok(p) => Some(p),
            // Series of a run the metadata store lost: counted for the run only.
            Err(loupe_meta::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        runs.push((run, project, n as u64));
    }
    let projects = stores
        .tsdb
        .series_count_by_label(label::PROJECT)
        .into_iter()
        .map(|(p, n)| (p, n as u64))
        .collect();
    Ok(SeriesSeed { runs, projects })
}

/// The diagnoser's copy of a series' columns (times in Unix seconds).
fn diag_columns(s: &SeriesColumns) -> SeriesIn {
    SeriesIn {
        name: s.name.clone(),
        steps: s.steps.clone(),
        times: s.times_ns.iter().map(|t| *t as f64 / 1e9).collect(),
        values: s.values.clone(),
    }
}

/// [`diag_columns`] without the points that are staleness markers.
fn diag_columns_without_stale(s: &SeriesColumns) -> SeriesIn {
    let mut d = diag_columns(s);
    if s.values
        .iter()
        .any(|v| loupe_model::stale::is_stale_marker(*v))
    {
        let keep: Vec<bool> = s
            .values
            .iter()
            .map(|v| !loupe_model::stale::is_stale_marker(*v))
            .collect();
        let pick = |xs: Vec<f64>| -> Vec<f64> {
            xs.into_iter()
                .zip(&keep)
                .filter_map(|(x, k)| k.then_some(x))
                .collect()
        };
        d.times = pick(d.times);
        d.values = pick(d.values);
        d.steps = d.steps.map(|st| {
            st.into_iter()
                .zip(&keep)
                .filter_map(|(x, k)| k.then_some(x))
                .collect()
        });
    }
    d
}
