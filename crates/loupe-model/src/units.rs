//! Numbers as a person reads them: about four significant digits, in the
//! unit a series' name implies (bytes as KiB/MiB/GiB, rates per second, %,
//! °C, durations). Diagnosis explanations, the CLI's tables and the demo
//! format through here, and the web UI's `ui/src/format.ts` follows the same
//! rules: both are checked against one table of cases
//! (`tests/data/units.json`), so a series reads the same in every place.

use std::sync::LazyLock;

use regex::Regex;

/// What a series measures, as far as its name tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Unit {
    Bytes,
    BytesPerSecond,
    Percent,
    Celsius,
    Seconds,
    Milliseconds,
    Watts,
    Megahertz,
    PerSecond,
    /// A plain number (losses, learning rates, counts).
    #[default]
    None,
}

impl Unit {
    /// The name `ui/src/format.ts` gives this unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::BytesPerSecond => "bytes/s",
            Unit::Percent => "percent",
            Unit::Celsius => "celsius",
            Unit::Seconds => "seconds",
            Unit::Milliseconds => "ms",
            Unit::Watts => "watts",
            Unit::Megahertz => "mhz",
            Unit::PerSecond => "per_s",
            Unit::None => "none",
        }
    }

    /// The unit of a series, by its name: known metric names first (the
    /// agent's `sys/…` and `gpu/…`, the SDK's integrations), then the
    /// conventions people name series by (`_bytes`, `_seconds`, `_per_s`).
    /// `gpu/0/memory_used_bytes` gives bytes, `train/loss` none.
    pub fn of(name: &str) -> Unit {
        let rules = &*RULES;
        if rules.no_unit.is_match(name) {
            return Unit::None;
        }
        let unit = rules
            .by_name
            .iter()
            .find(|(re, _)| re.is_match(name))
            .map_or(Unit::None, |(_, u)| *u);
        if unit == Unit::Bytes && rules.not_bytes.is_match(name) {
            return Unit::None;
        }
        unit
    }
}

struct Rules {
    /// Ordered: the first pattern that matches wins, so rates of bytes are
    /// found before bytes.
    by_name: Vec<(Regex, Unit)>,
    /// Losses, learning rates and the like never carry a unit, whatever
    /// else their name contains.
    no_unit: Regex,
    /// Names with a memory word that count things rather than bytes.
    not_bytes: Regex,
}

// The patterns are the ones `ui/src/format.ts` uses; the shared case table
// keeps them in step.
static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("unit patterns are valid");
    Rules {
        by_name: vec![
            (
                re(
                    r"(?i)(bytes?|_bps)(_per_s(ec(ond)?)?|/s|_rate)$|(read|write|rx|tx|recv|sent)_bytes_per",
                ),
                Unit::BytesPerSecond,
            ),
            (
                re(r"(?i)(percent|_pct|utili[sz]ation|[/._]util)$|percent[/._]|cpu_usage$"),
                Unit::Percent,
            ),
            (
                re(
                    r"(?i)(^|[/._])(mem(ory)?|rss|vram|swap)([/._]|$)|bytes?$|_bytes[/._]|_mib$|_gib$",
                ),
                Unit::Bytes,
            ),
            (re(r"(?i)temp(erature)?(_c)?$"), Unit::Celsius),
            (re(r"(?i)(_ms|_millis(econds)?)$"), Unit::Milliseconds),
            (
                re(r"(?i)(seconds|_secs?|_time|latency|duration|ttft|tpot|_wait)$"),
                Unit::Seconds,
            ),
            (re(r"(?i)(power|_watts?|_w)$"), Unit::Watts),
            (re(r"(?i)(clock|_mhz|freq(uency)?)$"), Unit::Megahertz),
            (
                re(r"(?i)(_per_s(ec(ond)?)?|/s|_ps|throughput|per_second)$"),
                Unit::PerSecond,
            ),
        ],
        no_unit: re(
            r"(?i)(^|[/._])(loss|lr|learning_rate|grad_norm|acc(uracy)?|epoch|perplexity|ppl)([/._]|$)",
        ),
        not_bytes: re(r"(?i)(_count|_errors|_pages|_frac(tion)?|ratio)$"),
    }
});

