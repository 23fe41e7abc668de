//! The number grammar shared by every detector: what Python, JSON and C
//! `printf` write for a float, plus the few unit suffixes that are safe to
//! drop.

/// Units dropped from a number's end. Only suffixes that leave the number
/// as printed (a percentage stays 12.5, a duration stays in the unit it was
/// printed in) and that a word cannot start with after a digit: `12.5%`,
/// `35.1ms`, `2s`, `1.5x`. The unit is not part of the key; a key printed
/// with two different units is the user's to rename with `--metric-pattern`.
const UNITS: &[&[u8]] = &[b"%", b"ms", b"us", b"\xc2\xb5s", b"ns", b"s", b"x"];

/// Parses `s` as a whole number token: optional sign, digits with an
/// optional fraction, optional exponent, or `nan` / `inf` / `infinity`
/// (any case, optionally signed). With `allow_unit`, one suffix from
/// [`UNITS`] may follow. Anything else (`2.3.1`, `0x1f`, `1,000`, `12GB`,
/// `3e`) is `None`.
pub(crate) fn parse_number(s: &[u8], allow_unit: bool) -> Option<f64> {
    let end = numeric_prefix_len(s);
    if end == 0 {
        return None;
    }
    let rest = &s[end..];
    if !(rest.is_empty() || allow_unit && UNITS.contains(&rest)) {
        return None;
    }
    parse_numeric(&s[..end])
}

/// Length of the longest prefix of `s` that is a number in the grammar of
/// [`parse_number`] (0 when none).
pub(crate) fn numeric_prefix_len(s: &[u8]) -> usize {
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let body = &s[i..];
    for word in [&b"infinity"[..], b"inf", b"nan"] {
        if body.len() >= word.len() && body[..word.len()].eq_ignore_ascii_case(word) {
            // "information" is not "inf": the word must end here.
            let next = body.get(word.len());
            if next.is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_') {
                return i + word.len();
            }
            return 0;
        }
    }
    let int_digits = count_digits(&s[i..]);
    i += int_digits;
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        frac_digits = count_digits(&s[i + 1..]);
        if frac_digits > 0 || int_digits > 0 {
            i += 1 + frac_digits;
        }
    }
    if int_digits == 0 && frac_digits == 0 {
        return 0;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_digits = count_digits(&s[j..]);
        if exp_digits > 0 {
            i = j + exp_digits;
        }
    }
    i
}

fn count_digits(s: &[u8]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Converts an already validated numeric token.
fn parse_numeric(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // Rust's parser takes "1." and ".5" and exponents as Python prints them.
    text.parse::<f64>().ok()
}

/// Whether a numeric token was printed as an integer (no fraction, no
/// exponent, not NaN/inf): such a value is more likely a count or an id
/// than a metric when it stands alone.
pub(crate) fn looks_integral(s: &[u8]) -> bool {
    let digits = s
        .strip_prefix(b"-")
        .or_else(|| s.strip_prefix(b"+"))
        .unwrap_or(s);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// An `i64` step from a value token: an integer, or a float with no
/// fractional part that fits (`10.0`).
pub(crate) fn as_step(v: f64) -> Option<i64> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
        Some(v as i64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(parse_number(b"0.512", false), Some(0.512));
        assert_eq!(parse_number(b"3e-4", false), Some(3e-4));
        assert_eq!(parse_number(b"-1.5E+3", false), Some(-1500.0));
        assert_eq!(parse_number(b".5", false), Some(0.5));
        assert_eq!(parse_number(b"5.", false), Some(5.0));
        assert!(parse_number(b"nan", false).unwrap().is_nan());
        assert!(parse_number(b"NaN", false).unwrap().is_nan());
        assert_eq!(parse_number(b"-inf", false), Some(f64::NEG_INFINITY));
        assert_eq!(parse_number(b"Infinity", false), Some(f64::INFINITY));
        assert_eq!(parse_number(b"12.5%", true), Some(12.5));
        assert_eq!(parse_number(b"35.12ms", true), Some(35.12));
        assert_eq!(parse_number(b"12.5%", false), None);
        for bad in [
            &b"2.3.1"[..],
            b"0x1f",
            b"1,000",
            b"12GB",
            b"3e",
            b"",
            b"-",
            b".",
            b"info",
            b"nanx",
            b"1e5e",
        ] {
            assert_eq!(
                parse_number(bad, true),
                None,
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
        assert_eq!(parse_number(b"3e", true), None);
    }
}
