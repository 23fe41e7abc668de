//! The write path without a server: real stores in a temporary directory,
//! the service called directly, every listener observed synchronously.

use std::io::Write as _;
use std::sync::Arc;

use loupe_meta::{MetaStore, NewRun};
use loupe_model::{SeriesKey, SeriesMatcher};
use loupe_tsdb::{Tsdb, XAxis};
use tokio::sync::broadcast::Receiver;

use super::*;
use crate::diagnosis::Diagnosis;
use loupe_api::{LivePayload, LivePoint};

struct Fixture {
    _dir: tempfile::TempDir,
    ingest: Ingest,
    stores: Stores,
    fanout: Fanout,
    live: Receiver<std::sync::Arc<crate::live::LiveFrame>>,
}

/// Stores with one run, `r1` in project `p`; diagnosis on (queue of 8, no
/// worker, so what it was handed stays countable) or off.
fn fixture(diagnose: bool) -> Fixture {
    fixture_limited(diagnose, SeriesLimits::default())
}

fn fixture_limited(diagnose: bool, series_limits: SeriesLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(dir.path().join("tsdb"), Default::default()).unwrap();
    let meta = MetaStore::open(&dir.path().join("meta.sqlite"), Default::default()).unwrap();
    meta.create_or_resume_run(NewRun {
        id: Some("r1".into()),
        project: "p".into(),
        ..Default::default()
    })
    .unwrap();
    let stores = Stores {
        tsdb,
        meta: Arc::new(meta),
    };
    let fanout = Fanout {
        counters: Default::default(),
        summaries: Default::default(),
        live: Default::default(),
        diagnosis: Arc::new(Diagnosis::new(diagnose.then(Default::default), 8)),
    };
    let live = fanout.live.subscribe();
    Fixture {
        ingest: Ingest::new(
            stores.clone(),
            Limits::default(),
            series_limits,
            fanout.clone(),
        )
        .unwrap(),
        stores,
        fanout,
        live,
        _dir: dir,
    }
}

fn plain(bytes: &[u8]) -> RawBody<'_> {
    RawBody {
        bytes,
        encoding: None,
        charge: None,
    }
}

fn counter(c: &prometheus_client::metrics::counter::Counter) -> u64 {
    c.get()
}

fn atomic(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

const LOSS: &[u8] =
    br#"{"series":[{"name":"train/loss","step":[1,2,3],"time":[1700000000,1700000001,1700000002],"value":[0.5,"NaN",0.25]}]}"#;

#[test]
fn run_metrics_are_stored_then_every_listener_hears_of_them() {
    let mut f = fixture(true);
    let got = f.ingest.run_metrics("r1", plain(LOSS)).unwrap();
    assert_eq!(got, Accepted::stored(3));

    let key = SeriesKey::for_run("train/loss", "r1").unwrap();
    let pts = f
        .stores
        .tsdb
        .read_range(&key, XAxis::Step, i64::MIN, i64::MAX, None)
        .unwrap();
    assert_eq!(pts.steps, [1, 2, 3]);
    assert_eq!(
        pts.times,
        [1_700_000_000, 1_700_000_001, 1_700_000_002].map(|s: i64| s * 1_000_000_000)
    );
    assert!(pts.values[1].is_nan());

    let c = &f.fanout.counters;
    assert_eq!(
        (counter(&c.points_ingested), counter(&c.ingest_requests)),
        (3, 1)
    );
    assert_eq!(counter(&c.rejected_requests), 0);
    let dirty = f.fanout.summaries.take();
    assert!(dirty["r1"].contains("train/loss"));
    assert!(f.fanout.summaries.take_alive("r1"));

    let ev = f.live.try_recv().unwrap();
    assert_eq!(ev.event.run, "r1");
    let LivePayload::Points(points) = &ev.event.payload else {
        panic!("a points event, not {:?}", ev.event.payload)
    };
    let want = LivePoint {
        count: 3,
        last_step: Some(3),
        last: 0.25,
    };
    assert_eq!(points["train/loss"], want);
    assert_eq!(atomic(&f.fanout.diagnosis.counters().submitted), 1);
}

#[test]
fn compressed_bodies_are_decoded_by_the_service() {
    let f = fixture(false);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(LOSS).unwrap();
    let gz = gz.finish().unwrap();
    let body = RawBody {
        bytes: &gz,
        encoding: Some("gzip"),
        charge: None,
    };
    assert_eq!(f.ingest.run_metrics("r1", body).unwrap().accepted, 3);
    // Diagnosis off: nothing is handed to it.
    assert_eq!(atomic(&f.fanout.diagnosis.counters().submitted), 0);
}

#[test]
fn a_bad_batch_is_refused_whole_and_counted_once() {
    let mut f = fixture(true);
    let cases: [(&[u8], Option<&str>); 4] = [
        (br#"{"series":[{"name":"a","value":[1,"nan"]}]}"#, None),
        (b"not json", None),
        (LOSS, Some("brotli")),
        (LOSS, Some("gzip")),
    ];
    for (i, (bytes, encoding)) in cases.into_iter().enumerate() {
        let e = f
            .ingest
            .run_metrics(
                "r1",
                RawBody {
                    bytes,
                    encoding,
                    charge: None,
                },
            )
            .unwrap_err();
        assert!(e.is_rejection(), "{e}");
        assert_eq!(counter(&f.fanout.counters.rejected_requests), i as u64 + 1);
    }
    let long = format!(
        r#"{{"series":[{{"name":"{}","value":[1]}}]}}"#,
        "x".repeat(300)
    );
    let e = f
        .ingest
        .run_metrics("r1", plain(long.as_bytes()))
        .unwrap_err();
    assert!(e.to_string().starts_with("series[0].name: "), "{e}");
    assert!(f.stores.tsdb.series(&SeriesMatcher::any()).is_empty());
    assert_eq!(counter(&f.fanout.counters.points_ingested), 0);
    assert!(
        f.live.try_recv().is_err(),
        "no live event for a refused batch"
    );
    assert_eq!(atomic(&f.fanout.diagnosis.counters().submitted), 0);
}

#[test]
fn source_metrics_are_keyed_by_their_labels_and_project() {
    let f = fixture(true);
    let body = br#"{"series":[{"name":"gpu/util","labels":{"host":"n1"},"time":[1700000000],"value":[90]}]}"#;
    assert_eq!(
        f.ingest.source_metrics("p", plain(body)).unwrap().accepted,
        1
    );
    let key = SeriesKey::new("gpu/util", [("host", "n1"), ("project", "p")]).unwrap();
    let pts = f
        .stores
        .tsdb
        .read_range(&key, XAxis::Time, i64::MIN, i64::MAX, None)
        .unwrap();
    assert_eq!(pts.values, [90.0]);
    assert!(f.fanout.summaries.take().is_empty(), "not a run's series");
    assert_eq!(atomic(&f.fanout.diagnosis.counters().submitted), 1);
    // A label the API reserves is refused, and nothing is stored.
    let bad = br#"{"series":[{"name":"x","labels":{"project":"q"},"value":[1]}]}"#;
    assert!(
        f.ingest
            .source_metrics("p", plain(bad))
            .unwrap_err()
            .is_rejection()
    );
    assert_eq!(f.stores.tsdb.series(&SeriesMatcher::any()).len(), 1);
}

#[test]
fn logs_are_stored_once_per_idempotency_key() {
    let mut f = fixture(true);
    let body = br#"{"records":[{"time":1700000000,"stream":"stdout","level":"info","text":"hello"},
        {"time":1700000001,"stream":"stderr","level":"error","text":"boom"}]}"#;
    let first = f.ingest.run_logs("r1", plain(body), Some("k1")).unwrap();
    assert_eq!(first, Accepted::stored(2));
    let again = f.ingest.run_logs("r1", plain(body), Some("k1")).unwrap();
    assert_eq!((again.accepted, again.duplicate), (0, true));

    let page = f.stores.meta.query_logs("r1", Default::default()).unwrap();
    let texts: Vec<_> = page.records.iter().map(|(_, r)| r.text.as_str()).collect();
    assert_eq!(texts, ["hello", "boom"]);
    assert_eq!(counter(&f.fanout.counters.log_records_ingested), 2);
    let ev = f.live.try_recv().unwrap();
    let LivePayload::Logs(logs) = &ev.event.payload else {
        panic!("a logs event, not {:?}", ev.event.payload)
    };
    assert_eq!(logs.count, 2);
    assert_eq!(logs.records[1].text, "boom");
    assert!(f.live.try_recv().is_err(), "a duplicate is not announced");
    assert_eq!(atomic(&f.fanout.diagnosis.counters().submitted), 1);
}

