//! Templates of unknown error lines, after the idea of the Drain log parser
//! (He et al., "Drain: An Online Log Parsing Approach with Fixed Depth
//! Tree", ICWS 2017).
//!
//! A line is split into tokens; tokens that are obviously variable
//! (numbers, hex, paths, addresses, `key=3`) are masked as `<*>` first. The
//! tree has a fixed depth: the token count, then the first two tokens, lead
//! to a leaf holding a few templates. The line joins the most similar
//! template of its leaf when at least half of the positions agree, and the
//! positions that differ become `<*>`; otherwise it starts a new template.
//!
//! Bounded: at most `max` templates (the least recently seen is dropped),
//! a fixed number of tokens per line, and a bounded example per template.

use super::{ErrorTemplate, clip};
use hashbrown::HashMap;
use std::collections::BTreeMap;

/// The mask for a variable token.
pub(crate) const WILDCARD: &str = "<*>";
/// Tokens of a line that are looked at (the rest is ignored).
const MAX_TOKENS: usize = 48;
/// A token longer than this is taken as variable (a hash, a blob).
const MAX_TOKEN_BYTES: usize = 64;
/// Bytes kept of a template's example line.
const MAX_EXAMPLE_BYTES: usize = 512;
/// Templates per leaf: beyond it the least similar lines start evicting
/// others via the global bound, and a leaf scan stays short.
const MAX_PER_LEAF: usize = 64;
/// Fraction of positions that must agree for a line to join a template.
const SIMILARITY: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Token {
    Wild,
    Lit(Box<str>),
}

impl Token {
    fn as_str(&self) -> &str {
        match self {
            Token::Wild => WILDCARD,
            Token::Lit(s) => s,
        }
    }
}

/// The tree's path to a leaf: the token count and the first two tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LeafKey {
    len: usize,
    first: Token,
    second: Token,
}

#[derive(Debug)]
struct Cluster {
    tokens: Vec<Token>,
    count: u64,
    /// The tick it was last seen at (its key in `lru`).
    seen: u64,
    example: String,
    leaf: LeafKey,
}

/// What adding a line did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Added {
    pub id: u64,
    pub template: String,
    pub count: u64,
    /// True when this line started the template.
    pub new: bool,
    /// True when the caller should report (a new template, or a count that
    /// reached 10, 100, 1000, …).
    pub report: bool,
    /// The template's example line when `report` (empty otherwise).
    pub example: String,
}

#[derive(Debug)]
pub(crate) struct Drain {
    clusters: HashMap<u64, Cluster>,
    leaves: HashMap<LeafKey, Vec<u64>>,
    /// tick → template id, oldest first: the eviction order.
    lru: BTreeMap<u64, u64>,
    next_id: u64,
    tick: u64,
    max: usize,
}

fn is_hexish(t: &str) -> bool {
    t.len() >= 8 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A token, masked when it is obviously variable.
fn mask(raw: &str) -> Token {
    if raw.len() > MAX_TOKEN_BYTES {
        return Token::Wild;
    }
    // `key=value`: keep the key, mask a variable value.
    if let Some((k, v)) = raw.split_once('=')
        && !k.is_empty()
        && !k.bytes().any(|b| b.is_ascii_digit())
    {
        return match mask(v) {
            Token::Wild => Token::Lit(format!("{k}={WILDCARD}").into()),
            Token::Lit(_) => Token::Lit(raw.into()),
        };
    }
    let variable = raw.bytes().any(|b| b.is_ascii_digit())
        || raw.contains('/')
        || raw.contains('\\')
        || is_hexish(raw);
    if variable {
        Token::Wild
    } else {
        Token::Lit(raw.into())
    }
}

fn tokenize(line: &str) -> Vec<Token> {
    line.split_ascii_whitespace()
        .take(MAX_TOKENS)
        .map(mask)
        .collect()
}

/// Fraction of positions where the template's literal equals the line's.
fn similarity(template: &[Token], line: &[Token]) -> f64 {
    if template.len() != line.len() || line.is_empty() {
        return 0.0;
    }
    let same = template
        .iter()
        .zip(line)
        .filter(|(a, b)| matches!(a, Token::Lit(_)) && a == b)
        .count();
    same as f64 / line.len() as f64
}

fn render(tokens: &[Token]) -> String {
    let mut s = String::new();
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(t.as_str());
    }
    s
}

fn should_report(count: u64) -> bool {
    // 10, 100, 1000, …: a power of ten from 10 on.
    let mut c = count;
    if c < 10 {
        return false;
    }
    while c.is_multiple_of(10) {
        c /= 10;
    }
    c == 1
}

