//! Every response the gateway's endpoints make: redirects with cookies,
//! errors (a page for a browser, the JSON error shape for an API client,
//! through the proxy's one error builder), and whole pages in the one page
//! shell.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use portcullis_proxy::{page, respond, ProxyBody, RequestFacts, WorkError};

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

/// The bounded verification pool did not check `what`: saturated, a 503
/// with `Retry-After` (the pool itself logs saturation, once a second with
/// a count, so a flood is not a flood of lines); lost, a 500. Nothing of
/// the request was acted on, so the same request may be sent again.
pub(crate) fn work_refused(
    facts: &RequestFacts<'_>,
    app: &str,
    what: &'static str,
    cause: &WorkError,
) -> Response<ProxyBody> {
    match cause {
        WorkError::Busy { wait, .. } => {
            tracing::debug!(
                request.id = facts.request_id,
                app,
                saml.message = what,
                "verification pool busy; request refused unexamined"
            );
            let mut response = error(
                facts,
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Please try again",
                "The gateway is busy checking sign-in messages. Please try again in a moment.",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.retry_after_secs()),
            );
            response
        }
        WorkError::Failed { .. } => {
            tracing::error!(
                request.id = facts.request_id,
                app,
                saml.message = what,
                error = %cause,
                "SAML verification did not finish"
            );
            error(
                facts,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong",
                "The gateway could not check this message. Please try again.",
            )
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use http_body_util::BodyExt;
    use portcullis_proxy::{WorkBounds, WorkLimit};

    use super::*;

    /// A verification pool with one slot, held by a job until the returned
    /// sender is used.
    async fn saturated() -> (Arc<WorkLimit>, std::sync::mpsc::Sender<()>) {
        let pool = Arc::new(WorkLimit::new(
            "saml_verify",
            WorkBounds {
                slots: 1,
                queue: 0,
                max_wait: Duration::ZERO,
            },
        ));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = pool.clone();
        tokio::spawn(async move {
            holder
                .run(move || {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                })
                .await
        });
        tokio::time::timeout(Duration::from_secs(10), started_rx)
            .await
            .expect("in time")
            .expect("slot held");
        (pool, release_tx)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_saturated_verification_pool_answers_503_with_retry_after() {
        let (pool, release) = saturated().await;
        let cause = pool.run(|| ()).await.expect_err("the pool is full");
        for json in [false, true] {
            let facts = RequestFacts {
                request_id: "req-1",
                client_ip: [192, 0, 2, 1].into(),
                json,
            };
            let response = work_refused(&facts, "b", "SAML response", &cause);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
            let content_type = response.headers()[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .to_string();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let body = String::from_utf8_lossy(&body);
            if json {
                assert!(
                    content_type.starts_with("application/json"),
                    "{content_type}"
                );
                let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
                assert_eq!(value["errorCode"], "busy");
            } else {
                assert!(content_type.starts_with("text/html"), "{content_type}");
                assert!(body.contains("Please try again"), "{body}");
            }
        }
        release.send(()).expect("release");
    }
}
