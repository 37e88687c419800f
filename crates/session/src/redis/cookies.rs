//! Session cookie values in a shared cluster: `secret.tag` under the store
//! key ring ([`SealKeys`]' codec), with a memo of the values that passed.
//!
//! Checking a tag is an HMAC-SHA256 (about 5,000 instructions, most of
//! what shared mode added to a proxied request, measured with
//! `CALLGRIND=1 AUTH=1 SHARED=1 bash benches/load.sh`). A browser sends the
//! same value on every request, so a value that passed once is looked up
//! instead of checked again. Only values that passed are kept; a forged or
//! guessed one is checked, and refused, every time. Forgetting is always
//! safe: the next use is checked again.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashSet;

use crate::cookie::CookieCodec;
use crate::error::SessionError;
use crate::id::SessionSecret;
use crate::redis::seal::SealKeys;

/// How many verified values are remembered before the memo starts over
/// (about 130 bytes each).
const REMEMBERED: usize = 16_384;

/// The cluster's cookie codec.
pub struct MacCookies {
    keys: SealKeys,
    passed: DashSet<Box<str>>,
    remembered: AtomicUsize,
}

impl MacCookies {
    pub fn new(keys: SealKeys) -> Self {
        Self {
            keys,
            passed: DashSet::new(),
            remembered: AtomicUsize::new(0),
        }
    }

    /// The ring the tags are made under.
    pub fn keys(&self) -> &SealKeys {
        &self.keys
    }
}

impl fmt::Debug for MacCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MacCookies")
            .field("keys", &self.keys)
            .field("remembered", &self.remembered.load(Ordering::Relaxed))
            .finish()
    }
}

impl CookieCodec for MacCookies {
    fn encode(&self, secret: &SessionSecret) -> String {
        self.keys.encode(secret)
    }

    fn decode(&self, value: &str) -> Result<SessionSecret, SessionError> {
        if self.passed.contains(value) {
            let (secret, _) = value.split_once('.').ok_or(SessionError::Malformed)?;
            return SessionSecret::parse(secret);
        }
        let secret = self.keys.decode(value)?;
        // Starting over now and then bounds the memo without tracking age.
        if self.remembered.fetch_add(1, Ordering::Relaxed) >= REMEMBERED {
            self.passed.clear();
            self.remembered.store(1, Ordering::Relaxed);
        }
        self.passed.insert(value.into());
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_passed_is_remembered_and_a_forged_one_never_is() {
        let cookies = MacCookies::new(SealKeys::generate());
        let secret = SessionSecret::generate();
        let value = cookies.encode(&secret);
        for _ in 0..2 {
            assert_eq!(cookies.decode(&value).map(|s| s.hash()), Ok(secret.hash()));
        }
        assert_eq!(cookies.passed.len(), 1);
        let (bare, _) = value.split_once('.').expect("tag");
        let forged = format!("{bare}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        for _ in 0..2 {
            assert_eq!(
                cookies.decode(&forged).map(|s| s.hash()),
                Err(SessionError::Malformed)
            );
        }
        assert_eq!(cookies.passed.len(), 1, "nothing refused is remembered");
        let elsewhere = MacCookies::new(SealKeys::generate());
        assert_eq!(
            elsewhere.decode(&value).map(|s| s.hash()),
            Err(SessionError::Malformed),
            "another ring's value"
        );
    }

    #[test]
    fn the_memo_starts_over_when_full() {
        let cookies = MacCookies::new(SealKeys::generate());
        for _ in 0..REMEMBERED + 10 {
            let value = cookies.encode(&SessionSecret::generate());
            assert!(cookies.decode(&value).is_ok());
        }
        assert!(
            cookies.passed.len() <= REMEMBERED,
            "{}",
            cookies.passed.len()
        );
    }
}
