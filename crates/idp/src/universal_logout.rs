//! Universal Logout dispatch from the embedded IdP to the gateway apps.
//!
//! For each logout-enabled app the IdP signs a short-lived RS256 token
//! (`iss` = the IdP, `aud` = the app's revocation endpoint, one-time `jti`)
//! with its SAML signing key, published as a JWKS at `/oauth2/v1/keys`, and
//! hands it with `{"sub_id":{"format":"email",…}}` to a [`RevocationSink`].
//! Dispatch runs on its own task, never on the request that triggered it,
//! retries with exponential backoff while the target answers 5xx/429 or
//! cannot be reached, and logs every outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use portcullis_saml::SigningKey;
use portcullis_session::EndReason;

use crate::signed_token::TokenSigner;

/// Attempts per target before giving up.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Tokens are used at once; a short life limits what a leaked one is worth.
const TOKEN_LIFETIME: u64 = 60;

/// Where a signed revocation goes: the gateway itself in-process, or any
/// HTTP client for remote gateways. Returns the HTTP-style status.
pub trait RevocationSink: Send + Sync + 'static {
    fn deliver(
        &self,
        app: &str,
        audience: &str,
        authorization: &str,
        body: &[u8],
    ) -> Pin<Box<dyn Future<Output = Result<u16, DeliveryError>> + Send>>;
}

/// Why a revocation did not reach its target (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("target unreachable: {0}")]
    Unreachable(String),
    #[error("no answer in time")]
    Timeout,
}

