//! RFC 6238 time-based one-time passwords: secrets, code generation and
//! verification (SHA-1, 6 digits, 30-second steps, ±1 step of clock skew).

use std::fmt;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use totp_rs::{Algorithm, Secret, TOTP};

/// Digits in the codes users type (what authenticator apps show by default).
pub const TOTP_DIGITS: u32 = 6;
/// Length of one time step, in seconds.
pub const TOTP_STEP_SECONDS: u64 = 30;
/// Steps either side of the current one that are still accepted, to absorb
/// clock drift between server and phone (RFC 6238 §5.2 recommends one).
pub const TOTP_SKEW_STEPS: u64 = 1;
/// RFC 4226 §4: the shared secret MUST be at least 128 bits.
pub const TOTP_MIN_SECRET_BITS: usize = 128;

/// Why a TOTP secret from the users file is unusable. Messages never include
/// the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpSecretError {
    #[error("not valid base32 (RFC 4648 alphabet A-Z, 2-7)")]
    InvalidBase32,
    #[error("{bits} bits long; at least {TOTP_MIN_SECRET_BITS} bits are required")]
    TooShort { bits: usize },
}

/// A decoded TOTP shared secret. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// Decodes an RFC 4648 base32 secret as authenticator apps show it.
    /// Case is ignored and trailing `=` padding is optional, because users
    /// copy secrets in all of those forms.
    pub fn from_base32(text: &str) -> Result<Self, TotpSecretError> {
        let normalized = text.trim_end_matches('=').to_ascii_uppercase();
        let bytes = Secret::Encoded(normalized)
            .to_bytes()
            .map_err(|_| TotpSecretError::InvalidBase32)?;
        Self::from_bytes(bytes)
    }

    /// Wraps raw secret bytes (e.g. the RFC 6238 test key).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, TotpSecretError> {
        let bits = bytes.len() * 8;
        if bits < TOTP_MIN_SECRET_BITS {
            return Err(TotpSecretError::TooShort { bits });
        }
        Ok(Self(bytes))
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// RFC 4226 HOTP value for `counter`, zero-padded to `digits` (6 to 8).
///
/// Delegates to totp-rs with a 1-second step so its "time" is our counter;
/// that leaves the HMAC and dynamic truncation to totp-rs.
pub fn hotp(secret: &TotpSecret, counter: u64, digits: u32) -> String {
    let digits = digits.clamp(6, 8) as usize;
    TOTP::new_unchecked(Algorithm::SHA1, digits, 0, 1, secret.as_bytes().to_vec()).generate(counter)
}

/// RFC 6238 TOTP value at `unix_time` seconds with `digits` digits; exposed
/// with a digit count so the RFC's 8-digit test vectors can be checked.
pub fn totp_value(secret: &TotpSecret, unix_time: u64, digits: u32) -> String {
    hotp(secret, unix_time / TOTP_STEP_SECONDS, digits)
}

/// The 6-digit code an authenticator app shows at `now` (for tests and
/// tooling), or `None` for instants before the Unix epoch.
pub fn totp_code_at(secret: &TotpSecret, now: OffsetDateTime) -> Option<String> {
    let unix = u64::try_from(now.unix_timestamp()).ok()?;
    Some(totp_value(secret, unix, TOTP_DIGITS))
}

