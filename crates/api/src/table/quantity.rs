//! Canonical text of resource quantities (`500m`, `1Gi`, `1536Mi`), as apimachinery's
//! `Quantity.String()` prints them. Table cells show quantities in this form because the Go server
//! parses them on decode and prints the canonical form, whatever the user wrote (`1000m` shows
//! as `1`, `0.5` as `500m`, `2048Mi` as `2Gi`).

use serde_json::Value;

/// How the quantity was written, which decides how it is printed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// The canonical text of a quantity held as a JSON string or number. Text that does not parse
/// as a quantity is returned unchanged (the Go server would have refused it on decode).
pub(crate) fn canonical(value: &Value) -> String {
    let raw = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => return "0".to_string(),
        other => return other.to_string(),
    };
    canonical_str(&raw).unwrap_or(raw)
}

/// `Quantity.String()` of a quantity that may be absent: Go prints a nil `*Quantity` as `<nil>`.
pub(crate) fn canonical_or_nil(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "<nil>".to_string(),
        Some(v) => canonical(v),
    }
}

fn canonical_str(text: &str) -> Option<String> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(digits_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let (format, base2_exp, base10_exp) = parse_suffix(suffix)?;

    // value = digits * 2^base2_exp * 10^(base10_exp - fraction.len())
    let mut mantissa: i128 = 0;
    for d in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(d - b'0'))?;
    }
    mantissa = mantissa.checked_mul(1i128.checked_shl(base2_exp)?)?;
    if negative {
        mantissa = -mantissa;
    }
    let mut scale = base10_exp - i32::try_from(fraction.len()).ok()?;

    // Quantities keep nanosecond-like precision: anything finer rounds away from zero.
    if scale < -9 {
        let divisor = pow10(u32::try_from(-9 - scale).ok()?)?;
        let (q, r) = (mantissa / divisor, mantissa % divisor);
        mantissa = if r == 0 { q } else { q + mantissa.signum() };
        scale = -9;
    }
    if mantissa == 0 {
        return Some("0".to_string());
    }

    let mut format = format;
    if format == Format::BinarySi {
        // Small or fractional binary quantities print in decimal to avoid rounding.
        let integer = if scale >= 0 {
            mantissa.checked_mul(pow10(scale as u32)?)
        } else {
            let divisor = pow10((-scale) as u32)?;
            (mantissa % divisor == 0).then(|| mantissa / divisor)
        };
        match integer {
            Some(v) if v.abs() >= 1024 => return Some(binary(v)),
            _ => format = Format::DecimalSi,
        }
    }

    // Strip trailing zeros into the exponent, then bring the exponent down to a multiple of 3.
    while mantissa % 10 == 0 {
        mantissa /= 10;
        scale += 1;
    }
    match scale % 3 {
        1 | -2 => {
            mantissa = mantissa.checked_mul(10)?;
            scale -= 1;
        }
        2 | -1 => {
            mantissa = mantissa.checked_mul(100)?;
            scale -= 2;
        }
        _ => {}
    }
    let suffix = match (format, scale) {
        (_, 0) => String::new(),
        (Format::DecimalSi, -9) => "n".into(),
        (Format::DecimalSi, -6) => "u".into(),
        (Format::DecimalSi, -3) => "m".into(),
        (Format::DecimalSi, 3) => "k".into(),
        (Format::DecimalSi, 6) => "M".into(),
        (Format::DecimalSi, 9) => "G".into(),
        (Format::DecimalSi, 12) => "T".into(),
        (Format::DecimalSi, 15) => "P".into(),
        (Format::DecimalSi, 18) => "E".into(),
        (_, exp) => format!("e{exp}"),
    };
    Some(format!("{mantissa}{suffix}"))
}

/// An integer of at least 1024 in magnitude, in the largest exact binary unit.
fn binary(mut value: i128) -> String {
    const UNITS: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut unit = 0;
    while unit < UNITS.len() - 1 && value % 1024 == 0 {
        value /= 1024;
        unit += 1;
    }
    format!("{value}{}", UNITS[unit])
}

/// The format, power of two and power of ten a suffix stands for.
fn parse_suffix(suffix: &str) -> Option<(Format, u32, i32)> {
    let decimal = |exp| Some((Format::DecimalSi, 0, exp));
    let binary = |exp| Some((Format::BinarySi, exp, 0));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((Format::DecimalExponent, 0, exp.parse().ok()?))
        }
    }
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_print_canonically() {
        let cases = [
            ("100m", "100m"),
            ("1000m", "1"),
            ("0.5", "500m"),
            (".5", "500m"),
            ("1", "1"),
            ("1000", "1k"),
            ("1024", "1024"),
            ("1Gi", "1Gi"),
            ("2048Mi", "2Gi"),
            ("1.5Gi", "1536Mi"),
            ("512Mi", "512Mi"),
            ("100Ki", "100Ki"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("1E6", "1e6"),
            ("1500e-3", "1500e-3"),
            ("0", "0"),
            ("0Gi", "0"),
            ("-1", "-1"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("10G", "10G"),
            ("1000E", "1e21"),
            ("bogus", "bogus"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(&json!(input)), want, "{input}");
        }
        assert_eq!(canonical(&json!(2)), "2");
        assert_eq!(canonical(&json!(0.25)), "250m");
        assert_eq!(canonical_or_nil(None), "<nil>");
    }
}
