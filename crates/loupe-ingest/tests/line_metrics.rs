//! `LineMetricExtractor` on real-looking training logs (fixtures in
//! `tests/data/line_metrics/`): each file is fed line by line, split on
//! `\n` and `\r` as `loupe run` does, and the metrics found are compared
//! with what a person reading the log would write down.

// Untrained losses are ln 2 and ln 10 to four places: real values, not constants.
#![allow(clippy::approx_constant)]

use loupe_ingest::{LineMetricExtractor, LineMetrics};

/// `(line number, step, values)` for every line that yielded metrics.
type Found = Vec<(usize, Option<i64>, Vec<(String, f64)>)>;

fn run(file: &str, patterns: &[&str]) -> Found {
    let path = format!(
        "{}/tests/data/line_metrics/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
    let mut ex = LineMetricExtractor::new(&patterns).unwrap();
    let mut out = Vec::new();
    for (no, line) in text.split(['\n', '\r']).enumerate() {
        if let Some(LineMetrics { step, values }) = ex.extract(line) {
            out.push((no + 1, step, values));
        }
    }
    out
}

fn v(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(k, x)| ((*k).to_owned(), *x)).collect()
}

/// Compares with NaN equal to NaN (a logged NaN is a value).
fn assert_found(got: &Found, want: &Found) {
    let same = |a: &[(String, f64)], b: &[(String, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((ka, va), (kb, vb))| ka == kb && (va == vb || (va.is_nan() && vb.is_nan())))
    };
    let ok = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| g.0 == w.0 && g.1 == w.1 && same(&g.2, &w.2));
    assert!(ok, "got:\n{got:#?}\nwant:\n{want:#?}");
}

#[test]
fn hugging_face_trainer() {
    let got = run("hf_trainer.log", &[]);
    let want = vec![
        (
            9,
            None,
            v(&[
                ("loss", 0.5123),
                ("grad_norm", 1.84),
                ("learning_rate", 4.9e-05),
                ("epoch", 0.03),
            ]),
        ),
        (
            10,
            None,
            v(&[
                ("loss", 0.4871),
                ("grad_norm", 2.0625),
                ("learning_rate", 4.8e-05),
                ("epoch", 0.05),
            ]),
        ),
        (
            11,
            None,
            v(&[
                ("loss", f64::NAN),
                ("grad_norm", f64::INFINITY),
                ("learning_rate", 4.7e-05),
                ("epoch", 0.08),
            ]),
        ),
        (
            15,
            None,
            v(&[
                ("eval_loss", 0.4012),
                ("eval_runtime", 1.2345),
                ("eval_samples_per_second", 162.0),
                ("eval_steps_per_second", 20.25),
                ("epoch", 1.0),
            ]),
        ),
        (
            23,
            None,
            v(&[
                ("train_runtime", 177.1234),
                ("train_samples_per_second", 16.94),
                ("train_steps_per_second", 2.117),
                ("train_loss", 0.4567),
                ("epoch", 3.0),
            ]),
        ),
    ];
    assert_found(&got, &want);
}

#[test]
fn lightning_progress_bar() {
    let got = run("lightning.log", &[]);
    let want = vec![
        (
            14,
            Some(2),
            v(&[("tqdm/n", 2.0), ("tqdm/total", 2.0), ("tqdm/rate", 9.12)]),
        ),
        (
            15,
            Some(450),
            v(&[
                ("tqdm/n", 450.0),
                ("tqdm/total", 1000.0),
                ("tqdm/rate", 36.52),
                ("epoch", 0.0),
                ("v_num", 0.0),
                ("train_loss", 0.234),
            ]),
        ),
        (
            16,
            Some(1000),
            v(&[
                ("tqdm/n", 1000.0),
                ("tqdm/total", 1000.0),
                ("tqdm/rate", 36.90),
                ("epoch", 0.0),
                ("v_num", 0.0),
                ("train_loss", 0.198),
                ("val_loss", 0.211),
            ]),
        ),
        (
            17,
            Some(10),
            v(&[
                ("tqdm/n", 10.0),
                ("tqdm/total", 1000.0),
                ("tqdm/rate", 0.5),
                ("epoch", 1.0),
                ("v_num", 0.0),
                ("train_loss", 0.197),
                ("val_loss", 0.211),
            ]),
        ),
    ];
    assert_found(&got, &want);
}

