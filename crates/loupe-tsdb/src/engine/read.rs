//! Reads: raw ranges, M4 downsampling, summaries and series listing.
//!
//! A read takes a snapshot of the version (segments and heads) and works on
//! it without locks, except a brief lock of a series' head while scanning it;
//! a flush in progress never blocks it.
//!
//! **Newest write wins.** Where a step was written more than once (a run
//! resumed from a checkpoint logs steps lower than its last one), a read
//! returns only the newest write. Unstepped points are identified by their
//! time instead. In the common case the sources of a series (segment chunks,
//! heads) cover disjoint identity ranges and are read directly, chunk roll-ups
//! and all; only when they overlap are the points merged explicitly.

use std::sync::Arc;

use loupe_model::{NO_STEP, SeriesKey, SeriesMatcher};
use parking_lot::Mutex;

use super::Tsdb;
use super::Version;
use super::flush::merge_newest_wins;
use crate::head::{HEAD_BLOCK, SeriesHead, identity};
use crate::m4::{M4Downsampler, M4Result, XY};
use crate::segment::{PageStats, Segment};
use crate::types::{Points, SeriesId, SeriesInfo, Summary, XAxis};
use crate::{Error, Result};

/// One place a series' points live, in age order (oldest first).
enum Source {
    Chunk(Arc<Segment>, u32),
    Head(Arc<Mutex<SeriesHead>>),
}

impl Source {
    /// Smallest and largest identity, and whether the source holds anything.
    fn identity_range(&self) -> Option<IdentityRange> {
        match self {
            Source::Chunk(seg, c) => {
                let s = &seg.entry(*c).summary;
                if s.count == 0 {
                    return None;
                }
                Some((
                    identity(s.first_step, s.first_time),
                    identity(s.last_step, s.last_time),
                ))
            }
            Source::Head(h) => {
                let h = h.lock();
                (!h.is_empty()).then_some((h.min_identity, h.max_identity))
            }
        }
    }

    fn materialize(&self) -> Result<Points> {
        match self {
            Source::Chunk(seg, c) => seg.read_chunk(*c),
            Source::Head(h) => Ok(h.lock().to_points()),
        }
    }
}

/// Smallest and largest identity of a source.
type IdentityRange = ((bool, i64), (bool, i64));

struct SeriesSources {
    sources: Vec<Source>,
    /// True when the sources, ordered by identity, do not overlap and each is
    /// itself in identity order without repeats: no merging needed.
    disjoint: bool,
}

fn sources_of(v: &Version, id: SeriesId) -> SeriesSources {
    let mut sources = Vec::new();
    for seg in &v.segments {
        for c in seg.chunks_of(id) {
            sources.push(Source::Chunk(seg.clone(), c));
        }
    }
    for h in v.frozen.iter().chain(std::iter::once(&v.active)) {
        if let Some(s) = h.get(id) {
            sources.push(Source::Head(s));
        }
    }
    let mut ranged: Vec<(IdentityRange, Source)> = sources
        .into_iter()
        .filter_map(|s| s.identity_range().map(|r| (r, s)))
        .collect();
    let heads_sorted = ranged.iter().all(|(_, s)| match s {
        Source::Head(h) => h.lock().is_sorted_unique(),
        Source::Chunk(..) => true,
    });
    let mut by_start: Vec<usize> = (0..ranged.len()).collect();
    by_start.sort_by_key(|&i| ranged[i].0.0);
    let disjoint = heads_sorted
        && by_start
            .windows(2)
            .all(|w| ranged[w[0]].0.1 < ranged[w[1]].0.0);
    if disjoint {
        // Identity order lets readers concatenate.
        let mut slots: Vec<Option<(IdentityRange, Source)>> = ranged.drain(..).map(Some).collect();
        let sources = by_start
            .into_iter()
            .map(|i| slots[i].take().expect("each index once").1)
            .collect();
        SeriesSources {
            sources,
            disjoint: true,
        }
    } else {
        SeriesSources {
            sources: ranged.into_iter().map(|(_, s)| s).collect(),
            disjoint: false,
        }
    }
}