/// One logout-enabled app.
#[derive(Debug, Clone)]
pub struct LogoutTarget {
    pub app: String,
    /// Its `/_portcullis/global-token-revocation` URL.
    pub audience: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UniversalLogoutError {
    #[error("IdP signing key unusable for tokens: {0}")]
    Key(#[from] portcullis_saml::Error),
    #[error("signing a revocation token failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

pub struct UniversalLogout {
    issuer: String,
    signer: TokenSigner,
    targets: Vec<LogoutTarget>,
    sink: Arc<dyn RevocationSink>,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl UniversalLogout {
    pub fn new(
        issuer: impl Into<String>,
        signing_key: &SigningKey,
        targets: Vec<LogoutTarget>,
        sink: Arc<dyn RevocationSink>,
    ) -> Result<UniversalLogout, UniversalLogoutError> {
        Ok(UniversalLogout {
            issuer: issuer.into(),
            signer: TokenSigner::new(signing_key)?,
            targets,
            sink,
        })
    }

    /// The JWKS document served at `/oauth2/v1/keys`.
    pub fn jwks(&self) -> &serde_json::Value {
        self.signer.jwks()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn targets(&self) -> &[LogoutTarget] {
        &self.targets
    }

    /// A fresh one-time token for `audience`.
    pub fn token(&self, audience: &str) -> Result<String, UniversalLogoutError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let jti: [u8; 16] = rand::random();
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "jti": b64url(&jti),
        });
        Ok(self.signer.sign(&claims)?)
    }

    /// Signs `email` out of every target, in the background. `why` names
    /// the trigger in the log.
    pub fn dispatch(self: &Arc<Self>, email: &str, why: &'static str) {
        self.dispatch_to(email, why, None, |_| true);
    }

    /// Signs `email` out of the targets `include` names, in the background.
    /// `reason` travels in the body (`"reason"`, beside `sub_id`) for a
    /// Portcullis gateway to end the sessions with; other receivers ignore
    /// members they do not know.
    pub fn dispatch_to(
        self: &Arc<Self>,
        email: &str,
        why: &'static str,
        reason: Option<EndReason>,
        include: impl Fn(&str) -> bool,
    ) {
        let mut body = serde_json::json!({"sub_id": {"format": "email", "email": email}});
        if let Some(reason) = reason {
            body["reason"] = serde_json::Value::from(reason.as_str());
        }
        let body = body.to_string();
        for target in self.targets.iter().filter(|t| include(&t.app)) {
            let target = target.clone();
            let this = Arc::clone(self);
            let body = body.clone();
            let email = email.to_string();
            tokio::spawn(async move {
                this.deliver_with_retries(&target, &email, body.as_bytes(), why)
                    .await;
            });
        }
    }

    async fn deliver_with_retries(
        &self,
        target: &LogoutTarget,
        email: &str,
        body: &[u8],
        why: &'static str,
    ) {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let outcome = match self.token(&target.audience) {
                Ok(token) => {
                    self.sink
                        .deliver(
                            &target.app,
                            &target.audience,
                            &format!("Bearer {token}"),
                            body,
                        )
                        .await
                }
                Err(e) => {
                    tracing::error!(app = %target.app, error = %e, "universal logout token not signed");
                    return;
                }
            };
            let retry = match &outcome {
                Ok(status) => *status >= 500 || *status == 429,
                Err(_) => true,
            };
            if !retry {
                let status = outcome.as_ref().copied().unwrap_or_default();
                // 404: the app had no session for this user — nothing to do.
                let result = match status {
                    200..=299 => "revoked",
                    404 => "no_session",
                    _ => "refused",
                };
                tracing::info!(
                    app = %target.app,
                    user = email,
                    trigger = why,
                    status,
                    attempt,
                    result,
                    "universal logout delivered"
                );
                return;
            }
            if attempt == ATTEMPTS {
                tracing::error!(
                    app = %target.app,
                    user = email,
                    trigger = why,
                    attempts = ATTEMPTS,
                    outcome = ?outcome,
                    "universal logout gave up"
                );
                return;
            }
            tracing::warn!(
                app = %target.app,
                user = email,
                attempt,
                outcome = ?outcome,
                retry_in_ms = backoff.as_millis() as u64,
                "universal logout failed; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers with the scripted statuses, recording every call.
    struct Scripted {
        answers: Mutex<Vec<Result<u16, DeliveryError>>>,
        calls: Mutex<Vec<(String, String)>>,
    }

    impl RevocationSink for Scripted {
        fn deliver(
            &self,
            app: &str,
            _audience: &str,
            authorization: &str,
            _body: &[u8],
        ) -> Pin<Box<dyn Future<Output = Result<u16, DeliveryError>> + Send>> {
            self.calls
                .lock()
                .expect("calls")
                .push((app.to_string(), authorization.to_string()));
            let answer = self.answers.lock().expect("answers").remove(0);
            Box::pin(async move { answer })
        }
    }

    #[tokio::test]
    async fn retries_until_the_target_answers_and_signs_each_attempt_anew() {
        let key = SigningKey::generate_self_signed("ul test", 1).expect("key");
        let sink = Arc::new(Scripted {
            answers: Mutex::new(vec![
                Err(DeliveryError::Unreachable("connection refused".into())),
                Ok(503),
                Ok(204),
            ]),
            calls: Mutex::new(Vec::new()),
        });
        let ul = Arc::new(
            UniversalLogout::new(
                "https://idp.test",
                &key,
                vec![LogoutTarget {
                    app: "b".into(),
                    audience: "https://b.test/_portcullis/global-token-revocation".into(),
                }],
                sink.clone(),
            )
            .expect("ul"),
        );
        ul.dispatch("bob@example.com", "test");
        // Backoff is 200 ms then 400 ms: the third attempt lands well within this.
        for _ in 0..50 {
            if sink.calls.lock().expect("calls").len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let calls = sink.calls.lock().expect("calls").clone();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(calls
            .iter()
            .all(|(app, auth)| app == "b" && auth.starts_with("Bearer ")));
        assert_ne!(calls[0].1, calls[1].1, "every attempt has its own jti");
        assert_eq!(ul.jwks()["keys"][0]["alg"], "RS256");
    }
}
