//! API tokens for the Okta-style management API (`Authorization: SSWS
//! <token>`). Configuration holds only SHA-256 digests of the tokens, so a
//! leaked config file grants nothing.
//!
//! These are credentials, not sessions: they never expire on their own and
//! nothing ends them but a configuration change.

use std::collections::HashSet;
use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use thiserror::Error;

/// The Okta OAuth scope names an API token may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    /// `okta.sessions.read`
    SessionsRead,
    /// `okta.sessions.manage` (implies read, as Okta's manage scopes do)
    SessionsManage,
    /// `okta.logs.read`
    LogsRead,
    /// `okta.users.read`
    UsersRead,
    /// `okta.users.manage` (implies read)
    UsersManage,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionsRead => "okta.sessions.read",
            Self::SessionsManage => "okta.sessions.manage",
            Self::LogsRead => "okta.logs.read",
            Self::UsersRead => "okta.users.read",
            Self::UsersManage => "okta.users.manage",
        }
    }

    pub const ALL: [Scope; 5] = [
        Self::SessionsRead,
        Self::SessionsManage,
        Self::LogsRead,
        Self::UsersRead,
        Self::UsersManage,
    ];

    /// Whether holding `self` permits an operation that needs `required`.
    pub fn grants(self, required: Scope) -> bool {
        self == required
            || matches!(
                (self, required),
                (Self::SessionsManage, Self::SessionsRead) | (Self::UsersManage, Self::UsersRead)
            )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ApiTokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ApiTokenError::UnknownScope {
                scope: s.to_owned(),
            })
    }
}

impl TryFrom<String> for Scope {
    type Error = ApiTokenError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        scope.as_str().to_owned()
    }
}

/// One configured API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Shown in logs to say which token was used.
    pub name: String,
    /// SHA-256 of the token, 64 hex digits (see [`hash_token`]).
    pub sha256_hex: String,
    pub scopes: Vec<Scope>,
}

impl ApiToken {
    pub fn has_scope(&self, required: Scope) -> bool {
        self.scopes.iter().any(|scope| scope.grants(required))
    }
}

/// A problem in the API token configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiTokenError {
    #[error("an API token has an empty name")]
    EmptyName,
    #[error("API token name {name:?} is used more than once")]
    DuplicateName { name: String },
    #[error("API token {name:?}: sha256_hex must be 64 hex digits")]
    BadHash { name: String },
    /// Two entries with the same digest would make "which token was used"
    /// ambiguous.
    #[error("API tokens {first:?} and {second:?} have the same hash")]
    DuplicateHash { first: String, second: String },
    #[error(
        "unknown API token scope {scope:?}; expected okta.sessions.read, \
         okta.sessions.manage, okta.logs.read, okta.users.read or okta.users.manage"
    )]
    UnknownScope { scope: String },
}

/// Why a request's API token was not accepted. Map to HTTP as Okta does:
/// `Forbidden` → 403, the rest → 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ApiAuthError {
    #[error("no Authorization header")]
    Missing,
    #[error("Authorization header is not `SSWS <token>`")]
    Malformed,
    #[error("invalid API token")]
    Invalid,
    #[error("API token lacks the required scope")]
    Forbidden,
}

/// The configured API tokens, checked against `Authorization` headers.
#[derive(Debug, Clone, Default)]
pub struct ApiTokens {
    tokens: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    token: ApiToken,
    digest: [u8; 32],
}

impl ApiTokens {
    /// Validates the configuration: non-empty unique names and distinct
    /// well-formed digests.
    pub fn new(tokens: Vec<ApiToken>) -> Result<Self, ApiTokenError> {
        let mut names = HashSet::new();
        let mut entries: Vec<Entry> = Vec::with_capacity(tokens.len());
        for token in tokens {
            if token.name.trim().is_empty() {
                return Err(ApiTokenError::EmptyName);
            }
            if !names.insert(token.name.clone()) {
                return Err(ApiTokenError::DuplicateName { name: token.name });
            }
            let digest = hex32(token.sha256_hex.trim()).ok_or_else(|| ApiTokenError::BadHash {
                name: token.name.clone(),
            })?;
            if let Some(first) = entries.iter().find(|e| e.digest == digest) {
                return Err(ApiTokenError::DuplicateHash {
                    first: first.token.name.clone(),
                    second: token.name,
                });
            }
            entries.push(Entry { token, digest });
        }
        Ok(Self { tokens: entries })
    }

