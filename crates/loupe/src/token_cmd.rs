//! `loupe token …`: create, list and revoke API tokens in a data directory.

use std::path::PathBuf;

use anyhow::{Context, Result};
use loupe_model::Role;

#[derive(clap::Subcommand)]
pub enum TokenCmd {
    /// Create a token; it is printed once and stored only as a hash.
    Create {
        /// The project the token is for.
        #[arg(long)]
        project: String,
        /// ingest, read or admin.
        #[arg(long)]
        role: Role,
        /// A note to tell tokens apart (`ci`, `alice's laptop`).
        #[arg(long, default_value = "")]
        label: String,
        /// The server's data directory (default: as `loupe serve`).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// List a project's tokens (never their secrets).
    List {
        /// The project whose tokens to list.
        #[arg(long)]
        project: String,
        /// The server's data directory (default: as `loupe serve`).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke {
        /// The token's id, as `loupe token list` shows it.
        id: String,
        /// The server's data directory (default: as `loupe serve`).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

fn meta(data: Option<PathBuf>) -> Result<loupe_meta::MetaStore> {
    let dir = data.unwrap_or_else(crate::serve_cmd::default_data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(loupe_meta::MetaStore::open(
        &dir.join("meta.sqlite"),
        Default::default(),
    )?)
}

pub fn run(cmd: TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Create {
            project,
            role,
            label,
            data,
        } => {
            let m = meta(data)?;
            let (info, secret) = m.create_token(&project, role, &label)?;
            eprintln!(
                "token {} for project {:?}, role {}: shown once, store it now",
                info.id,
                info.project,
                role.as_str()
            );
            println!("{secret}");
        }
        TokenCmd::List {
            project,
            data,
            json,
        } => {
            let m = meta(data)?;
            let tokens = m.list_tokens(&project)?;
            if json {
                let list: Vec<serde_json::Value> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({"id": t.id, "role": t.role.as_str(), "label": t.label,
                            "created": t.created})
                    })
                    .collect();
                println!("{}", serde_json::json!({ "tokens": list }));
                return Ok(());
            }
            for t in tokens {
                println!(
                    "{:<16} {:<8} {:<20} created {:.0}",
                    t.id,
                    t.role.as_str(),
                    t.label,
                    t.created
                );
            }
        }
        TokenCmd::Revoke { id, data } => {
            let m = meta(data)?;
            m.revoke_token(&id)?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
