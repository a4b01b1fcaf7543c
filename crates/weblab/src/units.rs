//! Parsing the units people type: `10mbit`, `50ms`, `1%`, `64k`.

/// A non-negative number followed by one of `units` (first match wins, so
/// longer suffixes go first), scaled; `what` and `example` name it in errors.
fn scaled(s: &str, units: &[(&str, f64)], what: &str, example: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = units
        .iter()
        .find_map(|(suffix, mult)| t.strip_suffix(suffix).map(|n| (n.trim(), *mult)))
        .unwrap_or((t.as_str(), 1.0));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not {what} (try {example})"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?} is not {what}"));
    }
    Ok((v * mult) as u64)
}

/// Bits per second from `10mbit`, `1gbit`, `500kbit`, `1000000` (bit/s).
pub fn rate(s: &str) -> Result<u64, String> {
    const UNITS: [(&str, f64); 7] = [
        ("gbit", 1e9),
        ("mbit", 1e6),
        ("kbit", 1e3),
        ("bit", 1.0),
        ("g", 1e9),
        ("m", 1e6),
        ("k", 1e3),
    ];
    scaled(s, &UNITS, "a rate", "10mbit")
}

/// Nanoseconds from `50ms`, `2s`, `250us`, `1.5s`.
pub fn duration(s: &str) -> Result<u64, String> {
    const UNITS: [(&str, f64); 5] = [
        ("ms", 1e6),
        ("us", 1e3),
        ("ns", 1.0),
        ("s", 1e9),
        ("m", 60e9),
    ];
    scaled(s, &UNITS, "a duration", "50ms")
}

/// A rate that must be more than zero (a link of 0 bit/s sends nothing).
pub fn positive_rate(s: &str) -> Result<u64, String> {
    match rate(s)? {
        0 => Err(format!("{s:?}: the rate must be more than 0 (try 10mbit)")),
        r => Ok(r),
    }
}

/// A duration that must be more than zero.
pub fn positive_duration(s: &str) -> Result<u64, String> {
    match duration(s)? {
        0 => Err(format!("{s:?}: the duration must be more than 0 (try 30s)")),
        d => Ok(d),
    }
}

/// A span of time `FROM..TO` (`8s..12s`), in nanoseconds, FROM before TO.
pub fn duration_range(s: &str) -> Result<(u64, u64), String> {
    let Some((from, to)) = s.split_once("..") else {
        return Err(format!("{s:?}: give FROM..TO, like 8s..12s"));
    };
    let (from, to) = (duration(from)?, duration(to)?);
    if from >= to {
        return Err(format!("{s:?}: FROM must come before TO (try 8s..12s)"));
    }
    Ok((from, to))
}

/// A probability from `1%` or `0.01`.
pub fn probability(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v: f64 = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a probability (try 1% or 0.01)"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?} is not between 0 and 1"));
    }
    Ok(v)
}

/// Bytes from `64k`, `4m`, `1500`.
pub fn bytes(s: &str) -> Result<u64, String> {
    const UNITS: [(&str, f64); 7] = [
        ("kib", 1024.0),
        ("mib", 1048576.0),
        ("kb", 1e3),
        ("mb", 1e6),
        ("k", 1024.0),
        ("m", 1048576.0),
        ("b", 1.0),
    ];
    scaled(s, &UNITS, "a size", "64k")
}

/// `n` bytes for a person: `512 B`, `64.0 KiB`, `4.00 MiB`.
pub fn show_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1048576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.2} MiB", n as f64 / 1048576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_in_binary_units() {
        assert_eq!(show_bytes(1023), "1023 B");
        assert_eq!(show_bytes(65536), "64.0 KiB");
        assert_eq!(show_bytes(4 << 20), "4.00 MiB");
    }

    #[test]
    fn units_parse_and_bad_ones_are_named() {
        assert_eq!(rate("10mbit").unwrap(), 10_000_000);
        assert_eq!(rate("1Gbit").unwrap(), 1_000_000_000);
        assert_eq!(duration("50ms").unwrap(), 50_000_000);
        assert_eq!(duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(probability("1%").unwrap(), 0.01);
        assert_eq!(probability("0.2").unwrap(), 0.2);
        assert_eq!(bytes("64k").unwrap(), 65_536);
        assert!(rate("fast").unwrap_err().contains("fast"));
        assert!(probability("150%").is_err());
        assert!(duration("-3s").is_err());
    }
}
