//! Listing runs: filters, sorts (including by a summary statistic) and
//! keyset pagination with opaque cursors.
//!
//! A page is "rows after the last row of the previous page in sort order",
//! never an OFFSET: a page costs the same wherever it is, and runs created
//! while a client pages neither shift nor repeat rows. Every sort ends with
//! the run's internal `rid` so the order is total.
//!
//! Sorting by a summary statistic walks the `run_summary_<stat>` index
//! (phase 0); runs without a (non-NaN) value for it come after, newest first
//! (phase 1). The cursor records the phase.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE64URL_NOPAD;
use loupe_model::{Run, RunStatus};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};

use super::{RUN_COLUMN_COUNT, RUN_COLUMNS, RunRow, load_summary};
use crate::error::{Error, Result};
use crate::store::MetaStore;

/// Page size when the query names none.
pub const DEFAULT_RUN_LIMIT: usize = 50;
/// Largest page; bigger limits are clamped to it.
pub const MAX_RUN_LIMIT: usize = 1000;

/// Which statistic of a series summary to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SummaryStat {
    Last,
    Min,
    Max,
}

impl SummaryStat {
    fn column(self) -> &'static str {
        match self {
            SummaryStat::Last => "last",
            SummaryStat::Min => "min",
            SummaryStat::Max => "max",
        }
    }
}

/// What runs are ordered by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SortKey {
    StartTime,
    Name,
    Status,
    Heartbeat,
    /// A statistic of one series' summary; runs lacking it come last.
    Summary {
        series: String,
        stat: SummaryStat,
    },
}

/// A sort: key and direction. The text form is the key's name with a `-`
/// prefix for descending: `-start_time` (the default: newest first),
/// `name`, `status`, `heartbeat`, `summary.train/loss.last`,
/// `-summary.eval.acc.max` (the statistic follows the *last* dot, so series
/// names may contain dots).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunSort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for RunSort {
    fn default() -> Self {
        RunSort {
            key: SortKey::StartTime,
            descending: true,
        }
    }
}

impl FromStr for RunSort {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (descending, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let key = match body {
            "start_time" => SortKey::StartTime,
            "name" => SortKey::Name,
            "status" => SortKey::Status,
            "heartbeat" | "heartbeat_time" => SortKey::Heartbeat,
            _ => {
                let Some(rest) = body.strip_prefix("summary.") else {
                    return Err(Error::invalid(format!(
                        "unknown sort {s:?}: expected start_time, name, status, heartbeat or \
                         summary.<series>.<last|min|max>, with '-' in front for descending"
                    )));
                };
                let (series, stat) = rest.rsplit_once('.').unwrap_or(("", rest));
                let stat = match stat {
                    "last" => SummaryStat::Last,
                    "min" => SummaryStat::Min,
                    "max" => SummaryStat::Max,
                    other => {
                        return Err(Error::invalid(format!(
                            "sort {s:?}: unknown statistic {other:?}, expected last, min or max"
                        )));
                    }
                };
                if series.is_empty() {
                    return Err(Error::invalid(format!("sort {s:?} names no series")));
                }
                SortKey::Summary {
                    series: series.to_string(),
                    stat,
                }
            }
        };
        Ok(RunSort { key, descending })
    }
}

impl fmt::Display for RunSort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.descending {
            f.write_str("-")?;
        }
        match &self.key {
            SortKey::StartTime => f.write_str("start_time"),
            SortKey::Name => f.write_str("name"),
            SortKey::Status => f.write_str("status"),
            SortKey::Heartbeat => f.write_str("heartbeat"),
            SortKey::Summary { series, stat } => {
                write!(f, "summary.{series}.{}", stat.column())
            }
        }
    }
}