/// Significant digits of everything this module writes.
pub const SIGNIFICANT_DIGITS: usize = 4;

/// `x` rounded to `digits` significant digits, shortest form, no trailing
/// zeros; exponent form (`3e-4`, `1.235e21`) outside [0.001, 1e21) — the way
/// JavaScript prints `Number(x.toPrecision(digits))`.
pub fn sig(x: f64, digits: usize) -> String {
    if let Some(s) = non_finite(x) {
        return s.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let digits = digits.max(1);
    // Round through the exponent form, which rounds to `digits` significant
    // digits exactly, then read the rounded value back.
    let rounded: f64 = format!("{x:.prec$e}", prec = digits - 1)
        .parse()
        .unwrap_or(x);
    let a = rounded.abs();
    if (1e-3..1e21).contains(&a) {
        // Rust prints the shortest representation that reads back as the
        // same value: `0.4871`, `48040`, `1e+20` never appears here.
        format!("{rounded}")
    } else {
        let s = format!("{rounded:.prec$e}", prec = digits - 1);
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.trim_end_matches('0').trim_end_matches('.')
        } else {
            mantissa
        };
        format!("{mantissa}e{exp}")
    }
}

fn non_finite(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("NaN")
    } else if x == f64::INFINITY {
        Some("+Inf")
    } else if x == f64::NEG_INFINITY {
        Some("−Inf")
    } else {
        None
    }
}

const SI: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];

/// A plain number: four significant digits; from 10 000 up with k/M/G/T
/// (48035.3663 → `48.04k`, 6.008e10 → `60.08G`); below 0.001 in exponent
/// form (`3e-4`). Integers below 10 000 stay exact (`step 518`).
pub fn number(x: f64) -> String {
    number_digits(x, SIGNIFICANT_DIGITS)
}

