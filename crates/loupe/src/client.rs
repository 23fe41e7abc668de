//! The CLI's side of the one HTTP client (`loupe-client`): where the server
//! is, and what its failures are called in a terminal.

use anyhow::{Result, anyhow};
use loupe_client::{ClientOptions, Error};

/// Where the server is and how to authenticate.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// The Loupe server.
    #[arg(
        long,
        env = "LOUPE_SERVER",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub server: String,
    /// A token (needed when the server is not on loopback).
    #[arg(long, env = "LOUPE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// A client of the server named on the command line.
pub struct Client {
    api: loupe_client::Client,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Self {
        Self {
            api: loupe_client::Client::new(
                &args.server,
                ClientOptions {
                    token: args.token.clone(),
                    ..Default::default()
                },
            ),
        }
    }

    /// One typed call (`|api| api.run(id)`), its failure in the CLI's words.
    pub fn call<T>(&self, f: impl FnOnce(&loupe_client::Client) -> Result<T, Error>) -> Result<T> {
        f(&self.api).map_err(|e| explain(self.api.server(), e))
    }
}

/// A failure as the CLI reports it: the server's own message for a refused
/// request (`run "x" not found`), without the API path it came from (that
/// is the CLI's business); what to check when it is not Loupe answering.
pub fn explain(server: &str, e: Error) -> anyhow::Error {
    let with = |m: &str| {
        if m.is_empty() {
            String::new()
        } else {
            format!(": {m}")
        }
    };
    match e {
        Error::Refused {
            status: 401,
            message,
            ..
        } => anyhow!(
            "the server wants a token (--token or LOUPE_TOKEN){}",
            with(&message)
        ),
        Error::Refused {
            status: 403,
            message,
            ..
        } => anyhow!("this token may not do that{}", with(&message)),
        // An error that is not in the API's shape: not a Loupe server.
        Error::Refused { status, code, .. } if code.is_empty() => not_loupe(server, status),
        Error::NotLoupe { status, .. } => not_loupe(server, status),
        e => anyhow!("{e}"),
    }
}

fn not_loupe(server: &str, status: u16) -> anyhow::Error {
    anyhow!("the answer from {server} ({status}) is not Loupe's JSON: is --server right?")
}
