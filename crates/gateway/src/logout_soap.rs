//! Back-channel Single Logout at an app: the IdP POSTs a SOAP 1.1 envelope
//! (`Content-Type: text/xml`) carrying a signed LogoutRequest to
//! `{prefix}/_portcullis/saml/slo`, with no browser involved.
//!
//! The body is capped before it is read, the message verified on the SAML
//! pool like every other SLO message (the SOAP binding has no query
//! signature, so the enveloped one is required), the sessions it names end
//! exactly as for a front-channel LogoutRequest, and the answer is a signed
//! SOAP LogoutResponse on the same connection. Anything refused gets a
//! SOAP Fault with a 4xx status and a log event; nothing is ended.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use portcullis_proxy::{ProxyBody, RequestFacts};
use portcullis_saml::{soap_fault, LogoutBinding, LogoutMessage, SoapFaultCode};

use crate::logout::{end_named_sessions, read_body};
use crate::plan::AppPlan;

/// A SOAP LogoutRequest is a few KiB; the saml crate caps the envelope
/// again at its own limit.
const SOAP_BODY_LIMIT: usize = 64 * 1024;

/// A POST in the SOAP binding, not the HTTP-POST binding's form. SOAP 1.1
/// is `text/xml`; some senders (pysaml2 among them) label it with SOAP
/// 1.2's `application/soap+xml`, and the envelope check that follows
/// holds either to SOAP 1.1.
pub(crate) fn is_soap(request: &Request<Incoming>) -> bool {
    request.method() == Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| {
                let media = media.trim();
                media.eq_ignore_ascii_case("text/xml")
                    || media.eq_ignore_ascii_case("application/soap+xml")
            })
}

/// `POST {prefix}/_portcullis/saml/slo` with a SOAP envelope.
pub(crate) async fn slo(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let body = match read_body(request, SOAP_BODY_LIMIT).await {
        Ok(body) => body,
        Err(status) => return fault(plan, facts, status, "body", "unreadable SOAP body"),
    };
    let Ok(envelope) = String::from_utf8(body.to_vec()) else {
        return fault(
            plan,
            facts,
            StatusCode::BAD_REQUEST,
            "binding",
            "SOAP body is not UTF-8",
        );
    };
    let sp = plan.sp.clone();
    let verified = plan
        .shared
        .saml_work
        .run(move || {
            sp.logout_message(LogoutBinding::Soap {
                envelope: &envelope,
            })
        })
        .await;
    let request = match verified {
        Ok(Ok(LogoutMessage::Request(request))) => request,
        // The SOAP binding carries only requests to us.
        Ok(Ok(LogoutMessage::Response(_))) => {
            return fault(
                plan,
                facts,
                StatusCode::BAD_REQUEST,
                "binding",
                "not a LogoutRequest",
            )
        }
        Ok(Err(e)) => {
            return fault(
                plan,
                facts,
                StatusCode::BAD_REQUEST,
                e.kind(),
                &e.to_string(),
            )
        }
        Err(e) => {
            tracing::warn!(
                request.id = facts.request_id,
                app = &*plan.name,
                error = %e,
                "SOAP LogoutRequest not checked: verification pool unavailable"
            );
            return soap_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                soap_fault(SoapFaultCode::Server, "busy; try again"),
            );
        }
    };
    if let Err(e) = end_named_sessions(plan, facts, &request, "back").await {
        tracing::error!(
            request.id = facts.request_id,
            app = &*plan.name,
            error = %e,
            "session store unavailable at a SOAP LogoutRequest"
        );
        return soap_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            soap_fault(SoapFaultCode::Server, "session store unavailable"),
        );
    }
    let sp = plan.sp.clone();
    let request_id = request.id.clone();
    match plan
        .shared
        .saml_work
        .run(move || sp.soap_logout_response(&request_id))
        .await
    {
        Ok(Ok(answer)) => soap_reply(StatusCode::OK, answer.envelope),
        Ok(Err(e)) => {
            crate::reply::build_failed(facts, &plan.name, "SOAP LogoutResponse", &e);
            soap_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                soap_fault(
                    SoapFaultCode::Server,
                    "sessions ended; no answer could be signed",
                ),
            )
        }
        Err(e) => {
            tracing::warn!(
                request.id = facts.request_id,
                app = &*plan.name,
                error = %e,
                "SOAP LogoutResponse not signed: pool unavailable; the sessions did end"
            );
            soap_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                soap_fault(SoapFaultCode::Server, "sessions ended; answer unavailable"),
            )
        }
    }
}

/// A refused SOAP message: a Client fault with `status` and the reason in
/// the log (the peer gets the category only).
fn fault(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    status: StatusCode,
    kind: &str,
    detail: &str,
) -> Response<ProxyBody> {
    tracing::warn!(
        request.id = facts.request_id,
        app = &*plan.name,
        http.status = status.as_u16(),
        error.kind = kind,
        error = detail,
        "SOAP LogoutRequest refused"
    );
    soap_reply(
        status,
        soap_fault(
            SoapFaultCode::Client,
            &format!("LogoutRequest refused ({kind})"),
        ),
    )
}

fn soap_reply(status: StatusCode, envelope: String) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(envelope));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
