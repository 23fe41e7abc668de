//! A small blocking client of Loupe's HTTP API for the CLI commands.

use anyhow::{Context, Result, bail};
use serde_json::Value;

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

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: args.server.trim_end_matches('/').to_string(),
            token: args.token.clone(),
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` with query pairs; the JSON body, or the API's error message.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        let mut req = self.agent.get(&self.url(path));
        for (k, v) in query {
            req = req.query(*k, v);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req
            .call()
            .with_context(|| format!("cannot reach the Loupe server at {}", self.base))?;
        let status = resp.status();
        let body: Value = resp
            .body_mut()
            .read_json()
            .with_context(|| format!("{path}: the server's answer is not JSON"))?;
        if !status.is_success() {
            let msg = body["error"]["message"].as_str().unwrap_or("(no message)");
            bail!("{path}: {status}: {msg}");
        }
        Ok(body)
    }
}
