//! Universal Logout verification, shared by the HTTP endpoint and the
//! embedded IdP's in-process delivery: the token (RS256, a key of the
//! trusted issuer's JWKS, `iss`, `aud` = the app's endpoint, unexpired,
//! recently issued, `jti` used once), then the subject, then the subject's
//! sessions in every app end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_session::{EndReason, OneTimeError, OneTimeKind, OneTimeStore};
use serde::Deserialize;

use crate::session::{log_ended, Session, Sessions, Subject};

/// A token must not be older than this (its `iat`), whatever its `exp`.
const MAX_TOKEN_AGE: Duration = Duration::from_secs(10 * 60);
const CLOCK_SKEW: u64 = 60;

/// Why a revocation was refused; `status()` is what the caller gets.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("missing or malformed Authorization: Bearer token")]
    NoToken,
    #[error("token refused: {0}")]
    Token(String),
    #[error("token already used (jti {0})")]
    Replayed(String),
    #[error("too many unexpired tokens remembered")]
    ReplayCacheFull,
    #[error("malformed body: {0}")]
    Body(String),
    #[error("unsupported subject: {0}")]
    Subject(String),
    #[error("no session for this subject")]
    UnknownSubject,
    #[error("this app trusts no Universal Logout issuer")]
    NotEnabled,
    /// The session or one-time store did not answer; the caller retries.
    #[error("{0}")]
    Store(portcullis_session::StoreError),
}

impl RevocationError {
    pub fn status(&self) -> StatusCode {
        match self {
            RevocationError::NoToken
            | RevocationError::Token(_)
            | RevocationError::Replayed(_)
            | RevocationError::ReplayCacheFull => StatusCode::UNAUTHORIZED,
            RevocationError::Body(_) => StatusCode::BAD_REQUEST,
            RevocationError::Subject(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RevocationError::UnknownSubject | RevocationError::NotEnabled => StatusCode::NOT_FOUND,
            RevocationError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable word for logs and the JSON error body.
    pub fn kind(&self) -> &'static str {
        match self {
            RevocationError::NoToken => "no_token",
            RevocationError::Token(_) => "invalid_token",
            RevocationError::Replayed(_) => "replayed_token",
            RevocationError::ReplayCacheFull => "replay_cache_full",
            RevocationError::Body(_) => "invalid_request",
            RevocationError::Subject(_) => "unsupported_subject",
            RevocationError::UnknownSubject => "unknown_subject",
            RevocationError::NotEnabled => "not_enabled",
            RevocationError::Store(_) => "temporarily_unavailable",
        }
    }
}

/// The IdP an app accepts Universal Logout from: its issuer and keys.
pub struct RevocationTrust {
    pub issuer: String,
    keys: JwkSet,
}

/// Why a JWKS document cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("not a JWKS document: {0}")]
    NotJwks(#[from] serde_json::Error),
    #[error("the JWKS holds no key")]
    Empty,
}

impl RevocationTrust {
    pub fn from_jwks_json(
        issuer: impl Into<String>,
        jwks: &str,
    ) -> Result<RevocationTrust, TrustError> {
        let keys: JwkSet = serde_json::from_str(jwks)?;
        if keys.keys.is_empty() {
            return Err(TrustError::Empty);
        }
        Ok(RevocationTrust {
            issuer: issuer.into(),
            keys,
        })
    }
}

#[derive(Deserialize)]
struct Claims {
    iat: u64,
    exp: u64,
    jti: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    sub_id: serde_json::Value,
    /// Portcullis's own member: why the IdP revokes (the embedded IdP's
    /// post-auth logout action says `post_auth_violation`).
    #[serde(default)]
    reason: Option<String>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A verified token's one-time id and expiry.
#[derive(Debug)]
struct TokenUse {
    jti: String,
    exp: u64,
}

/// Checks the bearer token of a revocation aimed at `audience` (all but its
/// one-time use, which the caller consumes).
fn verify_token(
    trust: &RevocationTrust,
    authorization: Option<&str>,
    audience: &str,
) -> Result<TokenUse, RevocationError> {
    let token = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(RevocationError::NoToken)?;
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| RevocationError::Token(e.to_string()))?;
    if header.alg != Algorithm::RS256 {
        return Err(RevocationError::Token(format!(
            "algorithm {:?} is not RS256",
            header.alg
        )));
    }
    let jwk = match &header.kid {
        Some(kid) => trust.keys.find(kid),
        None if trust.keys.keys.len() == 1 => trust.keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| RevocationError::Token("no trusted key matches the token's kid".into()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| RevocationError::Token(e.to_string()))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[trust.issuer.as_str()]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = CLOCK_SKEW;
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|e| RevocationError::Token(e.to_string()))?
        .claims;
    let now = unix_now();
    if claims.iat > now + CLOCK_SKEW {
        return Err(RevocationError::Token("issued in the future".into()));
    }
    if now.saturating_sub(claims.iat) > MAX_TOKEN_AGE.as_secs() {
        return Err(RevocationError::Token("issued too long ago".into()));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| RevocationError::Token("no jti".into()))?;
    Ok(TokenUse {
        jti,
        exp: claims.exp,
    })
}

/// Parses the revocation body.
/// The subject, and the reason its sessions end with.
fn parse_subject(body: &[u8]) -> Result<(Subject, EndReason), RevocationError> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| RevocationError::Body(e.to_string()))?;
    let reason = match body.reason.as_deref() {
        Some(reason) if reason == EndReason::PostAuthViolation.as_str() => {
            EndReason::PostAuthViolation
        }
        _ => EndReason::UniversalLogout,
    };
    subject(&body).map(|subject| (subject, reason))
}

