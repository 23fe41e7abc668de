//! The real training curves (`corpus/curves/`): every curve fed through a
//! diagnoser as a run's points with steps. Fails when a marked failure is
//! missed or a healthy curve opens an incident, on either half; and when
//! streaming, one bulk upload and `--replay` disagree on the incidents.

use loupe_diagnose::DiagnoseConfig;
use loupe_diagnose::curves::{self, Feed};

/// What two feeds must agree on: each incident's first cause, its steps and
/// how many anomalies it holds.
type Shape = (String, Option<i64>, Option<i64>, usize);

#[test]
fn every_failure_is_found_and_healthy_curves_stay_quiet() {
    let list = curves::load(&curves::default_dir()).expect("the curve corpus loads");
    assert!(list.iter().filter(|c| c.failure.is_some()).count() >= 12);
    assert!(list.iter().filter(|c| c.failure.is_none()).count() >= 20);
    let report = curves::evaluate(&list, &DiagnoseConfig::default());
    println!("{}", report.markdown());
    let below = report.below();
    assert!(below.is_empty(), "under target:\n{}", below.join("\n"));
}

#[test]
fn streaming_a_bulk_upload_and_a_replay_give_the_same_incidents() {
    let list = curves::load(&curves::default_dir()).expect("the curve corpus loads");
    let cfg = DiagnoseConfig::default();
    for c in &list {
        let shapes: Vec<Vec<Shape>> = Feed::ALL
            .iter()
            .map(|feed| {
                curves::replay(c, &cfg, *feed)
                    .iter()
                    .map(|i| (i.kind.clone(), i.start_step, i.end_step, i.anomalies.len()))
                    .collect()
            })
            .collect();
        assert_eq!(shapes[0], shapes[1], "{}: stream vs batch", c.file);
        assert_eq!(shapes[0], shapes[2], "{}: stream vs replay", c.file);
    }
}

/// One run, two NaN episodes 22 000 steps (and data seconds) apart: two
/// incidents, however the points arrive, including all at once a day later.
#[test]
fn findings_far_apart_in_steps_are_separate_incidents_even_in_one_upload() {
    let steps: Vec<i64> = (0..300).map(|i| i * 100).collect();
    let values: Vec<f64> = steps
        .iter()
        .map(|s| match s {
            5000..=5200 | 27000..=27200 => f64::NAN,
            _ => 2.0 + 0.01 * ((s / 100) % 7) as f64,
        })
        .collect();
    let curve = curves::Curve {
        file: "two-episodes".into(),
        source: "test".into(),
        series: "train/loss".into(),
        failure: None,
        split: "dev".into(),
        steps,
        values,
    };
    let cfg = DiagnoseConfig::default();
    for feed in Feed::ALL {
        let incidents = curves::replay(&curve, &cfg, feed);
        let spans: Vec<(Option<i64>, Option<i64>)> = incidents
            .iter()
            .map(|i| (i.start_step, i.end_step))
            .collect();
        assert_eq!(
            spans,
            vec![(Some(5000), Some(5000)), (Some(27000), Some(27000))],
            "{}",
            feed.as_str()
        );
    }
}