fn in_axis(axis: XAxis, step: i64, time: i64, from: i64, to: i64) -> bool {
    match axis {
        XAxis::Step => step != NO_STEP && step >= from && step <= to,
        XAxis::Time => time >= from && time <= to,
    }
}

impl Tsdb {
    /// The series whose keys match, ordered by key.
    pub fn series(&self, matcher: &SeriesMatcher) -> Vec<SeriesInfo> {
        self.inner
            .catalog
            .read()
            .matching(matcher)
            .into_iter()
            .map(|(id, key)| SeriesInfo { id, key })
            .collect()
    }

    /// One page of [`Tsdb::series`]: at most `limit` series ordered after
    /// the key `after`, and whether more follow. The catalog lock is held
    /// for one scan of the matching ids, and memory is bounded by the page.
    pub fn series_page(
        &self,
        matcher: &SeriesMatcher,
        after: Option<&SeriesKey>,
        limit: usize,
    ) -> (Vec<SeriesInfo>, bool) {
        let after = after.map(SeriesKey::to_bytes);
        let (page, more) =
            self.inner
                .catalog
                .read()
                .matching_page(matcher, after.as_deref(), limit);
        let page = page
            .into_iter()
            .map(|(id, key)| SeriesInfo { id, key })
            .collect();
        (page, more)
    }

    /// Checks the checksum of every chunk of every segment; returns the damage.
    pub fn verify(&self) -> Vec<Error> {
        self.snapshot()
            .segments
            .iter()
            .flat_map(|s| s.verify())
            .collect()
    }

    /// Number of series known.
    pub fn series_count(&self) -> usize {
        self.inner.catalog.read().len()
    }

    /// True when the engine knows this series (it was written, or an
    /// append that defines it is in progress).
    pub fn contains_series(&self, key: &SeriesKey) -> bool {
        self.id_of(key).is_some()
    }

    /// How many series carry each value of `label` (`run` → series per
    /// run), from the label index without reading a key.
    pub fn series_count_by_label(&self, label: &str) -> Vec<(String, usize)> {
        self.inner.catalog.read().count_by_label(label)
    }

    fn id_of(&self, key: &SeriesKey) -> Option<SeriesId> {
        self.inner.catalog.read().get(key)
    }

    /// Every point of a series in identity order (step, or time for unstepped points).
    pub fn read_all(&self, key: &SeriesKey) -> Result<Points> {
        self.guarded_read(key, || {
            let Some(id) = self.id_of(key) else {
                return Ok(Points::default());
            };
            let v = self.snapshot();
            materialize(&sources_of(&v, id))
        })
    }

    /// Fails when a segment named in the manifest could not be opened: its
    /// index is unreadable, so any series may have points in it, and an
    /// answer without them would be an empty or partial success.
    fn check_readable(&self, key: &SeriesKey) -> Result<()> {
        match self.inner.unreadable_segments.first() {
            None => Ok(()),
            Some(path) => Err(Error::corrupt(
                path,
                format!(
                    "segment is unreadable, so points of {key} in it cannot be read ({} \
                     unreadable segment(s); `loupe store verify` names them, `loupe store \
                     repair` quarantines them)",
                    self.inner.unreadable_segments.len()
                ),
            )),
        }
    }

    /// Every read of a series goes through here: refused while a segment
    /// is unreadable, and damage the read meets counted, so `/metrics`
    /// shows it, before the error is passed on.
    fn guarded_read<T>(&self, key: &SeriesKey, read: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_readable(key)?;
        let r = read();
        if let Err(e) = &r
            && e.is_corruption()
        {
            self.inner.metrics.record_damage(1);
        }
        r
    }

    /// The points with `from <= x <= to` on `axis`, in x order, at most `limit`
    /// of them (the first ones). On the step axis, unstepped points are skipped.
    pub fn read_range(
        &self,
        key: &SeriesKey,
        axis: XAxis,
        from: i64,
        to: i64,
        limit: Option<usize>,
    ) -> Result<Points> {
        self.guarded_read(key, || self.read_range_inner(key, axis, from, to, limit))
    }

