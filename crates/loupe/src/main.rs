//! The `loupe` command line.

mod demo;
mod store_cmd;

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
    /// Inspect and check a data directory of the embedded store.
    #[command(subcommand)]
    Store(store_cmd::StoreCmd),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Store(cmd) => store_cmd::run(cmd),
    }
}
