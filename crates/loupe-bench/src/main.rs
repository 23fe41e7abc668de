//! `loupe-bench`: the benchmarks behind the figures in ARCHITECTURE.md and the issue notes.

mod codecs;
mod corpus;
mod diagnose_benches;
mod diagnose_real;
mod engine_benches;
mod http_benches;
mod spool_bench;

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
    /// HTTP: durable ingest of JSON columnar batches into a real `loupe serve`.
    HttpIngest(http_benches::HttpIngestArgs),
    /// HTTP: M4 series queries (width 2000) on 1M and 10M points.
    HttpQuery(http_benches::HttpQueryArgs),
    /// HTTP: the runs table sorted by a summary statistic over 10k runs.
    RunsList(http_benches::RunsListArgs),
    /// HTTP: full-text search of 1M log lines in one run.
    LogSearch(http_benches::LogSearchArgs),
    /// HTTP: the server's resident memory, idle and after seeding 10k runs.
    IdleRss(http_benches::IdleRssArgs),
    /// HTTP: paging through a run's million series, and RSS after that and after a burst of large bodies.
    SeriesList(http_benches::SeriesListArgs),
    /// HTTP: every HTTP benchmark in turn, with a summary.
    HttpAll(http_benches::HttpAllArgs),
    /// Diagnosis: detector throughput on one core and the fault-injection suite's quality.
    Diagnose(diagnose_benches::DiagnoseArgs),
    /// Diagnosis on real failure and healthy logs: per-family tables by split, and the misses.
    DiagnoseReal(diagnose_real::DiagnoseRealArgs),
    /// HTTP: from the acknowledgement of an anomalous point to its incident in the API.
    DiagnoseDelay(http_benches::DiagnoseDelayArgs),
    /// HTTP: a long run of mixed ingest and queries at half capacity: RSS flat, no error, p99 stable.
    Soak(http_benches::SoakArgs),
    /// HTTP: `loupe serve --scrape-config` scraping 1,000 targets × 1,000 series against Debian's Prometheus: CPU and bytes per sample.
    Scrape(http_benches::ScrapeArgs),
    /// Reading a large offline spool: `loupe_agent::spool` against the hand-written reader it replaced.
    Spool(spool_bench::SpoolArgs),
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
        Cmd::HttpIngest(args) => http_benches::http_ingest(&args).map(drop),
        Cmd::HttpQuery(args) => http_benches::http_query(&args).map(drop),
        Cmd::RunsList(args) => http_benches::runs_list(&args).map(drop),
        Cmd::LogSearch(args) => http_benches::log_search(&args).map(drop),
        Cmd::IdleRss(args) => http_benches::idle_rss(&args).map(drop),
        Cmd::SeriesList(args) => http_benches::series_list(&args).map(drop),
        Cmd::HttpAll(args) => http_benches::http_all(&args),
        Cmd::Diagnose(args) => diagnose_benches::run(&args),
        Cmd::DiagnoseReal(args) => diagnose_real::run(&args),
        Cmd::DiagnoseDelay(args) => http_benches::diagnose_delay(&args).map(drop),
        Cmd::Scrape(args) => http_benches::scrape(&args).map(drop),
        Cmd::Spool(args) => spool_bench::run(&args),
        Cmd::Soak(args) => http_benches::soak(&args).map(drop),
    }
}