    fn read_range_inner(
        &self,
        key: &SeriesKey,
        axis: XAxis,
        from: i64,
        to: i64,
        limit: Option<usize>,
    ) -> Result<Points> {
        let Some(id) = self.id_of(key) else {
            return Ok(Points::default());
        };
        let v = self.snapshot();
        let ss = sources_of(&v, id);
        let mut out = Points::default();
        if ss.disjoint {
            for src in &ss.sources {
                match src {
                    Source::Chunk(seg, c) => read_chunk_range(seg, *c, axis, from, to, &mut out)?,
                    Source::Head(h) => {
                        let h = h.lock();
                        for i in 0..h.len() {
                            if in_axis(axis, h.steps[i], h.times[i], from, to) {
                                out.push(h.steps[i], h.times[i], h.values[i]);
                            }
                        }
                    }
                }
            }
        } else {
            let all = materialize(&ss)?;
            for i in 0..all.len() {
                if in_axis(axis, all.steps[i], all.times[i], from, to) {
                    out.push(all.steps[i], all.times[i], all.values[i]);
                }
            }
        }
        if axis == XAxis::Time && !out.times.is_sorted() {
            sort_by_time(&mut out);
        }
        if let Some(limit) = limit {
            out.steps.truncate(limit);
            out.times.truncate(limit);
            out.values.truncate(limit);
        }
        Ok(out)
    }

    /// The M4 reduction of `from..=to` on `axis` at `width` pixel columns:
    /// at most `4 * width` real points, every column's first, last, smallest
    /// and largest exact. Reads page roll-ups where a page falls inside one
    /// column, so the cost follows the width, not the series length.
    pub fn m4(
        &self,
        key: &SeriesKey,
        axis: XAxis,
        from: i64,
        to: i64,
        width: u32,
    ) -> Result<M4Result> {
        if width == 0 {
            return Err(Error::Invalid("width must be at least 1".into()));
        }
        if from > to {
            return Err(Error::Invalid(format!(
                "empty range: from {from} > to {to}"
            )));
        }
        self.guarded_read(key, || self.m4_inner(key, axis, from, to, width))
    }

    fn m4_inner(
        &self,
        key: &SeriesKey,
        axis: XAxis,
        from: i64,
        to: i64,
        width: u32,
    ) -> Result<M4Result> {
        let mut m4 = M4Downsampler::new(from, to, width);
        let Some(id) = self.id_of(key) else {
            return Ok(m4.finish());
        };
        let v = self.snapshot();
        let ss = sources_of(&v, id);
        if ss.disjoint {
            for src in &ss.sources {
                match src {
                    Source::Chunk(seg, c) => m4_chunk(seg, *c, axis, &mut m4)?,
                    Source::Head(h) => m4_head(&h.lock(), axis, &mut m4)?,
                }
            }
        } else {
            let all = materialize(&ss)?;
            add_points(&mut m4, axis, &all.steps, &all.times, &all.values);
        }
        Ok(m4.finish())
    }

    /// Count, extremes (NaN ignored), sum, first and last of a series.
    pub fn summary(&self, key: &SeriesKey) -> Result<Option<Summary>> {
        self.guarded_read(key, || self.summary_inner(key))
    }

