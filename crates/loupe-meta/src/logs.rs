//! Run logs: durable appends with per-run sequence numbers, filtered reads,
//! and per-run full-text search (FTS5).
//!
//! A line's rowid is `rid << 32 | seq`, so one run's lines are one rowid
//! range in both `log` and `log_fts`. Reads and searches are range scans;
//! FTS5 seeks each term's doclist straight to the run's range.

mod fts_query;

use std::collections::BTreeMap;

use loupe_model::{LogLevel, LogRecord, LogStream};
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params};

use crate::error::{Error, Result};
use crate::store::MetaStore;
use crate::validate;

use fts_query::{LogSearch, log_search};

/// Page size when the query names none.
pub const DEFAULT_LOG_LIMIT: usize = 100;
/// Largest page; bigger limits are clamped to it.
pub const MAX_LOG_LIMIT: usize = 10_000;

/// Largest seq a run's lines can reach (the low 32 bits of the rowid).
const MAX_SEQ: u64 = u32::MAX as u64;

/// Read direction, by seq.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LogOrder {
    #[default]
    Asc,
    Desc,
}

/// Which lines of a run to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    /// Search of the line's text by substrings, through a trigram index:
    /// every word must occur (`OutOfMemory` finds `torch.OutOfMemoryError`);
    /// `"loss 4.8"` in double quotes is one term, spaces included (it finds
    /// `loss 4.81`). Everything else (FTS5 operators, punctuation) is plain
    /// text, so no input is a syntax error. Case- and
    /// diacritic-insensitive.
    pub q: Option<String>,
    /// This level and above.
    pub level: Option<LogLevel>,
    pub stream: Option<LogStream>,
    /// Unix seconds, inclusive.
    pub from: Option<f64>,
    /// Unix seconds, inclusive.
    pub to: Option<f64>,
    /// Default [`DEFAULT_LOG_LIMIT`]; clamped to `1..=MAX_LOG_LIMIT`.
    pub limit: Option<usize>,
    /// Lines after this seq (ascending) or before it (descending): the
    /// previous page's `next_cursor`, or any seq a client has seen (a live
    /// tail asks for lines after the last one it shows).
    pub cursor: Option<u64>,
    pub order: LogOrder,
}

/// One page of log lines, with their seqs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub records: Vec<(u64, LogRecord)>,
    /// Present when more lines may follow in this order.
    pub next_cursor: Option<u64>,
}

/// The rowids of a run's log lines: `[rid << 32, rid << 32 | u32::MAX]`.
/// Adds the lines with rowids `from..=to` (one batch, just inserted) to the
/// search index in one statement. Indexing a batch at once costs about a
/// fifth of the CPU of indexing each line from a trigger as it is inserted
/// (schema version 5 dropped that trigger): `bench/log_index_write.py`.
pub(crate) fn index_lines(tx: &rusqlite::Connection, from: i64, to: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO log_fts (rowid, text) SELECT id, text FROM log WHERE id BETWEEN ?1 AND ?2",
    )?
    .execute(params![from, to])?;
    Ok(())
}

pub(crate) fn rowid_range(rid: i64) -> (i64, i64) {
    let lo = rid << 32;
    (lo, lo | MAX_SEQ as i64)
}

/// The longest `Idempotency-Key` accepted.
pub const MAX_BATCH_KEY_BYTES: usize = 128;

fn validate_batch_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= MAX_BATCH_KEY_BYTES
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "idempotency key {key:?} must be 1-{MAX_BATCH_KEY_BYTES} characters of A-Z, a-z, 0-9, '_', '-', '.', ':'"
        )))
    }
}

impl MetaStore {
    /// Appends lines to a run in one transaction, durable on return, and
    /// returns the first line's seq (seqs are consecutive, from 1 per run).
    /// With no records, returns the seq the next line will get.
    pub fn append_logs(&self, run_id: &str, records: &[LogRecord]) -> Result<u64> {
        Ok(self
            .append_logs_once(run_id, None, records)?
            .expect("without a key a batch is never a duplicate"))
    }