/// Which runs to list, in what order, which page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunQuery {
    pub project: Option<String>,
    /// Any of these statuses; `None` or empty: all.
    pub status: Option<Vec<RunStatus>>,
    /// Runs carrying this tag.
    pub tag: Option<String>,
    /// Case-insensitive substring of the name, id or group.
    pub q: Option<String>,
    pub sort: RunSort,
    /// Default [`DEFAULT_RUN_LIMIT`]; clamped to `1..=MAX_RUN_LIMIT`.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page, with the same filters and sort.
    pub cursor: Option<String>,
    /// Which series summaries to include in each run: `None` all of them,
    /// `Some(names)` only those (a run may log thousands of series; a table
    /// view shows a few).
    pub summary_series: Option<Vec<String>>,
}

/// One page of runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Present when more runs may follow.
    pub next_cursor: Option<String>,
}

impl MetaStore {
    /// Lists runs matching `query`, one page at a time.
    pub fn list_runs(&self, query: RunQuery) -> Result<RunPage> {
        let limit = query
            .limit
            .unwrap_or(DEFAULT_RUN_LIMIT)
            .clamp(1, MAX_RUN_LIMIT);
        let sort_name = query.sort.to_string();
        let cursor = query
            .cursor
            .as_deref()
            .map(|c| Cursor::decode(c, &sort_name))
            .transpose()?;
        let filters = Filters::new(&query);
        let desc = query.sort.descending;
        self.read(|tx| {
            let mut rows = match &query.sort.key {
                SortKey::Summary { series, stat } => {
                    let mut rows = Vec::new();
                    let phase = cursor.as_ref().map_or(0, |c| c.p);
                    if phase == 0 {
                        rows = with_metric(
                            tx,
                            &filters,
                            series,
                            *stat,
                            desc,
                            cursor.as_ref(),
                            limit + 1,
                        )?;
                    }
                    if rows.len() <= limit {
                        let after = cursor.as_ref().filter(|c| c.p == 1);
                        rows.extend(without_metric(
                            tx,
                            &filters,
                            series,
                            *stat,
                            after,
                            limit + 1 - rows.len(),
                        )?);
                    }
                    rows
                }
                key => {
                    let column = match key {
                        SortKey::StartTime => "r.start_time",
                        SortKey::Name => "r.name",
                        SortKey::Status => "r.status",
                        SortKey::Heartbeat => "r.heartbeat_time",
                        SortKey::Summary { .. } => unreachable!("handled above"),
                    };
                    by_column(tx, &filters, column, desc, cursor.as_ref(), limit + 1)?
                }
            };
            let next_cursor = if rows.len() > limit {
                rows.truncate(limit);
                rows.last().map(|row| {
                    Cursor {
                        s: sort_name.clone(),
                        p: row.phase,
                        k: CursorKey::from_sql(&row.key),
                        r: row.run.rid,
                    }
                    .encode()
                })
            } else {
                None
            };
            let mut runs = Vec::with_capacity(rows.len());
            for row in rows {
                let rid = row.run.rid;
                let mut run = row.run.into_run()?;
                run.summary = load_summary(tx, rid, query.summary_series.as_deref())?;
                runs.push(run);
            }
            Ok(RunPage { runs, next_cursor })
        })
    }
}

/// A listed row: the run, its sort key, and (summary sorts) its phase.
struct ListedRow {
    run: RunRow,
    key: SqlValue,
    phase: u8,
}

/// SQL conditions from the query's filters, on `run r`, with their
/// parameters in order.
struct Filters {
    clauses: Vec<String>,
    params: Vec<SqlValue>,
}

impl Filters {
    fn new(q: &RunQuery) -> Filters {
        let mut f = Filters {
            clauses: Vec::new(),
            params: Vec::new(),
        };
        if let Some(project) = &q.project {
            // An unknown project gives NULL, which matches nothing.
            f.clauses
                .push("r.project = (SELECT id FROM project WHERE name = ?)".into());
            f.params.push(SqlValue::Text(project.clone()));
        }
        if let Some(statuses) = q.status.as_ref().filter(|s| !s.is_empty()) {
            let marks = vec!["?"; statuses.len()].join(", ");
            f.clauses.push(format!("r.status IN ({marks})"));
            f.params.extend(
                statuses
                    .iter()
                    .map(|s| SqlValue::Text(s.as_str().to_string())),
            );
        }
        if let Some(tag) = &q.tag {
            f.clauses
                .push("EXISTS (SELECT 1 FROM run_tag t WHERE t.tag = ? AND t.run = r.rid)".into());
            f.params.push(SqlValue::Text(tag.clone()));
        }
        if let Some(text) = q.q.as_ref().filter(|t| !t.is_empty()) {
            f.clauses.push("instr(r.search, ?) > 0".into());
            f.params.push(SqlValue::Text(text.to_lowercase()));
        }
        f
    }

