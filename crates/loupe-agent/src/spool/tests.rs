//! The spool reader at its edges, on real files in the SDK's format.

use std::fs;
use std::path::Path;

use super::*;

fn line(kind: &str, seq: u64, body: &str) -> String {
    format!("{{\"kind\":\"{kind}\",\"seq\":{seq},\"body\":{body}}}\n")
}

fn metrics(seq: u64, name: &str) -> String {
    line(
        "metrics",
        seq,
        &format!("{{\"series\":[{{\"name\":\"{name}\",\"step\":[{seq}],\"value\":[\"NaN\"]}}]}}"),
    )
}

fn write_spool(dir: &Path, text: &[u8]) {
    fs::write(dir.join(SPOOL_FILE), text).unwrap();
}

fn seqs(spool: &Spool) -> Vec<u64> {
    spool.unacked().unwrap().map(|e| e.unwrap().seq).collect()
}

fn requests(spool: &Spool) -> Vec<Request> {
    Requests::new(spool.unacked().unwrap())
        .map(Result::unwrap)
        .collect()
}

#[test]
fn an_empty_or_missing_spool_has_nothing_to_send() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    assert!(!spool.pending());
    assert_eq!((spool.last_seq(), spool.torn_tail()), (0, None));
    assert!(seqs(&spool).is_empty());
    drop(spool);
    write_spool(dir.path(), b"");
    let spool = Spool::open(dir.path()).unwrap();
    assert!(!spool.pending());
    assert!(seqs(&spool).is_empty());
}

#[test]
fn a_torn_last_line_is_never_read_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let whole = format!("{}{}", line("run", 1, "{\"id\":\"r\"}"), metrics(2, "a"));
    let torn = &metrics(3, "b")[..20];
    write_spool(dir.path(), format!("{whole}{torn}").as_bytes());
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.last_seq(), 2);
    assert_eq!(
        spool.torn_tail(),
        Some(TornTail {
            offset: whole.len() as u64,
            len: 20
        })
    );
    assert_eq!(seqs(&spool), [1, 2]);
    // Only torn bytes: nothing complete.
    write_spool(dir.path(), torn.as_bytes());
    drop(spool);
    let spool = Spool::open(dir.path()).unwrap();
    assert!(!spool.pending());
    assert_eq!(spool.torn_tail().map(|t| t.offset), Some(0));
}

#[test]
fn acknowledging_resumes_after_the_line_and_writes_the_sdk_marker() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (1..=4).map(|s| metrics(s, "a")).collect();
    write_spool(dir.path(), text.as_bytes());
    let mut spool = Spool::open(dir.path()).unwrap();
    let second = spool.unacked().unwrap().nth(1).unwrap().unwrap();
    spool.ack(second.seq, second.end).unwrap();
    assert_eq!(seqs(&spool), [3, 4]);
    drop(spool);
    let marker: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join(ACKED_FILE)).unwrap()).unwrap();
    assert_eq!(marker, serde_json::json!({"seq": 2, "offset": second.end}));
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!((spool.acked_seq(), seqs(&spool)), (2, vec![3, 4]));
}

#[test]
fn a_marker_that_does_not_fit_the_file_is_placed_by_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (1..=4).map(|s| metrics(s, "a")).collect();
    write_spool(dir.path(), text.as_bytes());
    let marker = |text: &str| {
        fs::write(dir.path().join(ACKED_FILE), text).unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        (spool.pending(), seqs(&spool))
    };
    // Past the end of the file (the spool was cut back, or replaced).
    assert_eq!(
        marker("{\"seq\": 2, \"offset\": 999999}"),
        (true, vec![3, 4])
    );
    // Inside a line.
    assert_eq!(marker("{\"seq\": 2, \"offset\": 7}"), (true, vec![3, 4]));
    // At a line start, but in front of lines it claims.
    assert_eq!(marker("{\"seq\": 3, \"offset\": 0}"), (true, vec![4]));
    // No offset at all.
    assert_eq!(marker("{\"seq\": 1}"), (true, vec![2, 3, 4]));
    // Beyond the last seq: everything was acknowledged.
    assert_eq!(marker("{\"seq\": 9, \"offset\": 999999}"), (false, vec![]));
}

