//! A full disk and a read-only filesystem, on a real small filesystem: a
//! 4 MiB tmpfs. An append or flush that cannot reach the disk fails with an
//! error naming the file and the cause, loses nothing acknowledged before it,
//! leaves no trace of itself, and once space returns the engine carries on.
//!
//! Mounting needs root (as in CI). Where mounting is refused, each test
//! re-runs itself inside `unshare -rm` (a user and mount namespace); where
//! that fails too, the test fails and says why.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use loupe_model::{NO_STEP, SeriesKey};
use loupe_tsdb::{Error, FsyncMode, SeriesWrite, Tsdb, TsdbOptions, WriteBatch};

/// Set in the re-run inside a user and mount namespace.
const NAMESPACE_ENV: &str = "LOUPE_DISK_FULL_IN_NAMESPACE";
const FS_SIZE: &str = "4m";

fn opts() -> TsdbOptions {
    TsdbOptions {
        fsync: FsyncMode::Group,
        background_flush: false,
        page_points: 128,
        ..Default::default()
    }
}

/// A tmpfs mounted on a fresh temporary directory; unmounted on drop.
struct Tmpfs {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount() -> std::io::Result<Tmpfs> {
        let dir = tempfile::tempdir()?;
        let mount_point = dir.path().join("fs");
        std::fs::create_dir(&mount_point)?;
        mount_tmpfs(&mount_point, 0)?;
        Ok(Tmpfs {
            mount_point,
            _dir: dir,
        })
    }

    fn path(&self) -> &Path {
        &self.mount_point
    }

