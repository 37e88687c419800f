//! The one place where a failed request becomes a response: an HTML page for
//! a browser, the JSON error shape for an API client, always with the
//! request id so a report can be matched to the log.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ProxyBody;
use crate::forward::X_REQUEST_ID;
use crate::request_id::RequestId;
use crate::upstream::UpstreamError;

/// Why the gateway answered instead of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No app is configured for this host and path.
    NoRoute,
    /// The request could not be turned into an upstream request.
    BadRequest,
    /// The body is larger than a local service accepts.
    PayloadTooLarge,
    /// An HTTP/2 request head over `max_headers` or `max_header_bytes`
    /// (hyper answers HTTP/1.1 heads itself).
    HeadersTooLarge,
    /// Connecting to the upstream failed or it closed without answering.
    UpstreamUnavailable,
    /// The upstream accepted the request but did not answer in time.
    UpstreamTimeout,
    /// The upstream answered with something that is not valid HTTP.
    UpstreamProtocol,
    /// The user's identity would exceed the app's `max_identity_bytes`
    /// (explained here rather than left to the backend's opaque 431).
    IdentityTooLarge,
    /// The identity toward the backend could not be built (its token could
    /// not be signed): the gateway's fault, not the client's.
    IdentityUnavailable,
}

impl From<UpstreamError> for Failure {
    fn from(error: UpstreamError) -> Self {
        match error {
            UpstreamError::Connect => Failure::UpstreamUnavailable,
            UpstreamError::Timeout => Failure::UpstreamTimeout,
            UpstreamError::Protocol => Failure::UpstreamProtocol,
        }
    }
}

impl Failure {
    pub fn status(self) -> StatusCode {
        match self {
            Failure::NoRoute => StatusCode::NOT_FOUND,
            Failure::BadRequest => StatusCode::BAD_REQUEST,
            Failure::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Failure::UpstreamUnavailable | Failure::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            Failure::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::IdentityTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Failure::IdentityUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code, also the `error` field of the access log.
    pub fn code(self) -> &'static str {
        match self {
            Failure::NoRoute => "no_route",
            Failure::BadRequest => "bad_request",
            Failure::PayloadTooLarge => "payload_too_large",
            Failure::HeadersTooLarge => "headers_too_large",
            Failure::UpstreamUnavailable => "upstream_unavailable",
            Failure::UpstreamTimeout => "upstream_timeout",
            Failure::UpstreamProtocol => "upstream_protocol",
            Failure::IdentityTooLarge => "identity_too_large",
            Failure::IdentityUnavailable => "identity_unavailable",
        }
    }

    /// The `kind` label of `portcullis_upstream_errors`, for upstream failures.
    pub fn upstream_kind(self) -> Option<&'static str> {
        match self {
            Failure::UpstreamUnavailable => Some("connect"),
            Failure::UpstreamTimeout => Some("timeout"),
            Failure::UpstreamProtocol => Some("protocol"),
            Failure::NoRoute
            | Failure::BadRequest
            | Failure::PayloadTooLarge
            | Failure::HeadersTooLarge
            | Failure::IdentityTooLarge
            | Failure::IdentityUnavailable => None,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Failure::NoRoute => "Not found",
            Failure::BadRequest => "Bad request",
            Failure::PayloadTooLarge => "Request too large",
            Failure::HeadersTooLarge => "Request headers too large",
            Failure::UpstreamUnavailable | Failure::UpstreamProtocol => "Application unavailable",
            Failure::UpstreamTimeout => "Application did not respond in time",
            Failure::IdentityTooLarge => "Too much identity data",
            Failure::IdentityUnavailable => "Sign-in unavailable",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Failure::NoRoute => "No application is published at this address.",
            Failure::BadRequest => "The request could not be understood by the gateway.",
            Failure::PayloadTooLarge => "The request body is larger than this service accepts.",
            Failure::HeadersTooLarge => {
                "The request carries more headers, or larger ones, than the gateway accepts."
            }
            Failure::UpstreamUnavailable | Failure::UpstreamProtocol => {
                "The gateway could not reach the application. Please try again in a moment."
            }
            Failure::UpstreamTimeout => {
                "The application took too long to answer. Please try again in a moment."
            }
            Failure::IdentityTooLarge => {
                "Your account carries more attributes (for example group memberships) than this \
                 application accepts. Ask your administrator to reduce them or raise the app's \
                 identity size limit."
            }
            Failure::IdentityUnavailable => {
                "The gateway could not prepare your identity for the application. Please try \
                 again in a moment."
            }
        }
    }
}

