//! `loupe rules check FILE` and `loupe silence add|list|rm`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use loupe_client::api::NewSilence;

use crate::client::{Client, ServerArgs};

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

pub fn silence(cmd: SilenceCmd) -> Result<()> {
    match cmd {
        SilenceCmd::Add {
            matchers,
            duration,
            comment,
            server,
        } => {
            let mut m = BTreeMap::new();
            for x in &matchers {
                let Some((k, v)) = x.split_once('=') else {
                    bail!("--match {x:?}: write LABEL=VALUE");
                };
                m.insert(k.trim().to_string(), v.trim().to_string());
            }
            let new = NewSilence {
                matchers: m,
                duration: Some(duration),
                comment,
                created_by: std::env::var("USER").ok(),
                ..Default::default()
            };
            let s = Client::new(&server).call(|api| api.create_silence(&new))?;
            println!("{}", s.id);
        }
        SilenceCmd::List { server, json } => {
            let v = Client::new(&server).call(|api| api.silences())?;
            if json {
                println!("{}", serde_json::to_string(&v)?);
                return Ok(());
            }
            let now = loupe_model::clock::now_s();
            for s in &v.silences {
                let state = if s.ends <= now { "expired" } else { "active" };
                println!(
                    "{}  {state:<8} {}  ends in {:.0}s  {}",
                    s.id,
                    serde_json::to_string(&s.matchers)?,
                    (s.ends - now).max(0.0),
                    s.comment
                );
            }
        }
        SilenceCmd::Rm { id, server } => {
            Client::new(&server).call(|api| api.delete_silence(&id))?;
            println!("removed {id}");
        }
    }
    Ok(())
}
