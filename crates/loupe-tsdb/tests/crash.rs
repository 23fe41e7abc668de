//! Crash safety: `kill -9` at any moment loses nothing acknowledged and
//! corrupts nothing (DESIGN.md, Promise 1).
//!
//! A child process — this test binary re-executed with [`CHILD_DIR_ENV`] set,
//! running only [`crash_child_entry`] — appends batches from a deterministic
//! schedule and prints `@ack <batch>` after each append returns. Background
//! flushes and compactions run in the child meanwhile, so kills also land in
//! the middle of those. The parent SIGKILLs the child after a random delay,
//! reopens the directory and checks that the database holds exactly the
//! acknowledged prefix of the schedule, or that prefix plus the one batch in
//! flight at the kill (durable, but killed before its acknowledgement got
//! out): every point bit-exact, newest write winning where a batch re-logs
//! steps, each batch all or nothing, and no damage reported. The directory
//! accumulates across rounds; each round resumes the schedule where the data
//! on disk ends.
//!
//! `LOUPE_CRASH_ROUNDS` sets the number of rounds (default 20; use 200 for a
//! long run), `LOUPE_CRASH_SEED` replays a run's kill timings.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loupe_model::{NO_STEP, SeriesKey};
use loupe_tsdb::{FsyncMode, SeriesWrite, Tsdb, TsdbOptions, WriteBatch};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Set for the child: the database directory it appends to.
const CHILD_DIR_ENV: &str = "LOUPE_CRASH_CHILD_DIR";
/// Set for the child: the number of the first batch of the schedule it writes.
const CHILD_START_ENV: &str = "LOUPE_CRASH_CHILD_START";
/// The test function the child runs.
const CHILD_TEST: &str = "crash_child_entry";
/// What the child prints, followed by the batch number, once an append returned.
const ACK: &str = "@ack ";

/// Stepped training series, all over the same steps when in one batch.
const STEPPED: [&str; 3] = ["train/loss", "train/lr", "train/grad_norm"];
/// Index of the unstepped series in [`value`]'s series numbering.
const CPU: usize = 3;
/// Steps stay below this: a run that would pass it restarts from an early
/// checkpoint, so the data overwrites itself instead of growing without end.
const MAX_STEP: i64 = 200_000;
const T0: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn engine_opts(background_flush: bool) -> TsdbOptions {
    TsdbOptions {
        fsync: FsyncMode::Group,
        // Small, so flushes and compactions happen every few hundred ms.
        flush_points: 50_000,
        page_points: 128,
        max_chunk_points: 16_384,
        max_segments: 3,
        background_flush,
        ..Default::default()
    }
}

fn stepped_key(i: usize) -> SeriesKey {
    SeriesKey::new(STEPPED[i], [("run", "crash")]).unwrap()
}

fn cpu_key() -> SeriesKey {
    SeriesKey::new("sys/cpu", [("host", "node-0")]).unwrap()
}

/// splitmix64: a well-mixed 64-bit hash.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The value batch `generation` writes for series `series` at `x` (a step, or
/// a time for the unstepped series). Re-logging a step in a later batch
/// writes a different value, so the reader can tell which write won.
fn value(series: usize, x: i64, generation: u64) -> f64 {
    let h = mix(mix(mix(series as u64) ^ x as u64) ^ generation);
    let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
    match h % 101 {
        0 => f64::NAN,
        1 => f64::from_bits(0xfff8_0000_dead_beef), // negative NaN with a payload
        2 => f64::INFINITY,
        3 => f64::NEG_INFINITY,
        4 => -0.0,
        5 => 5e-324, // smallest subnormal
        _ => match series {
            0 => 3.0 * (-(x as f64) / 50_000.0).exp() + 0.05 * unit,
            1 => 1e-4 * (1.0 + unit * 1e-3),
            2 => unit * 10.0,
            _ => (unit * 10_000.0).round() / 100.0,
        },
    }
}

