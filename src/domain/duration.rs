//! Durations as written in config and settings: `30s`, `15m`, `12h`, `7d`.

use std::time::Duration;

pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!("`{text}` is not a duration (use a whole number followed by s, m, h or d, e.g. 30s, 15m, 12h, 7d)")
    };
    if t.len() < 2 || !t.is_ascii() {
        return Err(bad());
    }
    let (num, unit) = t.split_at(t.len() - 1);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(bad)?;
    if secs == 0 {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(Duration::from_secs(secs))
}

/// The shortest exact text for a duration, as accepted by [`parse`].
pub fn format(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_formats_back() {
        for (text, secs) in [("30s", 30), ("15m", 900), ("12h", 43_200), ("7d", 604_800)] {
            assert_eq!(parse(text).unwrap(), Duration::from_secs(secs));
            assert_eq!(format(Duration::from_secs(secs)), text);
        }
    }

    #[test]
    fn refuses_garbage_zero_and_overflow() {
        for bad in [
            "",
            "12",
            "h",
            "1w",
            "-1h",
            "0s",
            "1.5h",
            "99999999999999999999d",
            "١h",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
