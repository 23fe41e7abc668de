//! User search text → a search of the trigram index that cannot be a
//! syntax error.
//!
//! The index (`log_fts`, FTS5's `trigram` tokenizer, see the schema's V4)
//! matches *substrings*, case- and diacritic-insensitively: `OutOfMemory`
//! finds `torch.OutOfMemoryError`, `loss 4.8` finds `loss 4.81`. FTS5's
//! query language has operators (`AND OR NOT`, `-`, `+`, `*`, `^`, `:`,
//! `NEAR`, parentheses) that users of a log search box type by accident
//! (`CUDA out-of-memory`, `loss: nan`, `rank(3)`), so every term becomes an
//! FTS5 *string* (double-quoted, inner quotes doubled), which FTS5 only
//! tokenises, never parses. What we do interpret:
//! - whitespace separates terms, which must all occur (in any order);
//! - `"…"` makes one term of several words: that exact text, spaces
//!   included (an unclosed quote runs to the end);
//! - a trailing `*` is dropped: every term already matches inside words.
//!
//! Trigrams need three characters: a term of one or two characters cannot
//! use the index, and is matched with `LIKE` on the lines the other terms
//! (or the run's rowid range) select.

/// What a search asks of a run's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogSearch {
    /// The FTS5 expression over the trigram index (every term of three or
    /// more characters), if any.
    pub fts: Option<String>,
    /// `LIKE` patterns (`%term%`, with `\` escaping `%`, `_` and `\`) for
    /// terms too short for trigrams.
    pub like: Vec<String>,
}

/// The fewest characters a trigram index can look up.
const TRIGRAM_CHARS: usize = 3;

/// The search for `input`, or `None` when it holds nothing searchable (no
/// letter or digit), which should match nothing.
pub(crate) fn log_search(input: &str) -> Option<LogSearch> {
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
    if terms.is_empty() {
        return None;
    }
    let (long, short): (Vec<String>, Vec<String>) = terms
        .into_iter()
        .partition(|t| t.chars().count() >= TRIGRAM_CHARS);
    let fts = (!long.is_empty()).then(|| {
        long.iter()
            .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let like = short.iter().map(|t| like_pattern(t)).collect();
    Some(LogSearch { fts, like })
}

fn push_term(terms: &mut Vec<String>, word: &mut String) {
    let raw = std::mem::take(word);
    let body = raw.trim_end_matches('*').trim();
    // A term with no letter or digit (`-`, `:`) would match nearly every
    // line; it constrains nothing a user meant, so drop it.
    if body.chars().any(char::is_alphanumeric) {
        terms.push(body.to_string());
    }
}

fn like_pattern(term: &str) -> String {
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::{LogSearch, log_search as q};

    fn fts(s: &str) -> String {
        q(s).and_then(|x| x.fts).unwrap()
    }

    #[test]
    fn words_are_quoted_and_all_required() {
        assert_eq!(
            fts("CUDA out of memory"),
            r#""CUDA" "out" "memory""#,
            "`of` is too short for trigrams"
        );
        assert_eq!(q("CUDA out of memory").unwrap().like, ["%of%"]);
        assert_eq!(fts("a OR b NOT"), r#""NOT""#);
        assert_eq!(fts("-xy"), r#""-xy""#);
        assert_eq!(fts("rank(3): nan"), r#""rank(3):" "nan""#);
    }

    #[test]
    fn quotes_make_one_term_of_several_words() {
        assert_eq!(fts(r#""loss 4.8" cuda"#), r#""loss 4.8" "cuda""#);
        assert_eq!(fts(r#""unclosed phrase"#), r#""unclosed phrase""#);
        assert_eq!(fts(r#"say"hi""#), r#""say""#);
        assert_eq!(fts(r#""it's 100% done""#), r#""it's 100% done""#);
    }

    #[test]
    fn a_trailing_star_is_dropped() {
        assert_eq!(fts("cud*"), r#""cud""#);
        assert_eq!(fts("cud**"), r#""cud""#);
        assert_eq!(fts("a*b"), r#""a*b""#);
    }

    #[test]
    fn short_terms_become_like_patterns() {
        assert_eq!(
            q("x 5%").unwrap(),
            LogSearch {
                fts: None,
                like: vec!["%x%".into(), "%5\\%%".into()]
            }
        );
        assert_eq!(q("a_").unwrap().like, ["%a\\_%"]);
    }

    #[test]
    fn nothing_searchable_is_none() {
        for s in ["", "   ", "*", "\"\"", "-", "()", "* - +", "\"*\""] {
            assert_eq!(q(s), None, "{s:?}");
        }
    }

    #[test]
    fn unicode_and_control_characters() {
        assert_eq!(fts("ошибка 内存不足"), r#""ошибка" "内存不足""#);
        assert_eq!(q("内存").unwrap().like, ["%内存%"]);
        assert_eq!(fts("abc\0def"), r#""abc" "def""#);
    }
}
