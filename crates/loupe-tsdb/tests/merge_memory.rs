//! A merge's memory does not grow with the store: compacting a store of
//! ~55 MB of incompressible points stays within a fixed heap budget.
//! (Before segments were streamed, the new segment was built whole in
//! memory: at least the store's size, up to twice that while growing.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use loupe_model::SeriesKey;
use loupe_tsdb::{SeriesWrite, Tsdb, TsdbOptions, WriteBatch};

/// The system allocator, counting live bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn noise(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

#[test]
fn compacting_a_large_store_takes_bounded_memory() {
    const SERIES: u64 = 8;
    const POINTS_PER_SERIES: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(
        dir.path(),
        TsdbOptions {
            background_flush: false,
            // Keep every flush as its own segment until the compaction.
            max_segments: 1000,
            page_cache_bytes: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let keys: Vec<SeriesKey> = (0..SERIES)
        .map(|s| SeriesKey::new(format!("m{s}"), [("run", "r")]).unwrap())
        .collect();
    // The first half in large flushes (chunks copied as stored), the second
    // in small ones (chunks decoded, merged and re-cut).
    let mut step = 0u64;
    for (flushes, per_flush) in [(4u64, 125_000u64), (40, 12_500)] {
        for _ in 0..flushes {
            let steps: Vec<i64> = (step..step + per_flush).map(|s| s as i64).collect();
            let series = keys
                .iter()
                .enumerate()
                .map(|(k, key)| {
                    let values = steps
                        .iter()
                        .map(|&s| noise(s as u64 * SERIES + k as u64))
                        .collect();
                    SeriesWrite::new(key.clone(), Some(steps.clone()), steps.clone(), values)
                })
                .collect();
            db.append(WriteBatch { series }).unwrap();
            db.flush().unwrap();
            step += per_flush;
        }
    }
    assert_eq!(step, POINTS_PER_SERIES);
    let before = db.stats();
    assert_eq!(before.segments, 44);
    assert!(
        before.segment_bytes > 50 << 20,
        "the store is {} bytes; the test needs one larger than its budget",
        before.segment_bytes
    );

    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    db.compact().unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - base;

    let after = db.stats();
    assert_eq!(after.segments, 1);
    let budget = 40 << 20;
    assert!(
        peak < budget,
        "compacting {} bytes of segments took {peak} bytes of heap (budget {budget})",
        before.segment_bytes
    );
    for (k, key) in keys.iter().enumerate() {
        let p = db.read_all(key).unwrap();
        assert_eq!(p.len() as u64, POINTS_PER_SERIES);
        for i in [0usize, 499_999, 500_000, 999_999] {
            assert_eq!(p.steps[i], i as i64);
            assert_eq!(p.values[i], noise(i as u64 * SERIES + k as u64));
        }
    }
    assert!(db.verify().is_empty());
    eprintln!(
        "compacted {} bytes in 44 segments into {} bytes with a heap peak of {} MiB",
        before.segment_bytes,
        after.segment_bytes,
        peak >> 20
    );
}