    fn summary_inner(&self, key: &SeriesKey) -> Result<Option<Summary>> {
        let Some(id) = self.id_of(key) else {
            return Ok(None);
        };
        let v = self.snapshot();
        let ss = sources_of(&v, id);
        if !ss.disjoint {
            let all = materialize(&ss)?;
            return Ok(summarize(&all));
        }
        let mut acc: Option<Summary> = None;
        for src in &ss.sources {
            let part = match src {
                Source::Chunk(seg, c) => {
                    let s = seg.entry(*c).summary;
                    Summary {
                        count: s.count,
                        min: s.min,
                        max: s.max,
                        sum: s.sum,
                        first_step: s.first_step,
                        last_step: s.last_step,
                        first_time: s.first_time,
                        last_time: s.last_time,
                        min_time: s.min_time,
                        max_time: s.max_time,
                        last: s.last,
                        first: s.first,
                    }
                }
                Source::Head(h) => {
                    // Sorted (the sources are disjoint): O(1) from running stats.
                    let h = h.lock();
                    let n = h.len();
                    if n == 0 {
                        continue;
                    }
                    let (count, min, max, sum) = h.running_stats();
                    Summary {
                        count,
                        min,
                        max,
                        sum,
                        first_step: h.steps[0],
                        last_step: h.steps[n - 1],
                        first_time: h.times[0],
                        last_time: h.times[n - 1],
                        min_time: h.min_time,
                        max_time: h.max_time,
                        last: h.values[n - 1],
                        first: h.values[0],
                    }
                }
            };
            acc = Some(match acc {
                None => part,
                Some(a) => combine(a, part),
            });
        }
        Ok(acc)
    }

    /// The newest point (highest step, or latest time for unstepped series).
    pub fn last(&self, key: &SeriesKey) -> Result<Option<(i64, i64, f64)>> {
        Ok(self
            .summary(key)?
            .map(|s| (s.last_step, s.last_time, s.last)))
    }
}

fn materialize(ss: &SeriesSources) -> Result<Points> {
    let mut parts = Vec::with_capacity(ss.sources.len());
    for s in &ss.sources {
        parts.push(s.materialize()?);
    }
    if ss.disjoint {
        let total = parts.iter().map(Points::len).sum();
        let mut out = Points {
            steps: Vec::with_capacity(total),
            times: Vec::with_capacity(total),
            values: Vec::with_capacity(total),
        };
        for p in parts {
            out.steps.extend(p.steps);
            out.times.extend(p.times);
            out.values.extend(p.values);
        }
        return Ok(out);
    }
    Ok(merge_newest_wins(parts))
}

fn sort_by_time(p: &mut Points) {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by_key(|&i| p.times[i]);
    *p = Points {
        steps: order.iter().map(|&i| p.steps[i]).collect(),
        times: order.iter().map(|&i| p.times[i]).collect(),
        values: order.iter().map(|&i| p.values[i]).collect(),
    };
}

fn add_points(m4: &mut M4Downsampler, axis: XAxis, steps: &[i64], times: &[i64], values: &[f64]) {
    let xs = match axis {
        XAxis::Step => steps,
        XAxis::Time => times,
    };
    let skip = if axis == XAxis::Step {
        xs.partition_point(|&x| x == NO_STEP)
    } else {
        0
    };
    if xs[skip..].is_sorted() {
        m4.add_sorted(&xs[skip..], &values[skip..]);
        return;
    }
    match axis {
        XAxis::Step => {
            for i in 0..values.len() {
                if steps[i] != NO_STEP {
                    m4.add(steps[i], values[i]);
                }
            }
        }
        XAxis::Time => {
            for i in 0..values.len() {
                m4.add(times[i], values[i]);
            }
        }
    }
}

/// Page x-range on an axis, from the roll-ups.
fn page_x(stats: &crate::segment::PageStats, axis: XAxis, p: usize) -> (i64, i64) {
    match axis {
        XAxis::Step => (stats.first_step[p], stats.last_step[p]),
        XAxis::Time => (stats.min_time[p], stats.max_time[p]),
    }
}