#[test]
fn an_unreadable_marker_means_everything_is_sent_again_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    write_spool(dir.path(), metrics(1, "a").as_bytes());
    fs::write(dir.path().join(ACKED_FILE), "{\"seq\": 1, \"off").unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    assert!(spool.pending());
    let why = spool.ignored_marker().unwrap().to_string();
    assert!(why.contains("acked") && why.contains("EOF"), "{why}");
}

#[test]
fn a_damaged_line_in_the_middle_costs_that_line_and_is_reported_where() {
    let dir = tempfile::tempdir().unwrap();
    let first = metrics(1, "a");
    let bad = "{\"kind\":\"metrics\",\"seq\":2,\"body\":{\"series\":[\x01]}}\n";
    let text = format!("{first}{bad}{}", metrics(3, "c"));
    write_spool(dir.path(), text.as_bytes());
    let spool = Spool::open(dir.path()).unwrap();
    let mut entries = spool.unacked().unwrap();
    let got: Vec<u64> = entries.by_ref().map(|e| e.unwrap().seq).collect();
    assert_eq!(got, [1, 3]);
    assert_eq!(entries.damaged_count(), 1);
    let d = &entries.damaged()[0];
    assert_eq!((d.offset, d.len), (first.len() as u64, bad.len() as u64));
    assert!(
        d.to_string()
            .starts_with(&format!("the line at byte {}", first.len())),
        "{d}"
    );
}

#[test]
fn damaged_lines_at_the_end_do_not_hide_the_last_seq() {
    let dir = tempfile::tempdir().unwrap();
    write_spool(
        dir.path(),
        format!("{}not json\n{{\"kind\":\"x\"}}\n", metrics(5, "a")).as_bytes(),
    );
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.last_seq(), 5);
    assert!(spool.pending());
}

#[test]
fn a_huge_line_is_read_whole_and_sent_alone() {
    let dir = tempfile::tempdir().unwrap();
    let big_name = "x".repeat(MAX_MERGED_BYTES + 1000);
    let text = format!(
        "{}{}{}",
        metrics(1, "a"),
        metrics(2, &big_name),
        metrics(3, "c")
    );
    write_spool(dir.path(), text.as_bytes());
    let spool = Spool::open(dir.path()).unwrap();
    let reqs = requests(&spool);
    let shape: Vec<(u64, usize)> = reqs.iter().map(|r| (r.last_seq, r.entries)).collect();
    assert_eq!(shape, [(1, 1), (2, 1), (3, 1)]);
    assert!(reqs[1].body.len() > MAX_MERGED_BYTES);
}

#[test]
fn a_line_longer_than_the_cap_is_damaged_and_the_next_one_read() {
    let dir = tempfile::tempdir().unwrap();
    let long = metrics(2, &"y".repeat(5000));
    let text = format!("{}{long}{}", metrics(1, "a"), metrics(3, "c"));
    write_spool(dir.path(), text.as_bytes());
    let path = dir.path().join(SPOOL_FILE);
    let mut entries = Entries::with_max_line(&path, 0, text.len() as u64, 0, 1000).expect("opens");
    let got: Vec<u64> = entries.by_ref().map(|e| e.unwrap().seq).collect();
    assert_eq!(got, [1, 3]);
    let d = &entries.damaged()[0];
    assert_eq!(d.len, long.len() as u64);
    assert!(matches!(d.why, LineError::TooLong { max: 1000, .. }), "{d}");
}

