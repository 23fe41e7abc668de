//! `loupe token …`: create, list and revoke API tokens in a data directory.

use std::path::PathBuf;

use anyhow::{Context, Result};
use loupe_model::Role;

#[derive(clap::Subcommand)]
pub enum TokenCmd {
    /// Create a token; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        project: String,
        /// ingest, read or admin.
        #[arg(long)]
        role: Role,
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// List a project's tokens (never their secrets).
    List {
        #[arg(long)]
        project: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Revoke a token by its id.
    Revoke {
        id: String,
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
        TokenCmd::List { project, data } => {
            let m = meta(data)?;
            for t in m.list_tokens(&project)? {
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
