//! Post-auth evaluation of gateway sessions (DESIGN §5a). The policy is
//! the embedded IdP's, so the gateway asks through [`ContextCheck`], which
//! the binary implements; here is what a gate does with the answer.
//!
//! ```text
//! session found → observe (IP and user-agent hash equal: done, nothing allocated)
//!   changed, nothing bound  → record the new context, go on
//!   Continue                → record the new context, go on
//!   Reauthenticate / StepUp → end the session; navigation: AuthnRequest with ForceAuthn; else 401
//!   Deny                    → end the session; 403
//!   SignedOut               → end the session; "signed out for your protection"
//! ```

use std::net::IpAddr;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use portcullis_context::{Observed, SessionContext};
use portcullis_proxy::{ProxyBody, RequestFacts};
use portcullis_session::{EndReason, SecretHash};

use crate::gate::navigation;
use crate::login;
use crate::plan::AppPlan;
use crate::reply;
use crate::session::{log_ended, Session};

/// What the gateway asks of post-auth evaluation.
pub trait ContextCheck: Send + Sync + 'static {
    /// A new session's context.
    fn capture(&self, ip: IpAddr, user_agent: Option<&[u8]>) -> SessionContext;

    /// `None` while evaluation is off, or when nothing changed; the cost
    /// every request of every session pays.
    fn observe(
        &self,
        recorded: &SessionContext,
        ip: IpAddr,
        user_agent: Option<&[u8]>,
    ) -> Option<Observed>;

    /// Judges a change of `session`'s context (events, report and the
    /// actions that reach other sessions are the checker's).
    fn changed(&self, change: GatewayChange<'_>) -> ContextVerdict;
}

pub struct GatewayChange<'a> {
    pub session: &'a Session,
    pub observed: &'a Observed,
    pub user_agent: Option<&'a str>,
    pub request_id: &'a str,
}

/// What the session's gate does with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextVerdict {
    /// Go on; the session records the new context.
    Continue,
    /// The session ends here.
    End(SessionEnding),
}

/// Why a change ends the session, which says what the user is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnding {
    /// Sign in again at the IdP (ForceAuthn), which also steps up to MFA
    /// when the new context's policy asks for it.
    Reauthenticate,
    /// The policies refuse the new context.
    Deny,
    /// The logout action ended the user's sessions.
    SignedOut,
}

/// A session's request through post-auth evaluation: `Ok` with the
/// session to go on with, or the answer when the verdict ends it.
pub(crate) async fn evaluate(
    plan: &AppPlan,
    check: &dyn ContextCheck,
    request: &Request<Incoming>,
    facts: &RequestFacts<'_>,
    session: Session,
    hash: SecretHash,
) -> Result<(Session, SecretHash), Response<ProxyBody>> {
    let user_agent = request.headers().get(header::USER_AGENT);
    let Some(observed) = check.observe(
        &session.body.context,
        facts.client_ip,
        user_agent.map(HeaderValue::as_bytes),
    ) else {
        return Ok((session, hash));
    };
    let verdict = if observed.changes.is_empty() {
        ContextVerdict::Continue
    } else {
        check.changed(GatewayChange {
            session: &session,
            observed: &observed,
            user_agent: user_agent.and_then(|v| v.to_str().ok()),
            request_id: facts.request_id,
        })
    };
    let sessions = &plan.shared.sessions;
    let ending = match verdict {
        ContextVerdict::End(ending) => ending,
        ContextVerdict::Continue => {
            let now = time::OffsetDateTime::now_utc();
            return match sessions.record_context(&hash, observed.current, now).await {
                Ok(()) => Ok((session, hash)),
                Err(e) => Err(reply::store_unavailable(facts, &plan.name, &e)),
            };
        }
    };
    match sessions.end_hash(&hash, EndReason::PostAuthViolation).await {
        Ok(Some(ended)) => log_ended(&ended, EndReason::PostAuthViolation, Some(facts.request_id)),
        Ok(None) => {}
        Err(e) => return Err(reply::store_unavailable(facts, &plan.name, &e)),
    }
    let mut response = match ending {
        SessionEnding::Reauthenticate if navigation(request.headers(), facts.json) => {
            login::start(plan, facts, request, true)
        }
        SessionEnding::Reauthenticate => reply::error(
            facts,
            StatusCode::UNAUTHORIZED,
            "reauthentication_required",
            "Sign-in required again",
            "Your session's network or device changed; sign in again in a browser to continue.",
        ),
        SessionEnding::Deny => reply::error(
            facts,
            StatusCode::FORBIDDEN,
            "access_denied",
            "Access denied",
            "Your organisation's policy does not allow this application from your current network or device.",
        ),
        SessionEnding::SignedOut => reply::error(
            facts,
            StatusCode::UNAUTHORIZED,
            "signed_out",
            "Signed out for your protection",
            "Your session was used from a different network or device than the one you signed in on, so you were signed out to protect your account. Open the application again to sign in.",
        ),
    };
    reply::set_cookies(&mut response, &[plan.session_cookie.clear()]);
    Err(response)
}