    /// [`append_logs`](Self::append_logs), stored at most once per
    /// `idempotency_key` (1–128 bytes of `[A-Za-z0-9_.:-]`): a batch whose key
    /// the run already has returns `None` and stores nothing. The key is
    /// recorded in the same transaction as the lines, so "stored" and
    /// "remembered" cannot disagree after a crash.
    pub fn append_logs_once(
        &self,
        run_id: &str,
        idempotency_key: Option<&str>,
        records: &[LogRecord],
    ) -> Result<Option<u64>> {
        if let Some(key) = idempotency_key {
            validate_batch_key(key)?;
        }
        for (i, rec) in records.iter().enumerate() {
            validate::finite(&format!("log record {i}: time"), rec.time)?;
        }
        let attrs: Vec<Option<String>> = records
            .iter()
            .map(|r| {
                (!r.attributes.is_empty())
                    .then(|| serde_json::to_string(&r.attributes).expect("strings encode"))
            })
            .collect();
        if records.is_empty() && idempotency_key.is_none() {
            return self.read(|tx| Ok(Some(run_seq(tx, run_id)?.1 + 1)));
        }
        self.write(|tx| {
            let (rid, last) = run_seq(tx, run_id)?;
            if let Some(key) = idempotency_key {
                let fresh = tx
                    .prepare_cached("INSERT OR IGNORE INTO log_batch (run, key) VALUES (?1, ?2)")?
                    .execute(params![rid, key])?;
                if fresh == 0 {
                    return Ok(None);
                }
            }
            let first = last + 1;
            let end = last + records.len() as u64;
            if end > MAX_SEQ {
                return Err(Error::invalid(format!(
                    "run {run_id:?} would exceed {MAX_SEQ} log lines"
                )));
            }
            let (lo, _) = rowid_range(rid);
            let mut stmt = tx.prepare_cached(
                "INSERT INTO log (id, time, stream, level, text, attrs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (i, (rec, attrs)) in records.iter().zip(&attrs).enumerate() {
                stmt.execute(params![
                    lo + (first + i as u64) as i64,
                    rec.time,
                    stream_code(rec.stream),
                    level_code(rec.level),
                    rec.text,
                    attrs,
                ])?;
            }
            drop(stmt);
            index_lines(tx, lo + first as i64, lo + end as i64)?;
            record_blocks(tx, rid, first, records)?;
            tx.execute(
                "UPDATE run SET log_seq = ?2 WHERE rid = ?1",
                params![rid, end as i64],
            )?;
            Ok(Some(first))
        })
    }

    /// Reads one page of a run's lines.
    pub fn query_logs(&self, run_id: &str, query: LogQuery) -> Result<LogPage> {
        let limit = query
            .limit
            .unwrap_or(DEFAULT_LOG_LIMIT)
            .clamp(1, MAX_LOG_LIMIT);
        for (what, t) in [("from", query.from), ("to", query.to)] {
            if let Some(t) = t
                && t.is_nan()
            {
                return Err(Error::invalid(format!("{what} must be a number")));
            }
        }
        let search = match query.q.as_deref() {
            Some(q) => match log_search(q) {
                Some(search) => Some(search),
                // Nothing searchable (only punctuation, say) matches nothing.
                None => {
                    return self.read(|tx| {
                        run_seq(tx, run_id)?;
                        Ok(LogPage {
                            records: Vec::new(),
                            next_cursor: None,
                        })
                    });
                }
            },
            None => None,
        };
        self.read(|tx| {
            let (rid, _) = run_seq(tx, run_id)?;
            let (lo, hi) = rowid_range(rid);
            let cursor = query.cursor.map(|c| c.min(MAX_SEQ) as i64);
            // Half-open bounds on the rowid, inside this run's range.
            let (lower, upper) = match query.order {
                LogOrder::Asc => (lo + cursor.unwrap_or(0), hi),
                LogOrder::Desc => (lo, cursor.map_or(hi, |c| lo + c - 1)),
            };
            let (lower, upper) = match time_bounds(tx, rid, &query)? {
                Some((first, last)) => (lower.max(lo + first - 1), upper.min(lo + last)),
                // No block overlaps the window.
                None => (0, -1),
            };
            let fts = search.as_ref().and_then(|s| s.fts.as_deref());
            let select = Select {
                query: &query,
                fts,
                like: search.as_ref().map_or(&[][..], |s: &LogSearch| &s.like[..]),
                lower,
                upper,
                limit: limit + 1,
            };
            let rows = match query.level.map(level_code) {
                // Warnings and worse without a search: one walk of the
                // `log_level` index per level, merged here. Each walk is in
                // line order and stops at the limit, so the cost follows the
                // page size whether such lines are rare or everywhere.
                Some(min) if fts.is_none() && min >= SEVERE => {
                    let mut rows = Vec::new();
                    for level in min..=level_code(LogLevel::Critical) {
                        rows.extend(select.run(tx, Some(level))?);
                    }
                    match query.order {
                        LogOrder::Asc => rows.sort_by_key(|r| r.0),
                        LogOrder::Desc => rows.sort_by_key(|r| std::cmp::Reverse(r.0)),
                    }
                    rows.truncate(limit + 1);
                    rows
                }
                _ => select.run(tx, None)?,
            };
            let more = rows.len() > limit;
            let mut records = Vec::with_capacity(rows.len().min(limit));
            for (id, time, stream, level, text, attrs) in rows.into_iter().take(limit) {
                let attributes = match attrs {
                    Some(a) => {
                        serde_json::from_str::<BTreeMap<String, String>>(&a).map_err(|e| {
                            Error::Corrupt(format!("log line {id}: stored attributes: {e}"))
                        })?
                    }
                    None => BTreeMap::new(),
                };
                let seq = (id - lo) as u64;
                records.push((
                    seq,
                    LogRecord {
                        time,
                        stream: stream_from(stream)?,
                        level: level_from(level)?,
                        text,
                        attributes,
                    },
                ));
            }
            let next_cursor = if more {
                records.last().map(|(seq, _)| *seq)
            } else {
                None
            };
            Ok(LogPage {
                records,
                next_cursor,
            })
        })
    }
}

