//! Finding `key value` pairs among a line's tokens, left to right: a
//! `key=value` token, `key = value` / `key: value`, a step or epoch anchor
//! (`step 10`, `Epoch 3/10`), or a bare `key value`. A token taken by one
//! pair is not the start of a clause for the next key.

use super::number::{as_step, looks_integral, parse_number};
use super::{
    Candidate, Kind, MAX_KEY_BYTES, STOPWORDS, Token, anchor_value, begins_pair, eq_position,
    is_anchor_word, is_step_key, strip_unit, valid_key,
};

/// Finds the pairs among the tokens: the candidates, the step they name,
/// and whether a step word anchored the line.
pub(super) fn pairs(s: &[u8], toks: &[Token]) -> (Vec<Candidate>, Option<i64>, bool) {
    let mut scan = PairScan {
        s,
        toks,
        consumed: vec![false; toks.len()],
        out: Vec::new(),
        step: None,
        anchored: false,
    };
    let mut i = 0;
    while i < toks.len() {
        i = scan.at(i);
    }
    (scan.out, scan.step, scan.anchored)
}

/// A key found at a token, and where its value is.
struct Hit<'a> {
    key: String,
    /// The token holding the value.
    value_tok: usize,
    kind: Kind,
    /// The value inside the key's own token (`key=value`).
    tight_value: Option<&'a [u8]>,
}

struct PairScan<'a> {
    s: &'a [u8],
    toks: &'a [Token],
    /// Tokens already part of a pair or an anchor.
    consumed: Vec<bool>,
    out: Vec<Candidate>,
    step: Option<i64>,
    anchored: bool,
}

