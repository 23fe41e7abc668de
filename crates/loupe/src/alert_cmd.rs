//! `loupe rules check FILE` and `loupe silence add|list|rm`.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::client::ServerArgs;

#[derive(clap::Subcommand)]
pub enum RulesCmd {
    /// Validate an alert rules file; prints every problem and exits 1.
    Check {
        /// The rules file (TOML).
        file: std::path::PathBuf,
    },
}

/// Runs `loupe rules …`; returns the process exit code.
pub fn rules(cmd: RulesCmd) -> Result<i32> {
    match cmd {
        RulesCmd::Check { file } => match loupe_server::alerting::load_rules_file(&file) {
            Ok(cfg) => {
                let all = cfg.all_rules();
                let builtin = all.iter().filter(|r| r.builtin).count();
                println!(
                    "{}: OK — {} rules ({} built-in), {} channels",
                    file.display(),
                    all.len(),
                    builtin,
                    cfg.channels.len()
                );
                for r in &all {
                    println!("  {:<28} {}", r.name, r.spec.kind);
                }
                // Secrets come from the server's environment, which may not
                // be this shell's: a missing one is a warning here, and an
                // error when `loupe serve` starts.
                for c in &cfg.channels {
                    if let Err(e) = loupe_alert::channels::build(c) {
                        eprintln!("warning: {e}");
                    }
                }
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(1)
            }
        },
    }
}

#[derive(clap::Subcommand)]
pub enum SilenceCmd {
    /// Silence alerts whose labels match (`--match run=r-1 --match alertname=hot`).
    Add {
        /// LABEL=VALUE (`*` wildcards); repeat for more. `alertname` is the rule.
        #[arg(long = "match", required = true)]
        matchers: Vec<String>,
        /// How long, e.g. 2h.
        #[arg(long, default_value = "2h")]
        duration: String,
        /// Why, for whoever sees the silence later.
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List silences.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove a silence.
    Rm {
        /// The silence's id, as `loupe silence list` shows it.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn call(server: &ServerArgs, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{path}", server.server.trim_end_matches('/'));
    let auth = server.token.as_ref().map(|t| format!("Bearer {t}"));
    let resp = match (method, body) {
        ("POST", Some(b)) => {
            let mut r = agent.post(&url).header("Content-Type", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send(b.to_string().as_bytes())
        }
        ("DELETE", _) => {
            let mut r = agent.delete(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        _ => {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
    };
    let mut resp =
        resp.with_context(|| format!("cannot reach the Loupe server at {}", server.server))?;
    let status = resp.status();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let body: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .with_context(|| crate::client::not_json(&server.server, status))?
    };
    if !status.is_success() {
        bail!("{}", crate::client::refusal(&body, status));
    }
    Ok(body)
}

pub fn silence(cmd: SilenceCmd) -> Result<()> {
    match cmd {
        SilenceCmd::Add {
            matchers,
            duration,
            comment,
            server,
        } => {
            let mut m = serde_json::Map::new();
            for x in &matchers {
                let Some((k, v)) = x.split_once('=') else {
                    bail!("--match {x:?}: write LABEL=VALUE");
                };
                m.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
            }
            let who = std::env::var("USER").ok();
            let s = call(
                &server,
                "POST",
                "/api/v1/silences",
                Some(
                    serde_json::json!({"matchers": m, "duration": duration, "comment": comment, "created_by": who}),
                ),
            )?;
            println!("{}", s["id"].as_str().unwrap_or(""));
        }
        SilenceCmd::List { server, json } => {
            let v = call(&server, "GET", "/api/v1/silences", None)?;
            if json {
                println!("{v}");
                return Ok(());
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            for s in v["silences"].as_array().into_iter().flatten() {
                let ends = s["ends"].as_f64().unwrap_or(0.0);
                let state = if ends <= now { "expired" } else { "active" };
                println!(
                    "{}  {state:<8} {}  ends in {:.0}s  {}",
                    s["id"].as_str().unwrap_or(""),
                    s["matchers"],
                    (ends - now).max(0.0),
                    s["comment"].as_str().unwrap_or("")
                );
            }
        }
        SilenceCmd::Rm { id, server } => {
            call(&server, "DELETE", &format!("/api/v1/silences/{id}"), None)?;
            println!("removed {id}");
        }
    }
    Ok(())
}
