//! The engine's public vocabulary: options, write batches and read results.

use loupe_model::{NO_STEP, SeriesKey};

use crate::{Error, Result};

/// The engine's internal number for a series; stable for the series' life.
pub type SeriesId = u64;

/// When an append's data must be on disk before the append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncMode {
    /// Every append is fsync'd on its own.
    Always,
    /// Appends that arrive while an fsync is in flight share the next one
    /// (group commit). Each append still returns only once it is on disk.
    #[default]
    Group,
    /// Never fsync; the OS writes back when it likes. A power loss can lose
    /// acknowledged data; a process crash cannot.
    Never,
}

impl std::str::FromStr for FsyncMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "always" => Ok(FsyncMode::Always),
            "group" => Ok(FsyncMode::Group),
            "never" => Ok(FsyncMode::Never),
            other => Err(Error::Invalid(format!(
                "fsync mode {other:?}: expected always, group or never"
            ))),
        }
    }
}

/// Tuning knobs; the defaults suit a training node and a small server.
#[derive(Debug, Clone)]
pub struct TsdbOptions {
    pub fsync: FsyncMode,
    /// The head is flushed to a segment once it holds this many points.
    pub flush_points: usize,
    /// Values per page in segment columns: the unit an M4 read decodes at a
    /// pixel-column boundary. Smaller pages mean faster zooms and slightly
    /// larger files (see ARCHITECTURE.md).
    pub page_points: usize,
    /// Most points in one series chunk; longer series get several chunks.
    /// It also bounds what a merge holds decoded per series: chunks of at
    /// least half this size that no other write overlaps are copied without
    /// decoding.
    pub max_chunk_points: usize,
    /// Segments are merged once there are more than this many (a few of the
    /// smallest neighbours at a time, see `engine::flush::pick_merge`).
    pub max_segments: usize,
    /// Bytes of decoded pages kept for repeated reads (0 disables the cache).
    pub page_cache_bytes: u64,
    /// Start a background thread that flushes the head when it is full.
    pub background_flush: bool,
}

impl Default for TsdbOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncMode::Group,
            flush_points: 4_000_000,
            page_points: 512,
            max_chunk_points: 1 << 16,
            max_segments: 8,
            page_cache_bytes: 64 << 20,
            background_flush: true,
        }
    }
}

/// Points for one series in a write: columns of equal length.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesWrite {
    pub key: SeriesKey,
    /// Training steps, or `None` for series that have only times.
    pub steps: Option<Vec<i64>>,
    /// Unix time in nanoseconds.
    pub times: Vec<i64>,
    pub values: Vec<f64>,
}

impl SeriesWrite {
    pub fn new(key: SeriesKey, steps: Option<Vec<i64>>, times: Vec<i64>, values: Vec<f64>) -> Self {
        Self {
            key,
            steps,
            times,
            values,
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub(crate) fn validate(&self, index: usize) -> Result<()> {
        let n = self.values.len();
        if self.times.len() != n {
            return Err(Error::Invalid(format!(
                "series[{index}] ({}): {} times for {n} values",
                self.key,
                self.times.len()
            )));
        }
        if let Some(steps) = &self.steps {
            if steps.len() != n {
                return Err(Error::Invalid(format!(
                    "series[{index}] ({}): {} steps for {n} values",
                    self.key,
                    steps.len()
                )));
            }
            if let Some(i) = steps.iter().position(|&s| s == NO_STEP) {
                return Err(Error::Invalid(format!(
                    "series[{index}] ({}): step[{i}] is {NO_STEP}, which is reserved",
                    self.key
                )));
            }
        }
        Ok(())
    }
}

/// A batch of writes to many series, acknowledged together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    pub series: Vec<SeriesWrite>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, w: SeriesWrite) -> &mut Self {
        self.series.push(w);
        self
    }

    pub fn points(&self) -> usize {
        self.series.iter().map(|s| s.len()).sum()
    }
}

/// Which coordinate orders and bounds a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    Step,
    Time,
}

/// Points read back, as columns. `steps[i]` is [`NO_STEP`] for points without a step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Points {
    pub steps: Vec<i64>,
    pub times: Vec<i64>,
    pub values: Vec<f64>,
}

impl Points {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Splits off the points from `at` on.
    pub(crate) fn split_off(&mut self, at: usize) -> Points {
        Points {
            steps: self.steps.split_off(at),
            times: self.times.split_off(at),
            values: self.values.split_off(at),
        }
    }

    pub(crate) fn push(&mut self, step: i64, time: i64, value: f64) {
        self.steps.push(step);
        self.times.push(time);
        self.values.push(value);
    }

    /// The x coordinate of point `i` on `axis`.
    pub fn x(&self, axis: XAxis, i: usize) -> i64 {
        match axis {
            XAxis::Step => self.steps[i],
            XAxis::Time => self.times[i],
        }
    }
}

/// Count, extremes, sum, first and last of a set of points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    /// Smallest and largest value, ignoring NaN (NaN if every value is NaN).
    pub min: f64,
    pub max: f64,
    /// Sum of the finite values.
    pub sum: f64,
    pub first_step: i64,
    pub last_step: i64,
    pub first_time: i64,
    pub last_time: i64,
    /// Earliest and latest time of any point (differs from first/last
    /// time when a resumed run re-logged steps).
    pub min_time: i64,
    pub max_time: i64,
    /// Value of the point with the highest step (or time, for unstepped series).
    pub last: f64,
    pub first: f64,
}

/// A series and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub id: SeriesId,
    pub key: SeriesKey,
}
