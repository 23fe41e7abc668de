//! Log appends, filtered reads, full-text search.

use loupe_meta::{Error, LogOrder, LogQuery, MetaStore};
use loupe_model::{LogLevel, LogRecord, LogStream};

use crate::support::{info, line, named_run, open};

fn texts(page: &loupe_meta::LogPage) -> Vec<&str> {
    page.records.iter().map(|(_, r)| r.text.as_str()).collect()
}

fn seqs(page: &loupe_meta::LogPage) -> Vec<u64> {
    page.records.iter().map(|(s, _)| *s).collect()
}

fn search(store: &MetaStore, run: &str, q: &str) -> Vec<String> {
    let page = store
        .query_logs(
            run,
            LogQuery {
                q: Some(q.into()),
                limit: Some(10_000),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("query {q:?} failed: {e}"));
    page.records.into_iter().map(|(_, r)| r.text).collect()
}

#[test]
fn appends_number_lines_per_run() {
    let t = open();
    let s = &t.store;
    s.create_or_resume_run(named_run("p", "a")).unwrap();
    s.create_or_resume_run(named_run("p", "b")).unwrap();
    assert_eq!(s.append_logs("a", &[]).unwrap(), 1);
    assert_eq!(
        s.append_logs("a", &[info(1.0, "one"), info(2.0, "two")])
            .unwrap(),
        1
    );
    assert_eq!(s.append_logs("b", &[info(1.0, "b-one")]).unwrap(), 1);
    assert_eq!(s.append_logs("a", &[info(3.0, "three")]).unwrap(), 3);
    assert_eq!(s.append_logs("a", &[]).unwrap(), 4);

    let page = s.query_logs("a", LogQuery::default()).unwrap();
    assert_eq!(seqs(&page), vec![1, 2, 3]);
    assert_eq!(texts(&page), vec!["one", "two", "three"]);
    assert_eq!(page.next_cursor, None);
    assert_eq!(
        texts(&s.query_logs("b", LogQuery::default()).unwrap()),
        vec!["b-one"]
    );
}

#[test]
fn records_round_trip_whatever_their_text() {
    let t = open();
    let s = &t.store;
    s.create_or_resume_run(named_run("p", "r")).unwrap();
    let mut with_attrs = line(
        1.5,
        LogStream::App,
        LogLevel::Warning,
        "grad norm 1e9 \u{1F525}",
    );
    with_attrs
        .attributes
        .insert("logger".into(), "trainer".into());
    with_attrs.attributes.insert("rank".into(), "3".into());
    let records = vec![
        with_attrs,
        info(2.0, "nul \0 inside"),
        info(3.0, ""),
        info(4.0, "Ошибка: нехватка памяти; 内存不足"),
        info(5.0, "\u{1b}[31mred\u{1b}[0m\r\n\ttabs"),
    ];
    s.append_logs("r", &records).unwrap();
    let page = s.query_logs("r", LogQuery::default()).unwrap();
    let got: Vec<LogRecord> = page.records.into_iter().map(|(_, r)| r).collect();
    assert_eq!(got, records);

    let err = s.append_logs("r", &[info(f64::NAN, "x")]).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    // The bad batch wrote nothing.
    assert_eq!(s.append_logs("r", &[]).unwrap(), 6);
}

fn seed_mixed(store: &MetaStore) {
    store.create_or_resume_run(named_run("p", "r")).unwrap();
    let levels = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warning,
        LogLevel::Error,
        LogLevel::Critical,
    ];
    let streams = [LogStream::Stdout, LogStream::Stderr, LogStream::App];
    let records: Vec<_> = (0..100)
        .map(|i| {
            line(
                1000.0 + i as f64,
                streams[i % 3],
                levels[i % 5],
                &format!(
                    "line {i} {}",
                    if i % 10 == 0 {
                        "checkpoint saved"
                    } else {
                        "step done"
                    }
                ),
            )
        })
        .collect();
    store.append_logs("r", &records).unwrap();
}

