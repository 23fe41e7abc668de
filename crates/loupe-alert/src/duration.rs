//! Durations as rules write them: `30s`, `5m`, `1h30m`, `3d`, `500ms`.

use std::time::Duration;

/// Parses `"5m"`, `"1h30m"`, `"3d"`, `"250ms"`, `"0s"`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration (write e.g. \"5m\", \"1h\", \"30s\")".into());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?} lacks a unit (ms, s, m, h, d)"))?;
        if digits == 0 {
            return Err(format!("{text:?} is not a duration (write e.g. \"5m\")"));
        }
        let n: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: bad number {:?}", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 7.0 * 86400.0,
            u => {
                return Err(format!(
                    "{text:?}: unknown unit {u:?} (use ms, s, m, h, d, w)"
                ));
            }
        };
        total += n * secs;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 3.0e9 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// The shortest text that [`parse`] reads back as `d` (whole milliseconds).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("3d").unwrap(), Duration::from_secs(3 * 86400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(format(Duration::from_secs(5400)), "90m");
        assert_eq!(format(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        assert!(parse("5").unwrap_err().contains("unit"));
        assert!(parse("5x").unwrap_err().contains("unknown unit"));
        assert!(parse("m5").is_err());
        assert!(parse("").is_err());
        assert!(parse("1e400s").is_err());
    }
}
