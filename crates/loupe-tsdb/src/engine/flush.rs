//! Moving data out of memory and reshaping what is on disk: flushing the head
//! to a segment, merging segments, and rewriting them to delete series or
//! drop old data. Every change is published by replacing the manifest, so a
//! crash at any point leaves the previous state or the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use loupe_model::SeriesMatcher;

use super::{Inner, Tsdb, Version};
use crate::head::{HeadMap, identity};
use crate::segment::{Segment, SegmentWriter, segment_path};
use crate::types::{Points, SeriesId};
use crate::wal::{self, WalFile};
use crate::{Error, Result, fsutil};

/// What a retention pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub series_matched: usize,
    pub points_dropped: u64,
    pub series_emptied: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl Tsdb {
    /// Writes the head to a new segment and truncates the WAL behind it,
    /// then merges segments if there are more than `max_segments`.
    pub fn flush(&self) -> Result<()> {
        flush_inner(&self.inner)?;
        let _m = self.inner.merge_lock.lock();
        merge_if_needed(&self.inner)
    }

    /// Merges all segments into one, applying newest-write-wins.
    pub fn compact(&self) -> Result<()> {
        let _m = self.inner.merge_lock.lock();
        let all = all_segments(&self.inner);
        rewrite_segments(&self.inner, all, Rewrite::KeepAll, OnDamage::Keep)
    }

    /// Deletes every series the matcher selects, and reclaims their disk space
    /// before returning. Returns how many series were deleted.
    pub fn delete_series(&self, matcher: &SeriesMatcher) -> Result<usize> {
        let inner = &*self.inner;
        let _structure = inner.structure.write();
        let doomed = matching_ids(inner, matcher);
        if doomed.is_empty() {
            return Ok(0);
        }
        flush_inner(inner)?;
        let _m = inner.merge_lock.lock();
        let _f = inner.flush_lock.lock();
        rewrite_segments(
            inner,
            all_segments(inner),
            Rewrite::Drop(&doomed),
            OnDamage::Keep,
        )?;
        let mut catalog = inner.catalog.write();
        for id in &doomed {
            catalog.remove(*id);
        }
        drop(catalog);
        store_manifest(inner)?;
        Ok(doomed.len())
    }

    /// Drops the points older than `cutoff_ns` (by time) from every series the
    /// matcher selects, reclaiming the space; a series left empty is removed.
    pub fn retain(&self, matcher: &SeriesMatcher, cutoff_ns: i64) -> Result<RetentionReport> {
        let inner = &*self.inner;
        let _structure = inner.structure.write();
        let matched = matching_ids(inner, matcher);
        let mut report = RetentionReport {
            series_matched: matched.len(),
            bytes_before: self.disk_bytes(),
            ..Default::default()
        };
        if matched.is_empty() {
            report.bytes_after = report.bytes_before;
            return Ok(report);
        }
        flush_inner(inner)?;
        let _m = inner.merge_lock.lock();
        let _f = inner.flush_lock.lock();
        let mut dropped = 0u64;
        let mut emptied = Vec::new();
        let mut cut = |id, points: &mut Points| {
            let before = points.len();
            retain_points(points, |_, t, _| t >= cutoff_ns);
            dropped += (before - points.len()) as u64;
            if points.is_empty() {
                emptied.push(id);
                RewriteAction::Drop
            } else {
                RewriteAction::Keep
            }
        };
        rewrite_segments(
            inner,
            all_segments(inner),
            Rewrite::Edit(&matched, &mut cut),
            OnDamage::Keep,
        )?;
        let mut catalog = inner.catalog.write();
        for id in &emptied {
            catalog.remove(*id);
        }
        drop(catalog);
        store_manifest(inner)?;
        report.points_dropped = dropped;
        report.series_emptied = emptied.len();
        report.bytes_after = self.disk_bytes();
        Ok(report)
    }

    /// Bytes of segments and WAL files on disk.
    pub fn disk_bytes(&self) -> u64 {
        fsutil::dir_size(&self.inner.seg_dir) + fsutil::dir_size(&self.inner.wal_dir)
    }
}

