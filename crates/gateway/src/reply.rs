//! Every response the gateway's endpoints make: redirects with cookies,
//! errors (a page for a browser, the JSON error shape for an API client,
//! through the proxy's one error builder), and whole pages in the one page
//! shell.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use portcullis_proxy::{page, respond, ProxyBody, RequestFacts};

/// `303 See Other` to `location`, never cached, setting `cookies`.
pub(crate) fn see_other(location: &str, cookies: &[String]) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    set_cookies(&mut response, cookies);
    response
}

/// A gateway-made error: a page for browsers, JSON for API clients.
pub(crate) fn error(
    facts: &RequestFacts<'_>,
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
) -> Response<ProxyBody> {
    respond::error(status, code, title, detail, facts.request_id, facts.json)
}

/// The session store did not answer: a clear 503 (never "signed out", which
/// would send a signed-in user to the sign-in page) and an error event.
pub(crate) fn store_unavailable(
    facts: &RequestFacts<'_>,
    app: &str,
    cause: &portcullis_session::StoreError,
) -> Response<ProxyBody> {
    tracing::error!(
        request.id = facts.request_id,
        app,
        error = %cause,
        "session store unavailable"
    );
    let mut response = error(
        facts,
        StatusCode::SERVICE_UNAVAILABLE,
        "session_store_unavailable",
        "Sign-in unavailable",
        "The gateway cannot reach its session store. Please try again in a moment.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// What the gateway was answering when it refused a SAML message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refused {
    /// A Response at the ACS.
    SignIn,
    /// A LogoutRequest or LogoutResponse at the SLO endpoint.
    SignOut,
}

/// A SAML message from the IdP refused: a warn event with the reason and a
/// 4xx page or JSON error; nothing of it is acted on.
pub(crate) fn refused(
    facts: &RequestFacts<'_>,
    app: &str,
    what: Refused,
    status: StatusCode,
    kind: &str,
    detail: &str,
) -> Response<ProxyBody> {
    let (code, title, text) = match what {
        Refused::SignIn => {
            tracing::warn!(
                request.id = facts.request_id,
                app,
                error.kind = kind,
                error.detail = detail,
                "SAML response rejected; no session created"
            );
            (
                "saml_response_rejected",
                "Sign-in failed",
                "The sign-in response from the identity provider could not be accepted. \
                 Please open the application again to sign in.",
            )
        }
        Refused::SignOut => {
            tracing::warn!(
                request.id = facts.request_id,
                app,
                error.kind = kind,
                error.detail = detail,
                "SAML logout message rejected"
            );
            (
                "saml_logout_rejected",
                "Sign-out failed",
                "The sign-out message from the identity provider could not be accepted.",
            )
        }
    };
    error(facts, status, code, title, text)
}

/// A SAML message of ours could not be built (a key or encoding problem on
/// the gateway's side): one error event naming which.
pub(crate) fn build_failed(
    facts: &RequestFacts<'_>,
    app: &str,
    message: &'static str,
    cause: &portcullis_saml::Error,
) {
    tracing::error!(
        request.id = facts.request_id,
        app,
        saml.message = message,
        error.kind = cause.kind(),
        error = %cause,
        "building a SAML message failed"
    );
}

/// A page of the gateway's own (`title` is the document title, `main`
/// trusted markup).
pub(crate) fn page(title: &str, main: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(page::render(
        title,
        main,
        page::Width::Narrow,
    )));
    page::set_headers(response.headers_mut());
    response
}

/// A body of the given content type, as is.
pub(crate) fn document(content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Appends `Set-Cookie` headers; a value that cannot be a header (never
/// the case for what the gateway builds) is dropped, not sent broken.
pub(crate) fn set_cookies(response: &mut Response<ProxyBody>, cookies: &[String]) {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}
