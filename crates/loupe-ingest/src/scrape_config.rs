//! Prometheus' `scrape_configs` YAML, read as Prometheus reads it, so an
//! existing `prometheus.yml` drives `loupe serve --scrape-config`
//! unchanged. Pure: the caller reads the files (this module is also given
//! the file-SD files' bytes) and logs the warnings.
//!
//! **Understood**: `global` (`scrape_interval`, `scrape_timeout`,
//! `external_labels`) and per job `job_name`, `scrape_interval`,
//! `scrape_timeout`, `metrics_path`, `scheme` (`http`), `params`,
//! `honor_labels`, `honor_timestamps`, `static_configs`, `file_sd_configs`
//! (`files`, `refresh_interval`), `relabel_configs`,
//! `metric_relabel_configs`, `sample_limit`, `body_size_limit`.
//!
//! **Other top-level sections** (`rule_files`, `alerting`, `remote_write`,
//! …) are listed in [`ScrapeFile::ignored_sections`] for one warning.
//! **Other keys inside a job** either do not change what is scraped
//! ([`HARMLESS_JOB_KEYS`], ignored) or do (authentication, TLS, other
//! service discovery, …): those refuse the file with an error naming the
//! file, the job and the key, rather than scrape something else than
//! Prometheus would.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::relabel::{LabelSet, RelabelRule, RelabelSpec, relabel};

/// Keys a job may carry that Loupe ignores because they change nothing it
/// does (limits it does not enforce, HTTP details of no effect on it).
pub const HARMLESS_JOB_KEYS: [&str; 10] = [
    "follow_redirects",
    "enable_http2",
    "enable_compression",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "target_limit",
    "keep_dropped_targets",
    "scrape_classic_histograms",
    "native_histogram_bucket_limit",
];

const JOB_KEYS: [&str; 15] = [
    "job_name",
    "scrape_interval",
    "scrape_timeout",
    "metrics_path",
    "scheme",
    "params",
    "honor_labels",
    "honor_timestamps",
    "static_configs",
    "file_sd_configs",
    "relabel_configs",
    "metric_relabel_configs",
    "sample_limit",
    "body_size_limit",
    "scrape_protocols",
];

/// The target label that picks a scraped target's Loupe project (removed
/// from the stored labels); without it, the server's default project.
pub const PROJECT_LABEL: &str = "loupe_project";

/// Why a scrape config was refused: the file, where in it, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {place}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// `scrape_configs[job "node"].relabel_configs[1]`, `global`, …
    pub place: String,
    pub message: String,
}

/// A whole scrape config file.
#[derive(Debug, Clone)]
pub struct ScrapeFile {
    pub global: Global,
    pub jobs: Vec<ScrapeJob>,
    /// Top-level sections Loupe does not read (one warning names them).
    pub ignored_sections: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    /// Added to every scraped series that lacks the label (Loupe is the
    /// "outside world" Prometheus adds them for).
    pub external_labels: Vec<(String, String)>,
}

/// One `scrape_configs` entry.
#[derive(Debug, Clone)]
pub struct ScrapeJob {
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub static_configs: Vec<TargetGroup>,
    pub file_sd: Vec<FileSd>,
    pub relabel_configs: Vec<RelabelRule>,
    pub metric_relabel_configs: Vec<RelabelRule>,
    /// 0: no limit.
    pub sample_limit: u64,
    /// Bytes, after decompression; 0: the server's body limit.
    pub body_size_limit: u64,
}

/// Targets sharing labels (a `static_configs` entry or one group of a
/// file-SD file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileSd {
    /// Paths; the last component may hold `*` and `?` patterns.
    pub files: Vec<String>,
    pub refresh_interval: Duration,
}

/// A target, after its job's relabelling: what to scrape and the labels
/// its series get.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScrapeTarget {
    /// `host:port`.
    pub address: String,
    /// Path and query (`/metrics?module=x`).
    pub path_and_query: String,
    pub scheme: String,
    /// `job`, `instance` and the group's and relabelling's labels (no
    /// `__…` labels, no `loupe_project`).
    pub labels: Vec<(String, String)>,
    pub interval: Duration,
    pub timeout: Duration,
    /// From the `loupe_project` target label, if set.
    pub project: Option<String>,
}

// ---- the YAML, as written ------------------------------------------------

#[derive(Deserialize, Default)]
struct RawFile {
    #[serde(default)]
    global: RawGlobal,
    #[serde(default)]
    scrape_configs: Vec<RawJob>,
}

