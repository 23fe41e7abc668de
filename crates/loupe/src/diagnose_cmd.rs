//! `loupe diagnose RUN` (a run's incidents and health, or `--replay` with
//! other settings) and `loupe detect FILE.csv` (any series, no server).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use loupe_api::{DataQuery, IncidentQuery, LogQuery, XColumn};
use loupe_diagnose::scenario::{Event, Scenario, replay};
use loupe_diagnose::{DiagnoseConfig, Incident, RunInfo};
use loupe_model::{Run, RunStatus};

use crate::client::{Client, ServerArgs};

/// Diagnosis settings: a JSON file and `KEY=VALUE` overrides.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DiagnoseSettings {
    /// Diagnosis settings (JSON; fields not named keep their defaults),
    /// e.g. {"spike": {"z": 8}, "stall": {"min_seconds": 120}}.
    #[arg(long, value_name = "FILE")]
    pub diagnose_config: Option<PathBuf>,
    /// One setting, e.g. `--set spike.z=8 --set stall.enabled=false`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl DiagnoseSettings {
    pub fn load(&self) -> Result<DiagnoseConfig> {
        let base = match &self.diagnose_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                DiagnoseConfig::from_json(&text, &path.display().to_string())?
            }
            None => DiagnoseConfig::default(),
        };
        Ok(base.with_overrides(&self.overrides)?)
    }
}

#[derive(clap::Args, Debug)]
pub struct DiagnoseArgs {
    /// The run.
    pub run: String,
    /// Run diagnosis again over the run's stored data (with these settings)
    /// instead of showing what the server found live.
    #[arg(long)]
    pub replay: bool,
    #[command(flatten)]
    pub settings: DiagnoseSettings,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub fn diagnose(a: &DiagnoseArgs) -> Result<()> {
    let client = Client::new(&a.server);
    let run = client.call(|c| c.run(&a.run))?;
    let incidents: Vec<Incident> = if a.replay {
        let cfg = a.settings.load()?;
        let sc = load_run(&client, &run)?;
        eprintln!(
            "replaying {} points and {} log lines of run {}",
            sc.points(),
            sc.events
                .iter()
                .filter(|e| matches!(e, Event::Log { .. }))
                .count(),
            a.run
        );
        replay(&sc, &cfg)
            .into_iter()
            .filter(|i| i.runs.contains(&a.run) || i.run.as_deref() == Some(&a.run))
            .collect()
    } else {
        let page = client.call(|c| c.run_incidents(&a.run, &IncidentQuery::default()))?;
        // The API's incident is the diagnoser's, as stored: read it back as one.
        page.incidents
            .into_iter()
            .map(|i| {
                serde_json::to_value(i)
                    .and_then(serde_json::from_value)
                    .context("an incident the server sent")
            })
            .collect::<Result<_>>()?
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&incidents)?);
        return Ok(());
    }
    let out = &mut std::io::stdout().lock();
    if !a.replay {
        let h = client.call(|c| c.run_health(&a.run))?;
        match h.score {
            Some(score) => {
                writeln!(out, "health {score:.0}/100")?;
                for item in &h.breakdown {
                    writeln!(
                        out,
                        "  -{:<4} {} {}",
                        item.penalty, item.indicator, item.detail
                    )?;
                }
            }
            None => writeln!(out, "health: not judged yet")?,
        }
    }
    if incidents.is_empty() {
        writeln!(out, "no incidents")?;
    }
    for inc in &incidents {
        print_incident(out, inc)?;
    }
    Ok(())
}

