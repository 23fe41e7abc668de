//! `loupe-bench`: the benchmarks behind the figures in ARCHITECTURE.md and the issue notes.

mod corpus;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Loupe's benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {}
}
