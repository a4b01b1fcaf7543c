//! Parsing the units people type: `10mbit`, `50ms`, `1%`, `64k`.

/// Bits per second from `10mbit`, `1gbit`, `500kbit`, `1000000` (bit/s).
pub fn rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = split(
        &t,
        &[
            ("gbit", 1e9),
            ("mbit", 1e6),
            ("kbit", 1e3),
            ("bit", 1.0),
            ("g", 1e9),
            ("m", 1e6),
            ("k", 1e3),
        ],
    );
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (try 10mbit)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?} is not a rate"));
    }
    Ok((v * mult) as u64)
}

/// Nanoseconds from `50ms`, `2s`, `250us`, `1.5s`.
pub fn duration(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = split(
        &t,
        &[
            ("ms", 1e6),
            ("us", 1e3),
            ("ns", 1.0),
            ("s", 1e9),
            ("m", 60e9),
        ],
    );
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 50ms)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok((v * mult) as u64)
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
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = split(
        &t,
        &[
            ("kib", 1024.0),
            ("mib", 1048576.0),
            ("kb", 1e3),
            ("mb", 1e6),
            ("k", 1024.0),
            ("m", 1048576.0),
            ("b", 1.0),
        ],
    );
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (try 64k)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?} is not a size"));
    }
    Ok((v * mult) as u64)
}

fn split<'a>(t: &'a str, units: &[(&str, f64)]) -> (&'a str, f64) {
    for (suffix, mult) in units {
        if let Some(num) = t.strip_suffix(suffix) {
            return (num.trim(), *mult);
        }
    }
    (t, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
