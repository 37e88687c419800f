//! How a session's secret is written into its cookie and read back: bare
//! ([`PlainCookies`], one process), or followed by a MAC under the
//! cluster's key ring (`redis::SealKeys`), so a node refuses a forged or
//! guessed value before it costs a round trip to the shared store.

use crate::error::SessionError;
use crate::id::SessionSecret;

/// Writes and reads session cookie values.
pub trait CookieCodec: Send + Sync {
    /// The cookie value for `secret`.
    fn encode(&self, secret: &SessionSecret) -> String;

    /// The secret in a presented cookie value; `Malformed` for anything
    /// this codec did not write.
    fn decode(&self, value: &str) -> Result<SessionSecret, SessionError>;
}

/// The bare secret: 43 base64url characters.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainCookies;

impl CookieCodec for PlainCookies {
    fn encode(&self, secret: &SessionSecret) -> String {
        secret.expose().to_owned()
    }

    fn decode(&self, value: &str) -> Result<SessionSecret, SessionError> {
        SessionSecret::parse(value)
    }
}