#[test]
fn filters_by_level_stream_and_time() {
    let t = open();
    let s = &t.store;
    seed_mixed(s);
    let q = |f: &dyn Fn(&mut LogQuery)| {
        let mut query = LogQuery {
            limit: Some(1000),
            ..Default::default()
        };
        f(&mut query);
        s.query_logs("r", query.clone()).unwrap()
    };
    let errors = q(&|q| q.level = Some(LogLevel::Error));
    assert_eq!(errors.records.len(), 40);
    assert!(
        errors
            .records
            .iter()
            .all(|(_, r)| r.level >= LogLevel::Error)
    );
    let stderr = q(&|q| q.stream = Some(LogStream::Stderr));
    assert_eq!(stderr.records.len(), 33);
    assert!(
        stderr
            .records
            .iter()
            .all(|(_, r)| r.stream == LogStream::Stderr)
    );
    let window = q(&|q| {
        q.from = Some(1010.0);
        q.to = Some(1019.0);
    });
    assert_eq!(seqs(&window), (11..=20).collect::<Vec<_>>());
    let combined = q(&|q| {
        q.from = Some(1010.0);
        q.level = Some(LogLevel::Critical);
        q.stream = Some(LogStream::App);
    });
    // i ≡ 4 (mod 5) and i ≡ 2 (mod 3), i ≥ 10: 14, 29, 44, …
    assert_eq!(seqs(&combined), vec![15, 30, 45, 60, 75, 90]);
}

