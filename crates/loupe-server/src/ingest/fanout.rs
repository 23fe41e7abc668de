//! Who hears of a write once it is durable: the request counters, the run
//! summaries, live clients and diagnosis. This is the one interface the
//! write path talks to; none of them can slow it down (counters are atomic,
//! summaries only mark series dirty, live events and diagnosis batches are
//! handed over without waiting).

use std::collections::BTreeMap;
use std::sync::Arc;

use loupe_api::{LiveLogs, LivePayload, LivePoint, LogEntry};
use loupe_model::LogRecord;

use crate::counters::ServerMetrics;
use crate::diagnosis::{DiagInput, Diagnosis, SeriesIn};
use crate::live::LiveHub;
use crate::summary::SummaryBuffer;

/// Live clients get at most this many log lines per event (a screenful).
const LIVE_LOG_TAIL: usize = 200;

/// Count, last step and last value of a request's points of one series,
/// for live clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatestPoint {
    pub count: u64,
    pub last_step: Option<i64>,
    pub last: f64,
}

impl LatestPoint {
    /// The point with the highest step (the latest sent among equals), or
    /// the last one sent when there are no steps; `None` for no points.
    pub fn of(steps: Option<&[i64]>, values: &[f64]) -> Option<LatestPoint> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let (last_step, last) = match steps {
            Some(st) => {
                let i = (0..n.min(st.len())).max_by_key(|&i| (st[i], i))?;
                (Some(st[i]), values[i])
            }
            None => (None, values[n - 1]),
        };
        Some(LatestPoint {
            count: n as u64,
            last_step,
            last,
        })
    }
}

/// The listeners of the write path.
#[derive(Clone)]
pub struct Fanout {
    pub counters: Arc<ServerMetrics>,
    pub summaries: Arc<SummaryBuffer>,
    pub live: Arc<LiveHub>,
    pub diagnosis: Arc<Diagnosis>,
}

impl Fanout {
    /// Whether diagnosis wants copies of the points (built before the
    /// append consumes them).
    pub fn diagnoses(&self) -> bool {
        self.diagnosis.enabled()
    }

    /// A request was refused as malformed or too large.
    pub fn rejected(&self) {
        ServerMetrics::add(&self.counters.rejected_requests, 1);
    }

    /// A run's points are durable.
    pub fn run_points(
        &self,
        run: &str,
        points: u64,
        latest: Vec<(String, LatestPoint)>,
        diag: Vec<SeriesIn>,
    ) {
        ServerMetrics::add(&self.counters.points_ingested, points);
        ServerMetrics::add(&self.counters.ingest_requests, 1);
        let mut live = BTreeMap::new();
        for (name, l) in latest {
            self.summaries.mark(run, &name);
            let point = LivePoint {
                count: l.count,
                last_step: l.last_step,
                last: l.last,
            };
            live.insert(name, point);
        }
        self.live.publish(run, LivePayload::Points(live));
        if self.diagnoses() {
            self.diagnosis.submit(DiagInput::RunPoints {
                run: run.to_string(),
                series: diag,
            });
        }
    }

    /// Points of series outside runs are durable; each diagnosed series
    /// comes with its labels (without `project`).
    pub fn source_points(
        &self,
        project: &str,
        points: u64,
        diag: Vec<(Vec<(String, String)>, SeriesIn)>,
    ) {
        ServerMetrics::add(&self.counters.points_ingested, points);
        ServerMetrics::add(&self.counters.ingest_requests, 1);
        if self.diagnoses() {
            self.diagnosis.submit(DiagInput::SourcePoints {
                project: project.to_string(),
                series: diag,
            });
        }
    }

    /// A run's log records are durable, numbered from `first_seq`.
    pub fn run_logs(&self, run: &str, first_seq: u64, records: &[LogRecord]) {
        let n = records.len() as u64;
        ServerMetrics::add(&self.counters.log_records_ingested, n);
        if self.diagnoses() {
            self.diagnosis.submit(DiagInput::Logs {
                run: run.to_string(),
                first_seq,
                lines: records
                    .iter()
                    .map(|r| (r.time, r.stream, r.level, r.text.clone()))
                    .collect(),
            });
        }
        let skip = records.len().saturating_sub(LIVE_LOG_TAIL);
        let tail: Vec<LogEntry> = records
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, r)| LogEntry {
                seq: first_seq + i as u64,
                time: r.time,
                stream: r.stream,
                level: r.level,
                text: r.text.clone(),
                attributes: r.attributes.clone(),
            })
            .collect();
        let logs = LiveLogs {
            count: n,
            records: tail,
        };
        self.live.publish(run, LivePayload::Logs(logs));
    }
}

#[cfg(test)]
mod tests {
    use super::LatestPoint;

    #[test]
    fn latest_point_is_the_highest_step_or_the_last_sent() {
        let l = LatestPoint::of(Some(&[3, 9, 9, 2]), &[0.1, 0.2, 0.3, 0.4]).unwrap();
        assert_eq!((l.count, l.last_step, l.last), (4, Some(9), 0.3));
        let l = LatestPoint::of(None, &[1.0, f64::NAN, 2.0]).unwrap();
        assert_eq!((l.count, l.last_step, l.last), (3, None, 2.0));
        assert!(LatestPoint::of(Some(&[]), &[]).is_none());
    }
}