/// What one batch of the schedule writes (values come from [`value`]).
struct BatchSpec {
    no: u64,
    /// Indices into [`STEPPED`] of the series written, all over `steps`.
    stepped: Vec<usize>,
    steps: std::ops::Range<i64>,
    /// Times of the unstepped points; the first may repeat an earlier batch's
    /// last time, which overwrites that point.
    cpu_times: Vec<i64>,
}

impl BatchSpec {
    fn build(&self) -> WriteBatch {
        let mut batch = WriteBatch::new();
        let steps: Vec<i64> = self.steps.clone().collect();
        let times: Vec<i64> = (0..steps.len() as i64)
            .map(|i| T0 + self.no as i64 * 1_000_000 + i)
            .collect();
        for &s in &self.stepped {
            let values = steps.iter().map(|&x| value(s, x, self.no)).collect();
            batch.push(SeriesWrite::new(
                stepped_key(s),
                Some(steps.clone()),
                times.clone(),
                values,
            ));
        }
        if !self.cpu_times.is_empty() {
            let values = self
                .cpu_times
                .iter()
                .map(|&t| value(CPU, t, self.no))
                .collect();
            batch.push(SeriesWrite::new(
                cpu_key(),
                None,
                self.cpu_times.clone(),
                values,
            ));
        }
        batch
    }
}

/// The deterministic sequence of batches: a training run logging a few
/// scalars with the occasional rewind to a checkpoint, plus a host metric.
#[derive(Clone, Default)]
struct Schedule {
    next_no: u64,
    /// The step the run logs next.
    step: i64,
    /// Seconds since `T0` of the next fresh host-metric point.
    cpu_sec: i64,
}

impl Schedule {
    fn next_spec(&mut self) -> BatchSpec {
        let no = self.next_no;
        self.next_no += 1;
        let h = mix(no ^ 0x10_0be5);
        let mut stepped = vec![0];
        if (h >> 32) & 1 == 1 {
            stepped.push(1);
        }
        if (h >> 33) & 3 != 0 {
            stepped.push(2);
        }
        if (h >> 40).is_multiple_of(32) {
            stepped.clear(); // a batch with only the host metric
        }
        let steps = if stepped.is_empty() {
            0..0
        } else {
            // Now and then a long batch (a catch-up after a stall): a WAL
            // frame of many pages, which a kill can cut short mid-write.
            let n = if (h >> 8).is_multiple_of(48) {
                3000 + (h % 3000) as i64
            } else {
                1 + (h % 300) as i64
            };
            let start = if self.step + n > MAX_STEP {
                ((h >> 24) % 1000) as i64 // restarted from an early checkpoint
            } else if (h >> 16).is_multiple_of(16) && self.step > 0 {
                // Resumed from a recent checkpoint: re-logs up to 5000 steps.
                self.step - 1 - ((h >> 20) % self.step.min(5000) as u64) as i64
            } else {
                self.step
            };
            self.step = start + n;
            start..start + n
        };
        let mut k = ((h >> 48) % 6) as usize;
        if stepped.is_empty() {
            k = k.max(1);
        }
        let mut cpu_times = Vec::with_capacity(k);
        if k > 0 && self.cpu_sec > 0 && (h >> 56).is_multiple_of(8) {
            cpu_times.push(T0 + (self.cpu_sec - 1) * SEC);
        }
        while cpu_times.len() < k {
            cpu_times.push(T0 + self.cpu_sec * SEC);
            self.cpu_sec += 1;
        }
        BatchSpec {
            no,
            stepped,
            steps,
            cpu_times,
        }
    }
}

/// What the database must hold: the newest write of every point.
#[derive(Default)]
struct Expected {
    /// Per stepped series, indexed by step: (time, value bits).
    stepped: [Vec<Option<(i64, u64)>>; 3],
    /// Time → value bits.
    cpu: BTreeMap<i64, u64>,
}