#[test]
fn consecutive_batches_without_a_key_merge_and_keyed_ones_go_alone() {
    let e = |seq, kind, key: Option<&str>, body: &str| {
        Ok(Entry::new(
            seq,
            kind,
            key.map(Into::into),
            body.as_bytes().to_vec(),
            seq * 100,
        ))
    };
    let entries = vec![
        e(1, Kind::Metrics, None, "{\"series\":[{\"name\":\"a\"}]}"),
        e(2, Kind::Metrics, None, "{\"series\":[ ]}"),
        e(3, Kind::Metrics, None, "{\"series\":[{\"name\":\"b\"}]}"),
        e(4, Kind::Logs, Some("k"), "{\"records\":[]}"),
        e(5, Kind::Logs, None, "{\"records\":[1]}"),
        e(6, Kind::Logs, None, "{ \"records\": [2] }"),
        e(7, Kind::Patch, None, "{\"status\":\"finished\"}"),
        // Starts and ends like a batch, but is not one.
        e(8, Kind::Metrics, None, "{\"series\":[1],\"x\":[2]}"),
        e(9, Kind::Metrics, None, "{\"series\":[\"]\"]}"),
        e(10, Kind::Metrics, None, "{\"series\":[\"\\\"]\"]}"),
    ];
    let got: Vec<Request> = Requests::new(entries.into_iter())
        .map(Result::unwrap)
        .collect();
    let shape: Vec<(Kind, usize, u64, u64, &str)> = got
        .iter()
        .map(|r| {
            let body = std::str::from_utf8(&r.body).unwrap();
            (r.kind, r.entries, r.last_seq, r.end, body)
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                Kind::Metrics,
                3,
                3,
                300,
                "{\"series\":[{\"name\":\"a\"},{\"name\":\"b\"}]}"
            ),
            (Kind::Logs, 1, 4, 400, "{\"records\":[]}"),
            (Kind::Logs, 1, 5, 500, "{\"records\":[1]}"),
            // Not in the SDK's exact shape: sent as written, alone.
            (Kind::Logs, 1, 6, 600, "{ \"records\": [2] }"),
            (Kind::Patch, 1, 7, 700, "{\"status\":\"finished\"}"),
            (Kind::Metrics, 1, 8, 800, "{\"series\":[1],\"x\":[2]}"),
            // Brackets and escaped quotes inside strings do not count.
            (Kind::Metrics, 2, 10, 1000, "{\"series\":[\"]\",\"\\\"]\"]}"),
        ]
    );
    assert_eq!(got[1].key.as_deref(), Some("k"));
}

#[test]
fn a_spool_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let held = loupe_model::lock::try_lock_file(&dir.path().join(LOCK_FILE))
        .unwrap()
        .unwrap();
    let err = Spool::open(dir.path()).err().unwrap();
    assert!(matches!(err, SpoolError::InUse { .. }), "{err}");
    drop(held);
    let spool = Spool::open(dir.path()).unwrap();
    assert!(matches!(
        Spool::open(dir.path()).err(),
        Some(SpoolError::InUse { .. })
    ));
    drop(spool);
}

#[test]
fn a_refused_request_is_set_aside_in_the_sdk_format() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let path = spool
        .set_aside(Kind::Logs, 422, "bad \"text\"", b"{\"records\":[1]}")
        .unwrap();
    let text = fs::read_to_string(path).unwrap();
    assert_eq!(
        text,
        "{\"kind\":\"logs\",\"status\":422,\"error\":\"bad \\\"text\\\"\",\"body\":{\"records\":[1]}}\n"
    );
}

#[test]
fn run_info_reads_the_sdk_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(RUN_INFO_FILE),
        "{\"version\": 1, \"id\": \"r1\", \"server\": \"http://h:1\", \"create\": {\"id\": \"r1\", \"name\": \"n\"}, \"final_status\": null}",
    )
    .unwrap();
    let info = RunInfo::read(dir.path()).unwrap();
    assert_eq!(
        (
            info.id.as_str(),
            info.server.as_deref(),
            info.final_status.as_deref()
        ),
        ("r1", Some("http://h:1"), None)
    );
    assert_eq!(info.create_body(), b"{\"id\": \"r1\", \"name\": \"n\"}");
    fs::write(dir.path().join(RUN_INFO_FILE), "{\"server\": 1}").unwrap();
    let err = RunInfo::read(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("run.json") && err.contains("invalid type"),
        "{err}"
    );
}
