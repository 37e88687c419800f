//! Sign-out at an app:
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
//!     SOAP LogoutRequest (POST,    → the same sessions end; a signed SOAP
//!     text/xml: the back channel)    LogoutResponse answers ([`logout_soap`])
//! {prefix}/_portcullis/logged-out  → the signed-out page
//! ```
//!
//! Ending a session closes the WebSocket tunnels and streaming responses it
//! opened (the session store's end signal) and fires the app's backend
//! logout hook.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use portcullis_proxy::page;
use portcullis_proxy::{ProxyBody, RequestFacts};
use portcullis_saml::{LogoutBinding, LogoutMessage, ParsedLogoutRequest};
use portcullis_session::{EndReason, StoreError};

use crate::logout_soap;
use crate::plan::AppPlan;
use crate::reply::{self, see_other, Refused};
use crate::session::log_ended;
use crate::state::{self, Purpose};

/// SLO messages are small; a POST body over this is refused unread.
const SLO_BODY_LIMIT: usize = 256 * 1024;

fn logged_out_path(plan: &AppPlan, partial: bool) -> String {
    let query = if partial { "?partial=1" } else { "" };
    plan.path(&format!("/_portcullis/logged-out{query}"))
}

/// `GET {prefix}/_portcullis/logout`.
pub(crate) async fn logout(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    request: &Request<Incoming>,
) -> Response<ProxyBody> {
    let clear_session = plan.session_cookie.clear();
    let ended = match plan.session_cookie.read(request.headers()) {
        Some(token) => {
            let now = time::OffsetDateTime::now_utc();
            match plan.shared.sessions.end(&plan.name, token, now).await {
                Ok(ended) => ended,
                Err(e) => return reply::store_unavailable(facts, &plan.name, &e),
            }
        }
        None => None,
    };
    let Some(session) = ended else {
        // Nothing to end here; a stale tab or a second click.
        return see_other(&logged_out_path(plan, false), &[clear_session]);
    };
    log_ended(&session, EndReason::SignOut, Some(facts.request_id));
    match plan.sp.logout_request(
        &session.body.user,
        &session.body.name_id,
        session.body.session_index.as_deref(),
        &logged_out_path(plan, false),
    ) {
        Ok(None) => see_other(&logged_out_path(plan, false), &[clear_session]),
        // Binds the IdP's LogoutResponse to this browser, like the
        // AuthnRequest's request state (and in the same cookie).
        Ok(Some(redirect)) => see_other(
            &redirect.url,
            &[
                clear_session,
                state::begin(plan, Purpose::Logout, &redirect.request_id),
            ],
        ),
        Err(e) => {
            // The local session is gone either way; the IdP's may live on.
            reply::build_failed(facts, &plan.name, "LogoutRequest", &e);
            see_other(&logged_out_path(plan, true), &[clear_session])
        }
    }
}

/// The gateway's signed-out page.
#[derive(askama::Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {
    detail: &'static str,
    sign_in_again: String,
}

/// `GET {prefix}/_portcullis/logged-out`.
pub(crate) fn logged_out(plan: &AppPlan, request: &Request<Incoming>) -> Response<ProxyBody> {
    if let Some(url) = &plan.post_logout_url {
        return see_other(url, &[]);
    }
    let partial = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "partial=1"));
    let detail = if partial {
        "You are signed out of this application, but some other applications could not confirm \
         the sign-out. Close your browser to end those sessions too."
    } else {
        "You are signed out."
    };
    reply::page(
        "Signed out",
        &page::body(&SignedOutPage {
            detail,
            sign_in_again: plan.root(),
        }),
    )
}

