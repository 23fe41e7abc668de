//! `loupe_agent::spool`, the reader of the Python SDK's offline spool, on
//! arbitrary bytes: each line of the input through `decode_line`, then the
//! whole input as a run directory's `spool.jsonl` (a marker derived from
//! the first bytes) through `Spool::open`, `unacked` and `Requests`.
//!
//! Beyond "no panic, no OOM, no hang": a decoded body is a slice of the
//! line that is a JSON object; a line rewritten in the SDK's exact format
//! decodes to the same entry; entries come in file order, after the marker,
//! before the torn tail, each body equal to what decoding its own line
//! gives; a merged request is a JSON object and carries its entries' seqs.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loupe_agent::spool::{ACKED_FILE, Requests, SPOOL_FILE, Spool, decode_line};

/// One run directory per fuzzing process, in memory when possible.
fn run_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("loupe-fuzz-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

/// Well-formed JSON by serde_json's rules (read as a raw value, so that a
/// number out of f64's range is not a failure) and an object.
fn is_json_object(body: &[u8]) -> bool {
    body.first() == Some(&b'{')
        && serde_json::from_slice::<Box<serde_json::value::RawValue>>(body).is_ok()
}

fn check_line(line: &[u8]) {
    let Ok(l) = decode_line(line) else {
        return;
    };
    let start = l.body.as_ptr() as usize - line.as_ptr() as usize;
    assert!(start + l.body.len() <= line.len());
    assert!(
        is_json_object(l.body),
        "{:?}",
        String::from_utf8_lossy(l.body)
    );
    // The same entry written the SDK's way decodes to the same thing.
    let mut sdk = format!("{{\"kind\":\"{}\",\"seq\":{},", l.kind, l.seq).into_bytes();
    if let Some(k) = &l.key {
        sdk.extend_from_slice(format!("\"key\":\"{k}\",").as_bytes());
    }
    sdk.extend_from_slice(b"\"body\":");
    sdk.extend_from_slice(l.body);
    sdk.extend_from_slice(b"}\n");
    let again = decode_line(&sdk).expect("an SDK line decodes");
    assert_eq!(
        (again.kind, again.seq, again.key, again.body),
        (l.kind, l.seq, l.key, l.body)
    );
}

fn check_spool(data: &[u8]) {
    let dir = run_dir();
    std::fs::write(dir.join(SPOOL_FILE), data).unwrap();
    // A marker from the first two bytes: none, or seq and offset in range.
    match data {
        [a, b, ..] if a % 4 != 0 => {
            let marker = format!(
                "{{\"seq\": {}, \"offset\": {}}}",
                a % 8,
                usize::from(*b) % (data.len() + 4)
            );
            std::fs::write(dir.join(ACKED_FILE), marker).unwrap();
        }
        _ => {
            let _ = std::fs::remove_file(dir.join(ACKED_FILE));
        }
    }
    let spool = Spool::open(dir).expect("opens");
    let complete = spool.torn_tail().map_or(data.len() as u64, |t| t.offset);
    let mut last_end = 0;
    for e in spool.unacked().expect("reads") {
        let e = e.expect("an entry or a skipped line");
        assert!(e.offset >= last_end && e.end <= complete && e.seq > spool.acked_seq());
        let line = &data[e.offset as usize..e.end as usize];
        assert_eq!(decode_line(line).expect("its line decodes").body, e.body());
        last_end = e.end;
    }
    for r in Requests::new(spool.unacked().expect("reads")) {
        let r = r.expect("a request");
        assert!(
            is_json_object(&r.body),
            "{:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.entries >= 1 && r.end <= complete);
    }
}

fuzz_target!(|data: &[u8]| {
    for line in data.split_inclusive(|&c| c == b'\n') {
        check_line(line);
    }
    check_spool(data);
});