fn matching_ids(inner: &Inner, matcher: &SeriesMatcher) -> BTreeSet<SeriesId> {
    inner
        .catalog
        .read()
        .matching(matcher)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

pub(crate) enum RewriteAction {
    Keep,
    Drop,
}

fn retain_points(p: &mut Points, keep: impl Fn(i64, i64, f64) -> bool) {
    let mut w = 0;
    for r in 0..p.len() {
        if keep(p.steps[r], p.times[r], p.values[r]) {
            p.steps[w] = p.steps[r];
            p.times[w] = p.times[r];
            p.values[w] = p.values[r];
            w += 1;
        }
    }
    p.steps.truncate(w);
    p.times.truncate(w);
    p.values.truncate(w);
}

fn store_manifest(inner: &Inner) -> Result<()> {
    let mut m = inner.manifest.lock();
    m.next_series_id = m.next_series_id.max(inner.catalog.read().next_id());
    m.store(&inner.dir)
}

/// Freezes the active head, writes it as a segment, publishes it, and drops
/// the WAL files it covered. Merging is the caller's (or the merger
/// thread's) business: a flush never waits for a merge.
pub(crate) fn flush_inner(inner: &Inner) -> Result<()> {
    let _f = inner.flush_lock.lock();
    // Freeze: swap in an empty head and a new WAL file in one step, under the
    // WAL lock, so each record's data is in exactly one generation.
    let (frozen, new_wal_id) = {
        let mut wal = inner.wal.lock();
        let current = inner.version.read().clone();
        if current.active.points() == 0 && current.frozen.is_empty() {
            return Ok(());
        }
        let new_wal = WalFile::create(&inner.wal_dir, wal.file.id() + 1, wal.file.len())?;
        let new_wal_id = new_wal.id();
        wal.file = new_wal;
        wal.needs_new_file = false;
        let mut v = inner.version.write();
        let mut next = Version::clone(&v);
        next.frozen.push(next.active.clone());
        next.active = Arc::new(HeadMap::new());
        let frozen = next.frozen.clone();
        *v = Arc::new(next);
        (frozen, new_wal_id)
    };

    // Write every frozen generation (more than one if an earlier flush failed).
    let (seg_id, path, mut writer) = new_segment_writer(inner)?;
    let mut ids: BTreeSet<SeriesId> = BTreeSet::new();
    for h in &frozen {
        ids.extend(h.ids());
    }
    {
        let catalog = inner.catalog.read();
        for id in ids {
            let Some(key) = catalog.key(id) else {
                continue; // deleted meanwhile
            };
            let points = merged_head_points(&frozen, id);
            if !points.is_empty() {
                writer.add_series(id, &key, &points)?;
            }
        }
    }
    let mut new_segment = None;
    if writer.is_empty() {
        drop(writer); // removes the file
    } else {
        writer.finish()?;
        fsutil::sync_dir(&inner.seg_dir)?;
        new_segment = Some(Arc::new(Segment::open_with_cache(
            &path,
            seg_id,
            inner.page_cache.clone(),
        )?));
    }
    // Publish.
    {
        let mut m = inner.manifest.lock();
        let mut next = m.clone();
        if let Some(s) = &new_segment {
            next.segments.push(s.id());
        }
        next.wal_start = new_wal_id;
        next.next_series_id = next.next_series_id.max(inner.catalog.read().next_id());
        next.store(&inner.dir)?;
        *m = next;
    }
    {
        let mut v = inner.version.write();
        let mut next = Version::clone(&v);
        next.frozen
            .retain(|h| !frozen.iter().any(|f| Arc::ptr_eq(f, h)));
        if let Some(s) = new_segment {
            next.segments.push(s);
        }
        *v = Arc::new(next);
    }
    for id in wal::list_wal_files(&inner.wal_dir)? {
        if id < new_wal_id {
            fsutil::remove_if_exists(&wal::wal_path(&inner.wal_dir, id))?;
        }
    }
    inner.metrics.record_flush();
    Ok(())
}

/// A writer for the next segment id (the file is removed again unless
/// the writer finishes).
fn new_segment_writer(inner: &Inner) -> Result<(u64, std::path::PathBuf, SegmentWriter)> {
    let seg_id = {
        let mut m = inner.manifest.lock();
        let id = m.next_segment_id;
        m.next_segment_id += 1;
        id
    };
    let path = segment_path(&inner.seg_dir, seg_id);
    let writer = SegmentWriter::create(&path, inner.opts.page_points, inner.opts.max_chunk_points)?;
    Ok((seg_id, path, writer))
}

/// A series' points across frozen head generations, newest write winning.
fn merged_head_points(frozen: &[Arc<HeadMap>], id: SeriesId) -> Points {
    let mut parts: Vec<Points> = Vec::new();
    for h in frozen {
        if let Some(s) = h.get(id) {
            parts.push(s.lock().to_points());
        }
    }
    merge_newest_wins(parts)
}

/// Merges point sets, each sorted by identity without repeats and given
/// oldest first, into one where a later set's point replaces an earlier
/// set's at the same identity.
pub(crate) fn merge_newest_wins(mut parts: Vec<Points>) -> Points {
    parts.retain(|p| !p.is_empty());
    match parts.len() {
        0 => return Points::default(),
        1 => return parts.pop().expect("one part"),
        _ => {}
    }
    // Fast path: parts that follow one another without overlap concatenate.
    let disjoint = parts.windows(2).all(|w| {
        let a = w[0].len() - 1;
        identity(w[0].steps[a], w[0].times[a]) < identity(w[1].steps[0], w[1].times[0])
    });
    let total: usize = parts.iter().map(Points::len).sum();
    let mut out = Points {
        steps: Vec::with_capacity(total),
        times: Vec::with_capacity(total),
        values: Vec::with_capacity(total),
    };
    if disjoint {
        for p in parts {
            out.steps.extend(p.steps);
            out.times.extend(p.times);
            out.values.extend(p.values);
        }
        return out;
    }
    // General case: sort (identity, rank) and keep the highest rank of each identity.
    let mut order: Vec<(bool, i64, u32, u32)> = Vec::with_capacity(total);
    for (rank, p) in parts.iter().enumerate() {
        for i in 0..p.len() {
            let (s, k) = identity(p.steps[i], p.times[i]);
            order.push((s, k, rank as u32, i as u32));
        }
    }
    order.sort_unstable();
    for (j, &(s, k, rank, i)) in order.iter().enumerate() {
        if let Some(&(s2, k2, _, _)) = order.get(j + 1)
            && (s2, k2) == (s, k)
        {
            continue;
        }
        let p = &parts[rank as usize];
        out.push(
            p.steps[i as usize],
            p.times[i as usize],
            p.values[i as usize],
        );
    }
    out
}

/// What a rewrite does with a chunk that fails its checksum or decoding.
pub(crate) enum OnDamage<'a> {
    /// Copy it byte for byte (a kept series keeps its damage, detectably,
    /// until `loupe store repair` decides): deletions and compactions never
    /// fail on someone else's damaged chunk.
    Keep,
    /// Leave it out and record what was lost (repair, after confirmation).
    Drop(&'a mut Vec<LostChunk>),
}

/// A damaged chunk a repair left out of the rewritten segments.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LostChunk {
    pub segment: std::path::PathBuf,
    pub chunk: u32,
    pub series: String,
    pub points: u64,
    pub first_step: i64,
    pub last_step: i64,
    pub first_time_ns: i64,
    pub last_time_ns: i64,
    pub error: String,
}

