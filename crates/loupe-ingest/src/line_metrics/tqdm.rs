//! tqdm progress bars (also what PyTorch Lightning, Hugging Face and
//! `accelerate` print, since they use tqdm):
//!
//! ```text
//! Epoch 1:  45%|████▌     | 450/1000 [00:12<00:15, 36.52it/s, loss=0.234, lr=1e-4]
//! 450it [00:12, 36.52it/s, loss=0.234]
//!  10%|█         | 1/10 [00:02<00:18,  2.05s/it]
//! ```
//!
//! The bar yields `tqdm/n`, `tqdm/total` (when both are plain integers, not
//! unit-scaled like `1.2k/10k`) and `tqdm/rate` in iterations per second
//! (`s/it` is inverted). The recogniser blanks out what it consumed — the
//! percentage, the bar, `n/total`, the elapsed/remaining times and the rate —
//! and leaves the description before the bar and the postfix after the rate
//! for the `key=value` scanner (`loss=0.234`, Lightning's `v_num=0`).

use super::number::parse_number;

pub(crate) struct Tqdm {
    pub(crate) n: Option<i64>,
    pub(crate) total: Option<i64>,
    pub(crate) rate: Option<f64>,
}

/// Finds a bar in `s` and blanks what it consumed with spaces.
pub(crate) fn take_tqdm(s: &mut [u8]) -> Option<Tqdm> {
    if let Some(t) = with_total(s) {
        return Some(t);
    }
    without_total(s)
}

/// `NN%|bar| n/total [times, rate, postfix]`.
fn with_total(s: &mut [u8]) -> Option<Tqdm> {
    let pct_bar = find(s, b"%|")?;
    // The percentage: up to three digits, right-aligned by spaces.
    let mut pstart = pct_bar;
    while pstart > 0 && s[pstart - 1].is_ascii_digit() && pct_bar - pstart < 3 {
        pstart -= 1;
    }
    if pstart == pct_bar {
        return None;
    }
    let bar_end = pct_bar + 2 + s[pct_bar + 2..].iter().position(|&c| c == b'|')?;
    let mut i = bar_end + 1;
    while s.get(i) == Some(&b' ') {
        i += 1;
    }
    let count_start = i;
    while s
        .get(i)
        .is_some_and(|c| !c.is_ascii_whitespace() && *c != b'[')
    {
        i += 1;
    }
    let (n, total) = split_count(&s[count_start..i]);
    match bracket(s, i) {
        Some((_, rate, rate_end)) => {
            blank(s, pstart, rate_end);
            Some(finish(s, Tqdm { n, total, rate }, rate_end))
        }
        None => {
            blank(s, pstart, i);
            Some(Tqdm {
                n,
                total,
                rate: None,
            })
        }
    }
}

/// `450it [00:12, 36.52it/s, ...]`: a count followed by a unit, then the
/// bracket. Only `it` is accepted as the unit here: without the bar, a
/// custom unit (`450tok [..]`) is too weak a signal.
fn without_total(s: &mut [u8]) -> Option<Tqdm> {
    let at = find(s, b"it [")?;
    let mut start = at;
    while start > 0 && s[start - 1].is_ascii_digit() {
        start -= 1;
    }
    if start == at || (start > 0 && !s[start - 1].is_ascii_whitespace()) {
        return None;
    }
    let n = std::str::from_utf8(&s[start..at]).ok()?.parse::<i64>().ok();
    let (_, rate, rate_end) = bracket(s, at + 3)?;
    blank(s, start, rate_end);
    Some(finish(
        s,
        Tqdm {
            n,
            total: None,
            rate,
        },
        rate_end,
    ))
}

/// After the rate: a `,` (postfix follows) or the closing `]`; either is
/// blanked so the postfix scans as ordinary pairs.
fn finish(s: &mut [u8], t: Tqdm, rate_end: usize) -> Tqdm {
    if let Some(close) = s[rate_end..].iter().rposition(|&c| c == b']') {
        let close = rate_end + close;
        blank(s, close, close + 1);
    }
    t
}

/// `[elapsed<remaining, rate` at `s[i..]` (after spaces): the bracket's
/// position, the rate, and where the rate element ends.
fn bracket(s: &[u8], mut i: usize) -> Option<(usize, Option<f64>, usize)> {
    while s.get(i) == Some(&b' ') {
        i += 1;
    }
    if s.get(i) != Some(&b'[') {
        return None;
    }
    let open = i;
    let times_end = open + s[open..].iter().position(|&c| c == b',' || c == b']')?;
    let times = &s[open + 1..times_end];
    // Elapsed (and remaining) look like 00:12 or 1:02:03 or ?.
    if times.is_empty()
        || !times
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b':' | b'<' | b'?' | b' ' | b'd' | b','))
    {
        return None;
    }
    if s[times_end] == b']' {
        return Some((open, None, times_end));
    }
    let mut j = times_end + 1;
    while s.get(j) == Some(&b' ') {
        j += 1;
    }
    let rate_start = j;
    while s.get(j).is_some_and(|c| *c != b',' && *c != b']') {
        j += 1;
    }
    Some((open, parse_rate(&s[rate_start..j]), j))
}

/// `36.52it/s` → 36.52; `2.05s/it` → 1/2.05; `?it/s` → None. Other units
/// (`tok/s`, `B/s`) give the rate in that unit per second.
fn parse_rate(r: &[u8]) -> Option<f64> {
    let r = r.trim_ascii();
    let slash = r.iter().position(|&c| c == b'/')?;
    let (num_unit, per) = (&r[..slash], &r[slash + 1..]);
    let digits = num_unit
        .iter()
        .take_while(|c| {
            c.is_ascii_digit() || **c == b'.' || **c == b'e' || **c == b'-' || **c == b'+'
        })
        .count();
    let v = parse_number(&num_unit[..digits], false)?;
    let unit = &num_unit[digits..];
    if per == b"s" && !unit.is_empty() {
        Some(v)
    } else if unit == b"s" && !per.is_empty() && v > 0.0 {
        Some(1.0 / v)
    } else {
        None
    }
}

/// `450/1000` → both; anything else (`1.2k/10k`, `?`) → none.
fn split_count(c: &[u8]) -> (Option<i64>, Option<i64>) {
    let Some(slash) = c.iter().position(|&b| b == b'/') else {
        return (None, None);
    };
    let int = |b: &[u8]| {
        if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(b).ok()?.parse::<i64>().ok()
        } else {
            None
        }
    };
    match (int(&c[..slash]), int(&c[slash + 1..])) {
        (Some(n), Some(t)) => (Some(n), Some(t)),
        _ => (None, None),
    }
}

fn find(s: &[u8], needle: &[u8]) -> Option<usize> {
    s.windows(needle.len()).position(|w| w == needle)
}

/// Overwrites `s[from..to]` with spaces: the bytes there are a whole run of
/// characters (the bounds are ASCII positions), so the buffer stays UTF-8.
fn blank(s: &mut [u8], from: usize, to: usize) {
    let to = to.min(s.len());
    if from < to {
        s[from..to].fill(b' ');
    }
}
