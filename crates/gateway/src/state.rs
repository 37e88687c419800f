//! Request state: which browser started a SAML exchange. The id of the
//! AuthnRequest (or of our LogoutRequest) travels in the app's short-lived
//! request-state cookie, so the IdP's answer is accepted only in the
//! browser that asked (`InResponseTo` must match), and only once: the
//! cookie is cleared at the answer whatever its outcome.

use std::time::Duration;

use http::HeaderMap;

use crate::plan::AppPlan;

/// How long a browser has to come back from the IdP after sign-in starts.
pub(crate) const SIGN_IN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a LogoutRequest of ours may wait for the IdP's answer.
pub(crate) const LOGOUT_TTL: Duration = Duration::from_secs(5 * 60);

/// `Set-Cookie` binding `request_id` to this browser for `ttl`.
pub(crate) fn begin(plan: &AppPlan, request_id: &str, ttl: Duration) -> String {
    plan.request_state.set(request_id, Some(ttl))
}

/// The request id this browser is waiting on, if any.
pub(crate) fn presented(plan: &AppPlan, headers: &HeaderMap) -> Option<String> {
    plan.request_state.read(headers).map(str::to_string)
}

/// `Set-Cookie` ending the exchange: a request id is good for one answer.
pub(crate) fn clear(plan: &AppPlan) -> String {
    plan.request_state.clear()
}