#[test]
fn keras_fit() {
    let got = run("keras.log", &[]);
    let want = vec![
        (1, None, v(&[("epoch", 1.0)])),
        (
            2,
            None,
            v(&[
                ("loss", 0.6931),
                ("accuracy", 0.51),
                ("val_loss", 0.6812),
                ("val_accuracy", 0.56),
            ]),
        ),
        (3, None, v(&[("epoch", 2.0)])),
        (
            4,
            None,
            v(&[
                ("loss", 0.5123),
                ("accuracy", 0.82),
                ("val_loss", 0.4901),
                ("val_accuracy", 0.83),
            ]),
        ),
        (
            5,
            None,
            v(&[("epoch", 3.0), ("loss", 0.41), ("accuracy", 0.86)]),
        ),
    ];
    assert_found(&got, &want);
}

#[test]
fn print_loop() {
    let got = run("print_loop.log", &[]);
    let want = vec![
        (2, Some(0), v(&[("loss", 2.3026)])),
        (3, Some(10), v(&[("loss", 1.9871)])),
        (
            4,
            Some(20),
            v(&[("loss", 1.5402), ("lr", 3e-4), ("grad_norm", 0.98)]),
        ),
        (5, Some(30), v(&[("loss", f64::NAN), ("lr", 3e-4)])),
    ];
    assert_found(&got, &want);
}

#[test]
fn nanogpt() {
    let got = run("nanogpt.log", &[]);
    let want = vec![
        (
            8,
            Some(0),
            v(&[("train_loss", 4.2874), ("val_loss", 4.2823)]),
        ),
        (
            9,
            Some(0),
            v(&[("loss", 4.2654), ("time", 29953.68), ("mfu", -100.0)]),
        ),
        (
            10,
            Some(10),
            v(&[("loss", 3.2442), ("time", 35.12), ("mfu", 10.63)]),
        ),
        (
            11,
            Some(20),
            v(&[("loss", 2.7908), ("time", 35.40), ("mfu", 10.62)]),
        ),
    ];
    assert_found(&got, &want);
}

#[test]
fn prose_gives_nothing() {
    let got = run("prose.log", &[]);
    assert_found(&got, &vec![]);
}

#[test]
fn tqdm_redraws_split_on_carriage_return() {
    // One chunk as tqdm writes it: three redraws separated by `\r`.
    let chunk = "  0%|          | 0/3 [00:00<?, ?it/s]\r 33%|███▎      | 1/3 [00:00<00:01,  1.98it/s, loss=0.9]\r100%|██████████| 3/3 [00:01<00:00,  2.01it/s, loss=0.7]\n";
    let mut ex = LineMetricExtractor::new(&[]).unwrap();
    let got: Vec<_> = chunk
        .split(['\r', '\n'])
        .filter_map(|l| ex.extract(l))
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].step, Some(0));
    assert_eq!(got[0].values, v(&[("tqdm/n", 0.0), ("tqdm/total", 3.0)]));
    assert_eq!(
        got[1].values,
        v(&[
            ("tqdm/n", 1.0),
            ("tqdm/total", 3.0),
            ("tqdm/rate", 1.98),
            ("loss", 0.9)
        ])
    );
    assert_eq!(got[2].step, Some(3));
    // Unknown totals and s/it.
    let m = ex.extract("450it [00:12, 36.52it/s, loss=0.234]").unwrap();
    assert_eq!(
        (m.step, m.values),
        (
            Some(450),
            v(&[("tqdm/n", 450.0), ("tqdm/rate", 36.52), ("loss", 0.234)])
        )
    );
}

#[test]
fn json_lines_and_user_patterns() {
    let mut ex =
        LineMetricExtractor::new(&[r"^R(?P<step>\d+) ppl (?P<ppl>\S+)$".to_owned()]).unwrap();
    let m = ex
        .extract(
            r#"2024-05-01 12:00:03 {"step": 7, "train": {"loss": 0.5, "acc": 0.9}, "msg": "ok"}"#,
        )
        .unwrap();
    assert_eq!(
        (m.step, m.values),
        (Some(7), v(&[("train/loss", 0.5), ("train/acc", 0.9)]))
    );
    let m = ex.extract("R12 ppl 31.5").unwrap();
    assert_eq!((m.step, m.values), (Some(12), v(&[("ppl", 31.5)])));
    // A colour-coded line reads as its text.
    let m = ex
        .extract("\x1b[32mstep 5\x1b[0m loss=\x1b[1m0.25\x1b[0m")
        .unwrap();
    assert_eq!((m.step, m.values), (Some(5), v(&[("loss", 0.25)])));
}