impl Expected {
    fn apply(&mut self, batch: &WriteBatch) {
        for w in &batch.series {
            match &w.steps {
                Some(steps) => {
                    let i = (0..STEPPED.len())
                        .find(|&i| stepped_key(i) == w.key)
                        .expect("a stepped series of the schedule");
                    let col = &mut self.stepped[i];
                    for (j, &s) in steps.iter().enumerate() {
                        let s = s as usize;
                        if col.len() <= s {
                            col.resize(s + 1, None);
                        }
                        col[s] = Some((w.times[j], w.values[j].to_bits()));
                    }
                }
                None => {
                    for (j, &t) in w.times.iter().enumerate() {
                        self.cpu.insert(t, w.values[j].to_bits());
                    }
                }
            }
        }
    }

    /// Compares every series with what the database reads back; describes
    /// the first difference.
    fn check(&self, db: &Tsdb) -> Result<(), String> {
        for (i, col) in self.stepped.iter().enumerate() {
            let want = col
                .iter()
                .enumerate()
                .filter_map(|(s, p)| p.map(|(t, b)| (s as i64, t, b)));
            compare(db, &stepped_key(i), want)?;
        }
        compare(
            db,
            &cpu_key(),
            self.cpu.iter().map(|(&t, &b)| (NO_STEP, t, b)),
        )
    }
}

fn compare(
    db: &Tsdb,
    key: &SeriesKey,
    want: impl Iterator<Item = (i64, i64, u64)>,
) -> Result<(), String> {
    let got = db
        .read_all(key)
        .map_err(|e| format!("{key}: read failed: {e}"))?;
    let mut j = 0;
    for (step, time, bits) in want {
        if j >= got.len() {
            return Err(format!(
                "{key}: point (step {step}, time {time}) is missing; read only {} points",
                got.len()
            ));
        }
        let read = (got.steps[j], got.times[j], got.values[j].to_bits());
        if read != (step, time, bits) {
            return Err(format!(
                "{key}: point {j}: expected (step {step}, time {time}, bits {bits:#018x}), \
                 read (step {}, time {}, bits {:#018x})",
                read.0, read.1, read.2
            ));
        }
        j += 1;
    }
    if j < got.len() {
        return Err(format!(
            "{key}: {} points never written, the first at (step {}, time {})",
            got.len() - j,
            got.steps[j],
            got.times[j]
        ));
    }
    Ok(())
}

/// The child: appends the schedule from batch `$LOUPE_CRASH_CHILD_START` on
/// until it is killed. In a normal test run (variable unset) it does nothing.
#[test]
fn crash_child_entry() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let start: u64 = std::env::var(CHILD_START_ENV)
        .expect("start batch for the crash child")
        .parse()
        .expect("start batch is a number");
    let db = Tsdb::open(&dir, engine_opts(true)).expect("child: open");
    let mut schedule = Schedule::default();
    while schedule.next_no < start {
        schedule.next_spec();
    }
    let mut out = std::io::stdout().lock();
    // A safety net should the parent vanish without killing us (a closed
    // pipe also ends the loop, through the failed write).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let spec = schedule.next_spec();
        db.append(spec.build())
            .unwrap_or_else(|e| panic!("child: append of batch {}: {e}", spec.no));
        writeln!(out, "{ACK}{}", spec.no)
            .and_then(|()| out.flush())
            .expect("child: report an acknowledgement");
    }
}

/// Kills the child if the parent panics first.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(dir: &Path, start: u64) -> ChildGuard {
    let exe = std::env::current_exe().expect("path of the test binary");
    let child = Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_START_ENV, start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the crash child");
    ChildGuard(child)
}

/// The batch numbers the child acknowledged, from its stdout. Lines cut
/// short by the kill do not count.
fn parse_acks(stdout: &str) -> Vec<u64> {
    stdout
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| {
            let at = l.rfind(ACK)?;
            l[at + ACK.len()..].trim_end().parse().ok()
        })
        .collect()
}

