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

use std::io::IsTerminal;
use std::process::ExitCode;

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
    /// Start a server and play a simulated 8-rank training job, a baseline
    /// run and a chat service with injected faults; print the incidents
    /// diagnosis finds, with links to the UI.
    Demo(demo::DemoArgs),
    /// Serve the HTTP API over the embedded store.
    Serve(Box<serve_cmd::ServeArgs>),
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

fn main() -> ExitCode {
    // Usage errors exit 2 with clap's message; `--help` and `--version` 0.
    let cli = Cli::parse();
    let to_terminal = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOUPE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(to_terminal)
        .init();
    if cli.cmd.only_prints() {
        exit_quietly_on_closed_pipe();
    }
    match dispatch(cli.cmd) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line, no backtrace: `loupe: what failed: why`.
            eprintln!("loupe: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Cmd {
    /// Commands that only print what they read: a reader that goes away
    /// (`loupe runs | head`) ends them quietly. Not the long-running ones
    /// (`run` keeps draining its child's output when ours is closed).
    fn only_prints(&self) -> bool {
        !matches!(
            self,
            Cmd::Demo(_) | Cmd::Serve(_) | Cmd::Agent(_) | Cmd::Run(_) | Cmd::Sync(_)
        )
    }
}

/// Rust ignores SIGPIPE, so a write to a closed pipe is an error that
/// `println!` turns into a panic; with the default action the process ends
/// at that write, silently, as `ls | head` does.
fn exit_quietly_on_closed_pipe() {
    // SAFETY: resetting a signal's disposition to its default, before any
    // thread starts; no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs the command; the exit code (0 on success; `loupe run` passes its
/// command's through).
fn dispatch(cmd: Cmd) -> anyhow::Result<u8> {
    let done = |r: anyhow::Result<()>| r.map(|()| 0);
    match cmd {
        Cmd::Demo(args) => done(demo::run(&args)),
        Cmd::Serve(args) => done(serve_cmd::run(*args)),
        Cmd::Diagnose(args) => done(diagnose_cmd::diagnose(&args)),
        Cmd::Detect(args) => done(diagnose_cmd::detect(&args)),
        Cmd::Runs(args) => done(cli_runs::runs(args)),
        Cmd::Show(args) => done(cli_runs::show(args)),
        Cmd::Logs(args) => cli_runs::logs(args),
        Cmd::Export(args) => done(cli_runs::export(args)),
        Cmd::Token(cmd) => done(token_cmd::run(cmd)),
        Cmd::Store(cmd) => done(store_cmd::run(cmd)),
        Cmd::Agent(args) => done(agent_cmd::run(args)),
        Cmd::Run(args) => Ok(exit_byte(run_cmd::run(args)?)),
        Cmd::Sync(args) => Ok(exit_byte(sync_cmd::run(args)?)),
        Cmd::Rules(cmd) => Ok(exit_byte(alert_cmd::rules(cmd)?)),
        Cmd::Silence(cmd) => done(alert_cmd::silence(cmd)),
    }
}

/// An exit status as the shell sees it (0–255).
fn exit_byte(code: i32) -> u8 {
    u8::try_from(code.rem_euclid(256)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every command, flag and argument says what it is in `--help`.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "loupe", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }

    #[test]
    fn exit_codes_wrap_as_the_shell_sees_them() {
        assert_eq!(exit_byte(0), 0);
        assert_eq!(exit_byte(137), 137);
        assert_eq!(exit_byte(256), 0);
        assert_eq!(exit_byte(-1), 255);
    }
}
