//! Resource quantities (`500m`, `128Mi`, `1e3`): parsed into an exact count of nano-units so that
//! requests and limits compare exactly, and printed back in Kubernetes' canonical form for
//! messages (`0.5` prints as `500m`, `1.5Gi` as `1536Mi`).

use std::cmp::Ordering;

/// The quantity syntax, quoted in Kubernetes' parse error.
pub(crate) const QUANTITY_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// A parsed quantity: its value times 10^9, rounded up like Kubernetes rounds sub-nano values.
/// Quantities compare by value (`1Ki` equals `1024`), as Kubernetes' `Cmp` does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Quantity {
    /// Parse a quantity string; None when it does not follow the Kubernetes syntax.
    pub(crate) fn parse(input: &str) -> Option<Quantity> {
        let s = input.trim();
        if s.is_empty() {
            return None;
        }
        let (negative, rest) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_end);
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() || frac.contains('.') {
            return None;
        }
        let digits = format!("{whole}{frac}");
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        // value = mantissa * 10^(-frac.len()) * multiplier; track the decimal exponent and the
        // power of two separately so the arithmetic stays exact.
        let mut exp10: i64 = -(frac.len() as i64);
        let mut exp2: u32 = 0;
        let format = match suffix {
            "" => Format::DecimalSi,
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                exp2 = match suffix {
                    "Ki" => 10,
                    "Mi" => 20,
                    "Gi" => 30,
                    "Ti" => 40,
                    "Pi" => 50,
                    _ => 60,
                };
                Format::BinarySi
            }
            "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
                exp10 += match suffix {
                    "n" => -9,
                    "u" => -6,
                    "m" => -3,
                    "k" => 3,
                    "M" => 6,
                    "G" => 9,
                    "T" => 12,
                    "P" => 15,
                    _ => 18,
                };
                Format::DecimalSi
            }
            _ => {
                let exp = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))?;
                let exp = exp.strip_prefix('+').unwrap_or(exp);
                if exp.is_empty() {
                    return None;
                }
                exp10 += exp.parse::<i64>().ok()?;
                Format::DecimalExponent
            }
        };
        // nanos = mantissa * 2^exp2 * 10^(exp10 + 9), rounded up.
        let scaled_exp = exp10 + 9;
        let base = mantissa.checked_mul(1i128.checked_shl(exp2)?);
        let nanos = match base {
            None => i128::MAX,
            Some(base) if scaled_exp >= 0 => u32::try_from(scaled_exp)
                .ok()
                .and_then(pow10)
                .and_then(|p| base.checked_mul(p))
                .unwrap_or(i128::MAX),
            Some(base) => match u32::try_from(-scaled_exp).ok().and_then(pow10) {
                Some(div) => (base + div - 1) / div,
                None => i128::from(base > 0),
            },
        };
        Some(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// The value times 10^9 (exact up to nano units).
    pub(crate) fn nanos(&self) -> i128 {
        self.nanos
    }

    pub(crate) fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the value is a whole number (integer resources such as GPUs need that).
    pub(crate) fn is_integer(&self) -> bool {
        self.nanos % 1_000_000_000 == 0
    }

    /// Kubernetes' canonical string (`Quantity.String()`).
    pub(crate) fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_string();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        if self.format == Format::BinarySi
            && abs.is_multiple_of(1_000_000_000)
            && abs / 1_000_000_000 >= 1024
        {
            let mut v = abs / 1_000_000_000;
            let mut exp = 0;
            while v.is_multiple_of(1024) && exp < 60 {
                v /= 1024;
                exp += 10;
            }
            let suffix = match exp {
                0 => "",
                10 => "Ki",
                20 => "Mi",
                30 => "Gi",
                40 => "Ti",
                50 => "Pi",
                _ => "Ei",
            };
            return format!("{sign}{v}{suffix}");
        }
        let mut v = abs;
        let mut exp: i32 = -9;
        while v.is_multiple_of(1000) && exp < 18 {
            v /= 1000;
            exp += 3;
        }
        let suffix = if self.format == Format::DecimalExponent {
            if exp == 0 {
                String::new()
            } else {
                format!("e{exp}")
            }
        } else {
            match exp {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            }
            .to_string()
        };
        format!("{sign}{v}{suffix}")
    }
}

/// Parse a quantity held in JSON (a string, or a bare number some clients send).
pub(crate) fn from_json(value: &serde_json::Value) -> Option<Quantity> {
    match value {
        serde_json::Value::String(s) => Quantity::parse(s),
        serde_json::Value::Number(n) => Quantity::parse(&n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn parses_and_compares_exactly() {
        assert_eq!(q("500m"), q("0.5"));
        assert!(q("1") > q("999m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("128Mi") < q("1Gi"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(q("-1").is_negative());
        assert!(q("2").is_integer() && !q("1.5").is_integer());
        for bad in ["", "abc", "1.2.3", "1Qi", "m", "1e"] {
            assert!(Quantity::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn prints_canonical_forms() {
        assert_eq!(q("0.5").canonical(), "500m");
        assert_eq!(q("1000m").canonical(), "1");
        assert_eq!(q("1.5Gi").canonical(), "1536Mi");
        assert_eq!(q("128Mi").canonical(), "128Mi");
        assert_eq!(q("2000").canonical(), "2k");
        assert_eq!(q("1e3").canonical(), "1e3");
        assert_eq!(q("512").canonical(), "512");
        assert_eq!(q("0").canonical(), "0");
    }
}