/// `GET|POST {prefix}/_portcullis/saml/slo`.
pub(crate) async fn slo(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    // A cookie that is not ours (or too old) places no answer; the
    // LogoutResponse is then logged as answering nothing of this browser.
    let logout_state = state::presented(
        plan,
        Purpose::Logout,
        request.headers(),
        time::OffsetDateTime::now_utc(),
    )
    .ok()
    .flatten()
    .map(|pending| pending.request_id);
    let browser_session = plan
        .session_cookie
        .read(request.headers())
        .map(str::to_string);
    if logout_soap::is_soap(&request) {
        return logout_soap::slo(plan, facts, request).await;
    }
    // The endpoint table lets only GET (Redirect binding) and POST through.
    let input = if request.method() == Method::GET {
        SloInput::Redirect(request.uri().query().unwrap_or("").to_string())
    } else {
        let body = match read_body(request, SLO_BODY_LIMIT).await {
            Ok(body) => body,
            Err(status) => return refused(plan, facts, status, "body", "unreadable SLO body"),
        };
        let field = |name: &str| {
            form_urlencoded::parse(&body)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        SloInput::Post {
            saml_request: field("SAMLRequest"),
            saml_response: field("SAMLResponse"),
            relay_state: field("RelayState"),
        }
    };
    // Verified on the bounded pool, off the worker thread, like the ACS.
    let sp = plan.sp.clone();
    let message = match plan
        .shared
        .saml_work
        .run(move || sp.logout_message(input.binding()))
        .await
    {
        Ok(message) => message,
        Err(e) => return reply::work_refused(facts, &plan.name, "logout message", &e),
    };
    match message {
        Ok(LogoutMessage::Request(request)) => {
            if let Err(e) = end_named_sessions(plan, facts, &request, "front").await {
                return reply::store_unavailable(facts, &plan.name, &e);
            }
            // The browser that carried the request loses its cookie too, if
            // its session was one of them (or is already gone).
            let mut cookies = Vec::new();
            if let Some(token) = browser_session.as_deref() {
                let now = time::OffsetDateTime::now_utc();
                if let Ok(None) = plan.shared.sessions.get(&plan.name, token, now).await {
                    cookies.push(plan.session_cookie.clear());
                }
            }
            match plan
                .sp
                .logout_response(&request.id, true, request.relay_state.as_deref())
            {
                Ok(Some(url)) => see_other(&url, &cookies),
                Ok(None) => see_other(&logged_out_path(plan, false), &cookies),
                Err(e) => {
                    reply::build_failed(facts, &plan.name, "LogoutResponse", &e);
                    see_other(&logged_out_path(plan, false), &cookies)
                }
            }
        }
        Ok(LogoutMessage::Response(response)) => {
            let (success, partial) = (response.is_success(), response.is_partial());
            if logout_state.is_some() && response.in_response_to == logout_state {
                tracing::info!(
                    request.id = facts.request_id,
                    app = &*plan.name,
                    success,
                    partial,
                    "LogoutResponse from the IdP"
                );
            } else {
                // The session ended at /_portcullis/logout already; an
                // answer we cannot place changes nothing.
                tracing::warn!(
                    request.id = facts.request_id,
                    app = &*plan.name,
                    in_response_to = response.in_response_to.as_deref(),
                    "LogoutResponse that answers no logout of this browser"
                );
            }
            see_other(
                &logged_out_path(plan, !success || partial),
                &[state::clear(plan)],
            )
        }
        Err(e) => refused(
            plan,
            facts,
            StatusCode::BAD_REQUEST,
            e.kind(),
            &e.to_string(),
        ),
    }
}

/// Ends the sessions a verified LogoutRequest from the IdP names (its
/// NameID, and its SessionIndexes when it has any), whichever binding
/// carried it; `channel` says which for the log.
pub(crate) async fn end_named_sessions(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    request: &ParsedLogoutRequest,
    channel: &'static str,
) -> Result<usize, StoreError> {
    let ended = plan
        .shared
        .sessions
        .end_matching(&plan.name, &request.name_id, &request.session_indexes)
        .await?;
    for session in &ended {
        log_ended(session, EndReason::SingleLogout, Some(facts.request_id));
    }
    tracing::info!(
        request.id = facts.request_id,
        app = &*plan.name,
        user = %request.name_id,
        sessions = ended.len(),
        channel,
        "LogoutRequest from the IdP"
    );
    Ok(ended.len())
}

/// An SLO message as it arrived, owned so it can move to the
/// verification pool.
enum SloInput {
    /// The raw, still URL-encoded query string.
    Redirect(String),
    Post {
        saml_request: Option<String>,
        saml_response: Option<String>,
        relay_state: Option<String>,
    },
}

impl SloInput {
    fn binding(&self) -> LogoutBinding<'_> {
        match self {
            SloInput::Redirect(query) => LogoutBinding::Redirect { query },
            SloInput::Post {
                saml_request,
                saml_response,
                relay_state,
            } => LogoutBinding::Post {
                saml_request: saml_request.as_deref(),
                saml_response: saml_response.as_deref(),
                relay_state: relay_state.as_deref(),
            },
        }
    }
}

/// The body, refused past `limit` bytes (413) before anything reads it.
pub(crate) async fn read_body(
    request: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, StatusCode> {
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

fn refused(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    status: StatusCode,
    kind: &str,
    detail: &str,
) -> Response<ProxyBody> {
    reply::refused(facts, &plan.name, Refused::SignOut, status, kind, detail)
}