    fn remount(&self, read_only: bool) -> std::io::Result<()> {
        let flags = libc::MS_REMOUNT | if read_only { libc::MS_RDONLY } else { 0 };
        mount_tmpfs(&self.mount_point, flags)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = c_path(&self.mount_point);
        // Safety: a valid NUL-terminated path.
        if unsafe { libc::umount2(target.as_ptr(), 0) } != 0 {
            // Busy (a test failed with files open): detach it instead.
            // Safety: as above.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in a temporary path")
}

fn mount_tmpfs(target: &Path, flags: libc::c_ulong) -> std::io::Result<()> {
    let fstype = CString::new("tmpfs").unwrap();
    let target = c_path(target);
    let data = CString::new(format!("size={FS_SIZE}")).unwrap();
    // Safety: valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `scenario` on a fresh tmpfs: mounted directly, or, where mounting is
/// not permitted, by re-running test `name` inside `unshare -rm`.
fn on_small_fs(name: &str, scenario: impl FnOnce(&Tmpfs)) {
    let in_namespace = std::env::var_os(NAMESPACE_ENV).is_some();
    match Tmpfs::mount() {
        Ok(fs) => scenario(&fs),
        Err(e) if !in_namespace && matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            rerun_in_namespace(name, &e)
        }
        Err(e) => panic!(
            "cannot mount a {FS_SIZE} tmpfs for the disk-full tests ({e}){}; \
             these tests need root or unprivileged user namespaces",
            if in_namespace {
                " even inside `unshare -rm`"
            } else {
                ""
            }
        ),
    }
}

fn rerun_in_namespace(name: &str, mount_error: &std::io::Error) {
    let exe = std::env::current_exe().expect("path of the test binary");
    let out = Command::new("unshare")
        .arg("-rm")
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(NAMESPACE_ENV, "1")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "mounting a tmpfs was refused ({mount_error}) and `unshare` could not run \
                 ({e}); the disk-full tests need root, or `unshare` from util-linux with \
                 unprivileged user namespaces"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{name}: mounting was refused ({mount_error}); re-ran inside `unshare -rm`");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} inside `unshare -rm` (mounting directly was refused: {mount_error}) \
         failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
}

/// A point as compared: (step, time, value bits).
type PointBits = (i64, i64, u64);

/// What the database must hold: per series, identity → point.
#[derive(Default)]
struct Model {
    series: HashMap<SeriesKey, BTreeMap<(bool, i64), PointBits>>,
    batches: u64,
}

impl Model {
    fn apply(&mut self, batch: &WriteBatch) {
        for w in &batch.series {
            let m = self.series.entry(w.key.clone()).or_default();
            for j in 0..w.len() {
                let step = w.steps.as_ref().map_or(NO_STEP, |s| s[j]);
                let id = if step == NO_STEP {
                    (false, w.times[j])
                } else {
                    (true, step)
                };
                m.insert(id, (step, w.times[j], w.values[j].to_bits()));
            }
        }
        self.batches += 1;
    }

    #[track_caller]
    fn check(&self, db: &Tsdb, when: &str) {
        for (key, points) in &self.series {
            let got = db
                .read_all(key)
                .unwrap_or_else(|e| panic!("{when}: read {key}: {e}"));
            let got: Vec<PointBits> = (0..got.len())
                .map(|i| (got.steps[i], got.times[i], got.values[i].to_bits()))
                .collect();
            let want: Vec<PointBits> = points.values().copied().collect();
            if got != want {
                let first = got
                    .iter()
                    .zip(&want)
                    .position(|(g, w)| g != w)
                    .unwrap_or(got.len().min(want.len()));
                panic!(
                    "{when}: {key}: read {} points, expected {}; first difference at {first}: \
                     read {:?}, expected {:?}",
                    got.len(),
                    want.len(),
                    got.get(first),
                    want.get(first)
                );
            }
        }
    }
}

fn noise(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// Batch `no`: 500 steps of a training loss (with the odd NaN and infinity)
/// and 100 points of an unstepped host metric, about 14 KB of WAL.
fn batch(no: u64) -> WriteBatch {
    let loss = SeriesKey::new("train/loss", [("run", "disk-full")]).unwrap();
    let cpu = SeriesKey::new("sys/cpu", [("host", "node-0")]).unwrap();
    let t0 = 1_700_000_000_000_000_000i64 + no as i64 * 1_000_000_000;
    let steps: Vec<i64> = (0..500).map(|i| no as i64 * 500 + i).collect();
    let times: Vec<i64> = (0..500).map(|i| t0 + i).collect();
    let values = steps
        .iter()
        .map(|&s| match s % 211 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -0.0,
            _ => noise(s as u64),
        })
        .collect();
    let cpu_times: Vec<i64> = (0..100).map(|i| t0 + i * 10_000_000).collect();
    let cpu_values = cpu_times.iter().map(|&t| noise(t as u64) * 100.0).collect();
    let mut b = WriteBatch::new();
    b.push(SeriesWrite::new(loss, Some(steps), times, values));
    b.push(SeriesWrite::new(cpu, None, cpu_times, cpu_values));
    b
}

/// Appends batch `model.batches`, which must succeed, and records it.
#[track_caller]
fn append_ok(db: &Tsdb, model: &mut Model, when: &str) {
    let b = batch(model.batches);
    db.append(b.clone())
        .unwrap_or_else(|e| panic!("{when}: append of batch {}: {e}", model.batches));
    model.apply(&b);
}

/// Asserts `e` is an IO error of `kind` on a file under `under`, and that
/// its message says so: the file's path and the operating system's words.
#[track_caller]
fn assert_io_error(e: &Error, kind: ErrorKind, words: &str, under: &Path) {
    let msg = e.to_string();
    match e {
        Error::Io { path, source, .. } => {
            assert_eq!(source.kind(), kind, "wrong kind of error: {msg}");
            assert!(
                path.starts_with(under),
                "the error names {}, not a file under {}: {msg}",
                path.display(),
                under.display()
            );
        }
        other => panic!("expected an IO error ({kind}), got {other:?}"),
    }
    assert!(
        msg.contains(&under.display().to_string()),
        "the message does not name the file: {msg}"
    );
    assert!(
        msg.contains(words),
        "the message does not say {words:?}: {msg}"
    );
}

/// Asserts that opening found no damage; shows the first few reports.
#[track_caller]
fn assert_undamaged(db: &Tsdb, when: &str) {
    let damaged = &db.open_report().damaged;
    assert!(
        damaged.is_empty(),
        "{when}: opening found {} damage reports; the first: {:#?}",
        damaged.len(),
        &damaged[..damaged.len().min(3)]
    );
}

/// Writes a file until the filesystem is full; returns its size.
fn fill(path: &Path) -> u64 {
    let mut f = File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    let mut size = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => size += n as u64,
            Err(e) if e.kind() == ErrorKind::StorageFull => break,
            Err(e) => panic!("fill {}: {e}", path.display()),
        }
    }
    size
}

fn write_ballast(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0xa5u8; bytes]).unwrap();
}

const NO_SPACE: &str = "No space left on device";