/// Which segments a rewrite replaces: a contiguous run of the published
/// segments (oldest first), so that newest-write-wins order is kept.
pub(crate) type Window = std::ops::Range<usize>;

/// The whole store.
pub(crate) fn all_segments(inner: &Inner) -> Window {
    0..inner.version.read().segments.len()
}

/// Picks the segments to merge once there are more than `max_segments`: the
/// contiguous run that removes segments at the lowest cost in bytes
/// rewritten per segment removed (ties go to the longer run).
///
/// Fresh flushes are small and the store's bulk is in a few large segments,
/// so the small ones are merged with each other and a large one is rewritten
/// only once the data merged after it has grown comparable to it: each point
/// is rewritten a logarithmic number of times, not once per flush.
pub(crate) fn pick_merge(sizes: &[u64], max_segments: usize) -> Option<Window> {
    if sizes.len() <= max_segments.max(1) {
        return None;
    }
    let mut best: Option<(Window, u128, usize)> = None;
    for start in 0..sizes.len() {
        let mut bytes = sizes[start] as u128;
        for end in start + 2..=sizes.len() {
            bytes += sizes[end - 1] as u128;
            let removed = end - start - 1;
            // Compare bytes/removed as cross products, exactly.
            let better = best.as_ref().is_none_or(|(w, b, r)| {
                let (lhs, rhs) = (bytes * *r as u128, *b * removed as u128);
                lhs < rhs || (lhs == rhs && end - start > w.len())
            });
            if better {
                best = Some((start..end, bytes, removed));
            }
        }
    }
    best.map(|(w, _, _)| w)
}

