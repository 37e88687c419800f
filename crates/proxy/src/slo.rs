//! Logout at a SAML app's origin:
//!
//! ```text
//! {prefix}/_portcullis/logout      → end this browser's gateway session, then
//!                                    SP-initiated SLO at the IdP (signed
//!                                    LogoutRequest) or, without IdP SLO, the
//!                                    signed-out page
//! {prefix}/_portcullis/saml/slo    → GET/POST, both bindings:
//!     LogoutRequest from the IdP   → end the matching sessions (NameID +
//!                                    SessionIndex), answer with a signed
//!                                    LogoutResponse (Success, also when
//!                                    nothing matched)
//!     LogoutResponse from the IdP  → the signed-out page (noting a partial
//!                                    logout)
//! {prefix}/_portcullis/logged-out  → the signed-out page
//! ```
//!
//! Ending a session drops its watch sender, which closes the WebSocket
//! tunnels and streaming responses it opened (see `session.rs`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::respond;
use crate::session::{EndReason, Session};
use crate::sso::{
    clear_request_state, cookie, error, see_other, AuthPlan, Caller, SloInput, SloMessage,
};

/// SLO messages are small; a POST body over this is refused unread.
const SLO_BODY_LIMIT: usize = 256 * 1024;
/// How long a LogoutRequest of ours may wait for the IdP's answer.
const LOGOUT_STATE_TTL: Duration = Duration::from_secs(5 * 60);

/// Logs one ended gateway session.
pub(crate) fn log_ended(session: &Session, reason: EndReason, request_id: Option<&str>) {
    tracing::info!(
        request.id = request_id,
        app = %session.app,
        user = %session.user,
        session.index = session.session_index.as_deref(),
        reason = reason.as_str(),
        "gateway session ended"
    );
}

fn clear_session(auth: &AuthPlan) -> String {
    format!(
        "{}=; Path={}; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
        auth.session_cookie,
        auth.cookie_path()
    )
}

fn logged_out_path(auth: &AuthPlan, partial: bool) -> String {
    let query = if partial { "?partial=1" } else { "" };
    format!("{}/_portcullis/logged-out{query}", auth.prefix)
}

/// `GET {prefix}/_portcullis/logout`.
pub(crate) fn logout(
    auth: &AuthPlan,
    caller: &Caller<'_>,
    request: &Request<Incoming>,
) -> Response<ProxyBody> {
    let ended = cookie(request.headers(), &auth.session_cookie)
        .and_then(|token| auth.sessions.end(&auth.app, token));
    let Some(session) = ended else {
        // Nothing to end here; a stale tab or a second click.
        return see_other(&logged_out_path(auth, false), &[clear_session(auth)]);
    };
    log_ended(&session, EndReason::Logout, Some(caller.request_id));
    match auth.sp.logout_request(
        &session.user,
        session.session_index.as_deref(),
        &logged_out_path(auth, false),
    ) {
        None => see_other(&logged_out_path(auth, false), &[clear_session(auth)]),
        Some(Ok(redirect)) => {
            // Binds the IdP's LogoutResponse to this browser, like the
            // AuthnRequest's request state (and in the same cookie).
            let state = format!(
                "{}={}; Path={}; Max-Age={}; Secure; HttpOnly; SameSite=None",
                auth.request_cookie,
                redirect.request_id,
                auth.cookie_path(),
                LOGOUT_STATE_TTL.as_secs()
            );
            see_other(&redirect.url, &[clear_session(auth), state])
        }
        Some(Err(e)) => {
            // The local session is gone either way; the IdP's may live on.
            tracing::error!(
                request.id = caller.request_id,
                app = &*auth.app,
                error = %e,
                "building the LogoutRequest failed; signed out of this app only"
            );
            see_other(&logged_out_path(auth, true), &[clear_session(auth)])
        }
    }
}

