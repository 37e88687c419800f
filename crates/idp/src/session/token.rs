//! One-time session tokens: `/api/v1/authn` hands one out after a
//! successful sign-in, and `/login/sessionCookieRedirect` trades it for an
//! IdP session cookie.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::OffsetDateTime;

use super::encoding::base64url;
use super::record::{Amr, NewSession};
use crate::policy::SessionLimits;

/// Random bytes in a [`SessionToken`] (256 bits).
pub const SESSION_TOKEN_BYTES: usize = 32;

/// A bearer token for one cookie redirect. Its `Debug` is redacted; the
/// value leaves the process only through [`expose`](Self::expose).
pub struct SessionToken(String);

impl SessionToken {
    fn generate() -> Self {
        let mut bytes = [0u8; SESSION_TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(base64url(&bytes))
    }

    /// The value for the authn response's `sessionToken`. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// What the authn step established, carried to the cookie redirect so the
/// session is created exactly as the sign-on policy decided there.
///
/// Tokens are only issued once sign-in fully succeeded (policy allowed it,
/// MFA done if demanded), so the session they start is never MFA-pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    pub user_id: String,
    pub login: String,
    /// A second factor was verified during the authn transaction.
    pub mfa_verified: bool,
    /// Limits chosen by the global session policy, and which rule chose them.
    pub limits: SessionLimits,
    pub policy: String,
    pub rule: String,
}

impl PendingSignIn {
    /// The session to create on redemption. Client details come from the
    /// redirect request, since the authn call may have come from a server.
    pub fn into_new_session(
        self,
        client_ip: Option<IpAddr>,
        user_agent: Option<String>,
        now: OffsetDateTime,
    ) -> NewSession {
        let amr = if self.mfa_verified {
            vec![Amr::Pwd, Amr::Otp, Amr::Mfa]
        } else {
            vec![Amr::Pwd]
        };
        NewSession {
            user_id: self.user_id,
            login: self.login,
            amr,
            mfa_pending: false,
            limits: self.limits,
            policy: self.policy,
            rule: self.rule,
            client_ip,
            user_agent,
            now,
        }
    }
}

/// Why a session token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Never issued, or already redeemed.
    #[error("session token is unknown or already used")]
    Unknown,
    /// Issued but past its lifetime; it has now been discarded.
    #[error("session token has expired")]
    Expired,
}

/// Outstanding session tokens.
///
/// Keyed by SHA-256 of the token, so no constant-time comparison is needed:
/// a lookup's timing can only reveal how the *digest* of a guess relates to
/// stored digests, and nobody can pick guesses whose digests approach a
/// stored one byte by byte, so the timing leaks nothing to build on.
#[derive(Debug, Default)]
pub struct SessionTokens {
    pending: Mutex<HashMap<[u8; 32], Pending>>,
}

#[derive(Debug)]
struct Pending {
    sign_in: PendingSignIn,
    expires_at: OffsetDateTime,
}

impl SessionTokens {
    pub fn new() -> Self {
        Self::default()
    }

    /// Issues a token valid until `now + ttl` (returned alongside).
    ///
    /// Expired tokens are dropped first, so memory stays proportional to
    /// the sign-ins of the last `ttl` however many tokens are never used.
    pub fn issue(
        &self,
        sign_in: PendingSignIn,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> (SessionToken, OffsetDateTime) {
        let expires_at =
            now.saturating_add(time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX));
        let mut pending = self.lock();
        pending.retain(|_, p| p.expires_at > now);
        let (token, key) = loop {
            let token = SessionToken::generate();
            let key = digest(token.expose());
            if !pending.contains_key(&key) {
                break (token, key);
            }
        };
        pending.insert(
            key,
            Pending {
                sign_in,
                expires_at,
            },
        );
        (token, expires_at)
    }

