//! The gateway's SAML phase for `auth = "saml"` apps, run after route and
//! before forward: the app's own SP endpoints, then the access rules, then
//! the gateway session. The SAML work itself (metadata, signing the
//! AuthnRequest, verifying the Response) sits behind [`SamlSp`], handed in
//! by the binary, so the data plane stays free of XML and crypto.
//!
//! ```text
//! {prefix}/_portcullis/saml/metadata  → SP metadata
//! {prefix}/_portcullis/saml/acs       → POST: verify, create session, 303 to RelayState
//! otherwise: access rule for the path (longest match, default protected)
//!   public            → upstream (with the user, if a session exists)
//!   deny              → 403
//!   no valid session  → page navigation: AuthnRequest (303 to the IdP); else 401 JSON
//!   groups not met    → 403
//!   else              → upstream with X-Portcullis-User
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use portcullis_config::{AccessPolicy, AccessRule, AppAuth};

use crate::body::ProxyBody;
use crate::gtr::{GtrTrust, JtiCache};
use crate::limit::ClientLimit;
use crate::respond;
use crate::session::{NewSession, Session, SessionStore};

pub static X_PORTCULLIS_USER: HeaderName = HeaderName::from_static("x-portcullis-user");
static X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");
static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");

/// Largest ACS body read (a SAMLResponse is verified against its own,
/// smaller cap by the SP; this only bounds buffering).
const ACS_BODY_LIMIT: usize = 512 * 1024;
/// How long a browser has to come back from the IdP.
const REQUEST_STATE_TTL: Duration = Duration::from_secs(5 * 60);
/// Longer RelayState values are not echoed back; the browser lands on the app root.
const MAX_RELAY_STATE: usize = 2048;

/// An app's SAML service provider, implemented by the binary.
pub trait SamlSp: Send + Sync + 'static {
    /// SP metadata XML.
    fn metadata(&self) -> Result<String, String>;
    /// A signed HTTP-Redirect AuthnRequest carrying `relay_state`.
    fn authn_request(&self, relay_state: &str) -> Result<AuthnRedirect, String>;
    /// Verifies a base64 `SAMLResponse` that must answer `request_id`;
    /// `None` accepts only an unsolicited (IdP-initiated) Response.
    fn verify(&self, saml_response: &str, request_id: Option<&str>) -> Result<Identity, AcsError>;
    /// A signed Redirect-binding LogoutRequest for this user's session at
    /// the IdP; `None` when the IdP publishes no Single Logout endpoint.
    fn logout_request(
        &self,
        name_id: &str,
        session_index: Option<&str>,
        relay_state: &str,
    ) -> Option<Result<AuthnRedirect, String>>;
    /// Verifies a Single Logout message from the IdP (either binding).
    fn slo_message(&self, input: SloInput<'_>) -> Result<SloMessage, AcsError>;
    /// A signed Redirect-binding LogoutResponse to the IdP; `None` when the
    /// IdP publishes no Single Logout endpoint.
    fn logout_response(
        &self,
        in_response_to: &str,
        success: bool,
        relay_state: Option<&str>,
    ) -> Option<Result<String, String>>;
    /// An RS256 JWT of `claims`, signed with the app's SP key.
    fn sign_identity(&self, claims: &serde_json::Value) -> Result<String, String>;
    /// The JWKS of that key (served at `/_portcullis/jwks`).
    fn jwks(&self) -> serde_json::Value;
}

/// A Single Logout message as it arrived at `/_portcullis/saml/slo`.
pub enum SloInput<'a> {
    /// HTTP-Redirect: the raw, still URL-encoded query string.
    Redirect { query: &'a str },
    /// HTTP-POST: the decoded form fields.
    Post {
        saml_request: Option<&'a str>,
        saml_response: Option<&'a str>,
        relay_state: Option<&'a str>,
    },
}

/// A verified Single Logout message from the IdP.
pub enum SloMessage {
    /// The IdP asks the app to end these sessions.
    Request {
        id: String,
        name_id: String,
        session_indexes: Vec<String>,
        relay_state: Option<String>,
    },
    /// The IdP answers a LogoutRequest of ours.
    Response {
        in_response_to: Option<String>,
        /// Top-level Success.
        success: bool,
        /// Success, but some other session participant could not be reached.
        partial: bool,
        relay_state: Option<String>,
    },
}

/// Where to send the browser, and the id the Response must answer.
pub struct AuthnRedirect {
    pub url: String,
    pub request_id: String,
}

