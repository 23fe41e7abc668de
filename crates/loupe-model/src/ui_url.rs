//! Links into the web UI. Every place that prints or sends a link to a run
//! (the demo, alert notifications, the CLI, `loupe run`) builds it here, so
//! a link always matches the UI's routes (`ui/src/router.ts`: `/r/ID`,
//! `/p/PROJECT`). The Python SDK keeps the same rule in `loupe.urls`; the UI's
//! end-to-end test follows the links both print.

/// The run page's tabs that a link may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTab {
    Charts,
    Logs,
    System,
    Config,
    Diagnosis,
}

impl RunTab {
    /// The value of the page's `tab` query parameter (`None` for the default tab).
    fn query_value(self) -> Option<&'static str> {
        match self {
            RunTab::Charts => None,
            RunTab::Logs => Some("logs"),
            RunTab::System => Some("system"),
            RunTab::Config => Some("config"),
            RunTab::Diagnosis => Some("diagnosis"),
        }
    }
}

/// The UI page of run `run` on the server at `base` (e.g.
/// `http://127.0.0.1:7070`; a trailing slash is ignored).
pub fn run_url(base: &str, run: &str) -> String {
    format!("{}/r/{}", trim_base(base), encode_segment(run))
}

/// The UI page of run `run`, opened on `tab`.
pub fn run_tab_url(base: &str, run: &str, tab: RunTab) -> String {
    let page = run_url(base, run);
    match tab.query_value() {
        Some(t) => format!("{page}?tab={t}"),
        None => page,
    }
}

/// The runs table of `project`.
pub fn project_url(base: &str, project: &str) -> String {
    format!("{}/p/{}", trim_base(base), encode_segment(project))
}

fn trim_base(base: &str) -> &str {
    base.trim_end_matches('/')
}

/// Percent-encodes one path segment as the UI's router decodes it
/// (`encodeURIComponent`'s unreserved set), so an id with `/`, `?`, `#`,
/// spaces or non-ASCII text still names one segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        if unreserved {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_links_use_the_ui_route() {
        assert_eq!(
            run_url("http://127.0.0.1:7070", "r-1a2b"),
            "http://127.0.0.1:7070/r/r-1a2b"
        );
        assert_eq!(run_url("http://h:1/", "x"), "http://h:1/r/x");
        assert_eq!(
            run_tab_url("http://h:1", "x", RunTab::Diagnosis),
            "http://h:1/r/x?tab=diagnosis"
        );
        assert_eq!(
            run_tab_url("http://h:1", "x", RunTab::Charts),
            "http://h:1/r/x"
        );
        assert_eq!(project_url("http://h:1", "nlp"), "http://h:1/p/nlp");
    }

    #[test]
    fn ids_are_one_encoded_segment() {
        assert_eq!(run_url("", "a/b c?#"), "/r/a%2Fb%20c%3F%23");
        assert_eq!(run_url("", "é"), "/r/%C3%A9");
        assert_eq!(run_url("", "a.b_c-d~e"), "/r/a.b_c-d~e");
    }
}