/// Checks a user-typed code against the current step and ±1 step, in
/// constant time. Returns the matched time step, which the caller records
/// as the user's high-water mark (`OneTimeStore::advance`, until
/// [`totp_step_replayable_until`]) so neither this code nor an older one
/// can be used again.
///
/// Anything that isn't exactly six ASCII digits is rejected outright
/// (callers may trim whitespace before calling).
pub fn verify_totp(secret: &TotpSecret, code: &str, now: OffsetDateTime) -> Option<u64> {
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = u64::try_from(now.unix_timestamp()).ok()? / TOTP_STEP_SECONDS;
    // The current step is tried first so that, in the (1-in-a-million) case
    // where a code matches two steps, the exact one wins.
    let candidates = std::iter::once(Some(current)).chain(
        (1..=TOTP_SKEW_STEPS).flat_map(|k| [current.checked_sub(k), current.checked_add(k)]),
    );
    let mut matched = None;
    // Every candidate is computed and compared, even after a match, so the
    // time taken doesn't reveal which step (if any) matched.
    for step in candidates.flatten() {
        let expected = hotp(secret, step, TOTP_DIGITS);
        let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if equal && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// The first instant at which `step` (or any older step) can no longer
/// verify: past it, the oldest acceptable step is `step + 1`. A replay
/// guard need not remember the step any longer than that.
pub fn totp_step_replayable_until(step: u64) -> OffsetDateTime {
    let end = step
        .saturating_add(TOTP_SKEW_STEPS)
        .saturating_add(1)
        .saturating_mul(TOTP_STEP_SECONDS);
    i64::try_from(end)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or(OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec()).expect("20-byte secret")
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).expect("valid timestamp")
    }

    const RFC6238_SHA1: [(u64, &str); 5] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
    ];

    #[test]
    fn rfc6238_vectors_8_digits() {
        let secret = rfc_secret();
        for (time, expected) in RFC6238_SHA1 {
            assert_eq!(totp_value(&secret, time, 8), expected, "t={time}");
        }
    }

    #[test]
    fn rfc6238_vectors_6_digits_verify() {
        let secret = rfc_secret();
        for (time, expected) in RFC6238_SHA1 {
            let six = &expected[2..];
            assert_eq!(totp_value(&secret, time, 6), six);
            let now = at(i64::try_from(time).expect("fits"));
            assert_eq!(totp_code_at(&secret, now).as_deref(), Some(six));
            assert_eq!(verify_totp(&secret, six, now), Some(time / 30), "t={time}");
        }
    }

    #[test]
    fn a_step_verifies_exactly_until_its_replay_window_ends() {
        let secret = rfc_secret();
        let step = 1_234_567_890 / TOTP_STEP_SECONDS;
        let code = hotp(&secret, step, TOTP_DIGITS);
        let until = totp_step_replayable_until(step);
        assert_eq!(
            verify_totp(&secret, &code, until - time::Duration::seconds(1)),
            Some(step),
            "still accepted in the last second of the skew window"
        );
        assert_eq!(verify_totp(&secret, &code, until), None);
        assert_eq!(
            totp_step_replayable_until(u64::MAX),
            OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX)
        );
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        // RFC 4226 Appendix D, same ASCII key.
        let expected = ["755224", "287082", "359152", "969429", "338314"];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(&rfc_secret(), counter as u64, 6), *code);
        }
    }

    #[test]
    fn window_accepts_one_step_either_side_and_no_more() {
        let secret = rfc_secret();
        let now = at(1_234_567_890);
        let current = 1_234_567_890 / 30;
        for step in [current - 1, current, current + 1] {
            let code = hotp(&secret, step, 6);
            assert_eq!(verify_totp(&secret, &code, now), Some(step), "step {step}");
        }
        for step in [current - 2, current + 2] {
            let code = hotp(&secret, step, 6);
            assert_eq!(verify_totp(&secret, &code, now), None, "step {step}");
        }
    }

    #[test]
    fn malformed_codes_are_rejected() {
        let secret = rfc_secret();
        let now = at(59);
        let good = totp_value(&secret, 59, 6);
        assert_eq!(verify_totp(&secret, &good, now), Some(1));
        for bad in [
            String::new(),
            good[..5].to_string(),
            format!("{good}0"),
            format!(" {good}"),
            format!("{good}\n"),
            "12345a".to_string(),
            "+12345".to_string(),
            "١٢٣٤٥٦".to_string(), // non-ASCII digits
            totp_value(&secret, 59, 8),
        ] {
            assert_eq!(verify_totp(&secret, &bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn early_times_do_not_underflow() {
        let secret = rfc_secret();
        let code = hotp(&secret, 0, 6);
        assert_eq!(verify_totp(&secret, &code, at(0)), Some(0));
        assert_eq!(verify_totp(&secret, &code, at(-100)), None);
        assert_eq!(totp_code_at(&secret, at(-1)), None);
    }

    #[test]
    fn base32_secrets() {
        let expected = b"alice-demo-totp-key!".to_vec();
        for text in [
            "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB",
            "mfwgsy3ffvsgk3lpfv2g65dqfvvwk6jb",
            "MFWGSY3FFVSGK3LPFV2G65DQFVVWK6JB====",
        ] {
            let secret = TotpSecret::from_base32(text).expect("valid");
            assert_eq!(secret.as_bytes(), expected.as_slice(), "{text}");
        }
        assert_eq!(
            TotpSecret::from_base32("JBSWY3DPEHPK3PXP"),
            Err(TotpSecretError::TooShort { bits: 80 })
        );
        assert_eq!(
            TotpSecret::from_base32(""),
            Err(TotpSecretError::TooShort { bits: 0 })
        );
        assert_eq!(
            TotpSecret::from_base32("MFWGSY3FFVSGK3LPFV2G65DQFVVWK6J1"),
            Err(TotpSecretError::InvalidBase32)
        );
        assert_eq!(
            TotpSecret::from_base32("MFWG SY3F FVSG K3LP FV2G 65DQ FVVW K6JB"),
            Err(TotpSecretError::InvalidBase32)
        );
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", rfc_secret()), "TotpSecret(<redacted>)");
    }

    proptest::proptest! {
        #[test]
        fn generated_code_always_verifies(unix in 30i64..4_000_000_000i64) {
            let secret = rfc_secret();
            let now = at(unix);
            let code = totp_code_at(&secret, now).expect("after epoch");
            proptest::prop_assert_eq!(verify_totp(&secret, &code, now), Some(unix as u64 / 30));
        }
    }
}
