//! Numeric series: ingest batches, listings with summaries, and data pages
//! (`/api/v1/runs/{id}/metrics`, `/api/v1/runs/{id}/series…`,
//! `/api/v1/metrics…`).

use std::collections::BTreeMap;

use loupe_model::nonfinite;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Float;

/// What an ingest request stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// Points (or records) written durably.
    pub accepted: u64,
    /// The batch's `Idempotency-Key` was seen before: nothing was stored
    /// again. Left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

impl Accepted {
    /// `n` points or records stored.
    pub fn stored(n: u64) -> Self {
        Accepted {
            accepted: n,
            duplicate: false,
        }
    }
}

/// `POST /api/v1/runs/{id}/metrics` and `POST /api/v1/metrics`: series as
/// columns of equal length. Gzip or zstd bodies are accepted
/// (`Content-Encoding`). Unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricsBatch {
    pub series: Vec<SeriesColumns>,
}

/// One series' points in a [`MetricsBatch`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesColumns {
    /// `train/loss`, `gpu/0/util`, …
    pub name: String,
    /// Integer steps; absent: the points have no step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Vec<i64>>,
    /// Unix seconds, 1970 to 2255; absent: the server's "now" for every point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Vec<f64>>,
    #[serde(with = "nonfinite::vec")]
    #[schema(value_type = Vec<Float>)]
    pub value: Vec<f64>,
    /// Series outside runs only (`POST /api/v1/metrics`): string labels;
    /// `run` and `project` are the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `POST /api/v1/metrics` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// The project the series belong to (defaults to the token's, or `default`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// One series in a listing: its name, point count, step and time extent,
/// and last/min/max.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesInfo {
    pub name: String,
    pub count: u64,
    /// `null` for series without steps.
    #[schema(required)]
    pub first_step: Option<i64>,
    #[schema(required)]
    pub last_step: Option<i64>,
    /// Unix seconds.
    pub first_time: f64,
    pub last_time: f64,
    #[serde(with = "nonfinite")]
    #[schema(value_type = Float)]
    pub last: f64,
    #[serde(with = "nonfinite")]
    #[schema(value_type = Float)]
    pub min: f64,
    #[serde(with = "nonfinite")]
    #[schema(value_type = Float)]
    pub max: f64,
    /// Series outside runs only: their labels but `project`. Left out for
    /// a run's series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `GET /api/v1/runs/{id}/series`, `GET /api/v1/metrics/series`: one
/// page, ordered by series key (name, then labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesList {
    pub series: Vec<SeriesInfo>,
    /// Pass as `cursor` for the next page; `null` on the last. (Absent
    /// from servers that answered in one page.)
    #[serde(default)]
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// The most series one listing page holds, and the page size by default.
pub const SERIES_PAGE_MAX: usize = 10_000;
pub const SERIES_PAGE_DEFAULT: usize = 1_000;

/// `GET /api/v1/runs/{id}/series` query: a page of the run's series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesListQuery {
    /// Series per page: 1 to 10000, 1000 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `GET /api/v1/runs/{id}/series/data` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataQuery {
    /// The series name, e.g. `train/loss`.
    pub name: String,
    /// `step` (the default for run series) or `time` (Unix seconds; the
    /// default for series outside runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<f64>,
    /// Chart width in pixels: at most 4 × width points come back (M4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Without `width`: points per page (default 10000, at most 100000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Without `width`: the `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The x column of a data page: steps (integers), or times in Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum XColumn {
    Steps(Vec<i64>),
    Seconds(Vec<f64>),
}

impl XColumn {
    pub fn len(&self) -> usize {
        match self {
            XColumn::Steps(v) => v.len(),
            XColumn::Seconds(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as numbers (steps converted).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            XColumn::Steps(v) => v.iter().map(|&s| s as f64).collect(),
            XColumn::Seconds(v) => v.clone(),
        }
    }
}

/// A series' points: M4 over `width` pixel columns (`downsampled` when
/// points were left out), or a raw page, which carries every coordinate
/// exactly and a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesData {
    pub x: XColumn,
    #[serde(with = "nonfinite::vec")]
    #[schema(value_type = Vec<Float>)]
    pub y: Vec<f64>,
    pub count: u64,
    pub downsampled: bool,
    /// Raw pages only: the next page's `cursor`, `null` on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<Option<String>>,
    /// Raw pages only: each point's step (`null`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Vec<Option<i64>>>,
    /// Raw pages only: each point's time, Unix nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ns: Option<Vec<i64>>,
}

impl SeriesData {
    /// The cursor of the next raw page, if there is one.
    pub fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_ref().and_then(|c| c.as_deref())
    }
}