    /// ` AND …` for each filter, and its parameters appended to `params`.
    fn append(&self, sql: &mut String, params: &mut Vec<SqlValue>) {
        for c in &self.clauses {
            sql.push_str(" AND ");
            sql.push_str(c);
        }
        params.extend(self.params.iter().cloned());
    }
}

fn dir(desc: bool) -> (&'static str, &'static str) {
    if desc { ("DESC", "<") } else { ("ASC", ">") }
}

/// Sorted by a column of `run`.
fn by_column(
    tx: &Connection,
    filters: &Filters,
    column: &str,
    desc: bool,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<ListedRow>> {
    let (order, cmp) = dir(desc);
    // CROSS JOIN pins the join order: walk `run` (by the sort's index) and
    // look projects up, never the other way round.
    let mut sql = format!(
        "SELECT {RUN_COLUMNS}, {column} FROM run r CROSS JOIN project p WHERE p.id = r.project"
    );
    let mut params = Vec::new();
    filters.append(&mut sql, &mut params);
    if let Some(c) = cursor {
        sql.push_str(&format!(" AND ({column}, r.rid) {cmp} (?, ?)"));
        params.push(c.k.to_sql());
        params.push(SqlValue::Integer(c.r));
    }
    sql.push_str(&format!(
        " ORDER BY {column} {order}, r.rid {order} LIMIT ?"
    ));
    params.push(SqlValue::Integer(limit as i64));
    fetch(tx, &sql, params, 0)
}

/// Phase 0 of a summary sort: runs with a value, in value order.
fn with_metric(
    tx: &Connection,
    filters: &Filters,
    series: &str,
    stat: SummaryStat,
    desc: bool,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<ListedRow>> {
    let (order, cmp) = dir(desc);
    let col = format!("s.{}", stat.column());
    // Summary first: the (series, stat) index yields rows already in order,
    // so the query stops after `limit` matches instead of sorting them all.
    let mut sql = format!(
        "SELECT {RUN_COLUMNS}, {col} FROM run_summary s CROSS JOIN run r CROSS JOIN project p
         WHERE s.series = ? AND {col} IS NOT NULL AND r.rid = s.run AND p.id = r.project"
    );
    let mut params = vec![SqlValue::Text(series.to_string())];
    filters.append(&mut sql, &mut params);
    if let Some(c) = cursor {
        sql.push_str(&format!(" AND ({col}, s.run) {cmp} (?, ?)"));
        params.push(c.k.to_sql());
        params.push(SqlValue::Integer(c.r));
    }
    sql.push_str(&format!(" ORDER BY {col} {order}, s.run {order} LIMIT ?"));
    params.push(SqlValue::Integer(limit as i64));
    fetch(tx, &sql, params, 0)
}

/// Phase 1 of a summary sort: runs without a value, newest first.
fn without_metric(
    tx: &Connection,
    filters: &Filters,
    series: &str,
    stat: SummaryStat,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<ListedRow>> {
    let col = stat.column();
    let mut sql = format!(
        "SELECT {RUN_COLUMNS}, NULL FROM run r CROSS JOIN project p WHERE p.id = r.project"
    );
    let mut params = Vec::new();
    filters.append(&mut sql, &mut params);
    sql.push_str(&format!(
        " AND NOT EXISTS (SELECT 1 FROM run_summary s
              WHERE s.run = r.rid AND s.series = ? AND s.{col} IS NOT NULL)"
    ));
    params.push(SqlValue::Text(series.to_string()));
    if let Some(c) = after {
        sql.push_str(" AND r.rid < ?");
        params.push(SqlValue::Integer(c.r));
    }
    sql.push_str(" ORDER BY r.rid DESC LIMIT ?");
    params.push(SqlValue::Integer(limit as i64));
    fetch(tx, &sql, params, 1)
}

fn fetch(tx: &Connection, sql: &str, params: Vec<SqlValue>, phase: u8) -> Result<Vec<ListedRow>> {
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), |r| {
            Ok(ListedRow {
                run: RunRow::from_row(r)?,
                key: r.get(RUN_COLUMN_COUNT)?,
                phase,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The position after a page's last row. Serialised as base64url(JSON); the
/// sort it was made for is inside, so a cursor used with another sort is
/// rejected instead of silently skipping rows.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// The sort, as text.
    s: String,
    /// Phase (summary sorts): 0 with a value, 1 without.
    p: u8,
    k: CursorKey,
    /// The row's `rid`, the tie breaker.
    r: i64,
}

/// The sort key of the row; floats as their bits, so ±Inf and the exact
/// value survive the trip through JSON.
#[derive(Debug, Serialize, Deserialize)]
enum CursorKey {
    F(u64),
    T(String),
    N,
}

impl CursorKey {
    fn from_sql(v: &SqlValue) -> CursorKey {
        match v {
            SqlValue::Real(f) => CursorKey::F(f.to_bits()),
            SqlValue::Integer(i) => CursorKey::F((*i as f64).to_bits()),
            SqlValue::Text(s) => CursorKey::T(s.clone()),
            SqlValue::Null | SqlValue::Blob(_) => CursorKey::N,
        }
    }

    fn to_sql(&self) -> SqlValue {
        match self {
            CursorKey::F(bits) => SqlValue::Real(f64::from_bits(*bits)),
            CursorKey::T(s) => SqlValue::Text(s.clone()),
            CursorKey::N => SqlValue::Null,
        }
    }
}

impl Cursor {
    fn encode(&self) -> String {
        BASE64URL_NOPAD.encode(&serde_json::to_vec(self).expect("cursor encodes"))
    }

    fn decode(s: &str, sort: &str) -> Result<Cursor> {
        let bad = || Error::invalid(format!("malformed cursor {s:?}"));
        let bytes = BASE64URL_NOPAD.decode(s.as_bytes()).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.s != sort {
            return Err(Error::invalid(format!(
                "the cursor was made for sort {:?}, not {sort:?}",
                cursor.s
            )));
        }
        if cursor.p > 1 {
            return Err(bad());
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_parse_and_print() {
        for s in [
            "start_time",
            "-start_time",
            "name",
            "-status",
            "heartbeat",
            "summary.train/loss.last",
            "-summary.eval.acc.max",
            "summary.x.min",
        ] {
            assert_eq!(s.parse::<RunSort>().unwrap().to_string(), s);
        }
        let eval: RunSort = "-summary.eval.acc.max".parse().unwrap();
        assert_eq!(
            eval.key,
            SortKey::Summary {
                series: "eval.acc".into(),
                stat: SummaryStat::Max
            }
        );
        for bad in [
            "",
            "-",
            "bogus",
            "summary.",
            "summary.x",
            "summary.x.mean",
            "summary..last",
        ] {
            assert!(bad.parse::<RunSort>().is_err(), "{bad}");
        }
        assert_eq!(RunSort::default().to_string(), "-start_time");
    }

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_sort() {
        let c = Cursor {
            s: "-summary.loss.last".into(),
            p: 0,
            k: CursorKey::F(f64::INFINITY.to_bits()),
            r: 7,
        };
        let text = c.encode();
        let back = Cursor::decode(&text, "-summary.loss.last").unwrap();
        assert!(matches!(back.k, CursorKey::F(b) if f64::from_bits(b) == f64::INFINITY));
        assert_eq!(back.r, 7);
        assert!(Cursor::decode(&text, "name").is_err());
        assert!(Cursor::decode("not base64!", "name").is_err());
        assert!(Cursor::decode("e30", "name").is_err()); // "{}"
    }
}
