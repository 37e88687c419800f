//! Parsing of the short duration strings used in policy files ("30m",
//! "12h", "1h30m", "7d"). A local helper keeps the crate free of another
//! dependency and lets us reject values that would make session arithmetic
//! overflow later.

use std::time::Duration;

use thiserror::Error;

/// Longest duration accepted anywhere in policy config (10 years). Callers
/// add these to timestamps; bounding them here means that can never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("duration is empty")]
    Empty,
    #[error("expected a number at {0:?}")]
    ExpectedNumber(String),
    #[error("number without a unit (use s, m, h or d)")]
    MissingUnit,
    #[error("unknown unit {0:?} (use s, m, h or d)")]
    UnknownUnit(String),
    #[error("duration must be greater than zero")]
    Zero,
    #[error("duration is longer than 3650d")]
    TooLong,
}

/// Parses `<number><unit>` segments, e.g. "90s", "30m", "12h", "7d", "1h30m".
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(DurationError::ExpectedNumber(rest.to_owned()));
        }
        // Only overflow can make an all-digit string fail to parse.
        let number: u64 = rest[..digits_end]
            .parse()
            .map_err(|_| DurationError::TooLong)?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds_per_unit: u64 = match rest[..unit_end].trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "" => return Err(DurationError::MissingUnit),
            other => return Err(DurationError::UnknownUnit(other.to_owned())),
        };
        total = number
            .checked_mul(seconds_per_unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or(DurationError::TooLong)?;
        rest = &rest[unit_end..];
    }
    let duration = Duration::from_secs(total);
    if duration.is_zero() {
        Err(DurationError::Zero)
    } else if duration > MAX_DURATION {
        Err(DurationError::TooLong)
    } else {
        Ok(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_compounds() {
        let cases = [
            ("90s", 90),
            ("30m", 1_800),
            ("12h", 43_200),
            ("7d", 604_800),
            ("1h30m", 5_400),
            (" 1h 30m ", 5_400),
            ("3650d", 3650 * 86_400),
        ];
        for (input, secs) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_secs(secs)),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_bad_input() {
        let cases = [
            ("", DurationError::Empty),
            ("   ", DurationError::Empty),
            ("h", DurationError::ExpectedNumber("h".into())),
            ("12", DurationError::MissingUnit),
            ("12x", DurationError::UnknownUnit("x".into())),
            ("1.5h", DurationError::UnknownUnit(".".into())),
            ("-1h", DurationError::ExpectedNumber("-1h".into())),
            ("0s", DurationError::Zero),
            ("3651d", DurationError::TooLong),
            ("99999999999999999999999s", DurationError::TooLong),
            ("18446744073709551615d", DurationError::TooLong),
        ];
        for (input, err) in cases {
            assert_eq!(parse_duration(input), Err(err), "{input:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn policy_duration_round_trips(n in 1u64..=3650, unit in 0usize..4) {
            let (suffix, secs) = [("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400)][unit];
            proptest::prop_assert_eq!(
                parse_duration(&format!("{n}{suffix}")),
                Ok(Duration::from_secs(n * secs))
            );
        }

        #[test]
        fn policy_duration_never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }
    }
}
