//! Value parsers for command-line numbers: every option is checked when it is parsed, so a bad
//! value is refused by name before any work starts (and negative numbers (any value after the option, even one starting with `-`) reach the check instead
//! of being taken for flags).

use std::str::FromStr;

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("'{s}' is not a number"))
}

/// A finite number > 0.
pub fn positive(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{s}: must be a finite number > 0"))
    }
}

/// A finite number >= 0.
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s}: must be a finite number >= 0"))
    }
}

/// A fraction in [0, 1).
pub fn fraction(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s}: must lie in [0, 1)"))
    }
}

/// A fraction in [0, 1].
pub fn closed_fraction(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s}: must lie in [0, 1]"))
    }
}

/// Any finite number.
pub fn finite(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{s}: must be a finite number"))
    }
}

/// A whole number >= 1.
pub fn count<T: FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    let v: T = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number"))?;
    if v >= T::from(1) {
        Ok(v)
    } else {
        Err(format!("{s}: must be at least 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_refuse_what_would_break_a_run() {
        for bad in ["0", "-1", "nan", "inf", "x"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
        assert_eq!(positive("2.5"), Ok(2.5));
        assert!(non_negative("-0.1").is_err() && non_negative("0") == Ok(0.0));
        assert!(fraction("1").is_err() && fraction("2").is_err() && fraction("0") == Ok(0.0));
        assert!(closed_fraction("1") == Ok(1.0) && closed_fraction("1.1").is_err());
        assert!(finite("inf").is_err() && finite("-3") == Ok(-3.0));
        assert!(count::<usize>("0").is_err() && count::<usize>("-1").is_err());
        assert_eq!(count::<i64>("3"), Ok(3));
    }
}
