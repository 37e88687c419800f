//! An app's auth phase, as the proxy runs it for every request:
//!
//! ```text
//! {prefix}/_portcullis/*   → the gateway's own endpoints (endpoints.rs)
//! otherwise: access rule for the path (longest match, default protected)
//!   deny              → 403
//!   public            → upstream (with the user, if a session exists)
//!   no valid session  → page navigation: AuthnRequest (303 to the IdP); else 401 JSON
//!   groups not met    → 403
//!   else              → upstream, as the session's user
//! ```

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use portcullis_config::AccessPolicy;
use portcullis_proxy::{
    Admission, AuthPhase, EnhanceError, Gate, GateFuture, ProxyBody, RequestFacts, SessionEnd,
    ShownIdentity,
};

use crate::access::groups_allow;
use crate::cookies::backend_cookie_expiry;
use crate::endpoints;
use crate::login;
use crate::plan::AppPlan;
use crate::post_auth;
use crate::reply;
use crate::session::Session;
use portcullis_session::SecretHash;

static X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");
static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");

pub(crate) struct AppGate(pub(crate) Arc<AppPlan>);

impl AuthPhase for AppGate {
    fn gate<'a>(&'a self, request: Request<Incoming>, facts: RequestFacts<'a>) -> GateFuture<'a> {
        Box::pin(gate(&self.0, request, facts))
    }
}

async fn gate(plan: &Arc<AppPlan>, request: Request<Incoming>, facts: RequestFacts<'_>) -> Gate {
    let path = app_path(plan, request.uri().path());
    if path.starts_with(endpoints::PREFIX) {
        let path = path.to_string();
        return Gate::Respond(endpoints::answer(plan, &facts, &path, request).await);
    }
    let policy = plan.access.policy(path);
    if *policy == AccessPolicy::Deny {
        return Gate::Respond(forbidden(plan, &facts, None, policy, path));
    }
    let token = plan.session_cookie.read(request.headers());
    let session = match token {
        Some(token) => {
            let now = time::OffsetDateTime::now_utc();
            match plan.shared.sessions.get(&plan.name, token, now).await {
                Ok(session) => session,
                Err(e) => return Gate::Respond(reply::store_unavailable(&facts, &plan.name, &e)),
            }
        }
        None => None,
    };
    let check = plan.shared.context.get().filter(|_| plan.on_embedded_idp);
    let session = match (session, check) {
        (Some((session, hash)), Some(check)) => {
            match post_auth::evaluate(plan, &**check, &request, &facts, session, hash).await {
                Ok(kept) => Some(kept),
                Err(response) => return Gate::Respond(response),
            }
        }
        (session, _) => session,
    };
    match (policy, session) {
        (AccessPolicy::Public, session) => admit(plan, request, session),
        (_, Some((session, _))) if !groups_allow(policy, session.body.groups()) => Gate::Respond(
            forbidden(plan, &facts, Some(&session.body.user), policy, path),
        ),
        (_, Some(session)) => admit(plan, request, Some(session)),
        (_, None) => {
            let mut response = if navigation(request.headers(), facts.json) {
                login::start(plan, &facts, &request, false)
            } else {
                reply::error(
                    &facts,
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Sign-in required",
                    "This request needs a signed-in session; open the application in a browser to sign in.",
                )
            };
            // A cookie that names no live session: the session ended, so the
            // backend's own session (ended by its logout hook) must go too.
            if token.is_some() && plan.expire_backend_cookies {
                let expired =
                    backend_cookie_expiry(request.headers(), &plan.session_cookie.path, |name| {
                        plan.is_gateway_cookie(name)
                    });
                reply::set_cookies(&mut response, &expired);
            }
            Gate::Respond(response)
        }
    }
}

/// The request path relative to the app's prefix (`/` at least).
fn app_path<'p>(plan: &AppPlan, path: &'p str) -> &'p str {
    match path.strip_prefix(plan.base_path.as_str()) {
        Some("") | None => "/",
        Some(rest) => rest,
    }
}

fn admit(
    plan: &Arc<AppPlan>,
    request: Request<Incoming>,
    session: Option<(Session, SecretHash)>,
) -> Gate {
    Gate::Continue(
        request,
        Box::new(Admitted {
            plan: plan.clone(),
            session,
        }),
    )
}

