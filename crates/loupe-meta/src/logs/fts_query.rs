//! User search text → an FTS5 query that cannot be a syntax error.
//!
//! FTS5's query language has operators (`AND OR NOT`, `-`, `+`, `*`, `^`,
//! `:`, `NEAR`, parentheses) that users of a log search box type by accident
//! (`CUDA out-of-memory`, `loss: nan`, `rank(3)`). So every piece of the
//! input becomes an FTS5 *string* (double-quoted, inner quotes doubled),
//! which FTS5 only tokenises, never parses. What we do interpret:
//! - whitespace separates terms, which are ANDed (FTS5's implicit AND);
//! - `"…"` groups words into a phrase (an unclosed quote runs to the end);
//! - a `*` right after a word makes its last token a prefix.

/// The FTS5 expression for `input`, or `None` when it holds nothing
/// searchable (no letter or digit), which should match nothing.
pub(crate) fn fts_expression(input: &str) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_phrase = false;
    for c in input.chars() {
        match c {
            '"' => {
                push_term(&mut terms, &mut word);
                in_phrase = !in_phrase;
            }
            c if c.is_whitespace() || c.is_control() => {
                if in_phrase {
                    word.push(' ');
                } else {
                    push_term(&mut terms, &mut word);
                }
            }
            c => word.push(c),
        }
    }
    push_term(&mut terms, &mut word);
    (!terms.is_empty()).then(|| terms.join(" "))
}

fn push_term(terms: &mut Vec<String>, word: &mut String) {
    let raw = std::mem::take(word);
    let (body, prefix) = match raw.strip_suffix('*') {
        Some(body) => (body.trim_end_matches('*'), true),
        None => (raw.as_str(), false),
    };
    // A string with no letter or digit tokenises to nothing; FTS5 would
    // accept it but it constrains nothing, so drop it.
    if !body.chars().any(char::is_alphanumeric) {
        return;
    }
    let quoted = format!("\"{}\"", body.replace('"', "\"\""));
    terms.push(if prefix { quoted + "*" } else { quoted });
}

#[cfg(test)]
mod tests {
    use super::fts_expression as q;

    #[test]
    fn words_are_quoted_and_anded() {
        assert_eq!(
            q("CUDA out of memory").unwrap(),
            r#""CUDA" "out" "of" "memory""#
        );
        assert_eq!(q("a OR b").unwrap(), r#""a" "OR" "b""#);
        assert_eq!(q("-x").unwrap(), r#""-x""#);
        assert_eq!(q("rank(3): nan").unwrap(), r#""rank(3):" "nan""#);
    }

    #[test]
    fn quotes_make_phrases() {
        assert_eq!(
            q(r#""out of memory" cuda"#).unwrap(),
            r#""out of memory" "cuda""#
        );
        assert_eq!(q(r#""unclosed phrase"#).unwrap(), r#""unclosed phrase""#);
        assert_eq!(q(r#"say"hi""#).unwrap(), r#""say" "hi""#);
    }

    #[test]
    fn trailing_star_is_a_prefix() {
        assert_eq!(q("cud*").unwrap(), r#""cud"*"#);
        assert_eq!(q("cud**").unwrap(), r#""cud"*"#);
        assert_eq!(q("a*b").unwrap(), r#""a*b""#);
    }

    #[test]
    fn nothing_searchable_is_none() {
        for s in ["", "   ", "*", "\"\"", "-", "()", "* - +", "\"*\""] {
            assert_eq!(q(s), None, "{s:?}");
        }
    }

    #[test]
    fn unicode_and_control_characters() {
        assert_eq!(q("ошибка 内存").unwrap(), r#""ошибка" "内存""#);
        assert_eq!(q("a\0b").unwrap(), r#""a" "b""#);
    }
}