#[test]
fn acknowledged_writes_survive_sigkill_bit_exact() {
    let rounds: usize = std::env::var("LOUPE_CRASH_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("LOUPE_CRASH_ROUNDS is a number"))
        .unwrap_or(20);
    let seed: u64 = std::env::var("LOUPE_CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("LOUPE_CRASH_SEED is a number"))
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    eprintln!("crash test: {rounds} rounds, LOUPE_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");

    // `schedule` stands at the first batch not known to be on disk, and
    // `expected` holds everything before it.
    let mut schedule = Schedule::default();
    let mut expected = Expected::default();
    let mut acked_total = 0u64;
    let mut in_flight_survived = 0;
    let mut torn_tails = 0;
    let mut max_segments_seen = 0;
    let started = Instant::now();
    for round in 0..rounds {
        let start = schedule.next_no;
        let delay = Duration::from_millis(rng.gen_range(20..=400));
        let mut child = spawn_child(&dir, start);
        let mut stdout = child.0.stdout.take().unwrap();
        let mut stderr = child.0.stderr.take().unwrap();
        // Read while the child runs, so a full pipe never blocks it.
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(&mut stdout).read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let kill_at = Instant::now() + delay;
        let mut exited = None;
        while Instant::now() < kill_at {
            if let Some(status) = child.0.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if exited.is_none() {
            child.0.kill().expect("SIGKILL the child");
            child.0.wait().unwrap();
        }
        let out = out_reader.join().unwrap();
        let err = err_reader.join().unwrap();
        if let Some(status) = exited {
            panic!(
                "round {round}: the child exited by itself ({status}) before the kill\n\
                 --- stdout ---\n{out}\n--- stderr ---\n{err}"
            );
        }

        let acks = parse_acks(&out);
        for (i, &no) in acks.iter().enumerate() {
            assert_eq!(
                no,
                start + i as u64,
                "round {round}: acknowledgements out of order: {acks:?}"
            );
        }
        for _ in &acks {
            expected.apply(&schedule.next_spec().build());
        }
        acked_total += acks.len() as u64;

        let db = Tsdb::open(&dir, engine_opts(false))
            .unwrap_or_else(|e| panic!("round {round}: reopen after the kill: {e}"));
        let report = db.open_report();
        assert!(
            report.damaged.is_empty(),
            "round {round}: a kill can only tear the WAL's tail, yet opening found damage: {:?}",
            report.damaged
        );
        torn_tails += report.torn_tails;
        max_segments_seen = max_segments_seen.max(report.segments);
        eprintln!(
            "round {round}: killed after {delay:?}, {} batches acknowledged; \
             reopened {} segments, replayed {} WAL files ({} points)",
            acks.len(),
            report.segments,
            report.wal_files_replayed,
            report.points_replayed
        );
        if let Err(without) = expected.check(&db) {
            // The batch in flight at the kill may have reached the disk
            // without its acknowledgement reaching us; then it is all there.
            let mut with_next = schedule.clone();
            let spec = with_next.next_spec();
            expected.apply(&spec.build());
            if let Err(with) = expected.check(&db) {
                panic!(
                    "round {round} (seed {seed}, {} batches acknowledged, last {:?}): \
                     the database holds neither the acknowledged batches \
                     ({without}) nor them plus batch {} in flight at the kill ({with})",
                    acks.len(),
                    acks.last(),
                    spec.no
                );
            }
            schedule = with_next;
            in_flight_survived += 1;
        }
        drop(db);
    }

    assert!(
        max_segments_seen >= 1,
        "no flush ever happened in the child, so the test did not exercise segments \
         ({acked_total} batches acknowledged)"
    );
    // A last, clean pass: compact everything and check once more.
    let db = Tsdb::open(&dir, engine_opts(false)).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    expected.check(&db).unwrap();
    db.close().unwrap();
    drop(db);
    let db = Tsdb::open(&dir, engine_opts(false)).unwrap();
    assert!(db.open_report().damaged.is_empty());
    expected.check(&db).unwrap();
    eprintln!(
        "crash test: {rounds} rounds in {:.1?}: {acked_total} batches acknowledged, \
         {in_flight_survived} unacknowledged in-flight batches found durable, \
         {torn_tails} torn WAL tails, at most {max_segments_seen} segments at a reopen",
        started.elapsed(),
    );
}
