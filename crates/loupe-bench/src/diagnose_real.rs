//! `loupe-bench diagnose-real`: diagnosis judged on data nobody here wrote.
//! The real-world log corpus (`crates/loupe-diagnose/corpus/logs/`) replayed
//! in process through the diagnoser, with the per-family × split tables (in
//! markdown, for docs/diagnosis.md) and the misses; then the real training
//! curves (`corpus/curves/`).

use std::path::PathBuf;

use loupe_diagnose::DiagnoseConfig;
use loupe_diagnose::corpus::{self, Targets};
use loupe_diagnose::curves;

#[derive(clap::Args)]
pub struct DiagnoseRealArgs {
    /// The corpus directory (holds `logs/`); the source tree's by default.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Exit non-zero when a figure is under issue 12's target.
    #[arg(long)]
    pub check: bool,
}

pub fn run(a: &DiagnoseRealArgs) -> anyhow::Result<()> {
    let dir = a.corpus.clone().unwrap_or_else(corpus::default_dir);
    let cases = corpus::load(&dir)?;
    let started = std::time::Instant::now();
    let report = corpus::evaluate(&cases, &DiagnoseConfig::default());
    let lines: usize = cases.iter().map(|c| c.lines.len()).sum();
    println!("## Real failure logs\n");
    println!(
        "{} cases ({lines} lines) from {}, replayed in {:.2} s.\n",
        cases.len(),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", report.markdown());
    let curve_list = curves::load(&dir.join("curves"))?;
    let curve_report = curves::evaluate(&curve_list, &DiagnoseConfig::default());
    println!("## Real training curves\n");
    println!("{}", curve_report.markdown());
    let mut below = report.below(&Targets::default());
    below.extend(curve_report.below());
    if below.is_empty() {
        println!("All targets hold on both halves.");
    } else {
        println!("Under target:\n");
        for b in &below {
            println!("- {b}");
        }
        if a.check {
            anyhow::bail!("{} figure(s) under target", below.len());
        }
    }
    Ok(())
}