fn subject(body: &Body) -> Result<Subject, RevocationError> {
    let field = |name: &str| {
        body.sub_id
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match field("format").as_deref() {
        Some("email") => field("email")
            .map(Subject::Email)
            .ok_or_else(|| RevocationError::Subject("email format without email".into())),
        Some("iss_sub") => match (field("iss"), field("sub")) {
            (Some(iss), Some(sub)) => Ok(Subject::IssSub { iss, sub }),
            _ => Err(RevocationError::Subject(
                "iss_sub format needs iss and sub".into(),
            )),
        },
        Some(other) => Err(RevocationError::Subject(format!("format {other:?}"))),
        None => Err(RevocationError::Body("sub_id.format is missing".into())),
    }
}

/// What revocation needs across apps: whom each app trusts, the `jti`s
/// already used, and the sessions to end.
pub struct Revocations {
    /// The Universal Logout issuer each app trusts, by app name.
    trust: HashMap<String, Arc<RevocationTrust>>,
    one_time: Arc<dyn OneTimeStore>,
    sessions: Sessions,
    observer: std::sync::OnceLock<RevocationObserver>,
}

/// Told of every revocation received over HTTP that verified (issuer,
/// subject, reason), whether or not this node held a session for it. In
/// sticky mode the binary ends the embedded IdP's own sessions of a
/// subject a peer's IdP revoked.
pub type RevocationObserver = Arc<dyn Fn(&str, &Subject, EndReason) + Send + Sync>;

impl Revocations {
    pub(crate) fn new(
        trust: HashMap<String, Arc<RevocationTrust>>,
        one_time: Arc<dyn OneTimeStore>,
        sessions: Sessions,
    ) -> Self {
        Revocations {
            trust,
            one_time,
            sessions,
            observer: std::sync::OnceLock::new(),
        }
    }

    /// Installs the observer of verified HTTP revocations; only the first
    /// call takes effect.
    pub fn observe(&self, observer: RevocationObserver) {
        let _ = self.observer.set(observer);
    }

    /// Verifies, then ends the subject's sessions; returns them and the
    /// reason they ended with.
    async fn verify_and_end(
        &self,
        app: &str,
        authorization: Option<&str>,
        audience: &str,
        body: &[u8],
        observer: Option<&RevocationObserver>,
    ) -> Result<(Vec<Session>, EndReason), RevocationError> {
        let trust = self
            .trust
            .get(app)
            .map(|t| &**t)
            .ok_or(RevocationError::NotEnabled)?;
        let (one_time, sessions) = (&*self.one_time, &self.sessions);
        let token = verify_token(trust, authorization, audience)?;
        let now = time::OffsetDateTime::now_utc();
        let until = i64::try_from(token.exp.saturating_add(CLOCK_SKEW))
            .ok()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .unwrap_or(now + MAX_TOKEN_AGE);
        one_time
            .first_use(OneTimeKind::JwtId, &token.jti, until, now)
            .await
            .map_err(|e| match e {
                OneTimeError::Replayed => RevocationError::Replayed(token.jti.clone()),
                OneTimeError::Full => RevocationError::ReplayCacheFull,
                OneTimeError::Store(e) => RevocationError::Store(e),
            })?;
        let (subject, reason) = parse_subject(body)?;
        if let Subject::IssSub { iss, .. } = &subject {
            if *iss != trust.issuer {
                return Err(RevocationError::Subject(format!(
                    "iss {iss:?} is not the token's issuer"
                )));
            }
        }
        if let Some(observer) = observer {
            observer(&trust.issuer, &subject, reason);
        }
        let ended = sessions
            // A plain revocation signs the subject out of every app (the
            // gateway is one relying party); the post-auth logout action
            // names each impacted app and must end only that one.
            .end_subject(
                (reason == EndReason::PostAuthViolation).then_some(app),
                &subject,
                reason,
            )
            .await
            .map_err(RevocationError::Store)?;
        if ended.is_empty() {
            return Err(RevocationError::UnknownSubject);
        }
        Ok((ended, reason))
    }

    /// Verifies a revocation aimed at `app`'s endpoint (`audience`) and ends
    /// the subject's sessions in every app; logs every outcome. Shared by
    /// the HTTP endpoint and the embedded IdP's in-process delivery.
    pub async fn revoke(
        &self,
        app: &str,
        audience: &str,
        authorization: Option<&str>,
        body: &[u8],
        request_id: Option<&str>,
    ) -> Result<usize, RevocationError> {
        let outcome = self
            .verify_and_end(
                app,
                authorization,
                audience,
                body,
                // In-process deliveries (no request) come from this node's
                // own IdP, which needs no telling.
                request_id.and(self.observer.get()),
            )
            .await;
        match outcome {
            Ok((ended, reason)) => {
                for session in &ended {
                    log_ended(session, reason, request_id);
                }
                tracing::info!(
                    request.id = request_id,
                    app,
                    sessions = ended.len(),
                    "global token revocation accepted"
                );
                Ok(ended.len())
            }
            Err(e) => {
                tracing::warn!(
                    request.id = request_id,
                    app,
                    error.kind = e.kind(),
                    error.detail = %e,
                    "global token revocation refused"
                );
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_and_bad_ones_get_their_status() {
        assert_eq!(
            parse_subject(br#"{"sub_id":{"format":"email","email":"a@b.c"}}"#).expect("email"),
            (Subject::Email("a@b.c".into()), EndReason::UniversalLogout)
        );
        assert_eq!(
            parse_subject(br#"{"sub_id":{"format":"iss_sub","iss":"i","sub":"s"}}"#)
                .expect("iss_sub"),
            (
                Subject::IssSub {
                    iss: "i".into(),
                    sub: "s".into()
                },
                EndReason::UniversalLogout
            )
        );
        // The embedded IdP's post-auth logout says why; any other reason
        // (or none) is a plain Universal Logout.
        for (reason, expected) in [
            ("post_auth_violation", EndReason::PostAuthViolation),
            ("sign_out", EndReason::UniversalLogout),
        ] {
            let body =
                format!(r#"{{"sub_id":{{"format":"email","email":"a@b.c"}},"reason":"{reason}"}}"#);
            assert_eq!(parse_subject(body.as_bytes()).expect("parses").1, expected);
        }
        for (body, status) in [
            (&b"not json"[..], StatusCode::BAD_REQUEST),
            (br#"{"sub":"x"}"#, StatusCode::BAD_REQUEST),
            (br#"{"sub_id":{}}"#, StatusCode::BAD_REQUEST),
            (
                br#"{"sub_id":{"format":"phone_number","phone_number":"1"}}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                br#"{"sub_id":{"format":"email"}}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let err = parse_subject(body).expect_err("refused");
            assert_eq!(err.status(), status, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn tokens_need_a_bearer_header() {
        let trust = RevocationTrust::from_jwks_json(
            "https://idp.test",
            r#"{"keys":[{"kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB","kid":"k1","alg":"RS256","use":"sig"}]}"#,
        )
        .expect("jwks");
        for header in [
            None,
            Some("Basic abc"),
            Some("Bearer "),
            Some("Bearer not.a.jwt"),
        ] {
            let err = verify_token(&trust, header, "https://app.test/x").expect_err("refused");
            assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        }
        assert!(RevocationTrust::from_jwks_json("i", r#"{"keys":[]}"#).is_err());
    }
}
