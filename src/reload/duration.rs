//! Go's `time.ParseDuration`, which is what Reloader uses to read
//! `deployment.P/pause-period`. kreload accepts exactly the same strings, so an annotation
//! that works with Reloader works here and one Reloader rejects is rejected here too.
//! (`humantime` reads a different language: it takes `5min` and `1d`, which Go rejects,
//! and rejects `1.5h`, which Go takes; the small port here keeps the two tools in step.)
//!
//! The grammar is `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with the units `ns`, `us` (`µs`, `μs`),
//! `ms`, `s`, `m` and `h`, plus the bare `0`. A pause needs a positive length, so zero and
//! negative values, which Go parses, are reported as [`DurationError::NotPositive`].

use std::time::Duration;

/// Why a pause period was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}: expected a Go duration such as 30s, 5m or 1h30m")]
    Invalid(String),
    #[error("unknown unit {unit:?} in duration {value:?}: expected ns, us, ms, s, m or h")]
    UnknownUnit { value: String, unit: String },
    #[error("duration {0:?} is too long")]
    Overflow(String),
    #[error("duration {0:?} is not positive")]
    NotPositive(String),
}

/// Go's limit: a `time.Duration` is an `int64` of nanoseconds.
const LIMIT: u64 = 1 << 63;

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // "µs" is U+00B5 (micro sign), "μs" U+03BC (Greek mu); Go takes both.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses `value` as Go's `time.ParseDuration` does and returns it if it is positive.
pub fn parse_go_duration(value: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(value.to_owned());
    let overflow = || DurationError::Overflow(value.to_owned());
    let mut s = value;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Err(DurationError::NotPositive(value.to_owned()));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, rest) = leading_int(s).ok_or_else(overflow)?;
        let had_whole = rest.len() != s.len();
        s = rest;
        let (mut fraction, mut scale, mut had_fraction) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let (f, sc, rest2) = leading_fraction(rest);
            had_fraction = rest2.len() != rest.len();
            (fraction, scale, s) = (f, sc, rest2);
        }
        if !had_whole && !had_fraction {
            // ".s" or "."
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(invalid());
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let nanos = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            value: value.to_owned(),
            unit: unit.to_owned(),
        })?;
        if whole > LIMIT / nanos {
            return Err(overflow());
        }
        let mut v = whole * nanos;
        if fraction > 0 {
            // Go computes the fractional part in float64; so does this, for the same result.
            v += (fraction as f64 * (nanos as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(overflow());
            }
        }
        total = total.checked_add(v).ok_or_else(overflow)?;
        if total > LIMIT {
            return Err(overflow());
        }
    }
    if negative || total == 0 {
        return Err(DurationError::NotPositive(value.to_owned()));
    }
    if total > LIMIT - 1 {
        return Err(overflow());
    }
    Ok(Duration::from_nanos(total))
}

/// Leading decimal digits as an integer and the rest; `None` on overflow.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let mut x: u64 = 0;
    for b in s[..end].bytes() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(b - b'0');
        if x > LIMIT {
            return None;
        }
    }
    Some((x, &s[end..]))
}

/// Leading digits after the decimal point: their value, `10^count` of the digits kept,
/// and the rest. Digits past what fits are consumed and ignored, as in Go.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for b in s[..end].bytes() {
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(b - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's own table from `time/time_test.go` (`parseDurationTests`), positive values.
    const GO_ACCEPTS: &str = include_str!("duration/go_accepts.tsv");

    #[test]
    fn accepts_what_go_accepts() {
        let cases: Vec<(&str, u64)> = GO_ACCEPTS
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (input, nanos) = l.split_once('\t').expect("input<TAB>nanos");
                (input, nanos.parse().expect("nanoseconds"))
            })
            .collect();
        assert_eq!(cases.len(), 33, "every line of the table is read");
        for (input, nanos) in cases {
            assert_eq!(
                parse_go_duration(input),
                Ok(Duration::from_nanos(nanos)),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for input in [
            "", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "5min", "5 m", " 5m", "5m ", "5M",
            "1h-30m", "\u{3bc}s", "1.5.h",
        ] {
            let error = parse_go_duration(input).expect_err(input);
            assert!(
                matches!(
                    error,
                    DurationError::Invalid(_) | DurationError::UnknownUnit { .. }
                ),
                "{input}: {error:?}"
            );
        }
        assert_eq!(
            parse_go_duration("5min"),
            Err(DurationError::UnknownUnit {
                value: "5min".into(),
                unit: "min".into()
            })
        );
    }

    #[test]
    fn too_long_is_overflow() {
        for input in [
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "3000000h",
        ] {
            assert!(
                matches!(parse_go_duration(input), Err(DurationError::Overflow(_))),
                "{input}"
            );
        }
    }

    /// Go parses these, but a pause of zero or less is no pause.
    #[test]
    fn zero_and_negative_are_not_positive() {
        for input in ["0", "+0", "-0", "0s", "0.0h", "-5s", "-1.5h"] {
            assert!(
                matches!(parse_go_duration(input), Err(DurationError::NotPositive(_))),
                "{input}"
            );
        }
    }
}
