//! `loupe store …`: look inside a data directory, check it, repair it.

mod check;

use std::path::{Path, PathBuf};

use anyhow::Result;
use loupe_model::SeriesMatcher;
use loupe_tsdb::{Tsdb, TsdbOptions};

#[derive(clap::Subcommand)]
pub enum StoreCmd {
    /// List the series with their point counts and last values.
    Inspect {
        /// The data directory.
        dir: PathBuf,
        /// Only series whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Check every file of a data directory without changing it: WAL frames
    /// and records, every segment page (checksum and decoding), the manifest,
    /// and each SQLite file (`PRAGMA integrity_check`). Exits non-zero naming
    /// each problem. Stop the server first (the directory is locked).
    Verify {
        /// The data directory (`loupe serve --data`), or its `tsdb` store.
        dir: PathBuf,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Quarantine damaged time-series data so the rest serves: unreadable
    /// segments and damaged chunks move to `tsdb/quarantine/`, with a note
    /// of what was lost. Asks first. Stop the server first.
    Repair {
        /// The data directory (`loupe serve --data`), or its `tsdb` store.
        dir: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

fn open(dir: &Path) -> Result<Tsdb> {
    let layout = check::layout(dir)?;
    Ok(Tsdb::open(
        &layout.tsdb,
        TsdbOptions {
            background_flush: false,
            ..Default::default()
        },
    )?)
}

pub fn run(cmd: StoreCmd) -> Result<()> {
    match cmd {
        StoreCmd::Inspect { dir, prefix } => {
            let db = open(&dir)?;
            let st = db.stats();
            println!(
                "{} series, {} segments ({:.2} MB), {} points in the head",
                st.series,
                st.segments,
                st.segment_bytes as f64 / 1e6,
                st.head_points
            );
            let m = match prefix {
                Some(p) => SeriesMatcher::any().name_prefix(p),
                None => SeriesMatcher::any(),
            };
            for info in db.series(&m) {
                if let Some(s) = db.summary(&info.key)? {
                    println!(
                        "{:<60} {:>10} points  last {}",
                        crate::cli_runs::escape_controls(&info.key.to_string()),
                        s.count,
                        s.last
                    );
                }
            }
            Ok(())
        }
        StoreCmd::Verify { dir, json } => check::verify(&dir, json),
        StoreCmd::Repair { dir, yes } => check::repair(&dir, yes),
    }
}