fn number_digits(x: f64, digits: usize) -> String {
    if let Some(s) = non_finite(x) {
        return s.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if x.fract() == 0.0 && a < 1e4 {
        return format!("{x}");
    }
    for (factor, prefix) in SI {
        if a >= factor * 0.99995 && a >= 1e4 {
            return format!("{}{prefix}", sig(x / factor, digits));
        }
    }
    sig(x, digits)
}

const BINARY: [(f64, &str); 5] = [
    (1125899906842624.0, "PiB"),
    (1099511627776.0, "TiB"),
    (1073741824.0, "GiB"),
    (1048576.0, "MiB"),
    (1024.0, "KiB"),
];

/// A size: `512 B`, `1.5 KiB`, `39.06 GiB`.
pub fn bytes(x: f64) -> String {
    if let Some(s) = non_finite(x) {
        return s.into();
    }
    let a = x.abs();
    for (factor, suffix) in BINARY {
        if a >= factor {
            return format!("{} {suffix}", sig(x / factor, SIGNIFICANT_DIGITS));
        }
    }
    format!("{} B", sig(x, SIGNIFICANT_DIGITS))
}

/// A duration in seconds: `950 µs`, `12.5 ms`, `3.42 s`, `4m 05s`, `2h 10m`,
/// `3d 4h`.
pub fn seconds(x: f64) -> String {
    if let Some(s) = non_finite(x) {
        return s.into();
    }
    let a = x.abs();
    let sign = if x < 0.0 { "−" } else { "" };
    let d = SIGNIFICANT_DIGITS;
    if a == 0.0 {
        return "0 s".into();
    }
    if a < 1e-3 {
        return format!("{sign}{} µs", sig(a * 1e6, d));
    }
    if a < 1.0 {
        return format!("{sign}{} ms", sig(a * 1e3, d));
    }
    if a < 60.0 {
        return format!("{sign}{} s", sig(a, d));
    }
    let s = a.round() as u64;
    if s < 3600 {
        format!("{sign}{}m {:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{sign}{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{sign}{}d {}h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// A value of a series measured in `unit`.
pub fn value(x: f64, unit: Unit) -> String {
    if let Some(s) = non_finite(x) {
        return s.into();
    }
    let d = SIGNIFICANT_DIGITS;
    match unit {
        Unit::Bytes => bytes(x),
        Unit::BytesPerSecond => format!("{}/s", bytes(x)),
        Unit::Percent => format!("{}%", sig(x, d.min(3 + usize::from(x.abs() >= 100.0)))),
        Unit::Celsius => format!("{} °C", sig(x, 3)),
        Unit::Seconds => seconds(x),
        Unit::Milliseconds => seconds(x / 1000.0),
        Unit::Watts if x.abs() >= 1000.0 => format!("{} kW", sig(x / 1000.0, d)),
        Unit::Watts => format!("{} W", sig(x, d)),
        Unit::Megahertz if x.abs() >= 1000.0 => format!("{} GHz", sig(x / 1000.0, d)),
        Unit::Megahertz => format!("{} MHz", sig(x, d)),
        Unit::PerSecond => format!("{}/s", number(x)),
        Unit::None => number(x),
    }
}

/// A value of the series `name`, in the unit its name implies.
pub fn series_value(x: f64, name: &str) -> String {
    value(x, Unit::of(name))
}

/// A relative change `ratio` (new / old − 1) as a person reads it: a
/// percentage with a sign (`+52.3%`, `−3.1%`), or a factor once the value
/// has more than doubled (`×24.2`: "+2320%" reads badly).
pub fn percent_change(ratio: f64) -> String {
    if let Some(s) = non_finite(ratio) {
        return s.into();
    }
    if ratio >= 1.0 {
        return format!("×{}", sig(1.0 + ratio, 3));
    }
    let p = ratio * 100.0;
    let text = sig(p.abs(), if p.abs() >= 10.0 { 3 } else { 2 });
    if p < 0.0 {
        format!("−{text}%")
    } else {
        format!("+{text}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_rounds_to_significant_digits() {
        assert_eq!(sig(48035.3663, 4), "48040");
        assert_eq!(sig(0.487123, 4), "0.4871");
        assert_eq!(sig(2.0, 4), "2");
        assert_eq!(sig(0.00031234, 4), "3.123e-4");
        assert_eq!(sig(9.99999, 4), "10");
        assert_eq!(sig(-1.23456, 3), "-1.23");
    }

    #[test]
    fn numbers_use_si_prefixes_from_ten_thousand() {
        assert_eq!(number(48035.3663), "48.04k");
        assert_eq!(number(6.008e10), "60.08G");
        assert_eq!(number(518.0), "518");
        assert_eq!(number(3.4224626523975448), "3.422");
        assert_eq!(number(f64::NAN), "NaN");
    }

    #[test]
    fn units_follow_the_series_name() {
        assert_eq!(Unit::of("gpu/0/memory_used_bytes"), Unit::Bytes);
        assert_eq!(Unit::of("train/loss"), Unit::None);
        assert_eq!(Unit::of("sys/net_rx_bytes_per_s"), Unit::BytesPerSecond);
        assert_eq!(Unit::of("gpu/0/utilization"), Unit::Percent);
        assert_eq!(Unit::of("serve/latency"), Unit::Seconds);
        assert_eq!(value(42.0 * 1073741824.0, Unit::Bytes), "42 GiB");
        assert_eq!(value(0.0125, Unit::Seconds), "12.5 ms");
        assert_eq!(percent_change(0.523), "+52.3%");
        assert_eq!(percent_change(-0.031), "−3.1%");
        assert_eq!(percent_change(23.2), "×24.2");
    }
}