/// Identity from a verified assertion.
pub struct Identity {
    pub name_id: String,
    pub session_index: Option<String>,
    pub authn_context: Option<String>,
    pub attributes: Vec<(String, Vec<String>)>,
}

/// Why a Response was refused: a stable kind for the log, and the detail.
#[derive(Debug)]
pub struct AcsError {
    pub kind: &'static str,
    pub detail: String,
}

/// An app's compiled SAML settings.
pub struct AuthPlan {
    pub app: Arc<str>,
    pub sp: Arc<dyn SamlSp>,
    pub sessions: Arc<SessionStore>,
    /// The app's path prefix, `""` for `/`.
    pub prefix: String,
    pub session_cookie: String,
    pub request_cookie: String,
    pub idle: Duration,
    pub max: Duration,
    /// Sorted longest path first.
    pub access: Vec<AccessRule>,
    pub allow_idp_initiated: bool,
    /// Shared by every app and worker.
    pub acs_limit: Arc<ClientLimit>,
    /// The IdP this app takes Universal Logout from, if any.
    pub gtr_trust: Option<Arc<GtrTrust>>,
    pub gtr_jtis: Arc<JtiCache>,
    /// This app's revocation endpoint: the `aud` tokens must carry.
    pub gtr_url: String,
    /// The app has a backend logout hook: after its session ends, the
    /// backend's cookies are expired at the browser's next visit.
    pub expire_backend_cookies: bool,
    /// Headers and cookies toward the backend.
    pub identity: crate::identity::IdentityPlan,
    /// After sign-in, land here (app path, prefix included) instead.
    pub login_landing: Option<String>,
    /// Where the signed-out page sends the browser instead.
    pub post_logout_url: Option<String>,
}

impl AuthPlan {
    pub fn new(
        app: Arc<str>,
        auth: &AppAuth,
        prefix: &str,
        sp: Arc<dyn SamlSp>,
        locals: &crate::local::LocalApps,
        public_url: String,
    ) -> Result<AuthPlan, String> {
        let mut access = auth.access.clone();
        access.sort_by_key(|rule| std::cmp::Reverse(rule.path.len()));
        Ok(AuthPlan {
            identity: crate::identity::IdentityPlan::new(auth, public_url)?,
            login_landing: auth
                .login_landing
                .as_ref()
                .map(|p| format!("{}{p}", if prefix == "/" { "" } else { prefix })),
            post_logout_url: auth.post_logout_url.as_ref().map(|u| {
                if u.starts_with('/') && prefix != "/" {
                    format!("{prefix}{u}")
                } else {
                    u.clone()
                }
            }),
            sp,
            prefix: if prefix == "/" {
                String::new()
            } else {
                prefix.to_string()
            },
            session_cookie: auth.session_cookie.clone(),
            request_cookie: auth.request_cookie.clone(),
            idle: auth.session_idle,
            max: auth.session_max,
            access,
            allow_idp_initiated: auth.allow_idp_initiated,
            acs_limit: locals.acs_limit.clone(),
            gtr_trust: locals.gtr_trust.get(&*app).cloned(),
            gtr_jtis: locals.gtr_jtis.clone(),
            gtr_url: auth.gtr_url.clone(),
            expire_backend_cookies: auth.backend_logout_url.is_some(),
            app,
            sessions: locals.sessions.clone(),
        })
    }

    pub(crate) fn cookie_path(&self) -> &str {
        if self.prefix.is_empty() {
            "/"
        } else {
            &self.prefix
        }
    }

    pub(crate) fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// The policy for an app-relative path: longest rule, default protected.
    fn policy(&self, local: &str) -> &AccessPolicy {
        self.access
            .iter()
            .find(|r| under(local, &r.path))
            .map_or(&AccessPolicy::Protected, |r| &r.policy)
    }
}

/// True when `path` is `base` or below it, by whole segments.
fn under(path: &str, base: &str) -> bool {
    base == "/"
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What the phase decided.
pub enum Gate {
    /// Go on to the upstream, in this gateway session (if any).
    Continue(Request<Incoming>, Option<Box<Session>>),
    Respond(Response<ProxyBody>),
}

/// Facts of the request the phase needs beyond the request itself.
pub struct Caller<'a> {
    pub request_id: &'a str,
    pub client_ip: std::net::IpAddr,
    pub json: bool,
    /// Every app's session and request-state cookie names.
    pub gateway_cookies: &'a [String],
}