impl<'a> PairScan<'a> {
    fn text(&self, i: usize) -> &'a [u8] {
        &self.s[self.toks[i].start..self.toks[i].end]
    }

    fn clause_start(&self, j: usize) -> bool {
        j == 0 || self.toks[j].sep_before || self.toks[j - 1].sep_after || self.consumed[j - 1]
    }

    /// The value at token `k` must end its clause.
    fn value_ends(&self, k: usize) -> bool {
        k + 1 >= self.toks.len()
            || self.toks[k].sep_after
            || self.toks[k + 1].sep_before
            || begins_pair(self.s, self.toks, k + 1)
    }

    /// Key words ending at token `last` (whose text is `last_word`), at
    /// most three, starting a clause; joined with `_`.
    fn key_run(&self, last: usize, last_word: &[u8]) -> Option<String> {
        if !valid_key(last_word) {
            return None;
        }
        let mut first = last;
        loop {
            if self.clause_start(first) {
                break;
            }
            if first == 0 || last - first >= 2 || !valid_key(self.text(first - 1)) {
                return None;
            }
            first -= 1;
        }
        let mut key = String::new();
        for j in first..=last {
            let w = if j == last { last_word } else { self.text(j) };
            if STOPWORDS
                .iter()
                .any(|s| w.eq_ignore_ascii_case(s.as_bytes()))
            {
                return None;
            }
            if !key.is_empty() {
                key.push('_');
            }
            key.push_str(std::str::from_utf8(w).ok()?);
        }
        (key.len() <= MAX_KEY_BYTES).then_some(key)
    }

    /// Looks at token `i`; returns the next token to look at.
    fn at(&mut self, i: usize) -> usize {
        let n = self.toks.len();
        let t = self.text(i);
        let hit = if let Some(p) = eq_position(t) {
            self.eq_key(i, t, p)
        } else if t.len() > 1 && t.ends_with(b":") && i + 1 < n {
            self.spaced(i, &t[..t.len() - 1], i + 1)
        } else if i + 1 < n && valid_key(t) {
            if let Some(next) = self.anchor(i, t) {
                return next;
            }
            self.bare(i, t)
        } else {
            None
        };
        match hit {
            Some(hit) => self.take(i, hit),
            None => i + 1,
        }
    }

    /// A token with `=` at `p`: `key=value`, `key= value`, or a lone `=`
    /// after the key.
    fn eq_key(&self, i: usize, t: &'a [u8], p: usize) -> Option<Hit<'a>> {
        let n = self.toks.len();
        if p > 0 && p + 1 < t.len() {
            // A log prefix glued to the key (`INFO:__main__:step=10`,
            // `[rank0]:loss=0.5`): the key is what follows the last
            // `:` or `]`.
            let k = &t[..p];
            let k = match k.iter().rposition(|&c| c == b':' || c == b']') {
                Some(q) if !valid_key(k) => &k[q + 1..],
                _ => k,
            };
            valid_key(k).then(|| Hit {
                key: String::from_utf8_lossy(k).into_owned(),
                value_tok: i,
                kind: Kind::Tight,
                tight_value: Some(&t[p + 1..]),
            })
        } else if p > 0 && i + 1 < n && !self.toks[i].sep_before {
            // "key= value"
            self.spaced(i, &t[..p], i + 1)
        } else if t == b"="
            && i > 0
            && i + 1 < n
            && !self.consumed[i - 1]
            && !self.toks[i - 1].sep_after
        {
            self.spaced(i - 1, self.text(i - 1), i + 1)
        } else {
            None
        }
    }

    /// `key = value`, `key: value`: the key words end at token `last`.
    fn spaced(&self, last: usize, last_word: &[u8], value_tok: usize) -> Option<Hit<'a>> {
        self.key_run(last, last_word).map(|key| Hit {
            key,
            value_tok,
            kind: Kind::Spaced,
            tight_value: None,
        })
    }

    /// `step 10` (the line's step) or `Epoch 3/10` (an epoch candidate) at
    /// the start of a clause; returns the next token when it took both.
    fn anchor(&mut self, i: usize, word: &[u8]) -> Option<usize> {
        if !(is_anchor_word(word) && self.clause_start(i)) {
            return None;
        }
        let v = anchor_value(self.text(i + 1))?;
        if !word.eq_ignore_ascii_case(b"epoch") {
            self.step = Some(as_step(v)?);
        } else {
            self.out.push(Candidate {
                key: "epoch".into(),
                value: v,
                kind: Kind::Anchor,
                integral: true,
            });
        }
        self.anchored = true;
        self.consumed[i] = true;
        self.consumed[i + 1] = true;
        Some(i + 2)
    }

    /// `key value` with a number after the key words.
    fn bare(&self, i: usize, word: &[u8]) -> Option<Hit<'a>> {
        parse_number(self.text(i + 1), true)?;
        self.key_run(i, word).map(|key| Hit {
            key,
            value_tok: i + 1,
            kind: Kind::Bare,
            tight_value: None,
        })
    }

    /// Takes the pair found at token `i` when its value is a number that
    /// ends its clause; returns the next token to look at.
    fn take(&mut self, i: usize, hit: Hit<'a>) -> usize {
        let Hit {
            key,
            value_tok: vi,
            kind,
            tight_value,
        } = hit;
        let vtext = tight_value.unwrap_or_else(|| self.text(vi));
        let ends = kind == Kind::Tight || self.value_ends(vi);
        let Some(v) = parse_number(vtext, true).filter(|_| ends) else {
            return i + 1;
        };
        self.consumed[i..=vi].fill(true);
        if kind != Kind::Tight && kind != Kind::Bare {
            // "key =" or "key:" before the value token: both taken.
            self.consumed[vi] = true;
        }
        if is_step_key(&key)
            && let Some(s) = as_step(v)
        {
            self.step = Some(s);
            self.anchored = true;
            return vi + 1;
        }
        let key = if key.eq_ignore_ascii_case("epoch") {
            "epoch".to_owned()
        } else {
            key
        };
        self.out.push(Candidate {
            key,
            value: v,
            kind,
            integral: looks_integral(strip_unit(vtext)),
        });
        vi + 1
    }
}