/// A request on its way to the backend, in the session it runs in (if any).
struct Admitted {
    plan: Arc<AppPlan>,
    session: Option<(Session, SecretHash)>,
}

impl Admission for Admitted {
    fn enhance(&self, headers: &mut HeaderMap) -> Result<(), EnhanceError> {
        self.plan
            .identity
            .apply(self.session.as_ref().map(|(s, _)| s), headers)
    }

    fn ended(&self) -> Option<SessionEnd> {
        self.session
            .as_ref()
            .map(|(_, hash)| self.plan.shared.sessions.ended(hash).boxed() as SessionEnd)
    }

    fn user(&self) -> Option<&str> {
        self.session.as_ref().map(|(s, _)| &*s.body.user)
    }

    fn shown_identity(&self) -> Option<ShownIdentity> {
        let (session, _) = self.session.as_ref()?;
        let sign_out = format!("{}{}logout", self.plan.base_path, endpoints::PREFIX);
        Some(self.plan.identity.shown(&session.body.user, sign_out))
    }
}

/// A page navigation gets redirected to sign in; XHR, fetch and API calls
/// get 401 instead (a redirect to an IdP page is useless to them).
pub(crate) fn navigation(headers: &HeaderMap, json: bool) -> bool {
    let is = |name: &HeaderName, value: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case(value))
    };
    if json || is(&X_REQUESTED_WITH, "XMLHttpRequest") {
        return false;
    }
    headers.get(&SEC_FETCH_MODE).is_none() || is(&SEC_FETCH_MODE, "navigate")
}

fn forbidden(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    user: Option<&str>,
    policy: &AccessPolicy,
    path: &str,
) -> Response<ProxyBody> {
    tracing::warn!(
        request.id = facts.request_id,
        app = &*plan.name,
        user = user.unwrap_or("-"),
        http.path = path,
        "access denied by the app's access rules"
    );
    reply::error(
        facts,
        StatusCode::FORBIDDEN,
        "access_denied",
        "Access denied",
        &refusal_detail(&plan.name, user, policy),
    )
}

/// Who is signed in and what this path needs — the rule that matched and
/// nothing of the app's other rules.
fn refusal_detail(app: &str, user: Option<&str>, policy: &AccessPolicy) -> String {
    let needs = match policy {
        AccessPolicy::Groups(groups) => match groups.as_slice() {
            [one] => format!("This part of {app} needs membership in the group \"{one}\"."),
            many => format!(
                "This part of {app} needs membership in one of the groups {}.",
                many.iter()
                    .map(|g| format!("\"{g}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        AccessPolicy::Deny => format!("This part of {app} is closed to everyone."),
        AccessPolicy::Public | AccessPolicy::Protected => {
            format!("This part of {app} is not available to you.")
        }
    };
    match user {
        Some(user) => format!("You are signed in as {user}. {needs} Ask the application's administrator for access, or sign in as someone else."),
        None => needs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_refusal_names_the_user_and_only_the_rule_that_matched() {
        let groups = AccessPolicy::Groups(vec!["finance".into(), "auditors".into()]);
        let text = refusal_detail("Books", Some("bob@example.com"), &groups);
        assert!(text.contains("signed in as bob@example.com"), "{text}");
        assert!(
            text.contains("one of the groups \"finance\", \"auditors\""),
            "{text}"
        );
        let one = AccessPolicy::Groups(vec!["admins".into()]);
        assert!(refusal_detail("Books", Some("bob"), &one).contains("the group \"admins\""));
        let closed = refusal_detail("Books", None, &AccessPolicy::Deny);
        assert_eq!(closed, "This part of Books is closed to everyone.");
    }

    #[test]
    fn navigation_is_told_from_api_calls() {
        let mut h = HeaderMap::new();
        assert!(navigation(&h, false));
        assert!(!navigation(&h, true));
        h.insert(&SEC_FETCH_MODE, HeaderValue::from_static("cors"));
        assert!(!navigation(&h, false));
        h.insert(&SEC_FETCH_MODE, HeaderValue::from_static("navigate"));
        assert!(navigation(&h, false));
        h.insert(
            &X_REQUESTED_WITH,
            HeaderValue::from_static("XMLHttpRequest"),
        );
        assert!(!navigation(&h, false));
    }
}
