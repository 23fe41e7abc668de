//! Damage is never silent: cut and corrupted files in real data directories
//! written by the engine, then opened, verified, read and repaired through
//! the public interface.

use std::path::{Path, PathBuf};

use loupe_model::{SeriesKey, SeriesMatcher};
use loupe_tsdb::{SeriesWrite, Tsdb, TsdbOptions, WriteBatch, repair_dir, verify_dir};

fn opts() -> TsdbOptions {
    TsdbOptions {
        background_flush: false,
        page_points: 64,
        ..Default::default()
    }
}

fn key(name: &str) -> SeriesKey {
    SeriesKey::new(name, [("run", "r")]).unwrap()
}

fn write(db: &Tsdb, k: &SeriesKey, steps: std::ops::Range<i64>) {
    let steps: Vec<i64> = steps.collect();
    let times = steps.iter().map(|s| 1_000_000 + s).collect();
    // Distinct values per series, so no two share a stored column.
    let scale = k.name().bytes().map(f64::from).sum::<f64>();
    let values = steps.iter().map(|&s| (s as f64 * scale).sqrt()).collect();
    db.append(WriteBatch {
        series: vec![SeriesWrite::new(k.clone(), Some(steps), times, values)],
    })
    .unwrap();
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn set_len(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

#[test]
fn a_torn_tail_of_the_newest_wal_file_is_reported_with_its_size_not_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("loss");
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        write(&db, &k, 0..100);
        write(&db, &k, 100..200);
    }
    let wal = files(&dir.path().join("wal"), "wal").pop().unwrap();
    let len = std::fs::metadata(&wal).unwrap().len();
    set_len(&wal, len - 100);
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let rep = db.open_report();
    assert!(rep.damaged.is_empty(), "{:?}", rep.damaged);
    assert_eq!(rep.torn.len(), 1);
    let torn = &rep.torn[0];
    assert_eq!(torn.path, wal);
    assert_eq!(torn.offset + torn.bytes, len - 100);
    assert!(torn.bytes > 0 && torn.frames == 1);
    assert_eq!(db.stats().damage_found, 0);
    assert_eq!(db.stats().torn_tail_bytes, torn.bytes);
    assert_eq!(db.read_all(&k).unwrap().len(), 100);
}

#[test]
fn a_cut_wal_file_that_a_later_file_sealed_is_damage_counted_in_stats() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("loss");
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        for i in 0..6 {
            write(&db, &k, i * 100..(i + 1) * 100);
        }
    }
    // A second open seals the first file at its acknowledged length.
    drop(Tsdb::open(dir.path(), opts()).unwrap());
    let wals = files(&dir.path().join("wal"), "wal");
    assert_eq!(wals.len(), 2);
    let first = &wals[0];
    let len = std::fs::metadata(first).unwrap().len();
    set_len(first, len / 2);

    let report = verify_dir(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(&report.problems[0].file, first);
    assert!(report.problems[0].detail.contains("unreadable or missing"));

    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let rep = db.open_report();
    assert!(rep.torn.is_empty(), "a sealed file has no torn tail");
    assert_eq!(rep.damaged.len(), 1);
    assert!(rep.damaged[0].to_string().contains(&format!("{}", len)));
    assert_eq!(db.stats().damage_found, 1);
    let n = db.read_all(&k).unwrap().len();
    assert!((200..600).contains(&n), "{n}");
}

#[test]
fn a_deleted_sealed_wal_file_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("loss");
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        write(&db, &k, 0..100);
    }
    drop(Tsdb::open(dir.path(), opts()).unwrap());
    let wals = files(&dir.path().join("wal"), "wal");
    std::fs::remove_file(&wals[0]).unwrap();
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let rep = db.open_report();
    assert_eq!(rep.damaged.len(), 1, "{:?}", rep.damaged);
    let msg = rep.damaged[0].to_string();
    assert!(
        msg.contains("missing") && msg.contains(wals[0].to_str().unwrap()),
        "{msg}"
    );
}