/// Merges segments if there are more than the options allow.
pub(crate) fn merge_if_needed(inner: &Inner) -> Result<()> {
    let sizes: Vec<u64> = inner
        .version
        .read()
        .segments
        .iter()
        .map(|s| s.size())
        .collect();
    match pick_merge(&sizes, inner.opts.max_segments) {
        Some(window) => rewrite_segments(inner, window, Rewrite::KeepAll, OnDamage::Keep),
        None => Ok(()),
    }
}

/// What a rewrite does with each series.
pub(crate) enum Rewrite<'a> {
    /// Keep every series; only merge overlapping writes.
    KeepAll,
    /// Leave these series out; keep the others.
    Drop(&'a BTreeSet<SeriesId>),
    /// Let the function edit or drop these series' merged points; keep the
    /// others. An edited series is read whole.
    Edit(
        &'a BTreeSet<SeriesId>,
        &'a mut dyn FnMut(SeriesId, &mut Points) -> RewriteAction,
    ),
}

/// Rewrites the segments of `window` into one new segment that takes their
/// place, series by series.
///
/// Memory stays bounded whatever the store's size: the new segment streams
/// to its file, a chunk no other write overlaps is copied as it is stored
/// (no decoding) once it is large, and smaller ones are merged into chunks
/// of up to `max_chunk_points`. Only an edited series is read whole.
pub(crate) fn rewrite_segments(
    inner: &Inner,
    window: Window,
    mut rewrite: Rewrite<'_>,
    mut on_damage: OnDamage<'_>,
) -> Result<()> {
    let current = inner.version.read().clone();
    let window = window.start.min(current.segments.len())..window.end.min(current.segments.len());
    let old: Vec<Arc<Segment>> = current.segments[window.clone()].to_vec();
    if old.is_empty() {
        return Ok(());
    }
    let mut keys: BTreeMap<SeriesId, loupe_model::SeriesKey> = BTreeMap::new();
    for s in &old {
        for (id, k) in s.keys()? {
            keys.insert(id, k);
        }
    }
    let (seg_id, path, mut writer) = new_segment_writer(inner)?;
    let abandon_on_close = matches!(rewrite, Rewrite::KeepAll);
    for (&id, key) in &keys {
        // A merge only tidies: closing abandons it (the writer removes its
        // file) so that shutdown never waits for one.
        if abandon_on_close && inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let series = SeriesRewrite { id, key, old: &old };
        match &mut rewrite {
            Rewrite::KeepAll => series.keep(&mut writer, &mut on_damage)?,
            Rewrite::Drop(doomed) if doomed.contains(&id) => {}
            Rewrite::Drop(_) => series.keep(&mut writer, &mut on_damage)?,
            Rewrite::Edit(ids, edit) if ids.contains(&id) => {
                series.edit(&mut writer, &mut on_damage, &mut **edit)?
            }
            Rewrite::Edit(..) => series.keep(&mut writer, &mut on_damage)?,
        }
    }
    let mut written = 0;
    let new_segment = if writer.is_empty() {
        drop(writer); // removes the file
        None
    } else {
        written = writer.finish()?;
        fsutil::sync_dir(&inner.seg_dir)?;
        Some(Arc::new(Segment::open_with_cache(
            &path,
            seg_id,
            inner.page_cache.clone(),
        )?))
    };
    let old_ids: Vec<u64> = old.iter().map(|s| s.id()).collect();
    {
        let mut m = inner.manifest.lock();
        let mut next = m.clone();
        // The new segment takes the window's place. A flush may have
        // published a segment since the window was picked: it is newer than
        // every segment of the window and sits after them, where it stays.
        let at = next
            .segments
            .iter()
            .position(|id| old_ids.contains(id))
            .unwrap_or(0);
        next.segments.retain(|id| !old_ids.contains(id));
        if let Some(s) = &new_segment {
            next.segments.insert(at, s.id());
        }
        next.next_series_id = next.next_series_id.max(inner.catalog.read().next_id());
        next.store(&inner.dir)?;
        *m = next;
    }
    {
        let mut v = inner.version.write();
        let mut next = Version::clone(&v);
        let at = next
            .segments
            .iter()
            .position(|s| old_ids.contains(&s.id()))
            .unwrap_or(0);
        next.segments.retain(|s| !old_ids.contains(&s.id()));
        if let Some(s) = new_segment {
            next.segments.insert(at, s);
        }
        *v = Arc::new(next);
    }
    for id in old_ids {
        let path = segment_path(&inner.seg_dir, id);
        if let Err(e) = fsutil::remove_if_exists(&path) {
            // The manifest no longer names it; the next open removes it.
            inner.metrics.record_flush_error(&e);
        }
    }
    fsutil::sync_dir(&inner.seg_dir)?;
    inner.metrics.record_merge(written);
    Ok(())
}