#[derive(Deserialize, Default)]
struct RawGlobal {
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawJob {
    job_name: String,
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
    metrics_path: Option<String>,
    scheme: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    honor_labels: Option<bool>,
    honor_timestamps: Option<bool>,
    #[serde(default)]
    static_configs: Vec<TargetGroup>,
    #[serde(default)]
    file_sd_configs: Vec<RawFileSd>,
    #[serde(default)]
    relabel_configs: Vec<RawRelabel>,
    #[serde(default)]
    metric_relabel_configs: Vec<RawRelabel>,
    sample_limit: Option<u64>,
    body_size_limit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSd {
    #[serde(default)]
    files: Vec<String>,
    refresh_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabel {
    #[serde(default)]
    source_labels: Vec<String>,
    separator: Option<String>,
    regex: Option<String>,
    target_label: Option<String>,
    replacement: Option<String>,
    action: Option<String>,
    modulus: Option<u64>,
}

/// Reads a scrape config file's text; `file` names it in errors.
pub fn parse_scrape_file(text: &str, file: &str) -> Result<ScrapeFile, ConfigError> {
    let err = |place: &str, message: String| ConfigError {
        file: file.to_string(),
        place: place.to_string(),
        message,
    };
    // First the keys as written (to refuse what would change meaning),
    // then the known keys, typed.
    let top: BTreeMap<String, IgnoredAny> = if text.trim().is_empty() {
        BTreeMap::new()
    } else {
        serde_saphyr::from_str(text).map_err(|e| err("document", e.to_string()))?
    };
    let ignored_sections = top
        .keys()
        .filter(|k| !matches!(k.as_str(), "global" | "scrape_configs"))
        .cloned()
        .collect();
    #[derive(Deserialize)]
    struct Keys {
        #[serde(default)]
        scrape_configs: Vec<BTreeMap<String, IgnoredAny>>,
    }
    let keys: Keys = if top.is_empty() {
        Keys {
            scrape_configs: Vec::new(),
        }
    } else {
        serde_saphyr::from_str(text).map_err(|e| err("scrape_configs", e.to_string()))?
    };
    let raw: RawFile = if top.is_empty() {
        RawFile::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| err("document", e.to_string()))?
    };

    let interval = duration_or(
        raw.global.scrape_interval.as_deref(),
        Duration::from_secs(60),
    )
    .map_err(|m| err("global.scrape_interval", m))?;
    let timeout = match raw.global.scrape_timeout.as_deref() {
        Some(t) => parse_duration(t).map_err(|m| err("global.scrape_timeout", m))?,
        None => Duration::from_secs(10).min(interval),
    };
    if timeout > interval {
        return Err(err(
            "global",
            format!("scrape_timeout {timeout:?} is longer than scrape_interval {interval:?}"),
        ));
    }
    let global = Global {
        scrape_interval: interval,
        scrape_timeout: timeout,
        external_labels: raw.global.external_labels.into_iter().collect(),
    };
    let mut jobs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, (job, keys)) in raw
        .scrape_configs
        .into_iter()
        .zip(keys.scrape_configs)
        .enumerate()
    {
        let place = format!("scrape_configs[{i}] (job {:?})", job.job_name);
        for k in keys.keys() {
            if !JOB_KEYS.contains(&k.as_str()) && !HARMLESS_JOB_KEYS.contains(&k.as_str()) {
                return Err(err(
                    &place,
                    format!(
                        "key {k:?} is not supported by Loupe's scraper, and ignoring it would scrape differently from Prometheus"
                    ),
                ));
            }
        }
        if job.job_name.is_empty() {
            return Err(err(&place, "job_name is empty".into()));
        }
        if !names.insert(job.job_name.clone()) {
            return Err(err(&place, "job_name is used by an earlier job".into()));
        }
        jobs.push(read_job(job, &global, |k, m| {
            err(&format!("{place}.{k}"), m)
        })?);
    }
    Ok(ScrapeFile {
        global,
        jobs,
        ignored_sections,
    })
}

fn read_job(
    job: RawJob,
    global: &Global,
    err: impl Fn(&str, String) -> ConfigError,
) -> Result<ScrapeJob, ConfigError> {
    let interval = duration_or(job.scrape_interval.as_deref(), global.scrape_interval)
        .map_err(|m| err("scrape_interval", m))?;
    let timeout = match job.scrape_timeout.as_deref() {
        Some(t) => parse_duration(t).map_err(|m| err("scrape_timeout", m))?,
        None => global.scrape_timeout.min(interval),
    };
    if interval.is_zero() {
        return Err(err("scrape_interval", "must be more than 0".into()));
    }
    if timeout > interval {
        return Err(err(
            "scrape_timeout",
            format!("{timeout:?} is longer than scrape_interval {interval:?}"),
        ));
    }
    let scheme = job.scheme.unwrap_or_else(|| "http".into());
    if scheme != "http" {
        return Err(err(
            "scheme",
            format!("{scheme:?}: Loupe's scraper speaks http only for now"),
        ));
    }
    let rules = |raw: Vec<RawRelabel>, key: &str| -> Result<Vec<RelabelRule>, ConfigError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, r)| {
                if r.modulus.is_some()
                    && !r
                        .action
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case("hashmod"))
                {
                    return Err(err(
                        &format!("{key}[{i}]"),
                        "modulus is only for action hashmod".into(),
                    ));
                }
                RelabelRule::new(RelabelSpec {
                    source_labels: r.source_labels,
                    separator: r.separator,
                    regex: r.regex,
                    target_label: r.target_label,
                    replacement: r.replacement,
                    action: r.action,
                })
                .map_err(|m| err(&format!("{key}[{i}]"), m))
            })
            .collect()
    };
    let mut file_sd = Vec::new();
    for (i, f) in job.file_sd_configs.into_iter().enumerate() {
        if f.files.is_empty() {
            return Err(err(
                &format!("file_sd_configs[{i}]"),
                "files is empty".into(),
            ));
        }
        for path in &f.files {
            let name = path.rsplit('/').next().unwrap_or(path);
            if !(name.ends_with(".json") || name.ends_with(".yml") || name.ends_with(".yaml")) {
                return Err(err(
                    &format!("file_sd_configs[{i}].files"),
                    format!("{path:?}: expected a .json, .yml or .yaml file"),
                ));
            }
        }
        file_sd.push(FileSd {
            files: f.files,
            refresh_interval: duration_or(f.refresh_interval.as_deref(), Duration::from_secs(300))
                .map_err(|m| err(&format!("file_sd_configs[{i}].refresh_interval"), m))?,
        });
    }
    Ok(ScrapeJob {
        metrics_path: job.metrics_path.unwrap_or_else(|| "/metrics".into()),
        scheme,
        params: job.params,
        honor_labels: job.honor_labels.unwrap_or(false),
        honor_timestamps: job.honor_timestamps.unwrap_or(true),
        static_configs: job.static_configs,
        file_sd,
        relabel_configs: rules(job.relabel_configs, "relabel_configs")?,
        metric_relabel_configs: rules(job.metric_relabel_configs, "metric_relabel_configs")?,
        sample_limit: job.sample_limit.unwrap_or(0),
        body_size_limit: match job.body_size_limit.as_deref() {
            Some(s) => parse_size(s).map_err(|m| err("body_size_limit", m))?,
            None => 0,
        },
        job_name: job.job_name,
        scrape_interval: interval,
        scrape_timeout: timeout,
    })
}