    /// Trades a token for its sign-in, once. The token is consumed even
    /// when it has expired, so a second attempt reports `Unknown`.
    pub fn redeem(&self, token: &str, now: OffsetDateTime) -> Result<PendingSignIn, TokenError> {
        let found = self.lock().remove(&digest(token));
        match found {
            None => Err(TokenError::Unknown),
            Some(p) if now >= p.expires_at => Err(TokenError::Expired),
            Some(p) => Ok(p.sign_in),
        }
    }

    /// Tokens held, including expired ones not yet dropped.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Pending>> {
        // Each operation is a single insert, remove or retain, so a panic
        // elsewhere cannot leave the map inconsistent.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::super::encoding::is_base64url;
    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-24 05:15:10 UTC);
    const TTL: Duration = Duration::from_secs(60);

    fn sign_in(user: &str) -> PendingSignIn {
        PendingSignIn {
            user_id: user.into(),
            login: format!("{user}@example.com"),
            mfa_verified: false,
            limits: SessionLimits::DEFAULT_RULE,
            policy: "Default Policy".into(),
            rule: "Default Rule".into(),
        }
    }

    #[test]
    fn pending_sign_in_becomes_an_active_session() {
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let new = sign_in("u1").into_new_session(Some(ip), Some("curl/8".into()), T0);
        assert_eq!(new.amr, vec![Amr::Pwd]);
        assert!(!new.mfa_pending);
        assert_eq!(new.client_ip, Some(ip));
        assert_eq!(new.now, T0);
        let mfa = PendingSignIn {
            mfa_verified: true,
            ..sign_in("u1")
        };
        let new = mfa.into_new_session(None, None, T0);
        assert_eq!(new.amr, vec![Amr::Pwd, Amr::Otp, Amr::Mfa]);
        assert_eq!(
            (new.policy.as_str(), new.rule.as_str()),
            ("Default Policy", "Default Rule")
        );
    }

    #[test]
    fn token_is_256_random_bits_and_redacted() {
        let tokens = SessionTokens::new();
        let (a, expires_at) = tokens.issue(sign_in("u1"), T0, TTL);
        let (b, _) = tokens.issue(sign_in("u1"), T0, TTL);
        assert_eq!(expires_at, T0 + TTL);
        assert_eq!(a.expose().len(), 43);
        assert!(is_base64url(a.expose()));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "SessionToken(<redacted>)");
        assert!(!format!("{tokens:?}").contains(a.expose()));
    }

    #[test]
    fn token_redeems_once() {
        let tokens = SessionTokens::new();
        let (token, _) = tokens.issue(sign_in("u1"), T0, TTL);
        assert_eq!(tokens.redeem(token.expose(), T0), Ok(sign_in("u1")));
        assert_eq!(tokens.redeem(token.expose(), T0), Err(TokenError::Unknown));
        assert_eq!(tokens.redeem("not-a-token", T0), Err(TokenError::Unknown));
        assert!(tokens.is_empty());
    }

    #[test]
    fn expired_token_is_consumed_too() {
        let tokens = SessionTokens::new();
        let (token, expires_at) = tokens.issue(sign_in("u1"), T0, TTL);
        assert_eq!(
            tokens.redeem(token.expose(), expires_at),
            Err(TokenError::Expired)
        );
        assert_eq!(
            tokens.redeem(token.expose(), T0),
            Err(TokenError::Unknown),
            "even an earlier clock can't reuse it"
        );
    }

    #[test]
    fn issue_drops_expired_tokens() {
        let tokens = SessionTokens::new();
        for _ in 0..10 {
            tokens.issue(sign_in("u1"), T0, TTL);
        }
        let (live, _) = tokens.issue(sign_in("u2"), T0 + Duration::from_secs(30), TTL);
        assert_eq!(tokens.len(), 11);
        tokens.issue(sign_in("u3"), T0 + TTL, TTL);
        assert_eq!(tokens.len(), 2, "the ten from T0 expired at T0 + ttl");
        assert_eq!(
            tokens.redeem(live.expose(), T0 + TTL).map(|s| s.user_id),
            Ok("u2".to_owned())
        );
    }
}
