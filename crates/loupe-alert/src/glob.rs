//! `*` wildcards for names and label values (`*loss`, `gpu/*/temperature`).

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (including none) and everything else is literal.
pub fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The literal text before the first `*`: what a store can narrow by.
pub fn prefix(pattern: &str) -> &str {
    pattern.split('*').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("*loss", "train/loss"));
        assert!(matches("gpu/*/temperature", "gpu/0/temperature"));
        assert!(!matches("gpu/*/temperature", "gpu/0/power"));
        assert!(matches("a*b*c", "aXbYc"));
        assert!(!matches("a*b*c", "ac"));
        assert!(matches("x", "x"));
        assert!(!matches("x", "xy"));
        assert!(matches("*", ""));
        assert_eq!(prefix("gpu/*/t"), "gpu/");
    }
}