fn read_chunk_range(
    seg: &Segment,
    c: u32,
    axis: XAxis,
    from: i64,
    to: i64,
    out: &mut Points,
) -> Result<()> {
    let e = seg.entry(c);
    let s = &e.summary;
    let (lo, hi) = match axis {
        XAxis::Step => (s.first_step, s.last_step),
        XAxis::Time => (s.min_time, s.max_time),
    };
    if hi < from || lo > to || (axis == XAxis::Step && !e.has_steps()) {
        return Ok(());
    }
    let mut cols = seg.columns(c)?;
    let pages: Vec<usize> = match seg.page_stats(c)? {
        Some(stats) => (0..stats.pages())
            .filter(|&p| {
                let (x0, x1) = page_x(&stats, axis, p);
                // A page holding unstepped points starts at NO_STEP; keep it.
                !(x1 < from || x0 > to) || (axis == XAxis::Step && x0 == NO_STEP)
            })
            .collect(),
        None => (0..cols.values.n_pages()).collect(),
    };
    let (mut st, mut ti, mut va) = (Vec::new(), Vec::new(), Vec::new());
    for p in pages {
        st.clear();
        ti.clear();
        va.clear();
        cols.steps.decode_page(p, &mut st)?;
        cols.times.decode_page(p, &mut ti)?;
        cols.values.decode_page(p, &mut va)?;
        for i in 0..va.len() {
            if in_axis(axis, st[i], ti[i], from, to) {
                out.push(st[i], ti[i], va[i]);
            }
        }
    }
    Ok(())
}

