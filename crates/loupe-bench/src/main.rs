//! `loupe-bench`: the benchmarks behind the figures in ARCHITECTURE.md and the issue notes.

mod codecs;
mod corpus;
mod engine_benches;

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
    /// Bytes on disk per point after flush, against Prometheus' TSDB on the same values.
    Storage(engine_benches::StorageArgs),
    /// Durable in-process ingest throughput with group commit.
    Ingest(engine_benches::IngestArgs),
    /// M4 read latency on long series (1M and 10M points side by side).
    M4(engine_benches::M4Args),
    /// Reopen time after a crash with all data only in the WAL.
    Reopen(engine_benches::ReopenArgs),
    /// Resident memory per idle series.
    Memory(engine_benches::MemoryArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Codecs(args) => codecs::run(&args),
        Cmd::Storage(args) => engine_benches::storage(&args),
        Cmd::Ingest(args) => engine_benches::ingest(&args),
        Cmd::M4(args) => engine_benches::m4(&args),
        Cmd::Reopen(args) => engine_benches::reopen(&args),
        Cmd::Memory(args) => engine_benches::memory(&args),
    }
}