    /// Checks an `Authorization` header value for a token with `required`.
    pub fn authorize(
        &self,
        header_value: Option<&str>,
        required: Scope,
    ) -> Result<&ApiToken, ApiAuthError> {
        let presented = parse_ssws(header_value.ok_or(ApiAuthError::Missing)?)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();

        // Every configured digest is compared, and the match is picked with
        // constant-time selects, so timing does not depend on which entry
        // (if any) matches or how much of it does.
        let mut matched = subtle::Choice::from(0);
        let mut found = 0u32;
        for (i, entry) in self.tokens.iter().enumerate() {
            let eq = entry.digest.ct_eq(&digest);
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            found = u32::conditional_select(&found, &index, eq & !matched);
            matched |= eq;
        }
        let entry = if bool::from(matched) {
            usize::try_from(found).ok().and_then(|i| self.tokens.get(i))
        } else {
            None
        };
        let Some(Entry { token, .. }) = entry else {
            tracing::debug!(token = %hex(&digest[..4]), "API token rejected: no match");
            return Err(ApiAuthError::Invalid);
        };
        if !token.has_scope(required) {
            tracing::debug!(token = %token.name, scope = required.as_str(), "API token lacks scope");
            return Err(ApiAuthError::Forbidden);
        }
        Ok(token)
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The token of `SSWS <token>`. The scheme is matched case-insensitively
/// (RFC 9110 §11.1); the token must be one non-empty word.
fn parse_ssws(header_value: &str) -> Result<&str, ApiAuthError> {
    let (scheme, token) = header_value
        .trim()
        .split_once(' ')
        .ok_or(ApiAuthError::Malformed)?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("SSWS")
        || token.is_empty()
        || token.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiAuthError::Malformed);
    }
    Ok(token)
}