fn print_incident(out: &mut impl Write, inc: &Incident) -> Result<()> {
    let steps = match (inc.start_step, inc.end_step) {
        (Some(a), Some(b)) if a != b => format!(" steps {a}–{b}"),
        (Some(a), _) => format!(" step {a}"),
        _ => String::new(),
    };
    writeln!(
        out,
        "\n[{}] {} {} ({}){steps}",
        inc.state.as_str(),
        inc.severity.as_str(),
        inc.title,
        inc.id
    )?;
    for (i, c) in inc.causes.iter().enumerate() {
        writeln!(out, "  {}. {} — score {:.2}", i + 1, c.title, c.score)?;
        writeln!(out, "     why: {}", c.explanation)?;
        for f in &c.fixes {
            writeln!(out, "     try: {f}")?;
        }
        if i == 0 {
            for e in c.evidence.iter().take(5) {
                match e {
                    loupe_diagnose::Evidence::Series {
                        series,
                        step,
                        detail,
                        ..
                    } => writeln!(
                        out,
                        "     evidence: {}{} {detail}",
                        series.as_deref().unwrap_or(""),
                        step.map(|s| format!(" @ step {s}")).unwrap_or_default()
                    )?,
                    loupe_diagnose::Evidence::Log { seq, text, .. } => {
                        writeln!(out, "     evidence: log #{seq}: {text}")?
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads a run's series and logs through the API into replayable events.
fn load_run(client: &Client, run: &Run) -> Result<Scenario> {
    let id = run.id.clone();
    let mut sc = Scenario::default();
    sc.events.push(Event::RunStarted {
        info: RunInfo {
            id: id.clone(),
            project: Some(run.project.clone()),
            group: run.group.clone(),
            rank: run.rank,
            host: run.host.clone(),
            fp16: RunInfo::fp16_from_config(&run.config),
        },
        config: run.config.clone(),
    });
    for s in client.call(|c| c.run_series(&id))?.series {
        load_series(client, &id, &s.name, &mut sc)?;
    }
    let mut q = LogQuery {
        limit: Some(10_000),
        ..Default::default()
    };
    loop {
        let page = client.call(|c| c.logs(&id, &q))?;
        for r in page.records {
            sc.events.push(Event::Log {
                run: id.clone(),
                time: r.time,
                stream: r.stream,
                level: r.level,
                text: r.text,
            });
        }
        q.cursor = page.next_cursor;
        if q.cursor.is_none() {
            break;
        }
    }
    if let Some(end) = run.end_time
        && run.status != RunStatus::Running
    {
        sc.events.push(Event::RunEnded {
            run: id.clone(),
            status: run.status.as_str().to_string(),
            exit_code: run.exit_code,
            time: end,
        });
    }
    sc.sort();
    Ok(sc)
}

/// One series' points, page by page, in small chunks (so that replaying
/// in time order interleaves series).
fn load_series(client: &Client, run: &str, name: &str, sc: &mut Scenario) -> Result<()> {
    let mut q = DataQuery {
        name: name.to_string(),
        x: Some("time".into()),
        limit: Some(100_000),
        ..Default::default()
    };
    loop {
        let page = client.call(|c| c.series_data(run, &q))?;
        let times: Vec<f64> = match (&page.time_ns, &page.x) {
            (Some(ns), _) => ns.iter().map(|&t| t as f64 / 1e9).collect(),
            (None, XColumn::Seconds(s)) => s.clone(),
            (None, XColumn::Steps(_)) => bail!("series {name} of run {run}: no times"),
        };
        let steps: Vec<i64> = match &page.step {
            Some(s) => s
                .iter()
                .map(|s| s.unwrap_or(loupe_model::NO_STEP))
                .collect(),
            None => vec![loupe_model::NO_STEP; times.len()],
        };
        for ((t, v), st) in times
            .chunks(16)
            .zip(page.y.chunks(16))
            .zip(steps.chunks(16))
        {
            sc.events.push(Event::Points {
                run: run.to_string(),
                series: name.to_string(),
                steps: st.to_vec(),
                times: t.to_vec(),
                values: v.to_vec(),
            });
        }
        q.cursor = page.next_cursor().map(String::from);
        if q.cursor.is_none() {
            return Ok(());
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct DetectArgs {
    /// A CSV file of `timestamp,value` rows (ISO-8601 or Unix seconds; a
    /// header row is allowed). `-` reads standard input.
    pub file: PathBuf,
    /// Write the result here instead of standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// The series' name, which picks its detectors: training curves
    /// (`train/loss`, grad norms, learning rates, loss scales) get the run
    /// rules; any other name the general anomaly detector (`--set
    /// anomaly.method=discord` or `ensemble` picks other predictors).
    /// Default: the value column's header, else `value`.
    #[arg(long)]
    pub series: Option<String>,
    /// Print JSON lines (`{"timestamp","value","anomaly_score","label"}`)
    /// instead of CSV.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub settings: DiagnoseSettings,
}

pub fn detect(a: &DetectArgs) -> Result<()> {
    let cfg = a.settings.load()?;
    let input: Box<dyn BufRead> = if a.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&a.file)
                .with_context(|| format!("cannot open {}", a.file.display()))?,
        ))
    };
    let mut rows: Vec<String> = Vec::new();
    let mut header: Option<String> = None;
    let mut times = Vec::new();
    let mut values = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", a.file.display(), i + 1))?;
        let trimmed = line.trim_end_matches('\r');
        if trimmed.trim().is_empty() {
            continue;
        }
        let mut cols = trimmed.splitn(3, ',');
        let (ts, val) = match (cols.next(), cols.next()) {
            (Some(t), Some(v)) => (t.trim(), v.trim()),
            _ => bail!(
                "{}: line {}: expected `timestamp,value`, found {trimmed:?}",
                a.file.display(),
                i + 1
            ),
        };
        if i == 0 && header.is_none() && parse_value(val).is_none() && parse_time(ts).is_none() {
            header = Some(trimmed.to_string());
            continue;
        }
        let t = parse_time(ts).with_context(|| {
            format!(
                "{}: line {}: {ts:?} is not an ISO-8601 time or Unix seconds",
                a.file.display(),
                i + 1
            )
        })?;
        let v = parse_value(val).with_context(|| {
            format!(
                "{}: line {}: {val:?} is not a number (or NaN, inf)",
                a.file.display(),
                i + 1
            )
        })?;
        times.push(t);
        values.push(v);
        rows.push(trimmed.to_string());
    }
    let name = a
        .series
        .clone()
        .or_else(|| {
            header
                .as_deref()
                .and_then(|h| h.split(',').nth(1))
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "value".into());
    let scores = loupe_diagnose::offline::score_series(&name, &times, &values, &cfg);
    let mut out: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if a.json {
        for (((row, t), v), s) in rows.iter().zip(&times).zip(&values).zip(&scores) {
            let stamp = row.split(',').next().unwrap_or("").trim().trim_matches('"');
            let value = if v.is_finite() {
                serde_json::json!(v)
            } else {
                serde_json::json!(v.to_string())
            };
            writeln!(
                out,
                "{}",
                serde_json::json!({"timestamp": stamp, "time": t, "value": value,
                    "anomaly_score": (s.score * 1e4).round() / 1e4, "label": s.label})
            )?;
        }
    } else {
        writeln!(
            out,
            "{},anomaly_score,label",
            header.as_deref().unwrap_or("timestamp,value")
        )?;
        for (row, s) in rows.iter().zip(&scores) {
            writeln!(out, "{row},{:.4},{}", s.score, u8::from(s.label))?;
        }
    }
    out.flush()?;
    let n = scores.iter().filter(|s| s.label).count();
    eprintln!(
        "{} rows, {n} labelled anomalous (series {name:?})",
        rows.len()
    );
    Ok(())
}

fn parse_value(s: &str) -> Option<f64> {
    let s = s.trim().trim_matches('"');
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}

/// ISO-8601 (with or without an offset; without one it is UTC) or Unix
/// seconds (milliseconds when the number is too large to be seconds).
fn parse_time(s: &str) -> Option<f64> {
    let s = s.trim().trim_matches('"');
    if let Ok(x) = s.parse::<f64>() {
        if !x.is_finite() {
            return None;
        }
        return Some(if x.abs() > 1e11 { x / 1000.0 } else { x });
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp() as f64 + dt.timestamp_subsec_nanos() as f64 / 1e9);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            let u = dt.and_utc();
            return Some(u.timestamp() as f64 + u.timestamp_subsec_nanos() as f64 / 1e9);
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|dt| dt.and_utc().timestamp() as f64);
    }
    None
}
