//! Every IdP response is built here: API errors in the Okta JSON error
//! shape, HTML pages for browsers, redirects and cookies.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::json;

/// API failures, each with its Okta error code and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// E0000001: a parameter or field failed validation.
    Validation { field: String, summary: String },
    /// E0000003: the body is not the JSON the endpoint expects.
    MalformedBody,
    /// E0000004: wrong credentials (never says which part).
    AuthenticationFailed,
    /// E0000011: no, malformed or unknown API token.
    InvalidToken,
    /// E0000006: the token lacks the scope.
    Forbidden,
    /// E0000007: no such resource.
    NotFound(String),
    /// E0000047: rate limited.
    RateLimited { retry_after_secs: u64 },
    /// E0000022: method not allowed on this path.
    MethodNotAllowed,
    /// E0000009 as 500: the IdP failed at something that is not the
    /// caller's fault (e.g. the users file could not be written); nothing
    /// was changed.
    Internal,
    /// E0000009 as 503: a store the IdP needs (sessions, tokens, one-time
    /// uses) could not answer; nothing was changed, the call may be retried.
    Unavailable,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Validation { summary, .. } => (
                StatusCode::BAD_REQUEST,
                "E0000001",
                format!("Api validation failed: {summary}"),
            ),
            ApiError::MalformedBody => (
                StatusCode::BAD_REQUEST,
                "E0000003",
                "The request body was not well-formed.".into(),
            ),
            ApiError::AuthenticationFailed => (
                StatusCode::UNAUTHORIZED,
                "E0000004",
                "Authentication failed".into(),
            ),
            ApiError::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "E0000011",
                "Invalid token provided".into(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "E0000006",
                "You do not have permission to perform the requested action".into(),
            ),
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "E0000007",
                format!("Not found: Resource not found: {what}"),
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.".into(),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "E0000022",
                "The endpoint does not support the provided HTTP method".into(),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "E0000009",
                "Internal Server Error".into(),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "E0000009",
                "Service temporarily unavailable. Try again later.".into(),
            ),
        }
    }

    pub fn code(&self) -> &'static str {
        self.parts().1
    }
}

/// `{errorCode, errorSummary, errorLink, errorId, errorCauses}` with a
/// fresh `errorId` per response so a report can be found in the log.
pub fn api_error(error: &ApiError) -> Response<Bytes> {
    let (status, code, summary) = error.parts();
    let causes = match error {
        ApiError::Validation { field, summary } => {
            vec![json!({ "errorSummary": format!("{field}: {summary}") })]
        }
        _ => Vec::new(),
    };
    let error_id = format!("oae{}", uuid::Uuid::new_v4().simple());
    tracing::info!(error.code = code, error.id = %error_id, http.status = status.as_u16(), "api request refused");
    let body = json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": error_id,
        "errorCauses": causes,
    });
    let mut response = json_response(status, &body);
    if let ApiError::RateLimited { retry_after_secs } = error {
        insert(
            &mut response,
            header::RETRY_AFTER,
            &retry_after_secs.to_string(),
        );
    }
    response
}

/// 405 with the methods the path does take (RFC 9110 §15.5.6).
pub fn method_not_allowed(allow: &'static str) -> Response<Bytes> {
    let mut response = api_error(&ApiError::MethodNotAllowed);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    portcullis_proxy::respond::set_json_headers(response.headers_mut());
    response
}

pub fn empty(status: StatusCode) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    response
}

/// Sets a header from text the IdP built itself; a value that cannot be a
/// header is dropped with a log line rather than panicking.
pub fn insert(response: &mut Response<Bytes>, name: header::HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            response.headers_mut().insert(name, v);
        }
        Err(_) => tracing::warn!(header = %name, "dropped a header value that is not valid"),
    }
}

pub fn append(response: &mut Response<Bytes>, name: header::HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            response.headers_mut().append(name, v);
        }
        Err(_) => tracing::warn!(header = %name, "dropped a header value that is not valid"),
    }
}

pub fn redirect(location: &str) -> Response<Bytes> {
    let mut response = empty(StatusCode::SEE_OTHER);
    insert(&mut response, header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page in the one page shell: never cached, never framed, loading
/// nothing from elsewhere, forms posting only to the IdP itself. `body` is
/// trusted markup rendered from a template (`portcullis_proxy::page::body`).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response<Bytes> {
    page_with(status, title, body, portcullis_proxy::page::Width::Narrow)
}

/// [`page`] in the given width (the admin console's tables are wide).
pub fn page_with(
    status: StatusCode,
    title: &str,
    body: &str,
    width: portcullis_proxy::page::Width,
) -> Response<Bytes> {
    use portcullis_proxy::page;
    let html = page::render(&format!("{title} · Portcullis"), body, width);
    let mut response = Response::new(Bytes::from(html));
    *response.status_mut() = status;
    page::set_headers(response.headers_mut());
    response
}

/// A one-paragraph page for an error a browser user hit.
#[derive(askama::Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A one-paragraph page for an error a browser user hit.
pub fn message_page(status: StatusCode, title: &str, message: &str) -> Response<Bytes> {
    page(
        status,
        title,
        &portcullis_proxy::page::body(&MessagePage { title, message }),
    )
}

/// A bounded work pool (password checks, SAML signature checks) was full:
/// a 503 page with `Retry-After`. Nothing of the request was acted on, so
/// the browser may simply send it again.
pub fn busy_page(title: &str, what: &str, wait: portcullis_proxy::limit::Wait) -> Response<Bytes> {
    let secs = wait.retry_after_secs();
    let mut response = message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        title,
        &match secs {
            1 => format!("{what} Try again in a second."),
            _ => format!("{what} Try again in {secs} seconds."),
        },
    );
    insert(&mut response, header::RETRY_AFTER, &secs.to_string());
    response
}

/// The bounded SAML pool did not check a message: busy, [`busy_page`];
/// the check was lost (it panicked), a 500 page.
pub fn saml_work_refused(cause: &portcullis_proxy::WorkError) -> Response<Bytes> {
    match cause {
        portcullis_proxy::WorkError::Busy { wait, .. } => {
            tracing::debug!("SAML pool busy; message refused unexamined");
            busy_page(
                "Try again later",
                "The identity provider is busy checking sign-in messages.",
                *wait,
            )
        }
        portcullis_proxy::WorkError::Failed { .. } => {
            tracing::error!(error = %cause, "SAML signature check did not finish");
            message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The identity provider could not check this message. Please try again.",
            )
        }
    }
}

/// The page for a browser whose request needed a store that could not
/// answer (sessions, tokens, one-time uses). Logged here, once, with what
/// was being done; the user is told to retry, never sent to sign in again
/// as if their session were gone.
pub fn store_unavailable(error: &dyn std::fmt::Display, during: &'static str) -> Response<Bytes> {
    tracing::error!(error = %error, during, "IdP store unavailable");
    let mut response = message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again later",
        "Sign-in is temporarily unavailable. Please try again in a moment.",
    );
    insert(&mut response, header::RETRY_AFTER, STORE_RETRY_AFTER_SECS);
    response
}

/// [`store_unavailable`] for the JSON APIs.
pub fn api_store_unavailable(
    error: &dyn std::fmt::Display,
    during: &'static str,
) -> Response<Bytes> {
    tracing::error!(error = %error, during, "IdP store unavailable");
    let mut response = api_error(&ApiError::Unavailable);
    insert(&mut response, header::RETRY_AFTER, STORE_RETRY_AFTER_SECS);
    response
}

/// A store outage is usually brief (a failover, a reconnect).
const STORE_RETRY_AFTER_SECS: &str = "5";