/// Lines per `log_block` row, as a shift: block = seq >> BLOCK_SHIFT.
const BLOCK_SHIFT: u32 = 12;

/// Widens each touched block's time range to cover the new lines.
fn record_blocks(
    tx: &rusqlite::Connection,
    rid: i64,
    first: u64,
    records: &[LogRecord],
) -> Result<()> {
    let mut blocks: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for (i, rec) in records.iter().enumerate() {
        let block = (first + i as u64) >> BLOCK_SHIFT;
        let range = blocks.entry(block).or_insert((rec.time, rec.time));
        range.0 = range.0.min(rec.time);
        range.1 = range.1.max(rec.time);
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO log_block (run, block, min_time, max_time) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (run, block) DO UPDATE SET
             min_time = min(min_time, excluded.min_time),
             max_time = max(max_time, excluded.max_time)",
    )?;
    for (block, (min, max)) in blocks {
        stmt.execute(params![rid, block as i64, min, max])?;
    }
    Ok(())
}

/// With a time window: the first and last seq of the blocks that overlap
/// it, or `None` when none does. Without one: the whole run.
fn time_bounds(
    tx: &rusqlite::Connection,
    rid: i64,
    query: &LogQuery,
) -> Result<Option<(i64, i64)>> {
    if query.from.is_none() && query.to.is_none() {
        return Ok(Some((1, MAX_SEQ as i64)));
    }
    let (first, last): (Option<i64>, Option<i64>) = tx
        .prepare_cached(
            "SELECT min(block), max(block) FROM log_block
             WHERE run = ?1 AND max_time >= ?2 AND min_time <= ?3",
        )?
        .query_row(
            params![
                rid,
                query.from.unwrap_or(f64::NEG_INFINITY),
                query.to.unwrap_or(f64::INFINITY)
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    Ok(first.zip(last).map(|(first, last)| {
        (
            (first << BLOCK_SHIFT).max(1),
            (((last + 1) << BLOCK_SHIFT) - 1).min(MAX_SEQ as i64),
        )
    }))
}

/// Lowest level code in the `log_level` partial index (warning).
const SEVERE: i64 = 2;

/// A stored line: rowid, time, stream, level, text, attributes.
type LogRow = (i64, f64, i64, i64, String, Option<String>);

/// One SELECT over a run's lines.
struct Select<'a> {
    query: &'a LogQuery,
    fts: Option<&'a str>,
    /// `LIKE` patterns for search terms too short for the trigram index.
    like: &'a [String],
    /// Exclusive lower and inclusive upper rowid bound.
    lower: i64,
    upper: i64,
    limit: usize,
}

impl Select<'_> {
    /// The matching rows in the query's order; with `level`, only lines of
    /// exactly that level (≥ [`SEVERE`]), read through the `log_level` index.
    fn run(&self, tx: &rusqlite::Connection, level: Option<i64>) -> Result<Vec<LogRow>> {
        let q = self.query;
        let mut params: Vec<SqlValue> = Vec::new();
        // `id` names the rowid the range applies to: FTS5 seeks its doclists
        // with a range on its own rowid, so the search path states it on
        // `f.rowid`.
        let (mut sql, id) = match (self.fts, level) {
            (Some(expr), _) => {
                params.push(SqlValue::Text(expr.to_string()));
                (
                    "SELECT l.id, l.time, l.stream, l.level, l.text, l.attrs
                     FROM log_fts f CROSS JOIN log l
                     WHERE log_fts MATCH ? AND l.id = f.rowid"
                        .to_string(),
                    "f.rowid",
                )
            }
            (None, Some(level)) => {
                // Left alone, the planner prefers the rowid range (it cannot
                // know how rare the level is). `level >= 2` restates the
                // partial index's condition, which SQLite needs to see.
                params.push(SqlValue::Integer(level));
                (
                    format!(
                        "SELECT l.id, l.time, l.stream, l.level, l.text, l.attrs
                         FROM log l INDEXED BY log_level
                         WHERE l.level = ? AND l.level >= {SEVERE}"
                    ),
                    "l.id",
                )
            }
            (None, None) => (
                "SELECT l.id, l.time, l.stream, l.level, l.text, l.attrs FROM log l WHERE 1"
                    .to_string(),
                "l.id",
            ),
        };
        sql.push_str(&format!(" AND {id} > ? AND {id} <= ?"));
        params.push(SqlValue::Integer(self.lower));
        params.push(SqlValue::Integer(self.upper));
        if let (Some(min), None) = (q.level, level) {
            sql.push_str(" AND l.level >= ?");
            params.push(SqlValue::Integer(level_code(min)));
        }
        for pattern in self.like {
            sql.push_str(" AND l.text LIKE ? ESCAPE '\\'");
            params.push(SqlValue::Text(pattern.clone()));
        }
        if let Some(stream) = q.stream {
            sql.push_str(" AND l.stream = ?");
            params.push(SqlValue::Integer(stream_code(stream)));
        }
        if let Some(from) = q.from {
            sql.push_str(" AND l.time >= ?");
            params.push(SqlValue::Real(from));
        }
        if let Some(to) = q.to {
            sql.push_str(" AND l.time <= ?");
            params.push(SqlValue::Real(to));
        }
        let order = match q.order {
            LogOrder::Asc => "ASC",
            LogOrder::Desc => "DESC",
        };
        sql.push_str(&format!(" ORDER BY {id} {order} LIMIT ?"));
        params.push(SqlValue::Integer(self.limit as i64));

        let mut stmt = tx.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<LogRow>>>()?;
        Ok(rows)
    }
}