/// One series being rewritten from the window's segments.
struct SeriesRewrite<'a> {
    id: SeriesId,
    key: &'a loupe_model::SeriesKey,
    /// Oldest first.
    old: &'a [Arc<Segment>],
}

/// A readable chunk of the series: its identity range and age.
struct OldChunk<'a> {
    lo: (bool, i64),
    hi: (bool, i64),
    /// Index of its segment in the window: higher is newer.
    age: usize,
    seg: &'a Segment,
    chunk: u32,
}

impl<'a> SeriesRewrite<'a> {
    /// The series' chunks: readable ones in identity order, damaged ones apart.
    fn chunks(&self) -> (Vec<OldChunk<'a>>, Vec<(&'a Segment, u32, Error)>) {
        let mut good = Vec::new();
        let mut damaged = Vec::new();
        for (age, seg) in self.old.iter().enumerate() {
            for chunk in seg.chunks_of(self.id) {
                match seg.check_chunk(chunk) {
                    Ok(()) => {
                        let s = &seg.entry(chunk).summary;
                        if s.count == 0 {
                            continue;
                        }
                        good.push(OldChunk {
                            lo: identity(s.first_step, s.first_time),
                            hi: identity(s.last_step, s.last_time),
                            age,
                            seg,
                            chunk,
                        });
                    }
                    Err(e) => damaged.push((&**seg, chunk, e)),
                }
            }
        }
        good.sort_by_key(|c| (c.lo, c.age));
        (good, damaged)
    }

    /// Writes the series, overlapping writes merged newest-wins.
    fn keep(&self, w: &mut SegmentWriter, on_damage: &mut OnDamage<'_>) -> Result<()> {
        let (chunks, damaged) = self.chunks();
        let target = w.max_chunk_points();
        let mut pending = Points::default();
        let mut i = 0;
        while i < chunks.len() {
            // A cluster: chunks whose identity ranges overlap, transitively.
            let mut j = i + 1;
            let mut hi = chunks[i].hi;
            while j < chunks.len() && chunks[j].lo <= hi {
                hi = hi.max(chunks[j].hi);
                j += 1;
            }
            let cluster = &chunks[i..j];
            let lone = cluster.len() == 1;
            let big = cluster[0].seg.entry(cluster[0].chunk).count as usize >= target / 2;
            if lone && big {
                self.write_pending(w, &mut pending)?;
                w.copy_chunk(self.key, cluster[0].seg, cluster[0].chunk)?;
            } else {
                let mut by_age: Vec<&OldChunk<'_>> = cluster.iter().collect();
                by_age.sort_by_key(|c| (c.age, c.lo));
                let mut parts = Vec::with_capacity(by_age.len() + 1);
                for c in by_age {
                    match c.seg.read_chunk(c.chunk) {
                        Ok(p) => parts.push(p),
                        // Its checksums held; its encoding did not.
                        Err(e) if e.is_corruption() => {
                            damage(w, self.key, on_damage, c.seg, c.chunk, e)?
                        }
                        Err(e) => return Err(e),
                    }
                }
                // Clusters come in identity order without overlap: append.
                let merged = merge_newest_wins(parts);
                pending.steps.extend(merged.steps);
                pending.times.extend(merged.times);
                pending.values.extend(merged.values);
                while pending.len() >= target {
                    let rest = pending.split_off(target);
                    w.add_chunk(self.id, self.key, &pending)?;
                    pending = rest;
                }
            }
            i = j;
        }
        self.write_pending(w, &mut pending)?;
        for (seg, chunk, e) in damaged {
            damage(w, self.key, on_damage, seg, chunk, e)?;
        }
        Ok(())
    }

    fn write_pending(&self, w: &mut SegmentWriter, pending: &mut Points) -> Result<()> {
        if !pending.is_empty() {
            w.add_series(self.id, self.key, &std::mem::take(pending))?;
        }
        Ok(())
    }

    /// Reads the series whole, lets `edit` change it, and writes what is left.
    fn edit(
        &self,
        w: &mut SegmentWriter,
        on_damage: &mut OnDamage<'_>,
        edit: &mut dyn FnMut(SeriesId, &mut Points) -> RewriteAction,
    ) -> Result<()> {
        let (mut chunks, damaged) = self.chunks();
        chunks.sort_by_key(|c| (c.age, c.lo));
        let mut parts = Vec::with_capacity(chunks.len());
        let mut unreadable = Vec::new();
        for c in &chunks {
            match c.seg.read_chunk(c.chunk) {
                Ok(p) => parts.push(p),
                Err(e) if e.is_corruption() => unreadable.push((c.seg, c.chunk, e)),
                Err(e) => return Err(e),
            }
        }
        let mut points = merge_newest_wins(parts);
        if let RewriteAction::Keep = edit(self.id, &mut points) {
            w.add_series(self.id, self.key, &points)?;
            for (seg, chunk, e) in unreadable.into_iter().chain(damaged) {
                damage(w, self.key, on_damage, seg, chunk, e)?;
            }
        }
        Ok(())
    }
}

/// Keeps a damaged chunk byte for byte or records it as lost.
fn damage(
    w: &mut SegmentWriter,
    key: &loupe_model::SeriesKey,
    on_damage: &mut OnDamage<'_>,
    seg: &Segment,
    chunk: u32,
    e: Error,
) -> Result<()> {
    match on_damage {
        // One damaged chunk must not stop every deletion: a series being
        // dropped goes, damage and all; a kept one keeps its damaged chunk
        // byte for byte, for `loupe store repair`.
        OnDamage::Keep => w.copy_chunk(key, seg, chunk),
        OnDamage::Drop(lost) => {
            lost.push(lost_chunk(seg, chunk, key, &e));
            Ok(())
        }
    }
}

fn lost_chunk(s: &Segment, c: u32, key: &loupe_model::SeriesKey, e: &Error) -> LostChunk {
    let sum = &s.entry(c).summary;
    LostChunk {
        segment: s.path().to_path_buf(),
        chunk: c,
        series: key.to_string(),
        points: sum.count,
        first_step: sum.first_step,
        last_step: sum.last_step,
        first_time_ns: sum.first_time,
        last_time_ns: sum.last_time,
        error: e.to_string(),
    }
}
