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
            .with_context(|| not_json(&self.base, status))?;
        if !status.is_success() {
            bail!("{}", refusal(&body, status));
        }
        Ok(body)
    }
}

/// The server's own message for a refused request (`run "x" not found`),
/// without the API path it came from: that is the CLI's business.
pub fn refusal(body: &Value, status: ureq::http::StatusCode) -> String {
    let msg = body["error"]["message"].as_str();
    match (status.as_u16(), msg) {
        (401, m) => format!(
            "the server wants a token (--token or LOUPE_TOKEN){}",
            m.map(|m| format!(": {m}")).unwrap_or_default()
        ),
        (403, m) => format!(
            "this token may not do that{}",
            m.map(|m| format!(": {m}")).unwrap_or_default()
        ),
        (_, Some(m)) => m.to_string(),
        (code, None) => format!("the server answered {code}"),
    }
}

/// What to say when a server's answer is not JSON: it is probably not a
/// Loupe server.
pub fn not_json(base: &str, status: ureq::http::StatusCode) -> String {
    format!(
        "the answer from {base} ({}) is not Loupe's JSON: is --server right?",
        status.as_u16()
    )
}
