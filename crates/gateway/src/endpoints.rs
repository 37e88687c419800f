//! The gateway's own endpoints on every app's origin, in one table:
//!
//! | path under `{prefix}/_portcullis/` | methods   | what                                   |
//! |------------------------------------|-----------|----------------------------------------|
//! | `saml/metadata`                    | any       | SP metadata                            |
//! | `saml/acs`                         | POST      | Assertion Consumer Service ([`login`]) |
//! | `saml/slo`                         | GET, POST | Single Logout, both bindings ([`logout`]) |
//! | `logout`                           | any       | the user signs out ([`logout`])        |
//! | `logged-out`                       | any       | the signed-out page ([`logout`])       |
//! | `global-token-revocation`          | POST      | Universal Logout ([`revocation`])      |
//! | `jwks`                             | any       | keys of the identity tokens            |
//!
//! Anything else under `/_portcullis/` is 404; it never reaches a backend.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use portcullis_proxy::{ProxyBody, RequestFacts};

use crate::plan::AppPlan;
use crate::reply;
use crate::{login, logout, revocation};

/// The prefix every gateway endpoint lives under.
pub(crate) const PREFIX: &str = "/_portcullis/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Metadata,
    Acs,
    Slo,
    Logout,
    LoggedOut,
    Revocation,
    Jwks,
}

/// `None`: any method.
type Methods = Option<&'static [Method]>;

const TABLE: &[(&str, Methods, Endpoint)] = &[
    ("saml/metadata", None, Endpoint::Metadata),
    ("saml/acs", Some(&[Method::POST]), Endpoint::Acs),
    (
        "saml/slo",
        Some(&[Method::GET, Method::POST]),
        Endpoint::Slo,
    ),
    ("logout", None, Endpoint::Logout),
    ("logged-out", None, Endpoint::LoggedOut),
    (
        "global-token-revocation",
        Some(&[Method::POST]),
        Endpoint::Revocation,
    ),
    ("jwks", None, Endpoint::Jwks),
];

/// Answers a request for `path` (app-relative, under [`PREFIX`]).
pub(crate) async fn answer(
    plan: &AppPlan,
    facts: &RequestFacts<'_>,
    path: &str,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let name = path.strip_prefix(PREFIX).unwrap_or_default();
    let Some((_, methods, endpoint)) = TABLE.iter().find(|(n, _, _)| *n == name) else {
        return reply::error(
            facts,
            StatusCode::NOT_FOUND,
            "no_route",
            "Not found",
            "This gateway endpoint does not exist.",
        );
    };
    if let Some(methods) = methods {
        if !methods.contains(request.method()) {
            return method_not_allowed(facts, *endpoint);
        }
    }
    match endpoint {
        Endpoint::Metadata => metadata(plan, facts),
        Endpoint::Acs => login::acs(plan, facts, request).await,
        Endpoint::Slo => logout::slo(plan, facts, request).await,
        Endpoint::Logout => logout::logout(plan, facts, &request).await,
        Endpoint::LoggedOut => logout::logged_out(plan, &request),
        Endpoint::Revocation => revocation::endpoint(plan, facts, request).await,
        Endpoint::Jwks => reply::document(
            "application/jwk-set+json",
            plan.sp.jwks().document.to_string(),
        ),
    }
}

fn metadata(plan: &AppPlan, facts: &RequestFacts<'_>) -> Response<ProxyBody> {
    match plan.sp.metadata() {
        Ok(xml) => reply::document("application/samlmetadata+xml", xml),
        Err(e) => {
            reply::build_failed(facts, &plan.name, "SP metadata", &e);
            reply::error(
                facts,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Metadata unavailable",
                "The gateway could not build this application's SAML metadata.",
            )
        }
    }
}

fn method_not_allowed(facts: &RequestFacts<'_>, endpoint: Endpoint) -> Response<ProxyBody> {
    let (allow, detail) = match endpoint {
        Endpoint::Acs => (
            "POST",
            "The sign-in endpoint accepts only the POST from the identity provider.",
        ),
        Endpoint::Slo => (
            "GET, POST",
            "The logout endpoint accepts GET and POST from the identity provider.",
        ),
        _ => ("POST", "This gateway endpoint accepts only POST."),
    };
    let mut response = reply::error(
        facts,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        detail,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_in_the_table_once() {
        for endpoint in [
            Endpoint::Metadata,
            Endpoint::Acs,
            Endpoint::Slo,
            Endpoint::Logout,
            Endpoint::LoggedOut,
            Endpoint::Revocation,
            Endpoint::Jwks,
        ] {
            assert_eq!(
                TABLE.iter().filter(|(_, _, e)| *e == endpoint).count(),
                1,
                "{endpoint:?}"
            );
        }
    }
}
