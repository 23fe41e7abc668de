//! E-mail over SMTP: STARTTLS, implicit TLS, or plain for a local relay;
//! optional login; a plain-text and an HTML part, and the chart as an
//! inline PNG when the notification carries one.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};

use super::chart::render_png;
use super::{Channel, DeliveryError, secret};
use crate::duration;
use crate::engine::Notification;
use crate::error::RulesError;
use crate::rules::{EmailConfig, SmtpTls};

pub struct Email {
    name: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: SmtpTransport,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML part: a table of the alerts with their links.
pub fn html(n: &Notification, with_chart: bool) -> String {
    let mut out = format!(
        "<html><body style=\"font-family:sans-serif\"><h2>{}</h2><table cellpadding=\"4\">",
        escape(&n.title)
    );
    for a in &n.alerts {
        let colour = if a.state.as_str() == "firing" {
            "#d62728"
        } else {
            "#2ca02c"
        };
        let links: Vec<String> = a
            .links
            .iter()
            .map(|l| format!("<a href=\"{}\">{}</a>", escape(&l.url), escape(&l.name)))
            .collect();
        out.push_str(&format!(
            "<tr><td style=\"color:{colour}\"><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.state.as_str().to_uppercase(),
            escape(&a.alert),
            a.severity.as_str(),
            escape(&a.summary),
            links.join(" ")
        ));
    }
    out.push_str("</table>");
    if with_chart {
        out.push_str("<p><img src=\"cid:chart\" alt=\"chart\"></p>");
    }
    out.push_str("</body></html>");
    out
}

fn mailbox(who: &str, field: &str, a: &str) -> Result<Mailbox, RulesError> {
    a.parse()
        .map_err(|e| RulesError::one(format!("{who}: field `{field}`: {a:?}: {e}")))
}

impl Email {
    pub fn new(cfg: &EmailConfig) -> Result<Self, RulesError> {
        let who = format!("channel {:?}", cfg.name);
        let timeout = duration::parse(&cfg.timeout)
            .map_err(|e| RulesError::one(format!("{who}: field `timeout`: {e}")))?;
        let tls_err =
            |e: lettre::transport::smtp::Error| RulesError::one(format!("{who}: field `tls`: {e}"));
        let builder = match cfg.tls {
            SmtpTls::None => SmtpTransport::builder_dangerous(&cfg.host),
            SmtpTls::Starttls => SmtpTransport::starttls_relay(&cfg.host).map_err(tls_err)?,
            SmtpTls::Tls => SmtpTransport::relay(&cfg.host).map_err(tls_err)?,
        };
        let port = cfg.port.unwrap_or(match cfg.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        let mut builder = builder
            .port(port)
            .timeout(Some(timeout.max(Duration::from_millis(100))));
        let password = secret(
            &cfg.password,
            &cfg.password_env,
            &format!("{who}: field `password_env`"),
        )?;
        match (&cfg.username, password) {
            (Some(u), Some(p)) => builder = builder.credentials(Credentials::new(u.clone(), p)),
            (Some(_), None) => {
                return Err(RulesError::one(format!(
                    "{who}: field `username` is set without `password` or `password_env`"
                )));
            }
            _ => {}
        }
        Ok(Self {
            name: cfg.name.clone(),
            from: mailbox(&who, "from", &cfg.from)?,
            to: cfg
                .to
                .iter()
                .map(|a| mailbox(&who, "to", a))
                .collect::<Result<_, _>>()?,
            transport: builder.build(),
        })
    }

    /// The message as it is sent.
    pub fn message(&self, n: &Notification) -> Result<Message, DeliveryError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(n.title.chars().take(200).collect::<String>());
        for t in &self.to {
            b = b.to(t.clone());
        }
        let png = n.chart.as_ref().and_then(|c| render_png(c, 640, 240));
        let alt = MultiPart::alternative_plain_html(n.text(), html(n, png.is_some()));
        let body = match png {
            Some(bytes) => MultiPart::related().multipart(alt).singlepart(
                Attachment::new_inline("chart".to_string()).body(
                    bytes,
                    ContentType::parse("image/png")
                        .map_err(|e| DeliveryError::permanent(e.to_string()))?,
                ),
            ),
            None => alt,
        };
        b.multipart(body)
            .map_err(|e| DeliveryError::permanent(format!("building the message: {e}")))
    }
}

impl Channel for Email {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&self, n: &Notification) -> Result<(), DeliveryError> {
        let msg = self.message(n)?;
        self.transport.send(&msg).map(|_| ()).map_err(|e| {
            // lettre's errors name the server's reply, never the password.
            if e.is_permanent() {
                DeliveryError::permanent(e.to_string())
            } else {
                DeliveryError::retry(e.to_string())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::{AlertState, AlertView, Chart, Link};

    fn cfg(tls: SmtpTls) -> EmailConfig {
        EmailConfig {
            name: "mail".into(),
            host: "smtp.example.org".into(),
            port: None,
            tls,
            username: Some("loupe".into()),
            password: Some(crate::rules::Secret("pw".into())),
            password_env: None,
            from: "Loupe <loupe@example.org>".into(),
            to: vec!["oncall@example.org".into()],
            timeout: "5s".into(),
        }
    }

    #[test]
    fn builds_every_tls_mode_and_needs_a_password_for_a_user() {
        for t in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Tls] {
            Email::new(&cfg(t)).unwrap();
        }
        let mut c = cfg(SmtpTls::Starttls);
        c.password = None;
        let e = Email::new(&c).err().unwrap();
        assert!(e.to_string().contains("without `password`"), "{e}");
        c.password_env = Some("LOUPE_TEST_SURELY_UNSET_VAR".into());
        let e = Email::new(&c).err().unwrap();
        assert!(
            e.to_string()
                .contains("LOUPE_TEST_SURELY_UNSET_VAR is not set"),
            "{e}"
        );
    }

    #[test]
    fn message_has_text_html_and_the_chart() {
        let m = Email::new(&cfg(SmtpTls::None)).unwrap();
        let n = Notification {
            id: "1".into(),
            channel: "mail".into(),
            group: BTreeMap::new(),
            status: "firing".into(),
            title: "[FIRING] hot <b>".into(),
            alerts: vec![AlertView {
                id: "a".into(),
                alert: "hot".into(),
                state: AlertState::Firing,
                severity: loupe_model::Severity::Warning,
                labels: BTreeMap::new(),
                summary: "t = 90".into(),
                value: Some(90.0),
                started: 0.0,
                resolved: None,
                links: vec![Link {
                    name: "run".into(),
                    url: "http://x/r/r1".into(),
                }],
                series: None,
            }],
            created: 0.0,
            chart: Some(Chart {
                title: "t".into(),
                times: vec![0.0, 1.0, 2.0],
                values: vec![80.0, 85.0, 90.0],
                threshold: Some(85.0),
            }),
        };
        let raw = String::from_utf8(m.message(&n).unwrap().formatted()).unwrap();
        for part in [
            "text/plain",
            "text/html",
            "image/png",
            "multipart/related",
            "cid:chart",
        ] {
            assert!(raw.contains(part), "{part} missing:\n{raw}");
        }
        assert!(raw.contains("&lt;b&gt;"), "HTML is escaped");
    }
}