/// A file-SD file's target groups: JSON (`.json`) or YAML (otherwise).
pub fn parse_target_groups(bytes: &[u8], path: &str) -> Result<Vec<TargetGroup>, ConfigError> {
    let err = |m: String| ConfigError {
        file: path.to_string(),
        place: "target groups".into(),
        message: m,
    };
    if path.ends_with(".json") {
        serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))
    } else {
        let text = std::str::from_utf8(bytes).map_err(|e| err(e.to_string()))?;
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        serde_saphyr::from_str(text).map_err(|e| err(e.to_string()))
    }
}

impl ScrapeJob {
    /// The targets of `groups` after this job's `relabel_configs`; targets
    /// a rule drops are left out. Errors name the target.
    pub fn targets(&self, groups: &[TargetGroup]) -> Result<Vec<ScrapeTarget>, String> {
        let mut out = Vec::new();
        for g in groups {
            for addr in &g.targets {
                let mut l: LabelSet = g.labels.clone();
                l.insert("__address__".into(), addr.clone());
                let defaults = [
                    ("job", self.job_name.clone()),
                    ("__scheme__", self.scheme.clone()),
                    ("__metrics_path__", self.metrics_path.clone()),
                    ("__scrape_interval__", format_duration(self.scrape_interval)),
                    ("__scrape_timeout__", format_duration(self.scrape_timeout)),
                ];
                for (k, v) in defaults {
                    l.entry(k.to_string()).or_insert(v);
                }
                for (k, v) in &self.params {
                    if let Some(first) = v.first() {
                        l.entry(format!("__param_{k}"))
                            .or_insert_with(|| first.clone());
                    }
                }
                if !relabel(&mut l, &self.relabel_configs) {
                    continue;
                }
                if let Some(t) = self
                    .target(l)
                    .map_err(|m| format!("target {addr:?}: {m}"))?
                {
                    out.push(t);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn target(&self, mut l: LabelSet) -> Result<Option<ScrapeTarget>, String> {
        let Some(mut address) = l.get("__address__").cloned().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let scheme = l
            .get("__scheme__")
            .cloned()
            .unwrap_or_else(|| self.scheme.clone());
        if scheme != "http" {
            return Err(format!("scheme {scheme:?}: http only"));
        }
        if address.contains('/') {
            return Err(format!("address {address:?} holds a path"));
        }
        if !has_port(&address) {
            // As Prometheus 2.x: the scheme's port when none is given.
            address.push_str(":80");
        }
        l.entry("instance".into())
            .or_insert_with(|| address.clone());
        let dur = |k: &str, d: Duration| -> Result<Duration, String> {
            match l.get(k) {
                Some(v) => parse_duration(v).map_err(|m| format!("{k}: {m}")),
                None => Ok(d),
            }
        };
        let interval = dur("__scrape_interval__", self.scrape_interval)?;
        let timeout = dur("__scrape_timeout__", self.scrape_timeout)?;
        if interval.is_zero() || timeout > interval {
            return Err(format!(
                "scrape timeout {timeout:?} is longer than the interval {interval:?}"
            ));
        }
        let mut path = l
            .get("__metrics_path__")
            .cloned()
            .unwrap_or_else(|| self.metrics_path.clone());
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let mut query: BTreeMap<String, Vec<String>> = self.params.clone();
        for (k, v) in &l {
            if let Some(name) = k.strip_prefix("__param_") {
                query.insert(name.to_string(), vec![v.clone()]);
            }
        }
        let mut sep = '?';
        for (k, vs) in &query {
            for v in vs {
                path.push(sep);
                path.push_str(&query_escape(k));
                path.push('=');
                path.push_str(&query_escape(v));
                sep = '&';
            }
        }
        let project = l.remove(PROJECT_LABEL).filter(|p| !p.is_empty());
        let labels = l
            .into_iter()
            .filter(|(k, v)| !k.starts_with("__") && !v.is_empty())
            .collect();
        Ok(Some(ScrapeTarget {
            address,
            path_and_query: path,
            scheme,
            labels,
            interval,
            timeout,
            project,
        }))
    }
}

fn has_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    }
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The labels a scraped sample is stored with: the sample's own labels
/// merged with its target's as Prometheus merges them — with
/// `honor_labels`, the sample's win; without, a clashing sample label is
/// kept as `exported_<name>` and the target's is set. Empty values are
/// dropped (Prometheus reads them as absent).
pub fn merge_target_labels(
    sample: &[(String, String)],
    target: &[(String, String)],
    honor_labels: bool,
) -> LabelSet {
    let mut l: LabelSet = sample
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect();
    for (k, v) in target {
        if honor_labels {
            l.entry(k.clone()).or_insert_with(|| v.clone());
        } else {
            if let Some(clash) = l.remove(k) {
                let mut name = format!("exported_{k}");
                while l.contains_key(&name) {
                    name.insert_str(0, "exported_");
                }
                l.insert(name, clash);
            }
            l.insert(k.clone(), v.clone());
        }
    }
    l
}

fn duration_or(s: Option<&str>, default: Duration) -> Result<Duration, String> {
    s.map(parse_duration).unwrap_or(Ok(default))
}

/// A Prometheus duration: `1h30m`, `15s`, `500ms`, `2d`, `1w`, `1y`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("{s:?} is not a duration (like 15s, 1m30s, 500ms)");
    const UNITS: [(&str, u64); 8] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
        ("", 0),
    ];
    let mut rest = s;
    let mut ms: u64 = 0;
    let mut last_unit = 0usize;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(i) = UNITS.iter().position(|(u, _)| *u == unit && !u.is_empty()) else {
            return Err(bad());
        };
        // Units in decreasing order, each at most once, as Prometheus wants.
        if i < last_unit || (i == last_unit && ms > 0) {
            return Err(bad());
        }
        last_unit = i;
        ms = n
            .checked_mul(UNITS[i].1)
            .and_then(|v| v.checked_add(ms))
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(ms))
}

/// The duration as Prometheus prints it (`1m30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// A size: `10MB`, `512KiB`, `1GB`, plain bytes (units of 1024, as
/// Prometheus reads them).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits]
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 10MB)"))?;
    let mult: u64 = match s[digits..].trim() {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        u => return Err(format!("{s:?}: unknown unit {u:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests;
