//! `loupe store …`: look inside a data directory.

use std::path::PathBuf;

use anyhow::{Result, bail};
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
    /// Check every checksum in the store; exits non-zero on damage.
    Verify {
        /// The data directory.
        dir: PathBuf,
    },
}

fn open(dir: &PathBuf) -> Result<Tsdb> {
    if !dir.join("MANIFEST").exists() {
        bail!(
            "{} is not a Loupe data directory (no MANIFEST)",
            dir.display()
        );
    }
    Ok(Tsdb::open(
        dir,
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
                        info.key.to_string(),
                        s.count,
                        s.last
                    );
                }
            }
            Ok(())
        }
        StoreCmd::Verify { dir } => {
            let db = open(&dir)?;
            let mut damage: Vec<String> = db
                .open_report()
                .damaged
                .iter()
                .map(|e| e.to_string())
                .collect();
            damage.extend(db.verify().iter().map(|e| e.to_string()));
            if damage.is_empty() {
                println!("ok: every checksum matches ({} series)", db.series_count());
                Ok(())
            } else {
                for d in &damage {
                    eprintln!("damaged: {d}");
                }
                bail!("{} problems found", damage.len())
            }
        }
    }
}
