//! A scrape's samples into the series Loupe stores, as Prometheus would
//! store them: target labels merged (`honor_labels`), `metric_relabel_configs`
//! applied, `sample_limit` checked, staleness markers for the series that
//! left, and the report series (`up`, `scrape_duration_seconds`, …).
//! Pure: no IO, no clock.

use hashbrown::HashMap;
use std::sync::Arc;

use loupe_ingest::SeriesColumns;
use loupe_ingest::exposition::Exposition;
use loupe_ingest::relabel::relabel;
use loupe_ingest::scrape_config::{ScrapeJob, ScrapeTarget, merge_target_labels};
use loupe_model::{SeriesKey, label, stale};

/// What a target's series are built from.
pub struct TargetSpec {
    pub target: ScrapeTarget,
    pub job: Arc<ScrapeJob>,
    /// `global.external_labels`: added where a series lacks the label.
    pub external_labels: Arc<Vec<(String, String)>>,
    /// The Loupe project its series go to.
    pub project: String,
}

/// What a target remembers between scrapes: the series of its last
/// scrape, and which of them staleness is tracked for (those stored at
/// the scrape's time; a sample's own timestamp opts out, as in Prometheus).
#[derive(Default)]
pub struct ScrapeMemory {
    last: HashMap<SeriesKey, bool>,
    /// Whether the last scrape succeeded (`None` before the first): a
    /// failure is logged as a warning once, when the target goes down.
    pub up: Option<bool>,
}

/// A successful scrape's series and its figures.
pub struct Assembled {
    pub series: Vec<(SeriesKey, SeriesColumns)>,
    pub samples_scraped: u64,
    pub post_relabel: u64,
    pub series_added: u64,
    pub stale_markers: u64,
    /// Samples left out for a time Loupe cannot store.
    pub out_of_range: u64,
}

/// The report series of one scrape.
pub struct Report {
    pub up: bool,
    pub duration_s: f64,
    pub samples_scraped: u64,
    pub post_relabel: u64,
    pub series_added: u64,
}

/// Earliest and latest times Loupe stores, in milliseconds.
const MAX_TIME_MS: i64 = (loupe_ingest::MAX_TIME_SECONDS * 1000.0) as i64;

