//! Webhooks: Loupe's JSON payload or a Slack-compatible body, optionally
//! signed with HMAC-SHA256 so the receiver can tell the message is ours.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Channel, DeliveryError, secret};
use crate::duration;
use crate::engine::Notification;
use crate::error::RulesError;
use crate::rules::{WebhookConfig, WebhookFormat};

pub struct Webhook {
    name: String,
    url: String,
    format: WebhookFormat,
    key: Option<Vec<u8>>,
    headers: BTreeMap<String, String>,
    agent: ureq::Agent,
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`: the value of
/// the `X-Loupe-Signature` header.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The body a webhook receives.
pub fn body(n: &Notification, format: WebhookFormat) -> serde_json::Value {
    match format {
        WebhookFormat::Json => serde_json::json!({
            "id": n.id,
            "status": n.status,
            "title": n.title,
            "group": n.group,
            "alerts": n.alerts,
            "created": n.created,
            "text": n.text(),
        }),
        WebhookFormat::Slack => {
            let mut lines = vec![format!("*{}*", n.title)];
            for a in &n.alerts {
                let links: Vec<String> = a
                    .links
                    .iter()
                    .map(|l| format!("<{}|{}>", l.url, l.name))
                    .collect();
                lines.push(format!(
                    "• `{}` {} ({}): {} {}",
                    a.state.as_str(),
                    a.alert,
                    a.severity.as_str(),
                    a.summary,
                    links.join(" ")
                ));
            }
            let text = lines.join("\n");
            serde_json::json!({
                "text": text,
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            })
        }
    }
}

impl Webhook {
    pub fn new(cfg: &WebhookConfig) -> Result<Self, RulesError> {
        let key = secret(
            &cfg.secret,
            &cfg.secret_env,
            &format!("channel {:?}: field `secret_env`", cfg.name),
        )?
        .map(String::into_bytes);
        let url = match &cfg.url_env {
            None => cfg.url.clone(),
            Some(var) => {
                let u = std::env::var(var).map_err(|_| {
                    RulesError::one(format!(
                        "channel {:?}: field `url_env`: environment variable {var} is not set",
                        cfg.name
                    ))
                })?;
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    // The value is not echoed: it may be a credential.
                    return Err(RulesError::one(format!(
                        "channel {:?}: field `url_env`: {var} does not hold an http(s) URL",
                        cfg.name
                    )));
                }
                u
            }
        };
        let timeout = duration::parse(&cfg.timeout).map_err(|e| {
            RulesError::one(format!("channel {:?}: field `timeout`: {e}", cfg.name))
        })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout.max(Duration::from_millis(100))))
            .build()
            .into();
        Ok(Self {
            name: cfg.name.clone(),
            url,
            format: cfg.format,
            key,
            headers: cfg.headers.clone(),
            agent,
        })
    }
}

impl Channel for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&body(n, self.format))
            .map_err(|e| DeliveryError::permanent(format!("encoding: {e}")))?;
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("User-Agent", "loupe-alert")
            // Receivers can drop a repeat of the same id (at-least-once).
            .header("X-Loupe-Notification", &n.id);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(key) = &self.key {
            req = req.header("X-Loupe-Signature", signature(key, &body));
        }
        match req.send(&body[..]) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = resp
                    .body_mut()
                    .with_config()
                    .limit(4096)
                    .read_to_string()
                    .unwrap_or_default();
                match status {
                    200..=299 => Ok(()),
                    408 | 429 => Err(DeliveryError::retry(format!("HTTP {status}"))),
                    400..=499 => Err(DeliveryError::permanent(format!(
                        "HTTP {status}: {}",
                        text.trim().chars().take(200).collect::<String>()
                    ))),
                    _ => Err(DeliveryError::retry(format!("HTTP {status}"))),
                }
            }
            // The URL may itself be a secret (chat webhooks carry their
            // token in the path): it is kept out of errors, which are logged.
            Err(e) => Err(DeliveryError::retry(
                e.to_string().replace(&self.url, "<webhook url>"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn url_from_the_environment() {
        let cfg = |env: &str| WebhookConfig {
            name: "chat".into(),
            url: String::new(),
            url_env: Some(env.into()),
            format: WebhookFormat::Slack,
            secret: None,
            secret_env: None,
            timeout: "1s".into(),
            headers: Default::default(),
        };
        let e = Webhook::new(&cfg("LOUPE_TEST_SURELY_UNSET_URL"))
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("LOUPE_TEST_SURELY_UNSET_URL is not set"),
            "{e}"
        );
        // PATH is set in any test environment and is not a URL; the error
        // must not print its value.
        let e = Webhook::new(&cfg("PATH")).err().unwrap();
        assert!(e.to_string().contains("does not hold an http(s) URL"));
        assert!(!e.to_string().contains("/usr"), "{e}");
    }

    #[test]
    fn slack_body_has_text_and_blocks() {
        let n = Notification {
            id: "1".into(),
            channel: "c".into(),
            group: Default::default(),
            status: "firing".into(),
            title: "[FIRING] hot".into(),
            alerts: vec![],
            created: 0.0,
            chart: None,
        };
        let b = body(&n, WebhookFormat::Slack);
        assert!(b["text"].as_str().unwrap().contains("[FIRING] hot"));
        assert_eq!(b["blocks"][0]["type"], "section");
        assert_eq!(body(&n, WebhookFormat::Json)["status"], "firing");
    }
}