/// The headers every JSON body the gateway makes goes out with (errors,
/// APIs, the echo backend): never cached.
pub fn set_json_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// API clients get JSON; browsers (and anything that asks for HTML) get a page.
pub fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

pub fn failure(failure: Failure, request_id: &RequestId, json: bool) -> Response<ProxyBody> {
    error(
        failure.status(),
        failure.code(),
        failure.title(),
        failure.detail(),
        request_id.as_str(),
        json,
    )
}

/// Any gateway-made error: the JSON error shape or a page, never cached.
pub fn error(
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
    request_id: &str,
    json: bool,
) -> Response<ProxyBody> {
    let mut response = if json {
        let body = serde_json::json!({
            "errorCode": code,
            "errorSummary": detail,
            "errorId": request_id,
        });
        let mut response = Response::new(ProxyBody::full(body.to_string()));
        set_json_headers(response.headers_mut());
        response
    } else {
        let mut response = Response::new(ProxyBody::full(page(status, title, detail, request_id)));
        crate::page::set_headers(response.headers_mut());
        response
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(X_REQUEST_ID.clone(), id);
    }
    response.extensions_mut().insert(GatewayError);
    response
}

/// Marks a response the gateway made itself (not the upstream's), so an
/// app's `error_pages` may replace it.
#[derive(Debug, Clone, Copy)]
pub struct GatewayError;

/// An app's `[app.error_pages]` entry, ready to serve.
pub enum CustomErrorPage {
    Html(bytes::Bytes),
    Redirect(String),
}

/// The app's page for this gateway-made error, for browsers.
pub fn custom_error(
    response: Response<ProxyBody>,
    pages: &[(u16, CustomErrorPage)],
    json: bool,
) -> Response<ProxyBody> {
    if json || response.extensions().get::<GatewayError>().is_none() {
        return response;
    }
    let status = response.status();
    let Some((_, page)) = pages.iter().find(|(code, _)| *code == status.as_u16()) else {
        return response;
    };
    let request_id = response.headers().get(&X_REQUEST_ID).cloned();
    let mut custom = match page {
        CustomErrorPage::Html(html) => {
            let mut r = Response::new(ProxyBody::full(html.clone()));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        CustomErrorPage::Redirect(url) => {
            let mut r = Response::new(ProxyBody::empty());
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(location) = HeaderValue::from_str(url) {
                r.headers_mut().insert(header::LOCATION, location);
            }
            r
        }
    };
    // Cookies the gateway set with the error (e.g. clearing request state)
    // must still reach the browser.
    for cookie in response.headers().get_all(header::SET_COOKIE) {
        custom
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    let headers = custom.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(id) = request_id {
        headers.insert(X_REQUEST_ID.clone(), id);
    }
    custom
}

/// An error page's main content.
#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    detail: &'a str,
    code: u16,
    request_id: &'a str,
}

/// The error page, in the one page shell.
pub fn page(status: StatusCode, title: &str, detail: &str, request_id: &str) -> String {
    let main = crate::page::body(&ErrorPage {
        title,
        detail,
        code: status.as_u16(),
        request_id,
    });
    crate::page::render(
        &format!("{} {title}", status.as_u16()),
        &main,
        crate::page::Width::Narrow,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_decides_the_format() {
        let mut h = HeaderMap::new();
        assert!(!wants_json(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(wants_json(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/json;q=0.9"),
        );
        assert!(!wants_json(&h));
    }
}