/// Builds the series of a decoded scrape taken at `scrape_ms`; `Err`
/// names why the scrape fails as a whole (then [`ScrapeMemory::fail`]).
pub fn assemble(
    spec: &TargetSpec,
    exposition: &Exposition,
    scrape_ms: i64,
    memory: &mut ScrapeMemory,
) -> Result<Assembled, String> {
    let job = &spec.job;
    let mut index: HashMap<SeriesKey, usize> = HashMap::new();
    let mut series: Vec<(SeriesKey, SeriesColumns)> = Vec::new();
    let mut now: HashMap<SeriesKey, bool> = HashMap::with_capacity(memory.last.len());
    let mut post_relabel = 0u64;
    let mut out_of_range = 0u64;
    for s in &exposition.samples {
        let mut l = merge_target_labels(&s.labels, &spec.target.labels, job.honor_labels);
        if !job.metric_relabel_configs.is_empty() {
            l.insert("__name__".into(), s.name.clone());
            if !relabel(&mut l, &job.metric_relabel_configs) {
                continue;
            }
        }
        let name = match l.remove("__name__") {
            Some(n) if n.is_empty() => continue,
            Some(n) => n,
            None => s.name.clone(),
        };
        post_relabel += 1;
        if job.sample_limit > 0 && post_relabel > job.sample_limit {
            return Err(format!(
                "sample_limit exceeded: more than {} samples after metric relabelling",
                job.sample_limit
            ));
        }
        // `project` and `run` are Loupe's to set: a target's own are kept
        // under `exported_`, as Prometheus keeps a clashing `job`.
        for reserved in label::RESERVED {
            if let Some(v) = l.remove(reserved) {
                let mut n = format!("exported_{reserved}");
                while l.contains_key(&n) {
                    n.insert_str(0, "exported_");
                }
                l.insert(n, v);
            }
        }
        for (k, v) in spec.external_labels.iter() {
            l.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let key = SeriesKey::new(name, l).map_err(|e| format!("sample {:?}: {e}", s.name))?;
        let (ts, tracked) = match s.timestamp_ms {
            Some(t) if job.honor_timestamps => (t, false),
            _ => (scrape_ms, true),
        };
        if !(0..=MAX_TIME_MS).contains(&ts) {
            out_of_range += 1;
            continue;
        }
        push(&mut series, &mut index, &key, ts, s.value);
        now.insert(key, tracked);
    }
    let series_added = now.keys().filter(|k| !memory.last.contains_key(*k)).count() as u64;
    let mut stale_markers = 0;
    for (key, tracked) in &memory.last {
        if *tracked && !now.contains_key(key) {
            push(
                &mut series,
                &mut index,
                key,
                scrape_ms,
                stale::stale_marker(),
            );
            stale_markers += 1;
        }
    }
    memory.last = now;
    Ok(Assembled {
        series,
        samples_scraped: exposition.samples.len() as u64,
        post_relabel,
        series_added,
        stale_markers,
        out_of_range,
    })
}

impl ScrapeMemory {
    /// A failed scrape: every tracked series of the last one ends here
    /// (a staleness marker at `scrape_ms` each), as Prometheus ends them.
    pub fn fail(&mut self, scrape_ms: i64) -> Vec<(SeriesKey, SeriesColumns)> {
        let mut series = Vec::new();
        let mut index = HashMap::new();
        for (key, tracked) in self.last.drain() {
            if tracked {
                push(
                    &mut series,
                    &mut index,
                    &key,
                    scrape_ms,
                    stale::stale_marker(),
                );
            }
        }
        series
    }
}

/// The report series of a scrape at `scrape_ms`, labelled with the
/// target's labels.
pub fn report(spec: &TargetSpec, scrape_ms: i64, r: &Report) -> Vec<(SeriesKey, SeriesColumns)> {
    let values = [
        ("up", if r.up { 1.0 } else { 0.0 }),
        ("scrape_duration_seconds", r.duration_s),
        ("scrape_samples_scraped", r.samples_scraped as f64),
        (
            "scrape_samples_post_metric_relabeling",
            r.post_relabel as f64,
        ),
        ("scrape_series_added", r.series_added as f64),
    ];
    report_series(spec, scrape_ms, |name| {
        values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    })
}

/// Staleness markers for the report series (a target that went away).
pub fn report_stale(spec: &TargetSpec, at_ms: i64) -> Vec<(SeriesKey, SeriesColumns)> {
    report_series(spec, at_ms, |_| Some(stale::stale_marker()))
}

/// The names of the report series, as Prometheus writes them.
pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

fn report_series(
    spec: &TargetSpec,
    at_ms: i64,
    value: impl Fn(&str) -> Option<f64>,
) -> Vec<(SeriesKey, SeriesColumns)> {
    let mut labels = spec.target.labels.clone();
    for (k, v) in spec.external_labels.iter() {
        if !labels.iter().any(|(l, _)| l == k) {
            labels.push((k.clone(), v.clone()));
        }
    }
    let mut out = Vec::new();
    let mut index = HashMap::new();
    for name in REPORT_SERIES {
        let (Some(v), Ok(key)) = (value(name), SeriesKey::new(name, labels.clone())) else {
            continue;
        };
        push(&mut out, &mut index, &key, at_ms, v);
    }
    out
}

fn push(
    series: &mut Vec<(SeriesKey, SeriesColumns)>,
    index: &mut HashMap<SeriesKey, usize>,
    key: &SeriesKey,
    ts_ms: i64,
    value: f64,
) {
    let slot = *index.entry(key.clone()).or_insert_with(|| {
        series.push((
            key.clone(),
            SeriesColumns {
                name: key.name().to_string(),
                steps: None,
                times_ns: Vec::new(),
                values: Vec::new(),
            },
        ));
        series.len() - 1
    });
    let cols = &mut series[slot].1;
    cols.times_ns.push(ts_ms * 1_000_000);
    cols.values.push(value);
}

/// Series names in a batch, for tests.
#[cfg(test)]
pub fn names(series: &[(SeriesKey, SeriesColumns)]) -> std::collections::HashSet<String> {
    series.iter().map(|(k, _)| k.name().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_ingest::exposition::{ExpositionFormat, decode_exposition};
    use loupe_ingest::scrape_config::parse_scrape_file;

    fn spec(yml: &str) -> TargetSpec {
        let f = parse_scrape_file(yml, "t.yml").unwrap();
        let job = Arc::new(f.jobs[0].clone());
        let target = job.targets(&job.static_configs).unwrap().remove(0);
        TargetSpec {
            target,
            job,
            external_labels: Arc::new(f.global.external_labels),
            project: "default".into(),
        }
    }

    const JOB: &str =
        "scrape_configs:\n  - job_name: j\n    static_configs: [{targets: ['h:1']}]\n";

    fn body(text: &str) -> Exposition {
        decode_exposition(text.as_bytes(), ExpositionFormat::Text004).unwrap()
    }

    #[test]
    fn a_series_that_leaves_gets_one_stale_marker() {
        let s = spec(JOB);
        let mut m = ScrapeMemory::default();
        let a = assemble(&s, &body("a 1\nb 2\n"), 1000, &mut m).unwrap();
        assert_eq!((a.series.len(), a.series_added, a.stale_markers), (2, 2, 0));
        let a = assemble(&s, &body("a 3\n"), 2000, &mut m).unwrap();
        assert_eq!((a.series_added, a.stale_markers), (0, 1));
        let b = a.series.iter().find(|(k, _)| k.name() == "b").unwrap();
        assert_eq!(b.1.times_ns, [2000 * 1_000_000]);
        assert!(stale::is_stale_marker(b.1.values[0]));
        // Gone already: no second marker.
        let a = assemble(&s, &body("a 3\n"), 3000, &mut m).unwrap();
        assert_eq!(a.stale_markers, 0);
        let failed = m.fail(4000);
        assert_eq!(
            names(&failed),
            std::collections::HashSet::from(["a".to_string()])
        );
    }

    #[test]
    fn explicit_timestamps_opt_out_of_staleness() {
        let s = spec(JOB);
        let mut m = ScrapeMemory::default();
        assemble(&s, &body("a 1 500\n"), 1000, &mut m).unwrap();
        let a = assemble(&s, &body(""), 2000, &mut m).unwrap();
        assert_eq!(a.stale_markers, 0);
    }

    #[test]
    fn labels_relabelling_reserved_and_external() {
        let yml = "global: {external_labels: {cluster: c1}}\nscrape_configs:\n  - job_name: j\n    static_configs: [{targets: ['h:1']}]\n    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: drop_me\n        action: drop\n";
        let s = spec(yml);
        let mut m = ScrapeMemory::default();
        let a = assemble(
            &s,
            &body("drop_me 1\nkept{project=\"x\",job=\"inner\"} 2\n"),
            1000,
            &mut m,
        )
        .unwrap();
        assert_eq!((a.samples_scraped, a.post_relabel), (2, 1));
        let key = &a.series[0].0;
        let get = |k: &str| {
            key.labels()
                .iter()
                .find(|(l, _)| l == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("job"), Some("j"));
        assert_eq!(get("exported_job"), Some("inner"));
        assert_eq!(get("exported_project"), Some("x"));
        assert_eq!(get("project"), None);
        assert_eq!(get("instance"), Some("h:1"));
        assert_eq!(get("cluster"), Some("c1"));
    }

    #[test]
    fn sample_limit_fails_the_scrape() {
        let s = spec(
            "scrape_configs:\n  - job_name: j\n    sample_limit: 1\n    static_configs: [{targets: ['h:1']}]\n",
        );
        let e = assemble(&s, &body("a 1\nb 2\n"), 1000, &mut ScrapeMemory::default())
            .err()
            .unwrap();
        assert!(e.contains("sample_limit"), "{e}");
    }

    #[test]
    fn report_series_carry_the_target_labels() {
        let s = spec(JOB);
        let r = report(
            &s,
            1000,
            &Report {
                up: false,
                duration_s: 0.5,
                samples_scraped: 0,
                post_relabel: 0,
                series_added: 0,
            },
        );
        assert_eq!(r.len(), 5);
        let up = r.iter().find(|(k, _)| k.name() == "up").unwrap();
        assert_eq!(up.1.values, [0.0]);
        assert!(up.0.labels().contains(&("job".into(), "j".into())));
    }
}