/// Feeds one chunk to the downsampler: whole pages by their roll-ups when a
/// page falls inside one pixel column, other pages decoded.
fn m4_chunk(seg: &Segment, c: u32, axis: XAxis, m4: &mut M4Downsampler) -> Result<()> {
    let e = seg.entry(c);
    let s = &e.summary;
    let (lo, hi) = match axis {
        XAxis::Step => (s.first_step, s.last_step),
        XAxis::Time => (s.min_time, s.max_time),
    };
    if hi < m4.from() || lo > m4.to() || (axis == XAxis::Step && !e.has_steps()) {
        return Ok(());
    }
    let stats = seg.page_stats(c)?;
    let mut cols = seg.columns(c)?;
    let n_value_pages = cols.values.n_pages();
    let page_points = e.page_points as usize;
    let (mut xs, mut ys): (Vec<i64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut decode_page =
        |p: usize, m4: &mut M4Downsampler, first_last_step: Option<(i64, i64)>| -> Result<()> {
            xs.clear();
            ys.clear();
            seg.decode_page_cached(c, 2, &mut cols.values, p, &mut ys)?;
            match axis {
                XAxis::Step => match first_last_step {
                    // Consecutive steps need no decoding.
                    Some((a, b)) if a != NO_STEP && (b - a) as usize + 1 == ys.len() => {
                        xs.extend(a..=b);
                    }
                    _ => seg.decode_page_cached(c, 0, &mut cols.steps, p, &mut xs)?,
                },
                XAxis::Time => seg.decode_page_cached(c, 1, &mut cols.times, p, &mut xs)?,
            }
            // Unstepped points (NO_STEP) sort first and are not on the step axis.
            let skip = if axis == XAxis::Step {
                xs.partition_point(|&x| x == NO_STEP)
            } else {
                0
            };
            if xs[skip..].is_sorted() {
                m4.add_sorted(&xs[skip..], &ys[skip..]);
            } else {
                for i in skip..ys.len() {
                    m4.add(xs[i], ys[i]);
                }
            }
            Ok(())
        };
    let usable = stats
        .as_ref()
        .filter(|_| axis == XAxis::Step || e.times_sorted());
    match usable {
        Some(stats) => m4_pages(stats, e.count as usize, page_points, axis, m4, decode_page),
        None => {
            for p in 0..n_value_pages {
                decode_page(p, m4, None)?;
            }
            Ok(())
        }
    }
}

/// Walks pages in x order: a page inside one pixel column goes in by its
/// roll-up, any other page through `decode_page` (which gets the page's first
/// and last step on the step axis). Shared by segment chunks and heads.
fn m4_pages(
    stats: &PageStats,
    count: usize,
    page_points: usize,
    axis: XAxis,
    m4: &mut M4Downsampler,
    mut decode_page: impl FnMut(usize, &mut M4Downsampler, Option<(i64, i64)>) -> Result<()>,
) -> Result<()> {
    let n_pages = stats.pages();
    // Pages are in x order: skip straight to the first one in range.
    let (mut lo, mut hi) = (0, n_pages);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if page_x(stats, axis, mid).1 < m4.from() {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for p in lo..n_pages {
        let (x0, x1) = page_x(stats, axis, p);
        if x0 > m4.to() {
            break;
        }
        let whole = x0 != NO_STEP && x0 >= m4.from() && x1 <= m4.to();
        if whole && m4.column(x0) == m4.column(x1) {
            let n = (count - p * page_points).min(page_points);
            let (min_x, max_x, first_x, last_x) = match axis {
                XAxis::Step => (stats.min_step_x[p], stats.max_step_x[p], x0, x1),
                XAxis::Time => (
                    stats.min_time_x[p],
                    stats.max_time_x[p],
                    stats.first_time[p],
                    stats.last_time[p],
                ),
            };
            let xy = |x, y| XY { x, y };
            m4.add_summary(
                n as u64,
                xy(first_x, stats.first[p]),
                xy(last_x, stats.last[p]),
                xy(min_x, stats.min[p]),
                xy(max_x, stats.max[p]),
            );
        } else {
            let fl = (axis == XAxis::Step).then_some((x0, x1));
            decode_page(p, m4, fl)?;
        }
    }
    Ok(())
}

/// Feeds a sorted head to the downsampler: complete blocks by their
/// roll-ups where they fall inside one column, the rest point by point.
fn m4_head(h: &SeriesHead, axis: XAxis, m4: &mut M4Downsampler) -> Result<()> {
    let blocks = match h.blocks() {
        Some(b) if axis == XAxis::Step || h.times_sorted() => b,
        _ => {
            add_points(m4, axis, &h.steps, &h.times, &h.values);
            return Ok(());
        }
    };
    let covered = blocks.pages() * HEAD_BLOCK;
    m4_pages(blocks, covered, HEAD_BLOCK, axis, m4, |p, m4, _| {
        let r = p * HEAD_BLOCK..(p + 1) * HEAD_BLOCK;
        add_points(
            m4,
            axis,
            &h.steps[r.clone()],
            &h.times[r.clone()],
            &h.values[r],
        );
        Ok(())
    })?;
    let tail = covered..h.len();
    add_points(
        m4,
        axis,
        &h.steps[tail.clone()],
        &h.times[tail.clone()],
        &h.values[tail],
    );
    Ok(())
}

fn summarize(p: &Points) -> Option<Summary> {
    summarize_columns(&p.steps, &p.times, &p.values)
}

/// Summary of points in identity order (heads in write order are summarised
/// only when sorted, which the caller guarantees via `disjoint`).
fn summarize_columns(steps: &[i64], times: &[i64], values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut min = f64::NAN;
    let mut max = f64::NAN;
    let mut sum = 0.0;
    for &v in values {
        if !v.is_nan() {
            if min.is_nan() || v < min {
                min = v;
            }
            if max.is_nan() || v > max {
                max = v;
            }
        }
        if v.is_finite() {
            sum += v;
        }
    }
    let n = values.len();
    let (min_time, max_time) = times
        .iter()
        .fold((i64::MAX, i64::MIN), |(a, b), &t| (a.min(t), b.max(t)));
    Some(Summary {
        min_time,
        max_time,
        count: n as u64,
        min,
        max,
        sum,
        first_step: steps[0],
        last_step: steps[n - 1],
        first_time: times[0],
        last_time: times[n - 1],
        last: values[n - 1],
        first: values[0],
    })
}

/// Combines summaries of consecutive, non-overlapping parts (`b` after `a`).
fn combine(a: Summary, b: Summary) -> Summary {
    let pick = |x: f64, y: f64, smaller: bool| {
        if x.is_nan() {
            y
        } else if y.is_nan() {
            x
        } else if smaller {
            x.min(y)
        } else {
            x.max(y)
        }
    };
    Summary {
        count: a.count + b.count,
        min: pick(a.min, b.min, true),
        max: pick(a.max, b.max, false),
        sum: a.sum + b.sum,
        first_step: a.first_step,
        last_step: b.last_step,
        first_time: a.first_time,
        last_time: b.last_time,
        min_time: a.min_time.min(b.min_time),
        max_time: a.max_time.max(b.max_time),
        last: b.last,
        first: a.first,
    }
}