#[test]
fn cursors_page_both_ways() {
    let t = open();
    let s = &t.store;
    seed_mixed(s);
    for order in [LogOrder::Asc, LogOrder::Desc] {
        for (limit, level) in [(7, None), (100, None), (3, Some(LogLevel::Warning))] {
            let mut query = LogQuery {
                limit: Some(limit),
                order,
                level,
                ..Default::default()
            };
            let mut all = Vec::new();
            loop {
                let page = s.query_logs("r", query.clone()).unwrap();
                assert!(page.records.len() <= limit);
                all.extend(seqs(&page));
                match page.next_cursor {
                    Some(c) => query.cursor = Some(c),
                    None => break,
                }
            }
            let mut expect: Vec<u64> = (1..=100)
                .filter(|seq| level.is_none() || (seq - 1) % 5 >= 2)
                .collect();
            if order == LogOrder::Desc {
                expect.reverse();
            }
            assert_eq!(all, expect, "{order:?} by {limit}");
        }
    }
    // A tail: everything after the last seq seen.
    let tail = s
        .query_logs(
            "r",
            LogQuery {
                cursor: Some(98),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(seqs(&tail), vec![99, 100]);
    let past_end = s
        .query_logs(
            "r",
            LogQuery {
                cursor: Some(u64::MAX),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(past_end.records.is_empty());
}

#[test]
fn search_matches_substrings_phrases_and_short_terms() {
    let t = open();
    let s = &t.store;
    s.create_or_resume_run(named_run("p", "r")).unwrap();
    s.create_or_resume_run(named_run("p", "other")).unwrap();
    let lines = [
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "loss is nan at step 1200",
        "checkpoint saved to /ckpt/step_1200.pt",
        "Memory usage out of bounds",
        "Ошибка: нехватка памяти",
        "café résumé naïve",
        "he said \"quoted text\" here",
        "a or b, not c",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB",
        "step 300 loss 4.81 lr 3e-4",
    ];
    let records: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| info(i as f64, l))
        .collect();
    s.append_logs("r", &records).unwrap();
    s.append_logs("other", &[info(0.0, "CUDA out of memory in another run")])
        .unwrap();

    assert_eq!(search(s, "r", "cuda"), vec![lines[0], lines[8]]);
    assert_eq!(search(s, "r", "MEMORY"), vec![lines[0], lines[3], lines[8]]);
    // Inside words and across punctuation (issue 13's examples).
    assert_eq!(search(s, "r", "OutOfMemory"), vec![lines[8]]);
    assert_eq!(search(s, "r", "loss 4.8"), vec![lines[9]]);
    assert_eq!(search(s, "r", "\"loss 4.8\""), vec![lines[9]]);
    assert_eq!(search(s, "r", "memoryerr"), vec![lines[8]]);
    // Terms must all occur, in any order.
    assert_eq!(
        search(s, "r", "memory out"),
        vec![lines[0], lines[3], lines[8]]
    );
    assert_eq!(
        search(s, "r", "CUDA out of memory"),
        vec![lines[0], lines[8]]
    );
    // A quoted phrase is one term: its words in order.
    assert_eq!(
        search(s, "r", "\"out of memory\""),
        vec![lines[0], lines[8]]
    );
    assert_eq!(search(s, "r", "\"memory out\""), Vec::<String>::new());
    assert_eq!(search(s, "r", "\"quoted text\""), vec![lines[6]]);
    // A trailing star changes nothing; an underscore is itself.
    assert_eq!(search(s, "r", "check*"), vec![lines[2]]);
    assert_eq!(search(s, "r", "step_12*"), vec![lines[2]]);
    // Unicode, case and diacritics.
    assert_eq!(search(s, "r", "ОШИБКА"), vec![lines[4]]);
    assert_eq!(search(s, "r", "cafe resume"), vec![lines[5]]);
    // Operators are text; terms of one or two characters match too.
    assert_eq!(search(s, "r", "\"a or b\""), vec![lines[7]]);
    assert_eq!(search(s, "r", "not c"), vec![lines[7]]);
    assert_eq!(search(s, "r", "lr 3e"), vec![lines[9]]);
    assert_eq!(search(s, "r", "Mi"), vec![lines[8]]);
    // Search is per run.
    assert_eq!(
        search(s, "other", "cuda"),
        vec!["CUDA out of memory in another run"]
    );
}

#[test]
fn tricky_queries_never_error() {
    let t = open();
    let s = &t.store;
    s.create_or_resume_run(named_run("p", "r")).unwrap();
    s.append_logs("r", &[info(0.0, "x marks the spot"), info(1.0, "a b c")])
        .unwrap();
    for q in [
        "\"quoted\"",
        "a OR b",
        "-x",
        "*",
        "**",
        "x*",
        "\"",
        "\"\"",
        "\"unclosed",
        "NOT",
        "AND OR NOT",
        "NEAR(a b)",
        "text:x",
        "^x",
        "(",
        ")",
        "{a b}",
        "a + b",
        "'single'",
        "x\0y",
        "ошибка",
        "内存",
        "🔥",
        "\u{301}",
        "",
        "   ",
        "%_\\",
    ] {
        let r = s.query_logs(
            "r",
            LogQuery {
                q: Some(q.into()),
                ..Default::default()
            },
        );
        assert!(r.is_ok(), "query {q:?}: {r:?}");
    }
    assert_eq!(search(s, "r", "marks the"), vec!["x marks the spot"]);
    assert!(
        search(s, "r", "-x").is_empty(),
        "`-` is text, not an operator"
    );
    assert!(search(s, "r", "*").is_empty());
}

#[test]
fn search_combines_with_filters_and_pages() {
    let t = open();
    let s = &t.store;
    seed_mixed(s);
    // "checkpoint" lines are i = 0, 10, …, 90 (seq i+1); levels i % 5 = 0.
    let page = s
        .query_logs(
            "r",
            LogQuery {
                q: Some("checkpoint".into()),
                limit: Some(4),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(seqs(&page), vec![1, 11, 21, 31]);
    let next = s
        .query_logs(
            "r",
            LogQuery {
                q: Some("checkpoint".into()),
                limit: Some(4),
                cursor: page.next_cursor,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(seqs(&next), vec![41, 51, 61, 71]);
    let desc = s
        .query_logs(
            "r",
            LogQuery {
                q: Some("checkpoint".into()),
                order: LogOrder::Desc,
                from: Some(1020.0),
                to: Some(1060.0),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(seqs(&desc), vec![61, 51, 41, 31, 21]);
    let none = s
        .query_logs(
            "r",
            LogQuery {
                q: Some("checkpoint".into()),
                level: Some(LogLevel::Info),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(none.records.is_empty());
}

#[test]
fn queries_on_unknown_runs_are_not_found() {
    let t = open();
    for q in [None, Some("x".to_string()), Some("*".to_string())] {
        let err = t
            .store
            .query_logs(
                "ghost",
                LogQuery {
                    q,
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
}

#[test]
fn level_filters_stay_within_the_run() {
    let t = open();
    let s = &t.store;
    for id in ["a", "b", "c"] {
        s.create_or_resume_run(named_run("p", id)).unwrap();
    }
    let err = |time: f64, text: &str| line(time, LogStream::Stderr, LogLevel::Error, text);
    let warn = |time: f64, text: &str| line(time, LogStream::Stderr, LogLevel::Warning, text);
    s.append_logs("a", &[err(1.0, "a1"), info(2.0, "a2")])
        .unwrap();
    s.append_logs(
        "b",
        &[
            info(1.0, "b1"),
            warn(2.0, "b2"),
            err(3.0, "b3"),
            info(4.0, "b4"),
        ],
    )
    .unwrap();
    s.append_logs("c", &[err(1.0, "c1")]).unwrap();
    let q = |run: &str, level: LogLevel, order: LogOrder| {
        let page = s
            .query_logs(
                run,
                LogQuery {
                    level: Some(level),
                    order,
                    ..Default::default()
                },
            )
            .unwrap();
        texts(&page)
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(q("b", LogLevel::Warning, LogOrder::Asc), vec!["b2", "b3"]);
    assert_eq!(q("b", LogLevel::Warning, LogOrder::Desc), vec!["b3", "b2"]);
    assert_eq!(q("b", LogLevel::Error, LogOrder::Asc), vec!["b3"]);
    assert_eq!(
        q("b", LogLevel::Critical, LogOrder::Asc),
        Vec::<String>::new()
    );
    assert_eq!(
        q("b", LogLevel::Info, LogOrder::Asc),
        vec!["b1", "b2", "b3", "b4"]
    );
    assert_eq!(q("a", LogLevel::Error, LogOrder::Desc), vec!["a1"]);
    assert_eq!(q("c", LogLevel::Warning, LogOrder::Asc), vec!["c1"]);
}

#[test]
fn time_windows_find_lines_wherever_they_are() {
    let t = open();
    let s = &t.store;
    s.create_or_resume_run(named_run("p", "r")).unwrap();
    // 10k lines (several 4096-line blocks) in time order, except a late
    // arrival near the end that carries an early time.
    let mut records: Vec<_> = (0..10_000)
        .map(|i| info(1000.0 + i as f64, &format!("line {i}")))
        .collect();
    records[9000] = info(1005.5, "late arrival");
    for chunk in records.chunks(3000) {
        s.append_logs("r", chunk).unwrap();
    }
    let window = |from: Option<f64>, to: Option<f64>, order: LogOrder| {
        let page = s
            .query_logs(
                "r",
                LogQuery {
                    from,
                    to,
                    order,
                    limit: Some(10_000),
                    ..Default::default()
                },
            )
            .unwrap();
        seqs(&page)
    };
    assert_eq!(
        window(Some(1004.0), Some(1007.0), LogOrder::Asc),
        vec![5, 6, 7, 8, 9001]
    );
    assert_eq!(
        window(Some(1004.0), Some(1007.0), LogOrder::Desc),
        vec![9001, 8, 7, 6, 5]
    );
    assert_eq!(
        window(Some(1000.0 + 9998.0), None, LogOrder::Asc),
        vec![9999, 10_000]
    );
    assert_eq!(window(None, Some(1001.0), LogOrder::Asc), vec![1, 2]);
    assert!(window(Some(50_000.0), None, LogOrder::Asc).is_empty());
    assert!(window(None, Some(10.0), LogOrder::Asc).is_empty());
    assert!(window(Some(1007.0), Some(1004.0), LogOrder::Asc).is_empty());
    // With a search, too.
    let page = s
        .query_logs(
            "r",
            LogQuery {
                q: Some("late".into()),
                from: Some(1005.0),
                to: Some(1006.0),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(seqs(&page), vec![9001]);
}