/// Phase: gateway SSO.
pub async fn gate(auth: &AuthPlan, caller: &Caller<'_>, request: Request<Incoming>) -> Gate {
    let local = request
        .uri()
        .path()
        .strip_prefix(auth.prefix.as_str())
        .unwrap_or("/")
        .to_string();
    let local = if local.is_empty() {
        "/".to_string()
    } else {
        local
    };
    match local.as_str() {
        "/_portcullis/saml/metadata" => return Gate::Respond(metadata(auth, caller)),
        "/_portcullis/jwks" => {
            let mut response = Response::new(ProxyBody::full(auth.sp.jwks().to_string()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            );
            return Gate::Respond(response);
        }
        "/_portcullis/saml/acs" if request.method() == Method::POST => {
            return Gate::Respond(acs(auth, caller, request).await)
        }
        "/_portcullis/logout" => return Gate::Respond(crate::slo::logout(auth, caller, &request)),
        "/_portcullis/logged-out" => return Gate::Respond(crate::slo::logged_out(auth, &request)),
        "/_portcullis/saml/slo" => {
            return Gate::Respond(crate::slo::endpoint(auth, caller, request).await)
        }
        "/_portcullis/global-token-revocation" if request.method() == Method::POST => {
            return Gate::Respond(crate::slo::global_token_revocation(auth, caller, request).await)
        }
        "/_portcullis/saml/acs" => {
            return Gate::Respond(error(
                caller,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "The sign-in endpoint accepts only the POST from the identity provider.",
            ))
        }
        _ if local.starts_with("/_portcullis/") => {
            return Gate::Respond(error(
                caller,
                StatusCode::NOT_FOUND,
                "no_route",
                "Not found",
                "This gateway endpoint does not exist.",
            ))
        }
        _ => {}
    }

    let policy = auth.policy(&local);
    if *policy == AccessPolicy::Deny {
        return Gate::Respond(forbidden(auth, caller, None, &local));
    }
    let token = cookie(request.headers(), &auth.session_cookie);
    let session = token.and_then(|token| auth.sessions.get(&auth.app, token, Instant::now()));
    if token.is_some() && session.is_none() && auth.expire_backend_cookies {
        let expired = backend_cookie_expiry(auth, caller.gateway_cookies, request.headers());
        let mut gate = gate_without_session(auth, caller, request, policy);
        if let Gate::Respond(response) = &mut gate {
            for cookie in expired {
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
        }
        return gate;
    }
    match (policy, session) {
        (AccessPolicy::Public, session) => Gate::Continue(request, session.map(Box::new)),
        (_, None) if navigation(request.headers(), caller.json) => {
            Gate::Respond(start_sso(auth, caller, &request))
        }
        (_, None) => Gate::Respond(error(
            caller,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Sign-in required",
            "This request needs a signed-in session; open the application in a browser to sign in.",
        )),
        (AccessPolicy::Groups(groups), Some(s))
            if !s.groups().any(|g| groups.iter().any(|want| want == g)) =>
        {
            Gate::Respond(forbidden(auth, caller, Some(&s.user), &local))
        }
        (_, Some(s)) => Gate::Continue(request, Some(Box::new(s))),
    }
}

/// The decision for a request whose session cookie names no live session.
fn gate_without_session(
    auth: &AuthPlan,
    caller: &Caller<'_>,
    request: Request<Incoming>,
    policy: &AccessPolicy,
) -> Gate {
    match policy {
        AccessPolicy::Public => Gate::Continue(request, None),
        _ if navigation(request.headers(), caller.json) => {
            Gate::Respond(start_sso(auth, caller, &request))
        }
        _ => Gate::Respond(error(
            caller,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Sign-in required",
            "This request needs a signed-in session; open the application in a browser to sign in.",
        )),
    }
}

/// `Set-Cookie` values expiring every backend cookie the browser sent
/// (the gateway's and the IdP's own excepted), at `/` and at the app's
/// path, where backends usually scope them.
fn backend_cookie_expiry(
    auth: &AuthPlan,
    gateway_cookies: &[String],
    headers: &HeaderMap,
) -> Vec<String> {
    let mut paths = vec!["/".to_string()];
    if auth.cookie_path() != "/" {
        paths.push(auth.cookie_path().to_string());
    }
    let mut out = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let name = pair.split('=').next().unwrap_or("").trim();
            if name.is_empty()
                || name.starts_with("pc_idp_")
                || gateway_cookies.iter().any(|g| g == name)
                || !name.bytes().all(|b| b.is_ascii_graphic() && b != b',')
            {
                continue;
            }
            for path in &paths {
                out.push(format!("{name}=; Path={path}; Max-Age=0"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A page navigation gets redirected to sign in; XHR, fetch and API calls
/// get 401 instead (a redirect to an IdP page is useless to them).
fn navigation(headers: &HeaderMap, json: bool) -> bool {
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

fn metadata(auth: &AuthPlan, caller: &Caller<'_>) -> Response<ProxyBody> {
    match auth.sp.metadata() {
        Ok(xml) => {
            let mut response = Response::new(ProxyBody::full(xml));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/samlmetadata+xml"),
            );
            response
        }
        Err(e) => internal(auth, caller, "metadata", &e),
    }
}

/// No session: send the browser to the IdP with a signed AuthnRequest.
fn start_sso(
    auth: &AuthPlan,
    caller: &Caller<'_>,
    request: &Request<Incoming>,
) -> Response<ProxyBody> {
    let relay_state = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let redirect = match auth.sp.authn_request(relay_state) {
        Ok(r) => r,
        Err(e) => return internal(auth, caller, "authn_request", &e),
    };
    // The ACS POST arrives as a cross-site form submission from the IdP's
    // origin; browsers do not send SameSite=Lax (or Strict) cookies on a
    // cross-site POST, so the request-state cookie must be SameSite=None
    // (which requires Secure). It carries only the request id, lives five
    // minutes, and is cleared at the ACS whatever the outcome.
    let state = format!(
        "{}={}; Path={}; Max-Age={}; Secure; HttpOnly; SameSite=None",
        auth.request_cookie,
        redirect.request_id,
        auth.cookie_path(),
        REQUEST_STATE_TTL.as_secs()
    );
    see_other(&redirect.url, &[state])
}

/// POST `{prefix}/_portcullis/saml/acs`.
async fn acs(
    auth: &AuthPlan,
    caller: &Caller<'_>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    if let Err(retry_after) = auth.acs_limit.check(caller.client_ip) {
        tracing::warn!(
            request.id = caller.request_id,
            app = &*auth.app,
            client.ip = %caller.client_ip,
            "ACS rate limit reached; SAML response not examined"
        );
        let mut response = error(
            caller,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many sign-in attempts",
            "Too many sign-in responses came from your address. Wait a moment, then open the application again.",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return response;
    }
    let request_id = cookie(request.headers(), &auth.request_cookie).map(str::to_string);
    let body = match Limited::new(request.into_body(), ACS_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return rejected(
                auth,
                caller,
                StatusCode::PAYLOAD_TOO_LARGE,
                "size",
                "body over the ACS limit",
            )
        }
        Err(_) => {
            return rejected(
                auth,
                caller,
                StatusCode::BAD_REQUEST,
                "body",
                "body could not be read",
            )
        }
    };
    let (saml_response, relay_state) = form_fields(&body);
    let Some(saml_response) = saml_response else {
        return rejected(
            auth,
            caller,
            StatusCode::BAD_REQUEST,
            "missing_response",
            "no SAMLResponse field",
        );
    };
    // Unsolicited responses (IdP-initiated, or replays from another
    // browser) have no request state here; only apps that opted in take
    // them, and then only responses that answer no request at all.
    if request_id.is_none() && !auth.allow_idp_initiated {
        return rejected(
            auth,
            caller,
            StatusCode::BAD_REQUEST,
            "no_request_state",
            "no request-state cookie",
        );
    }
    let identity = match auth.sp.verify(&saml_response, request_id.as_deref()) {
        Ok(identity) => identity,
        Err(e) => return rejected(auth, caller, StatusCode::BAD_REQUEST, e.kind, &e.detail),
    };
    let token = auth.sessions.create(
        NewSession {
            app: auth.app.to_string(),
            user: identity.name_id.clone(),
            attributes: identity.attributes,
            session_index: identity.session_index,
            authn_context: identity.authn_context,
            client_ip: caller.client_ip,
            idle: auth.idle,
            max: auth.max,
        },
        Instant::now(),
    );
    tracing::info!(
        request.id = caller.request_id,
        app = &*auth.app,
        user = %identity.name_id,
        "gateway session started"
    );
    let target = match &auth.login_landing {
        Some(landing) => landing.clone(),
        None => relay_state
            .filter(|rs| safe_relay_state(auth, rs))
            .unwrap_or_else(|| auth.root()),
    };
    let session = format!(
        "{}={token}; Path={}; Secure; HttpOnly; SameSite=Lax",
        auth.session_cookie,
        auth.cookie_path()
    );
    see_other(&target, &[session, clear_request_state(auth)])
}

/// RelayState is followed only when it is a path on this app: no scheme or
/// authority (`//host`), no backslashes or control characters, under the prefix.
fn safe_relay_state(auth: &AuthPlan, relay_state: &str) -> bool {
    let path = relay_state.split(['?', '#']).next().unwrap_or_default();
    relay_state.len() <= MAX_RELAY_STATE
        && relay_state.starts_with('/')
        && !relay_state.starts_with("//")
        && !relay_state.contains('\\')
        && !relay_state
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        && (auth.prefix.is_empty() || under(path, &auth.prefix))
}

fn form_fields(body: &Bytes) -> (Option<String>, Option<String>) {
    let (mut response, mut relay_state) = (None, None);
    for (key, value) in form_urlencoded::parse(body) {
        match &*key {
            "SAMLResponse" => response = Some(value.into_owned()),
            "RelayState" => relay_state = Some(value.into_owned()),
            _ => {}
        }
    }
    (response, relay_state)
}

pub(crate) fn clear_request_state(auth: &AuthPlan) -> String {
    format!(
        "{}=; Path={}; Max-Age=0; Secure; HttpOnly; SameSite=None",
        auth.request_cookie,
        auth.cookie_path()
    )
}

/// ACS failure: a 4xx page, a warn event with the reason, no session, and
/// the request state cleared (a request id is good for one attempt).
fn rejected(
    auth: &AuthPlan,
    caller: &Caller<'_>,
    status: StatusCode,
    kind: &str,
    detail: &str,
) -> Response<ProxyBody> {
    tracing::warn!(
        request.id = caller.request_id,
        app = &*auth.app,
        error.kind = kind,
        error.detail = detail,
        "SAML response rejected; no session created"
    );
    let mut response = error(
        caller,
        status,
        "saml_response_rejected",
        "Sign-in failed",
        "The sign-in response from the identity provider could not be accepted. \
         Please open the application again to sign in.",
    );
    if let Ok(value) = HeaderValue::from_str(&clear_request_state(auth)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn forbidden(
    auth: &AuthPlan,
    caller: &Caller<'_>,
    user: Option<&str>,
    path: &str,
) -> Response<ProxyBody> {
    tracing::warn!(
        request.id = caller.request_id,
        app = &*auth.app,
        user = user.unwrap_or("-"),
        http.path = path,
        "access denied by the app's access rules"
    );
    error(
        caller,
        StatusCode::FORBIDDEN,
        "access_denied",
        "Access denied",
        "You are signed in, but this part of the application is not available to you.",
    )
}

fn internal(auth: &AuthPlan, caller: &Caller<'_>, what: &str, e: &str) -> Response<ProxyBody> {
    tracing::error!(
        request.id = caller.request_id,
        app = &*auth.app,
        error = e,
        "SAML {what} failed"
    );
    error(
        caller,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "Sign-in unavailable",
        "The gateway could not start sign-in. Please try again later.",
    )
}

pub(crate) fn error(
    caller: &Caller<'_>,
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
) -> Response<ProxyBody> {
    respond::error(status, code, title, detail, caller.request_id, caller.json)
}

pub(crate) fn see_other(location: &str, cookies: &[String]) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The first value of cookie `name` in the request.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Removes the gateway's own cookies (every app's session and request-state
/// cookies, and the IdP's `pc_idp_*`) from what goes upstream: browsers
/// share cookies across the ports of one host, so a backend must never see
/// a credential for the gateway.
pub fn strip_gateway_cookies(headers: &mut HeaderMap, names: &[String]) {
    if !headers.contains_key(header::COOKIE) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !name.starts_with("pc_idp_") && !names.iter().any(|n| n == name)
        })
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if kept.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
        headers.insert(header::COOKIE, value);
    }
}

/// The identity header: any client-sent value is removed first.
pub fn set_user_header(headers: &mut HeaderMap, user: Option<&str>) {
    headers.remove(&X_PORTCULLIS_USER);
    if let Some(value) = user.and_then(|u| HeaderValue::from_str(u).ok()) {
        headers.insert(X_PORTCULLIS_USER.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_whole_segments() {
        assert!(under("/admin", "/admin"));
        assert!(under("/admin/x", "/admin"));
        assert!(!under("/administrator", "/admin"));
        assert!(under("/anything", "/"));
    }

    #[test]
    fn gateway_cookies_are_stripped_and_others_kept() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; pc_b=secret; pc_idp_sid=x"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("pc_b_rs=_id; b=2"));
        strip_gateway_cookies(&mut h, &["pc_b".into(), "pc_b_rs".into()]);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("pc_b=secret"));
        strip_gateway_cookies(&mut only, &["pc_b".into()]);
        assert!(only.get(header::COOKIE).is_none());
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
