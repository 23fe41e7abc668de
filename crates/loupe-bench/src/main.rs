//! `loupe-bench`: the benchmarks behind the figures in ARCHITECTURE.md and the issue notes.

mod codecs;
mod corpus;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Loupe's benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bytes per value and decode speed of Gorilla, pcodec and zstd on the training corpus.
    Codecs(codecs::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Codecs(args) => codecs::run(&args),
    }
}