#[test]
fn an_unreadable_segment_makes_reads_fail_naming_it_until_repair_quarantines_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (key("a"), key("b"));
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        write(&db, &a, 0..500);
        db.flush().unwrap();
        write(&db, &b, 0..500);
        db.close().unwrap();
    }
    let segs = files(&dir.path().join("segments"), "seg");
    assert_eq!(segs.len(), 2);
    // Damage the footer of the segment holding `a`.
    let len = std::fs::metadata(&segs[0]).unwrap().len();
    set_len(&segs[0], len - 3);

    let db = Tsdb::open(dir.path(), opts()).unwrap();
    let err = db.read_all(&a).unwrap_err();
    assert!(err.is_corruption());
    assert!(err.to_string().contains(segs[0].to_str().unwrap()), "{err}");
    assert!(db.m4(&a, loupe_tsdb::XAxis::Step, 0, 10, 5).is_err());
    assert!(db.summary(&b).is_err(), "b may have points in it too");
    assert!(db.stats().damage_found >= 1);
    drop(db);

    let found = verify_dir(dir.path()).unwrap();
    assert_eq!(found.problems.len(), 1);
    let rep = repair_dir(dir.path(), opts()).unwrap();
    assert_eq!(rep.segments_removed, vec![segs[0].clone()]);
    assert!(rep.remaining.is_empty(), "{:?}", rep.remaining);
    let q = rep.quarantine.unwrap();
    assert!(q.join(segs[0].file_name().unwrap()).exists());
    let note = std::fs::read_to_string(q.join(loupe_tsdb::NOTE_FILE)).unwrap();
    assert!(note.contains("segments_removed"), "{note}");

    let db = Tsdb::open(dir.path(), opts()).unwrap();
    assert!(db.open_report().damaged.is_empty());
    assert_eq!(db.read_all(&b).unwrap().len(), 500);
    assert_eq!(
        db.read_all(&a).unwrap().len(),
        0,
        "lost, and said so in the note"
    );
}

/// Flips one byte of `seg` at a time until reading `a` fails while `b`
/// still reads whole; returns with that damage in place.
fn damage_one_chunk(dir: &Path, seg: &Path, a: &SeriesKey, b: &SeriesKey) {
    let mut bytes = std::fs::read(seg).unwrap();
    for off in (16..bytes.len() / 2).step_by(31) {
        bytes[off] ^= 0x40;
        std::fs::write(seg, &bytes).unwrap();
        let db = Tsdb::open(dir, opts()).unwrap();
        if db.read_all(a).is_err() && db.read_all(b).is_ok_and(|p| p.len() == 3000) {
            return;
        }
        bytes[off] ^= 0x40;
    }
    panic!("no byte of a's chunk found");
}

#[test]
fn a_damaged_chunk_does_not_stop_deleting_other_series_and_repair_drops_it_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (key("a"), key("b"), key("c"));
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        for k in [&a, &b, &c] {
            write(&db, k, 0..3000);
        }
        db.close().unwrap();
    }
    let seg = files(&dir.path().join("segments"), "seg").pop().unwrap();
    damage_one_chunk(dir.path(), &seg, &a, &b);

    let db = Tsdb::open(dir.path(), opts()).unwrap();
    assert_eq!(
        db.delete_series(&SeriesMatcher::any().name_eq("c"))
            .unwrap(),
        1
    );
    assert!(db.read_all(&c).unwrap().is_empty());
    assert_eq!(db.read_all(&b).unwrap().len(), 3000);
    let err = db.read_all(&a).unwrap_err();
    assert!(
        err.is_corruption(),
        "the damaged chunk is kept, still detected: {err}"
    );
    drop(db);

    let rep = repair_dir(dir.path(), opts()).unwrap();
    assert_eq!(rep.chunks_lost.len(), 1, "{rep:?}");
    assert_eq!(rep.chunks_lost[0].series, a.to_string());
    assert!(rep.chunks_lost[0].points > 0);
    assert!(rep.remaining.is_empty(), "{:?}", rep.remaining);
    let db = Tsdb::open(dir.path(), opts()).unwrap();
    assert_eq!(db.read_all(&b).unwrap().len(), 3000);
    assert!(db.read_all(&a).is_ok());
    drop(db);
    assert!(verify_dir(dir.path()).unwrap().problems.is_empty());
}

#[test]
fn verify_checks_every_page_and_refuses_a_directory_without_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("loss");
    {
        let db = Tsdb::open(dir.path(), opts()).unwrap();
        write(&db, &k, 0..1000);
        db.flush().unwrap();
        write(&db, &k, 1000..1100);
    }
    let rep = verify_dir(dir.path()).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(rep.points, 1000);
    assert_eq!(rep.segments, 1);
    assert!(rep.wal_records >= 1);
    let empty = tempfile::tempdir().unwrap();
    let err = verify_dir(empty.path()).unwrap_err();
    assert!(err.to_string().contains("MANIFEST"), "{err}");
}
