//! Post-auth evaluation of the IdP's own sessions: every request that
//! uses the IdP session (SSO, the sign-in pages, the home page) compares
//! its context with the session's first.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use portcullis_session::{EndReason, SessionError, SessionSecret};
use time::OffsetDateTime;

use super::{respond, user_agent, user_agent_bytes, Caller, Idp};
use crate::post_auth::{ContextChange, Decision, SessionKind, ViolationSession};
use crate::session::{SessionRecord, SessionStatus};

/// What the user sees when the logout action ended their sessions.
pub(crate) fn protected_sign_out_page() -> Response<Bytes> {
    respond::message_page(
        StatusCode::UNAUTHORIZED,
        "Signed out for your protection",
        "Your session was used from a different network or device than the one you signed in \
         on, so you were signed out to protect your account. Sign in again to continue.",
    )
}

impl Idp {
    /// [`current_session`](Self::current_session), then post-auth
    /// evaluation: `Ok(None)` also when the evaluation ended the session
    /// (the user signs in again); `Err` is the page to answer with (the
    /// store could not say, or the logout action signed the user out).
    pub(crate) async fn current_session_checked(
        &self,
        request: &Request<Bytes>,
        caller: &Caller,
        now: OffsetDateTime,
    ) -> Result<Option<(SessionSecret, SessionRecord)>, Response<Bytes>> {
        let current = self
            .current_session(request, now)
            .await
            .map_err(|e| respond::store_unavailable(&e, "reading the IdP session"))?;
        let Some((secret, record)) = current else {
            return Ok(None);
        };
        // Sessions from before contexts were recorded have nothing to
        // compare with.
        let Some(recorded) = &record.body.context else {
            return Ok(Some((secret, record)));
        };
        let Some(observed) = self
            .post_auth
            .observe(recorded, caller.ip, user_agent_bytes(request))
        else {
            return Ok(Some((secret, record)));
        };
        let directory = self.directory();
        let decision = match directory.by_id(&record.body.user_id) {
            Some(user) if !observed.changes.is_empty() => self.context_changed(&ContextChange {
                session: ViolationSession {
                    id: record.id.as_str().to_string(),
                    kind: SessionKind::Idp,
                    app: None,
                },
                user,
                recorded,
                observed: &observed,
                user_agent: user_agent(request),
                last_password_verification: record.body.last_password_verification,
                last_factor_verification: record.body.last_factor_verification,
                idp_session_id: None,
            }),
            _ => Decision::Continue,
        };
        match decision {
            Decision::Continue | Decision::StepUpMfa => {
                let step_up = decision == Decision::StepUpMfa;
                let current = observed.current;
                let updated = self
                    .sessions
                    .store()
                    .update(
                        &secret.hash(),
                        now,
                        Box::new(move |s| {
                            s.body.context = Some(current);
                            if step_up {
                                s.body.status = SessionStatus::MfaRequired;
                            }
                        }),
                    )
                    .await;
                match updated {
                    Ok(record) => Ok(Some((secret, record))),
                    Err(SessionError::Store(e)) => Err(respond::store_unavailable(
                        &e,
                        "recording an IdP session's context",
                    )),
                    Err(_) => Ok(None),
                }
            }
            Decision::Reauthenticate | Decision::Deny => {
                self.end_for_violation(&secret).await?;
                Ok(None)
            }
            Decision::SignedOut => {
                self.end_for_violation(&secret).await?;
                Err(self.with_cleared_session(protected_sign_out_page()))
            }
        }
    }

    async fn end_for_violation(&self, secret: &SessionSecret) -> Result<(), Response<Bytes>> {
        self.sessions
            .end(secret, EndReason::PostAuthViolation)
            .await
            .map(drop)
            .map_err(|e| respond::store_unavailable(&e, "ending an IdP session"))
    }
}
