//! The `loupe` command line.

mod agent_cmd;
mod alert_cmd;
mod cli_runs;
mod client;
mod demo;
mod diagnose_cmd;
mod run_cmd;
mod serve_cmd;
mod store_cmd;
mod sync_cmd;
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
    /// Collect this host's CPU, memory, disk, network and GPU metrics and
    /// send them to the server (buffered on disk while it is away).
    Agent(agent_cmd::AgentArgs),
    /// Run a command as a Loupe run: its output, metrics found in it, and
    /// its process, host and GPU figures (`loupe run -- python train.py`).
    Run(run_cmd::RunArgs),
    /// Upload what run directories hold that the server has not taken yet.
    Sync(sync_cmd::SyncArgs),
    /// Show a run's incidents (causes, evidence, fixes) and health, or
    /// diagnose its stored data again with other settings (`--replay`).
    Diagnose(diagnose_cmd::DiagnoseArgs),
    /// Score a `timestamp,value` CSV with the streaming detectors: the
    /// rows come back with `anomaly_score` and `label` columns.
    Detect(diagnose_cmd::DetectArgs),
    /// Check an alert rules file (`loupe rules check FILE`).
    #[command(subcommand)]
    Rules(alert_cmd::RulesCmd),
    /// Silence alerts for a while: add, list, rm.
    #[command(subcommand)]
    Silence(alert_cmd::SilenceCmd),
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
        Cmd::Diagnose(args) => diagnose_cmd::diagnose(&args),
        Cmd::Detect(args) => diagnose_cmd::detect(&args),
        Cmd::Runs(args) => cli_runs::runs(args),
        Cmd::Show(args) => cli_runs::show(args),
        Cmd::Logs(args) => cli_runs::logs(args),
        Cmd::Export(args) => cli_runs::export(args),
        Cmd::Token(cmd) => token_cmd::run(cmd),
        Cmd::Store(cmd) => store_cmd::run(cmd),
        Cmd::Agent(args) => agent_cmd::run(args),
        Cmd::Run(args) => std::process::exit(run_cmd::run(args)?),
        Cmd::Sync(args) => std::process::exit(sync_cmd::run(args)?),
        Cmd::Rules(cmd) => std::process::exit(alert_cmd::rules(cmd)?),
        Cmd::Silence(cmd) => alert_cmd::silence(cmd),
    }
}
