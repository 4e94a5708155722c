//! Go / Gateway API duration strings (`"100ms"`, `"10s"`, `"1m30s"`, `"1.5h"`) as [`Duration`].
//!
//! Envoy Gateway and Gateway API resources spell every timeout and interval the way Go's
//! `time.ParseDuration` reads them, so the loader has to read exactly that grammar: a sequence of
//! decimal numbers (optionally fractional), each followed by a unit. Parsing lives in its own module so
//! the grammar is tested on its own, and so serde can use it through [`GoDuration`] — which makes a bad
//! duration a deserialisation error carrying the YAML field path.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Why a duration string was rejected. The message quotes the input: durations are never secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. \"100ms\", \"10s\", \"1m30s\"; units ns, us, µs, ms, s, m, h)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Nanoseconds per unit, longest spelling first so `ms` is not read as `m` followed by garbage.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration string. Negative durations are refused: nothing in these APIs may be negative.
/// `"0"` alone is accepted (Go accepts it too); any other number needs a unit.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_owned(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty string"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(err("negative durations are not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        // The number: digits, optionally a fraction.
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(num_len);
        if number.is_empty() || number == "." {
            return Err(err("expected a number"));
        }
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => {
                if f.contains('.') {
                    return Err(err("more than one decimal point in a number"));
                }
                (i, f)
            }
            None => (number, ""),
        };
        // The unit.
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(err("missing unit"));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(err("unknown unit"));
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| err("number too large"))?
        };
        let mut nanos = int.checked_mul(scale).ok_or_else(|| err("too large"))?;
        // Fractions are exact down to the nanosecond, then truncated, as in Go.
        let mut frac_scale = scale;
        for digit in frac_part.bytes() {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            nanos += u128::from(digit - b'0') * frac_scale;
        }
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or_else(|| err("too large"))?;
        rest = next;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| err("too large"))?;
    // The remainder is below 1e9, so it always fits in u32.
    let sub = (total_nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// Formats a duration the way the YAML would spell it (`100ms`, `10s`, `1m30s`), for `validate` output.
pub(crate) fn format_duration(d: Duration) -> String {
    FmtDuration(d).to_string()
}

struct FmtDuration(Duration);

impl fmt::Display for FmtDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let nanos = d.subsec_nanos();
        let secs = d.as_secs();
        if secs == 0 {
            return if nanos % 1_000_000 == 0 {
                write!(f, "{}ms", nanos / 1_000_000)
            } else if nanos % 1_000 == 0 {
                write!(f, "{}us", nanos / 1_000)
            } else {
                write!(f, "{nanos}ns")
            };
        }
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || nanos > 0 {
            if nanos == 0 {
                write!(f, "{s}s")?;
            } else {
                // Trailing zeros of the fraction carry no information.
                let frac = format!("{nanos:09}");
                write!(f, "{s}.{}s", frac.trim_end_matches('0'))?;
            }
        }
        Ok(())
    }
}

/// A [`Duration`] read from a Go duration string; deserialisation fails (with the field path, via
/// `serde_path_to_error`) when the string is not a valid duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration(pub(crate) Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        parse_duration(&s)
            .map(GoDuration)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_strings_parse_like_go() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("100ms", ms(100)),
            ("10s", Duration::from_secs(10)),
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("300us", Duration::from_micros(300)),
            ("300µs", Duration::from_micros(300)),
            ("42ns", Duration::from_nanos(42)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("1.25s", ms(1250)),
            (".5s", ms(500)),
            ("1h0m0s", Duration::from_secs(3600)),
            ("+5s", Duration::from_secs(5)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).as_ref(), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn malformed_durations_are_rejected_with_the_input_and_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("10", "missing unit"),
            ("5x", "unknown unit"),
            ("s", "expected a number"),
            ("-5s", "negative"),
            ("1..5s", "more than one decimal point"),
            ("10 s", "unknown unit"),
            ("99999999999999999999999999999999999999999h", "large"),
        ];
        for (input, reason) in cases {
            let err = parse_duration(input).expect_err(input).to_string();
            assert!(err.contains(reason), "{input:?}: {err}");
            assert!(err.contains(&format!("{input:?}")), "{input:?}: {err}");
        }
    }

    #[test]
    fn durations_format_as_yaml_would_spell_them() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_micros(300), "300us"),
            (Duration::from_millis(1500), "1.5s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(*d), *want);
            assert_eq!(parse_duration(want).ok(), Some(*d), "round trip {want}");
        }
    }
}