#[test]
fn logs_of_a_missing_run_are_a_store_error_not_a_rejection() {
    let f = fixture(false);
    let body = br#"{"records":[{"time":1700000000,"stream":"stdout","level":"info","text":"x"}]}"#;
    let e = f.ingest.run_logs("nope", plain(body), None).unwrap_err();
    assert!(
        matches!(e, IngestError::Meta(loupe_meta::Error::NotFound { .. })),
        "{e}"
    );
    assert!(!e.is_rejection());
    assert_eq!(counter(&f.fanout.counters.rejected_requests), 0);
}

#[test]
fn a_batch_past_a_series_limit_is_refused_whole_and_existing_series_still_take_points() {
    let f = fixture_limited(
        false,
        SeriesLimits {
            per_run: 2,
            per_project: 3,
        },
    );
    let three = br#"{"series":[{"name":"a","value":[1]},{"name":"b","value":[1]},{"name":"c","value":[1]}]}"#;
    let err = f.ingest.run_metrics("r1", plain(three)).unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::SeriesLimit(SeriesLimitError::Run { limit: 2, .. })
        ),
        "{err}"
    );
    assert!(err.is_rejection());
    assert!(f.stores.tsdb.series(&SeriesMatcher::any()).is_empty());
    let two = br#"{"series":[{"name":"a","value":[1]},{"name":"b","value":[2]}]}"#;
    assert_eq!(f.ingest.run_metrics("r1", plain(two)).unwrap().accepted, 2);
    assert_eq!(f.ingest.run_metrics("r1", plain(two)).unwrap().accepted, 2);
    let host = br#"{"series":[{"name":"cpu","labels":{"host":"h"},"value":[1]}]}"#;
    assert_eq!(
        f.ingest.source_metrics("p", plain(host)).unwrap().accepted,
        1
    );
    let host2 = br#"{"series":[{"name":"cpu","labels":{"host":"h2"},"value":[1]}]}"#;
    let err = f.ingest.source_metrics("p", plain(host2)).unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::SeriesLimit(SeriesLimitError::Project { limit: 3, .. })
        ),
        "{err}"
    );
    assert_eq!(
        f.fanout
            .counters
            .limit_refusals
            .get_or_create(&[("reason", "series_per_project")])
            .get(),
        1
    );
    // Counts are seeded from the stores: a new service over them agrees.
    let again = Ingest::new(
        f.stores.clone(),
        Limits::default(),
        SeriesLimits::default(),
        f.fanout.clone(),
    )
    .unwrap();
    assert_eq!(again.series_counter().run_series("r1"), 2);
    assert_eq!(again.series_counter().project_series("p"), 3);
    again.delete_run_series("r1").unwrap();
    assert_eq!(again.series_counter().project_series("p"), 1);
}