/// SHA-256 of a token as lower-case hex: the value to put in the config.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Parses exactly 64 hex digits (either case) into 32 bytes.
///
/// Decoded by hand: `u8::from_str_radix` would also accept a `+` sign.
fn hex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let text = hex(&bytes);
        assert_eq!(text.len(), 64);
        assert_eq!(hex32(&text), Some(bytes));
        assert_eq!(hex32(&text.to_uppercase()), Some(bytes));
        assert_eq!(hex32(&text[..62]), None);
        assert_eq!(hex32(&format!("+{}", &text[1..])), None);
        assert_eq!(hex32(&format!("g{}", &text[1..])), None);
    }

    fn token(name: &str, secret: &str, scopes: &[Scope]) -> ApiToken {
        ApiToken {
            name: name.into(),
            sha256_hex: hash_token(secret),
            scopes: scopes.to_vec(),
        }
    }

    fn configured() -> ApiTokens {
        ApiTokens::new(vec![
            token("reader", "read-secret", &[Scope::SessionsRead]),
            token(
                "admin",
                "admin-secret",
                &[Scope::SessionsManage, Scope::LogsRead],
            ),
            token("logs", "logs-secret", &[Scope::LogsRead]),
        ])
        .expect("valid config")
    }

    #[test]
    fn hash_token_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn scopes_parse_from_okta_names() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert_eq!(
            "okta.apps.read".parse::<Scope>(),
            Err(ApiTokenError::UnknownScope {
                scope: "okta.apps.read".into()
            })
        );
        assert!(
            Scope::UsersManage.grants(Scope::UsersRead),
            "manage implies read"
        );
        assert!(!Scope::UsersRead.grants(Scope::UsersManage));
        assert!(!Scope::SessionsManage.grants(Scope::UsersRead));
        assert!(!Scope::UsersManage.grants(Scope::SessionsRead));
    }

    #[test]
    fn config_deserialises_and_rejects_unknown_scopes() {
        let parsed: ApiToken = serde_json::from_value(serde_json::json!({
            "name": "admin",
            "sha256_hex": hash_token("x"),
            "scopes": ["okta.sessions.manage", "okta.logs.read"],
        }))
        .expect("valid");
        assert_eq!(parsed.scopes, vec![Scope::SessionsManage, Scope::LogsRead]);

        let err = serde_json::from_value::<ApiToken>(serde_json::json!({
            "name": "admin",
            "sha256_hex": hash_token("x"),
            "scopes": ["okta.apps.manage"],
        }))
        .expect_err("unknown scope");
        assert!(err.to_string().contains("okta.apps.manage"), "{err}");
    }

    #[test]
    fn config_problems_are_reported() {
        let bad_hex = ApiToken {
            sha256_hex: "abc".into(),
            ..token("a", "x", &[])
        };
        assert_eq!(
            ApiTokens::new(vec![bad_hex]).map(|_| ()),
            Err(ApiTokenError::BadHash { name: "a".into() })
        );
        assert_eq!(
            ApiTokens::new(vec![token("a", "x", &[]), token("a", "y", &[])]).map(|_| ()),
            Err(ApiTokenError::DuplicateName { name: "a".into() })
        );
        assert_eq!(
            ApiTokens::new(vec![token("a", "x", &[]), token("b", "x", &[])]).map(|_| ()),
            Err(ApiTokenError::DuplicateHash {
                first: "a".into(),
                second: "b".into()
            })
        );
        assert_eq!(
            ApiTokens::new(vec![token(" ", "x", &[])]).map(|_| ()),
            Err(ApiTokenError::EmptyName)
        );
        let upper = ApiToken {
            sha256_hex: hash_token("x").to_uppercase(),
            ..token("a", "x", &[Scope::LogsRead])
        };
        let tokens = ApiTokens::new(vec![upper]).expect("upper-case hex is fine");
        assert!(tokens.authorize(Some("SSWS x"), Scope::LogsRead).is_ok());
    }

    #[test]
    fn missing_and_malformed_headers() {
        let tokens = configured();
        assert_eq!(
            tokens.authorize(None, Scope::SessionsRead).map(|_| ()),
            Err(ApiAuthError::Missing)
        );
        for bad in [
            "",
            "SSWS",
            "SSWS ",
            "read-secret",
            "Bearer read-secret",
            "SSWS read secret",
            "SSWSread-secret",
        ] {
            assert_eq!(
                tokens.authorize(Some(bad), Scope::SessionsRead).map(|_| ()),
                Err(ApiAuthError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invalid_forbidden_and_allowed() {
        let tokens = configured();
        assert_eq!(
            tokens
                .authorize(Some("SSWS wrong"), Scope::SessionsRead)
                .map(|_| ()),
            Err(ApiAuthError::Invalid)
        );
        assert_eq!(
            tokens
                .authorize(Some("SSWS read-secret"), Scope::SessionsManage)
                .map(|_| ()),
            Err(ApiAuthError::Forbidden)
        );
        assert_eq!(
            tokens
                .authorize(Some("SSWS logs-secret"), Scope::SessionsRead)
                .map(|_| ()),
            Err(ApiAuthError::Forbidden)
        );
        let ok = |header: &str, scope| {
            tokens
                .authorize(Some(header), scope)
                .map(|t| t.name.clone())
        };
        assert_eq!(
            ok("SSWS read-secret", Scope::SessionsRead),
            Ok("reader".into())
        );
        assert_eq!(
            ok("ssws  admin-secret", Scope::SessionsManage),
            Ok("admin".into())
        );
        assert_eq!(
            ok("SSWS admin-secret", Scope::SessionsRead),
            Ok("admin".into()),
            "manage implies read"
        );
        assert_eq!(
            ok("SSWS logs-secret", Scope::LogsRead),
            Ok("logs".into()),
            "the last entry is found too"
        );
    }

    #[test]
    fn no_tokens_configured_rejects_everything() {
        let tokens = ApiTokens::new(Vec::new()).expect("empty is valid");
        assert!(tokens.is_empty());
        assert_eq!(
            tokens
                .authorize(Some("SSWS anything"), Scope::LogsRead)
                .map(|_| ()),
            Err(ApiAuthError::Invalid)
        );
    }
}