#[test]
fn full_disk_fails_appends_and_flushes_cleanly_and_recovers() {
    on_small_fs(
        "full_disk_fails_appends_and_flushes_cleanly_and_recovers",
        |fs| {
            let ballast = fs.path().join("ballast");
            write_ballast(&ballast, 2 << 20);
            let dir = fs.path().join("db");
            let mut model = Model::default();
            let db = Tsdb::open(&dir, opts()).unwrap();

            // Fill the disk through the WAL.
            let err = loop {
                let b = batch(model.batches);
                match db.append(b.clone()) {
                    Ok(()) => model.apply(&b),
                    Err(e) => break e,
                }
                assert!(
                    model.batches < 10_000,
                    "a {FS_SIZE} filesystem never filled"
                );
            };
            assert!(
                model.batches >= 10,
                "only {} appends before the disk was full",
                model.batches
            );
            eprintln!("append on the full disk: {err}");
            assert_io_error(&err, ErrorKind::StorageFull, NO_SPACE, &dir);
            // The failed batch left no trace; everything before it reads back.
            model.check(&db, "after the append that found the disk full");
            // Still full: a retry fails the same way, and still costs nothing.
            let err = db.append(batch(model.batches)).unwrap_err();
            assert_io_error(&err, ErrorKind::StorageFull, NO_SPACE, &dir);
            model.check(&db, "after a retry on the full disk");

            // Space returns: appends work again.
            std::fs::remove_file(&ballast).unwrap();
            for _ in 0..5 {
                append_ok(&db, &mut model, "after space returned");
            }
            model.check(&db, "after space returned");

            // The disk fills a second time, with acknowledged appends in the
            // same WAL file after the earlier failure.
            let ballast = fs.path().join("ballast-again");
            fill(&ballast);
            let err = db.append(batch(model.batches)).unwrap_err();
            assert_io_error(&err, ErrorKind::StorageFull, NO_SPACE, &dir);
            model.check(&db, "after the disk filled again");
            std::fs::remove_file(&ballast).unwrap();
            append_ok(&db, &mut model, "after space returned again");
            model.check(&db, "after space returned again");
            drop(db);
            let db = Tsdb::open(&dir, opts()).unwrap();
            model.check(&db, "reopened after the full disk");
            assert_undamaged(&db, "reopened after the full disk");

            // A flush needs room for a segment file: fill the disk, flush fails.
            let ballast2 = fs.path().join("ballast2");
            fill(&ballast2);
            let err = db.flush().unwrap_err();
            eprintln!("flush on the full disk: {err}");
            assert_io_error(&err, ErrorKind::StorageFull, NO_SPACE, &dir);
            model.check(&db, "after the failed flush");
            let err = db.append(batch(model.batches)).unwrap_err();
            assert_io_error(&err, ErrorKind::StorageFull, NO_SPACE, &dir);
            model.check(
                &db,
                "after an append on the full disk after the failed flush",
            );

            // Space returns: the flush works and nothing was lost.
            std::fs::remove_file(&ballast2).unwrap();
            db.flush().unwrap();
            assert!(db.stats().segments >= 1, "the flush published no segment");
            model.check(&db, "after the flush once space returned");
            for _ in 0..3 {
                append_ok(&db, &mut model, "after the flush once space returned");
            }
            model.check(&db, "after appends following the flush");
            drop(db);
            let db = Tsdb::open(&dir, opts()).unwrap();
            model.check(&db, "reopened at the end");
            assert_undamaged(&db, "reopened at the end");
        },
    );
}

#[test]
fn read_only_filesystem_refuses_cleanly_and_recovers() {
    on_small_fs("read_only_filesystem_refuses_cleanly_and_recovers", |fs| {
        let dir = fs.path().join("db");
        let mut model = Model::default();
        let db = Tsdb::open(&dir, opts()).unwrap();
        for _ in 0..5 {
            append_ok(&db, &mut model, "before read-only");
        }
        db.flush().unwrap();
        for _ in 0..5 {
            append_ok(&db, &mut model, "before read-only");
        }
        // Linux refuses to make a filesystem read-only while a file on it is
        // open for writing, as the engine's WAL is: an open engine never sees
        // EROFS. The filesystem turns read-only under a closed database.
        let busy = fs.remount(true).unwrap_err();
        assert_eq!(
            busy.raw_os_error(),
            Some(libc::EBUSY),
            "remounting read-only under an open database: {busy}"
        );
        drop(db);
        fs.remount(true)
            .unwrap_or_else(|e| panic!("remount {} read-only: {e}", fs.path().display()));

        let err = match Tsdb::open(&dir, opts()) {
            Ok(_) => panic!("opened a database for writing on a read-only filesystem"),
            Err(e) => e,
        };
        eprintln!("open on the read-only filesystem: {err}");
        assert_io_error(
            &err,
            ErrorKind::ReadOnlyFilesystem,
            "Read-only file system",
            &dir,
        );

        fs.remount(false)
            .unwrap_or_else(|e| panic!("remount {} read-write: {e}", fs.path().display()));
        let db = Tsdb::open(&dir, opts()).unwrap();
        model.check(&db, "reopened after the filesystem was read-only");
        assert_undamaged(&db, "reopened after the filesystem was read-only");
        for _ in 0..5 {
            append_ok(&db, &mut model, "after the filesystem was writable again");
        }
        model.check(&db, "after the filesystem was writable again");
        drop(db);
        let db = Tsdb::open(&dir, opts()).unwrap();
        model.check(&db, "reopened at the end");
        assert_undamaged(&db, "reopened at the end");
    });
}