/// `GET {prefix}/_portcullis/logged-out`.
pub(crate) fn logged_out(auth: &AuthPlan, request: &Request<Incoming>) -> Response<ProxyBody> {
    let partial = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "partial=1"));
    if let Some(url) = &auth.post_logout_url {
        return see_other(url, &[]);
    }
    let detail = if partial {
        "You are signed out of this application, but some other applications could not confirm \
         the sign-out. Close your browser to end those sessions too."
    } else {
        "You are signed out."
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Signed out</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2933}}</style>\
</head><body><main><h1>Signed out</h1><p id=\"signed-out\">{}</p><p><a href=\"{}\">Sign in again</a></p></main></body></html>\n",
        respond::escape(detail),
        respond::escape(&auth.root()),
    );
    let mut response = Response::new(ProxyBody::full(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET|POST {prefix}/_portcullis/saml/slo`.
pub(crate) async fn endpoint(
    auth: &AuthPlan,
    caller: &Caller<'_>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let logout_state = cookie(request.headers(), &auth.request_cookie).map(str::to_string);
    let browser_session = cookie(request.headers(), &auth.session_cookie).map(str::to_string);
    let message = if request.method() == Method::GET {
        let query = request.uri().query().unwrap_or("").to_string();
        auth.sp.slo_message(SloInput::Redirect { query: &query })
    } else if request.method() == Method::POST {
        let body = match read_form(request).await {
            Ok(body) => body,
            Err(status) => return refused(auth, caller, status, "body", "unreadable SLO body"),
        };
        let field = |name: &str| {
            form_urlencoded::parse(&body)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let (saml_request, saml_response, relay_state) = (
            field("SAMLRequest"),
            field("SAMLResponse"),
            field("RelayState"),
        );
        auth.sp.slo_message(SloInput::Post {
            saml_request: saml_request.as_deref(),
            saml_response: saml_response.as_deref(),
            relay_state: relay_state.as_deref(),
        })
    } else {
        return error(
            caller,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "The logout endpoint accepts GET and POST from the identity provider.",
        );
    };
    let message = match message {
        Ok(message) => message,
        Err(e) => return refused(auth, caller, StatusCode::BAD_REQUEST, e.kind, &e.detail),
    };
    match message {
        SloMessage::Request {
            id,
            name_id,
            session_indexes,
            relay_state,
        } => {
            let ended = auth
                .sessions
                .end_matching(&auth.app, &name_id, &session_indexes);
            for session in &ended {
                log_ended(session, EndReason::SingleLogout, Some(caller.request_id));
            }
            tracing::info!(
                request.id = caller.request_id,
                app = &*auth.app,
                user = %name_id,
                sessions = ended.len(),
                "LogoutRequest from the IdP"
            );
            // The browser that carried the request loses its cookie too, if
            // its session was one of them (or is already gone).
            let mut cookies = Vec::new();
            if browser_session.as_deref().is_some_and(|t| {
                auth.sessions
                    .get(&auth.app, t, std::time::Instant::now())
                    .is_none()
            }) {
                cookies.push(clear_session(auth));
            }
            match auth.sp.logout_response(&id, true, relay_state.as_deref()) {
                Some(Ok(url)) => see_other(&url, &cookies),
                Some(Err(e)) => {
                    tracing::error!(
                        request.id = caller.request_id,
                        app = &*auth.app,
                        error = %e,
                        "building the LogoutResponse failed"
                    );
                    see_other(&logged_out_path(auth, false), &cookies)
                }
                None => see_other(&logged_out_path(auth, false), &cookies),
            }
        }
        SloMessage::Response {
            in_response_to,
            success,
            partial,
            ..
        } => {
            let ours = logout_state.is_some() && in_response_to == logout_state;
            if !ours {
                // The session ended at /_portcullis/logout already; an
                // answer we cannot place changes nothing.
                tracing::warn!(
                    request.id = caller.request_id,
                    app = &*auth.app,
                    in_response_to = in_response_to.as_deref(),
                    "LogoutResponse that answers no logout of this browser"
                );
            } else {
                tracing::info!(
                    request.id = caller.request_id,
                    app = &*auth.app,
                    success,
                    partial,
                    "LogoutResponse from the IdP"
                );
            }
            see_other(
                &logged_out_path(auth, !success || partial),
                &[clear_request_state(auth)],
            )
        }
    }
}

async fn read_form(request: Request<Incoming>) -> Result<Bytes, StatusCode> {
    match Limited::new(request.into_body(), SLO_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

fn refused(
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
        "SAML logout message rejected"
    );
    error(
        caller,
        status,
        "saml_logout_rejected",
        "Sign-out failed",
        "The sign-out message from the identity provider could not be accepted.",
    )
}

/// `POST {prefix}/_portcullis/global-token-revocation` (Universal Logout).
pub(crate) async fn global_token_revocation(
    auth: &AuthPlan,
    caller: &Caller<'_>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match read_form(request).await {
        Ok(body) => body,
        Err(status) => return gtr_reply(caller, status, "invalid_request", "unreadable body"),
    };
    match revoke_locally(
        auth,
        authorization.as_deref(),
        &body,
        Some(caller.request_id),
    ) {
        Ok(_) => {
            let mut response = Response::new(ProxyBody::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(e) => gtr_reply(caller, e.status(), e.kind(), &e.to_string()),
    }
}

/// The revocation itself, shared by the HTTP endpoint and in-process
/// delivery from the embedded IdP ([`revoke_in_process`]); logs every outcome.
pub(crate) fn revoke_locally(
    auth: &AuthPlan,
    authorization: Option<&str>,
    body: &[u8],
    request_id: Option<&str>,
) -> Result<usize, crate::gtr::GtrError> {
    revoke_and_log(
        &auth.app,
        auth.gtr_trust.as_deref(),
        &auth.gtr_url,
        authorization,
        body,
        &auth.gtr_jtis,
        &auth.sessions,
        request_id,
    )
}

/// Universal Logout delivered without HTTP: the embedded IdP and the
/// gateway share a process, so the IdP hands its signed token straight to
/// the same verification as `/_portcullis/global-token-revocation`.
pub fn revoke_in_process(
    locals: &crate::local::LocalApps,
    app: &str,
    gtr_url: &str,
    authorization: &str,
    body: &[u8],
) -> Result<usize, crate::gtr::GtrError> {
    revoke_and_log(
        app,
        locals.gtr_trust.get(app).map(|t| &**t),
        gtr_url,
        Some(authorization),
        body,
        &locals.gtr_jtis,
        &locals.sessions,
        None,
    )
}

#[allow(clippy::too_many_arguments)]
fn revoke_and_log(
    app: &str,
    trust: Option<&crate::gtr::GtrTrust>,
    gtr_url: &str,
    authorization: Option<&str>,
    body: &[u8],
    jtis: &crate::gtr::JtiCache,
    sessions: &crate::session::SessionStore,
    request_id: Option<&str>,
) -> Result<usize, crate::gtr::GtrError> {
    match crate::gtr::revoke(trust, authorization, gtr_url, body, jtis, sessions) {
        Ok(ended) => {
            for session in &ended {
                log_ended(session, EndReason::UniversalLogout, request_id);
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

/// RFC 6750-style JSON error for the revocation endpoint.
fn gtr_reply(
    caller: &Caller<'_>,
    status: StatusCode,
    code: &str,
    detail: &str,
) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "error": code,
        "error_description": detail,
        "errorId": caller.request_id,
    });
    let mut response = Response::new(ProxyBody::full(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}