/// The run's rid and the last seq handed out.
fn run_seq(tx: &rusqlite::Connection, run_id: &str) -> Result<(i64, u64)> {
    tx.prepare_cached("SELECT rid, log_seq FROM run WHERE id = ?1")?
        .query_row([run_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()?
        .map(|(rid, seq)| (rid, seq.max(0) as u64))
        .ok_or_else(|| Error::not_found("run", run_id))
}

fn stream_code(s: LogStream) -> i64 {
    match s {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
        LogStream::App => 2,
    }
}

fn stream_from(code: i64) -> Result<LogStream> {
    Ok(match code {
        0 => LogStream::Stdout,
        1 => LogStream::Stderr,
        2 => LogStream::App,
        other => return Err(Error::Corrupt(format!("log stream code {other}"))),
    })
}

fn level_code(l: LogLevel) -> i64 {
    match l {
        LogLevel::Debug => 0,
        LogLevel::Info => 1,
        LogLevel::Warning => 2,
        LogLevel::Error => 3,
        LogLevel::Critical => 4,
    }
}

fn level_from(code: i64) -> Result<LogLevel> {
    Ok(match code {
        0 => LogLevel::Debug,
        1 => LogLevel::Info,
        2 => LogLevel::Warning,
        3 => LogLevel::Error,
        4 => LogLevel::Critical,
        other => return Err(Error::Corrupt(format!("log level code {other}"))),
    })
}
