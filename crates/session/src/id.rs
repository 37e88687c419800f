//! Session identifiers: the secret in the cookie, its digest (the store's
//! key), and the unrelated public id used by APIs and logs.

use std::fmt;

use rand::distr::Alphanumeric;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::encoding::{base64url, hex, is_base64url};
use crate::error::SessionError;

/// Random bytes in a [`SessionSecret`] (256 bits; at least 128 are needed
/// to make guessing a live session hopeless).
pub const SECRET_BYTES: usize = 32;
/// Length of a secret's cookie value: 32 bytes as unpadded base64url.
pub const SECRET_LEN: usize = 43;

// Below 128 bits, guessing a live session starts to be conceivable.
const _: () = assert!(SECRET_BYTES * 8 >= 128);

/// Okta's session ids start with "102"; keeping the shape means tooling that
/// pattern-matches them keeps working.
const SESSION_ID_PREFIX: &str = "102";
/// 22 base62 characters carry about 131 bits, so ids never collide in practice.
const SESSION_ID_RANDOM_CHARS: usize = 22;

// log2(62) > 5.95, so 22 characters carry more than 128 bits: public ids
// are as unguessable as the secret needs to be (they can revoke a session).
const _: () = assert!(SESSION_ID_RANDOM_CHARS * 595 / 100 >= 128);

/// The bearer credential in a session cookie.
///
/// Deliberately has no `Display`, `Serialize` or `PartialEq`: the value
/// leaves the process only through [`expose`](Self::expose), and
/// comparisons go through [`SecretHash`] so they never touch the secret.
pub struct SessionSecret(String);

impl SessionSecret {
    /// A fresh secret from the thread-local CSPRNG (ChaCha, seeded by the OS).
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64url(&bytes))
    }

    /// Accepts a cookie value presented by a client. Only the shape is
    /// checked; whether a session exists is the store's business.
    pub fn parse(cookie_value: &str) -> Result<Self, SessionError> {
        if cookie_value.len() == SECRET_LEN && is_base64url(cookie_value) {
            Ok(Self(cookie_value.to_owned()))
        } else {
            Err(SessionError::Malformed)
        }
    }

    /// The value to put in the `Set-Cookie` header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest the store is keyed by.
    pub fn hash(&self) -> SecretHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.0.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        SecretHash(bytes)
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// SHA-256 of a [`SessionSecret`]'s cookie value.
///
/// The store holds only this, so a memory or debug dump of the store does
/// not hand out usable cookies.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// A digest read back from a backend's own keys (the digest is not a
    /// secret, so rebuilding one from bytes grants nothing).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// First 8 hex digits: enough to correlate log lines, useless to an
    /// attacker (it is a prefix of a digest, not of the secret).
    pub fn short(&self) -> String {
        hex(&self.0[..4])
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({}…)", self.short())
    }
}

/// The public id of a session, shown by APIs and usable to revoke it. It is
/// generated independently of the secret, so knowing it gives no way to act
/// as the session's cookie.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(Box<str>);

impl SessionId {
    /// "102" followed by 22 random base62 characters.
    pub fn generate() -> Self {
        let mut id = String::with_capacity(SESSION_ID_PREFIX.len() + SESSION_ID_RANDOM_CHARS);
        id.push_str(SESSION_ID_PREFIX);
        id.extend(
            rand::rng()
                .sample_iter(Alphanumeric)
                .take(SESSION_ID_RANDOM_CHARS)
                .map(char::from),
        );
        Self(id.into_boxed_str())
    }

    /// The id named in an API request path. Any string will do: unknown
    /// ids are simply not found.
    pub fn from_public(id: &str) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Any string can name a session (e.g. an API path segment); unknown ids
/// simply are not found.
impl From<&str> for SessionId {
    fn from(id: &str) -> Self {
        Self(id.into())
    }
}

impl From<String> for SessionId {
    fn from(id: String) -> Self {
        Self(id.into_boxed_str())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn secrets_carry_256_bits_and_are_unique() {
        let secrets: Vec<SessionSecret> = (0..2_000).map(|_| SessionSecret::generate()).collect();
        let distinct: HashSet<&str> = secrets.iter().map(SessionSecret::expose).collect();
        assert_eq!(distinct.len(), secrets.len());
        for secret in &secrets {
            let value = secret.expose();
            assert_eq!(value.len(), SECRET_LEN);
            assert!(is_base64url(value), "{value} is cookie-safe");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = SessionSecret::generate();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(secret.expose()));
        assert_eq!(shown, "SessionSecret(<redacted>)");
        let hash = format!("{:?}", secret.hash());
        assert!(!hash.contains(secret.expose()));
    }

    #[test]
    fn parse_accepts_issued_values_only() {
        let secret = SessionSecret::generate();
        let parsed = SessionSecret::parse(secret.expose()).expect("own value parses");
        assert_eq!(parsed.hash(), secret.hash());
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}+", &"a".repeat(42)),
        ] {
            assert!(matches!(
                SessionSecret::parse(bad),
                Err(SessionError::Malformed)
            ));
        }
    }

    #[test]
    fn hash_is_sha256_of_the_cookie_value() {
        use sha2::{Digest, Sha256};
        let secret = SessionSecret::generate();
        let expected: [u8; 32] = Sha256::digest(secret.expose().as_bytes()).into();
        assert_eq!(secret.hash().as_bytes(), &expected);
        assert_eq!(secret.hash().short(), hex(&expected[..4]));
        assert_eq!(SecretHash::from_bytes(expected), secret.hash());
    }

    #[test]
    fn session_ids_look_like_oktas_and_are_unique() {
        let ids: HashSet<SessionId> = (0..2_000).map(|_| SessionId::generate()).collect();
        assert_eq!(ids.len(), 2_000);
        for id in &ids {
            let text = id.as_str();
            assert_eq!(text.len(), 25);
            assert!(text.starts_with("102"));
            assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn session_id_serialises_as_its_text() {
        let id = SessionId::from("102abc");
        assert_eq!(
            serde_json::to_value(&id).expect("serialises"),
            serde_json::json!("102abc")
        );
        assert_eq!(id.to_string(), "102abc");
    }
}
