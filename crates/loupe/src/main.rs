//! The `loupe` command line.

mod cli_runs;
mod client;
mod demo;
mod serve_cmd;
mod store_cmd;
mod token_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loupe",
    version,
    about = "Observability for AI training and serving"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show what Loupe's store does on a simulated training run and GPU node.
    Demo(demo::DemoArgs),
    /// Serve the HTTP API over the embedded store.
    Serve(serve_cmd::ServeArgs),
    /// List runs.
    Runs(cli_runs::RunsArgs),
    /// Show one run: its header and series.
    Show(cli_runs::ShowArgs),
    /// Print a run's logs.
    Logs(cli_runs::LogsArgs),
    /// Export every point of a run, exactly.
    Export(cli_runs::ExportArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token_cmd::TokenCmd),
    /// Inspect and check a data directory of the embedded store.
    #[command(subcommand)]
    Store(store_cmd::StoreCmd),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOUPE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Serve(args) => serve_cmd::run(args),
        Cmd::Runs(args) => cli_runs::runs(args),
        Cmd::Show(args) => cli_runs::show(args),
        Cmd::Logs(args) => cli_runs::logs(args),
        Cmd::Export(args) => cli_runs::export(args),
        Cmd::Token(cmd) => token_cmd::run(cmd),
        Cmd::Store(cmd) => store_cmd::run(cmd),
    }
}
