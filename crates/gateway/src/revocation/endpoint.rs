//! `POST {prefix}/_portcullis/global-token-revocation`: the caller is an
//! IdP the app trusts; what it sends is checked by [`super::verify`], and
//! the answer is RFC 6750-style JSON (204 revoked, 400 malformed body,
//! 401 token refused, 404 no session for that subject, 422 subject format
//! not supported, 503 store unavailable).

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use portcullis_proxy::{ProxyBody, RequestFacts};

use crate::plan::AppPlan;

/// Revocation bodies are small JSON; anything over this is refused unread.
const BODY_LIMIT: usize = 64 * 1024;

/// `POST {prefix}/_portcullis/global-token-revocation`.
pub(crate) async fn endpoint(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(request.into_body(), BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let status = if e.is::<LengthLimitError>() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return reply(facts, status, "invalid_request", "unreadable body");
        }
    };
    let outcome = plan
        .shared
        .revocations
        .revoke(
            &plan.name,
            &plan.urls.revocation,
            authorization.as_deref(),
            &body,
            Some(facts.request_id),
        )
        .await;
    match outcome {
        Ok(_) => {
            let mut response = Response::new(ProxyBody::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(e) => reply(facts, e.status(), e.kind(), &e.to_string()),
    }
}

/// RFC 6750-style JSON error for the revocation endpoint.
fn reply(
    facts: &RequestFacts<'_>,
    status: StatusCode,
    code: &str,
    detail: &str,
) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "error": code,
        "error_description": detail,
        "errorId": facts.request_id,
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