impl Drain {
    pub(crate) fn new(max: usize) -> Self {
        Drain {
            clusters: HashMap::new(),
            leaves: HashMap::new(),
            lru: BTreeMap::new(),
            next_id: 1,
            tick: 0,
            max: max.max(1),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.clusters.len()
    }

    /// Adds one unknown error line; `None` when it has no tokens.
    pub(crate) fn add(&mut self, line: &str) -> Option<Added> {
        let tokens = tokenize(line);
        let first = tokens.first()?.clone();
        let second = tokens.get(1).cloned().unwrap_or(Token::Wild);
        let key = LeafKey {
            len: tokens.len(),
            first,
            second,
        };
        self.tick += 1;
        let tick = self.tick;

        let best = self.leaves.get(&key).and_then(|ids| {
            let mut best: Option<(u64, f64)> = None;
            for id in ids {
                if let Some(c) = self.clusters.get(id) {
                    let s = similarity(&c.tokens, &tokens);
                    if best.is_none_or(|(_, b)| s > b) {
                        best = Some((*id, s));
                    }
                }
            }
            best.filter(|(_, s)| *s >= SIMILARITY).map(|(id, _)| id)
        });

        if let Some(id) = best
            && let Some(c) = self.clusters.get_mut(&id)
        {
            for (t, l) in c.tokens.iter_mut().zip(&tokens) {
                if *t != *l {
                    *t = Token::Wild;
                }
            }
            c.count = c.count.saturating_add(1);
            self.lru.remove(&c.seen);
            c.seen = tick;
            self.lru.insert(tick, id);
            let report = should_report(c.count);
            return Some(Added {
                id,
                template: render(&c.tokens),
                count: c.count,
                new: false,
                report,
                example: if report {
                    c.example.clone()
                } else {
                    String::new()
                },
            });
        }

        // A new template: make room first (the leaf's, then the global bound).
        if let Some(ids) = self.leaves.get(&key)
            && ids.len() >= MAX_PER_LEAF
        {
            let oldest = ids
                .iter()
                .filter_map(|id| self.clusters.get(id).map(|c| (c.seen, *id)))
                .min();
            if let Some((_, id)) = oldest {
                self.remove(id);
            }
        }
        while self.clusters.len() >= self.max {
            let Some((_, id)) = self.lru.pop_first() else {
                break;
            };
            self.remove(id);
        }
        let id = self.next_id;
        self.next_id += 1;
        let template = render(&tokens);
        let example = clip(line.trim(), MAX_EXAMPLE_BYTES).to_owned();
        self.clusters.insert(
            id,
            Cluster {
                tokens,
                count: 1,
                seen: tick,
                example: example.clone(),
                leaf: key.clone(),
            },
        );
        self.leaves.entry(key).or_default().push(id);
        self.lru.insert(tick, id);
        Some(Added {
            id,
            template,
            count: 1,
            new: true,
            report: true,
            example,
        })
    }

    fn remove(&mut self, id: u64) {
        let Some(c) = self.clusters.remove(&id) else {
            return;
        };
        self.lru.remove(&c.seen);
        if let Some(ids) = self.leaves.get_mut(&c.leaf) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                self.leaves.remove(&c.leaf);
            }
        }
    }

    /// Templates, most frequent first (ties: the older first).
    pub(crate) fn templates(&self) -> Vec<ErrorTemplate> {
        let mut v: Vec<ErrorTemplate> = self
            .clusters
            .iter()
            .map(|(id, c)| ErrorTemplate {
                id: *id,
                template: render(&c.tokens),
                count: c.count,
                example: c.example.clone(),
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_variables() {
        assert_eq!(
            render(&tokenize(
                "failed to open /data/x.bin after 3 tries rank=7 id=abc"
            )),
            "failed to open <*> after <*> tries rank=<*> id=abc"
        );
        assert_eq!(render(&tokenize("hash deadbeefcafe")), "hash <*>");
    }

    #[test]
    fn groups_and_reports() {
        let mut d = Drain::new(100);
        let a = d.add("Connection to host alpha failed: timeout").unwrap();
        assert!(a.new && a.report);
        let b = d.add("Connection to host beta failed: timeout").unwrap();
        assert_eq!(b.id, a.id);
        assert!(!b.new && !b.report);
        assert_eq!(b.template, "Connection to host <*> failed: timeout");
        for _ in 2..9 {
            assert!(
                !d.add("Connection to host gamma failed: timeout")
                    .unwrap()
                    .report
            );
        }
        let ten = d.add("Connection to host delta failed: timeout").unwrap();
        assert_eq!(ten.count, 10);
        assert!(ten.report);
        let other = d.add("Something entirely different").unwrap();
        assert_ne!(other.id, a.id);
        assert_eq!(d.templates()[0].count, 10);
        assert!(d.add("   ").is_none());
    }

    #[test]
    fn powers_of_ten() {
        let r: Vec<u64> = (1..=100_000).filter(|c| should_report(*c)).collect();
        assert_eq!(r, vec![10, 100, 1000, 10_000, 100_000]);
    }

    #[test]
    fn bounded() {
        let mut d = Drain::new(50);
        for i in 0..5000 {
            d.add(&format!("w{} x{} y{} error", i % 7, i % 3, i))
                .unwrap();
            d.add(&format!("word{} alpha beta gamma{} delta", i % 977, i % 13))
                .unwrap();
        }
        assert!(d.len() <= 50);
        assert!(d.lru.len() == d.len());
        assert!(d.leaves.values().map(Vec::len).sum::<usize>() == d.len());
    }
}
