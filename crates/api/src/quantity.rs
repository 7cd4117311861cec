//! Kubernetes resource quantities (`100m`, `2`, `1.5`, `128Mi`, `1G`, `1e3`) as integers: the
//! scheduler sums requests with them and the agent turns them into cgroup values.

/// A quantity in thousandths of its unit: milli-CPUs for `cpu`, milli-bytes for memory (divide
/// by 1000 for bytes). `None` when it does not parse.
pub fn milli(q: &str) -> Option<i128> {
    let q = q.trim();
    let (number, suffix) = q.split_at(q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len()));
    let value: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1000.0,
        "m" => 1.0,
        "k" => 1e6,
        "M" => 1e9,
        "G" => 1e12,
        "T" => 1e15,
        "P" => 1e18,
        "Ki" => 1024.0 * 1000.0,
        "Mi" => 1024.0 * 1024.0 * 1000.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0 * 1000.0,
        "Ti" => 1024f64.powi(4) * 1000.0,
        "Pi" => 1024f64.powi(5) * 1000.0,
        _ if suffix.starts_with(['e', 'E']) => 10f64.powi(suffix[1..].parse().ok()?) * 1000.0,
        _ => return None,
    };
    Some((value * factor).round() as i128)
}

/// A quantity in whole units, rounded up (bytes of memory, CPUs): `None` when it does not
/// parse or is negative.
pub fn units_ceil(q: &str) -> Option<u64> {
    let m = milli(q)?;
    (m >= 0).then(|| ((m + 999) / 1000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(milli("100m"), Some(100));
        assert_eq!(milli("2"), Some(2000));
        assert_eq!(milli("1.5"), Some(1500));
        assert_eq!(milli("128Mi"), Some(128 * 1024 * 1024 * 1000));
        assert_eq!(milli("1k"), Some(1_000_000));
        assert_eq!(milli("1e3"), Some(1_000_000));
        assert_eq!(milli("bogus"), None);
        assert_eq!(units_ceil("64Mi"), Some(64 << 20));
        assert_eq!(units_ceil("1500m"), Some(2));
        assert_eq!(units_ceil("-1"), None);
    }
}
