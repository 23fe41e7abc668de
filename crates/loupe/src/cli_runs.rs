//! `loupe runs`, `loupe show`, `loupe logs`, `loupe export`: the API from a terminal.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use loupe_client::api::{DataQuery, LogQuery, RunListQuery};
use loupe_model::nonfinite::to_json;
use loupe_model::{run_url, units};
use serde_json::Value;

use crate::client::{Client, ServerArgs};

#[derive(clap::Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only the runs of this project.
    #[arg(long)]
    pub project: Option<String>,
    /// running, finished, failed, crashed, killed, lost (comma-separated).
    #[arg(long)]
    pub status: Option<String>,
    /// Only runs with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Text in the name, id or group.
    #[arg(short, long)]
    pub q: Option<String>,
    /// e.g. `-start_time`, `name`, `summary.train/loss.last`.
    #[arg(long)]
    pub sort: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `2026-12-07 13:40:14.123` (UTC), for log lines.
fn utc_time(secs: f64) -> String {
    let ms = (secs * 1000.0).round() as i64;
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| format!("{secs:.3}"))
}

/// A stored value of the series `series` as a person reads it: about four
/// significant digits in the unit the series' name implies (`0.4871`,
/// `48.04k/s`, `39.12 GiB`); NaN and ±Inf as the API writes them.
pub fn value_text(v: &Value, series: &str) -> String {
    match v {
        Value::Number(n) => units::series_value(n.as_f64().unwrap_or(f64::NAN), series),
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `s` with every control character (C0, DEL, C1: ESC starts terminal
/// escape sequences, CR rewrites a line) written as a visible `\u{…}`, so
/// stored text can never drive the terminal it is printed to.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A JSON string field for a terminal table: escaped, or "" when absent.
fn text(v: &Value) -> std::borrow::Cow<'_, str> {
    escape_controls(v.as_str().unwrap_or(""))
}

use loupe_model::clock::now_s as now;

pub fn runs(a: RunsArgs) -> Result<()> {
    let c = Client::new(&a.server);
    let q = RunListQuery {
        project: a.project,
        status: a.status,
        tag: a.tag,
        q: a.q,
        sort: a.sort,
        limit: Some(a.limit),
        cursor: None,
    };
    let page = c.call(|api| api.list_runs(&q))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    println!(
        "{:<10} {:<24} {:<10} {:<12} {:>8} {:<20}",
        "ID", "NAME", "STATUS", "PROJECT", "AGE", "LOSS (last)"
    );
    for r in &page.runs {
        let loss = r
            .summary
            .iter()
            .find(|(k, _)| k.ends_with("loss"))
            .map(|(k, v)| format!("{}={}", escape_controls(k), value_text(&to_json(v.last), k)))
            .unwrap_or_default();
        println!(
            "{:<10} {:<24} {:<10} {:<12} {:>8} {:<20}",
            escape_controls(&r.id),
            escape_controls(&r.name)
                .chars()
                .take(24)
                .collect::<String>(),
            r.status.as_str(),
            escape_controls(&r.project),
            age(now() - r.start_time),
            loss
        );
    }
    if page.runs.is_empty() {
        println!("(no runs)");
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The run's id.
    pub run: String,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn show(a: ShowArgs) -> Result<()> {
    let c = Client::new(&a.server);
    let run = c.call(|api| api.run(&a.run))?;
    let series = c.call(|api| api.run_series(&a.run))?.series;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"run": run, "series": series}))?
        );
        return Ok(());
    }
    // The fields below are printed by name, as the API spells them.
    let run = serde_json::to_value(&run)?;
    println!(
        "{} ({})  {}  project {}",
        text(&run["name"]),
        text(&run["id"]),
        text(&run["status"]),
        text(&run["project"])
    );
    println!("  {:<11} {}", "url", run_url(&a.server.server, &a.run));
    for k in [
        "group",
        "host",
        "command",
        "git_commit",
        "rank",
        "world_size",
        "exit_code",
    ] {
        if !run[k].is_null() {
            println!("  {k:<11} {}", escape_controls(&run[k].to_string()));
        }
    }
    if run["config"].as_object().is_some_and(|m| !m.is_empty()) {
        println!(
            "  config      {}",
            escape_controls(&run["config"].to_string())
        );
    }
    println!(
        "\n{:<36} {:>10} {:>10} {:>14} {:>14} {:>14}",
        "SERIES", "POINTS", "LAST STEP", "LAST", "MIN", "MAX"
    );
    for s in &series {
        println!(
            "{:<36} {:>10} {:>10} {:>14} {:>14} {:>14}",
            escape_controls(&s.name),
            s.count,
            serde_json::to_string(&s.last_step)?,
            value_text(&to_json(s.last), &s.name),
            value_text(&to_json(s.min), &s.name),
            value_text(&to_json(s.max), &s.name)
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The run's id.
    pub run: String,
    /// Search the lines' text: every word must occur, inside words too
    /// (`OutOfMemory`); `"…"` for text with spaces. Exits 1 when nothing
    /// matches.
    #[arg(short, long)]
    pub q: Option<String>,
    /// Minimum level.
    #[arg(long)]
    pub level: Option<String>,
    /// Keep printing new lines.
    #[arg(short, long)]
    pub follow: bool,
    /// Print JSON lines for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Prints the lines; exit code 1 when a search (`-q`) matched nothing, as
/// `grep` does.
pub fn logs(a: LogsArgs) -> Result<u8> {
    let c = Client::new(&a.server);
    let mut cursor: Option<String> = None;
    let mut out = std::io::stdout().lock();
    let mut shown = 0usize;
    loop {
        let q = LogQuery {
            q: a.q.clone(),
            level: a.level.clone(),
            limit: Some(1000),
            cursor: cursor.clone(),
            ..Default::default()
        };
        let page = c.call(|api| api.logs(&a.run, &q))?;
        for r in &page.records {
            shown += 1;
            // Lines after the last one shown, for the next page or the tail.
            cursor = Some(r.seq.to_string());
            if a.json {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            } else {
                writeln!(
                    out,
                    "{} {:<6} {:<8} {}",
                    utc_time(r.time),
                    r.stream.as_str(),
                    r.level.as_str(),
                    r.text
                )?;
            }
        }
        if page.next_cursor.is_none() {
            if !a.follow {
                out.flush()?;
                return Ok(match (&a.q, shown) {
                    (Some(q), 0) => {
                        eprintln!("loupe logs: no line of run {} matches {q:?}", a.run);
                        1
                    }
                    _ => 0,
                });
            }
            out.flush()?;
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The run's id.
    pub run: String,
    /// csv or jsonl.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Write here instead of standard output.
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
}

/// Writes every point of every series of a run, exactly: values are printed
/// in their shortest form that parses back to the same f64.
pub fn export(a: ExportArgs) -> Result<()> {
    if a.format != "csv" && a.format != "jsonl" {
        bail!("--format {:?}: expected csv or jsonl", a.format);
    }
    let c = Client::new(&a.server);
    let series = c.call(|api| api.run_series(&a.run))?.series;
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if a.format == "csv" {
        writeln!(out, "series,step,time_ns,value")?;
    }
    for s in &series {
        let name = &s.name;
        // Stepped series page by step (with times); others by time.
        let stepped = s.last_step.is_some();
        let mut cursor: Option<String> = None;
        loop {
            let q = DataQuery {
                name: name.clone(),
                x: Some(if stepped { "step" } else { "time" }.into()),
                limit: Some(100_000),
                cursor: cursor.clone(),
                ..Default::default()
            };
            let page = c.call(|api| api.series_data(&a.run, &q))?;
            let (Some(steps), Some(times)) = (&page.step, &page.time_ns) else {
                bail!("the server's page for {name} lacks step/time columns (too old a server?)");
            };
            if steps.len() != page.y.len() || times.len() != page.y.len() {
                bail!("the server's page for {name} lacks step/time columns (too old a server?)");
            }
            for ((st, t), &y) in steps.iter().zip(times).zip(&page.y) {
                let step = st.map(|s| s.to_string()).unwrap_or_default();
                // Shortest form that reads back to the same f64; NaN and ±∞ by name.
                let y = to_json(y);
                let value = match &y {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if a.format == "csv" {
                    let quoted = if name.contains(',') || name.contains('"') {
                        format!("\"{}\"", name.replace('"', "\"\""))
                    } else {
                        name.clone()
                    };
                    writeln!(out, "{quoted},{step},{t},{value}")?;
                } else {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"series": name, "step": st, "time_ns": t, "value": y})
                    )?;
                }
            }
            match page.next_cursor() {
                Some(n) => cursor = Some(n.to_string()),
                None => break,
            }
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape_controls("train/loss"), "train/loss");
        let shown = escape_controls("loss\x1b[2J\r\u{9b}31m\u{7f}é");
        assert_eq!(shown, "loss\\u{1b}[2J\\u{d}\\u{9b}31m\\u{7f}é");
        assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn values_read_in_their_series_unit() {
        let f = |v: Value, name: &str| value_text(&v, name);
        assert_eq!(f(serde_json::json!(0.4871), "train/loss"), "0.4871");
        assert_eq!(
            f(serde_json::json!(3.4224626523975448), "train/loss"),
            "3.422"
        );
        assert_eq!(
            f(serde_json::json!(48035.3663), "train/tokens_per_s"),
            "48.04k/s"
        );
        assert_eq!(
            f(serde_json::json!(4.2e10), "gpu/0/memory_used_bytes"),
            "39.12 GiB"
        );
        assert_eq!(f(serde_json::json!(2.0), "train/loss"), "2");
        assert_eq!(f(serde_json::json!("NaN"), "train/loss"), "NaN");
        assert_eq!(f(serde_json::json!(-0.00012), "train/loss"), "-1.2e-4");
        assert_eq!(f(Value::Null, "train/loss"), "");
    }
}
