//! Which text format `/metrics` answers in, chosen from the `Accept` header.
//!
//! - **OpenMetrics 1.0** (`application/openmetrics-text; version=1.0.0`)
//!   when the client prefers it. Prometheus asks for it first on every scrape,
//!   and its OpenMetrics parser is the stricter one (`# EOF`, counter
//!   families named without `_total`).
//! - **Prometheus text 0.0.4** (`text/plain; version=0.0.4`) otherwise:
//!   what curl, older scrapers and Loupe's own tests read. Every Prometheus
//!   server accepts it too.
//!
//! The samples are the same in both (`loupe_ingest_points_total 12`); only
//! the `# HELP`/`# TYPE` names of counters and the `# EOF` line differ.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

/// The `Content-Type` of an OpenMetrics 1.0 answer.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Format {
    /// OpenMetrics when the `Accept` header gives it a quality above zero and
    /// at least that of `text/plain` (and of `*/*` when that is how text is
    /// accepted); the 0.0.4 text otherwise, and without an `Accept` header.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::PrometheusText;
        };
        let mut openmetrics = 0.0f32;
        let mut plain = 0.0f32;
        let mut any = 0.0f32;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = match media.as_str() {
                "application/openmetrics-text" => &mut openmetrics,
                "text/plain" | "text/*" => &mut plain,
                "*/*" => &mut any,
                _ => continue,
            };
            *slot = slot.max(q);
        }
        let text = if plain > 0.0 { plain } else { any };
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::PrometheusText => prometheus_text::CONTENT_TYPE,
        }
    }

    /// The registries' families, one after the other, as one answer.
    pub fn encode(self, registries: &[&Registry]) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8192);
        for r in registries {
            match self {
                Format::OpenMetrics => text::encode_registry(&mut out, r)?,
                Format::PrometheusText => prometheus_text::encode(&mut out, r)?,
            }
        }
        if self == Format::OpenMetrics {
            text::encode_eof(&mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_openmetrics_and_curl_gets_text() {
        // Prometheus 2.x's and 3.x's scrape `Accept` headers.
        for prometheus in [
            "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            "application/openmetrics-text",
        ] {
            assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        }
        for text in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0"),
            Some("application/json"),
        ] {
            assert_eq!(Format::negotiate(text), Format::PrometheusText, "{text:?}");
        }
    }

    #[test]
    fn content_types_name_their_versions() {
        assert_eq!(
            Format::PrometheusText.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(
            Format::OpenMetrics
                .content_type()
                .starts_with("application/openmetrics-text; version=1.0.0")
        );
    }
}
