//! Kubernetes resource quantities (`500m`, `1.5`, `128Mi`, `1G`, `2e3`) as the integers the
//! scheduler adds up: CPU in millicores, everything else in whole units (bytes, pods).
//!
//! controlplane has no quantity type of its own and must not depend on `runtime` (whose node
//! config has the same parser), so this is a small copy; both round up, as
//! `resource.Quantity.MilliValue()`/`Value()` do.

/// Parses a quantity as a number of units; `None` when it is not one (or is negative).
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    let v = value * factor;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// A quantity in thousandths, rounded up: CPU millicores (`0.5` -> 500, `250m` -> 250).
pub fn millis(q: &str) -> Option<u64> {
    parse(q).map(|v| (v * 1000.0).ceil() as u64)
}

/// A quantity in whole units, rounded up: memory bytes (`128Mi`), a pod count (`110`).
pub fn units(q: &str) -> Option<u64> {
    parse(q).map(|v| v.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_binary_milli_and_exponent_quantities() {
        assert_eq!(units("128Mi"), Some(128 << 20));
        assert_eq!(units("16Gi"), Some(16 << 30));
        assert_eq!(units("1G"), Some(1_000_000_000));
        assert_eq!(units("2k"), Some(2000));
        assert_eq!(units("1e3"), Some(1000));
        assert_eq!(units("1.5Ki"), Some(1536));
        assert_eq!(units("110"), Some(110));
        assert_eq!(millis("250m"), Some(250));
        assert_eq!(millis("0.5"), Some(500));
        assert_eq!(millis("2"), Some(2000));
        assert_eq!(millis("1n"), Some(1), "rounds up like MilliValue");
    }

    #[test]
    fn rejects_unknown_suffixes_and_negative_quantities() {
        assert_eq!(units("12Qi"), None);
        assert_eq!(units("-1"), None);
        assert_eq!(units(""), None);
        assert_eq!(millis("abc"), None);
    }
}
