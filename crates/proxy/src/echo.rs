//! `upstream = "builtin:echo"`: a backend inside the gateway that shows what
//! a real backend would receive (after hop-by-hop removal, forwarding
//! headers and identity injection). The demo proxies to it.

use base64::Engine;
use http::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::auth::ShownIdentity;
use crate::body::ProxyBody;
use crate::page;
use crate::respond::wants_json;

pub fn respond<B>(request: &Request<B>, identity: Option<&ShownIdentity>) -> Response<ProxyBody> {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let cookies: Vec<(String, String)> = crate::cookie::pairs(request.headers())
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let query = request.uri().query().unwrap_or("");
    let json_wanted = wants_json(request.headers()) || query.split('&').any(|p| p == "format=json");
    let mut response = if json_wanted {
        let mut header_map = Map::new();
        for (k, v) in &headers {
            match header_map.get_mut(k) {
                Some(Value::Array(values)) => values.push(Value::String(v.clone())),
                _ => {
                    header_map.insert(k.clone(), Value::Array(vec![Value::String(v.clone())]));
                }
            }
        }
        let cookie_map: Map<String, Value> = cookies
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut body = json!({
            "method": request.method().as_str(),
            "path": request.uri().path(),
            "query": query,
            "headers": header_map,
            "cookies": cookie_map,
        });
        if let Some(identity) = identity {
            body["signed_in_as"] = Value::String(identity.user.clone());
        }
        let mut response = Response::new(ProxyBody::full(body.to_string()));
        crate::respond::set_json_headers(response.headers_mut());
        response
    } else {
        let page = html(request, identity, &headers, &cookies);
        let mut response = Response::new(ProxyBody::full(page));
        page::set_headers(response.headers_mut());
        response
    };
    *response.status_mut() = StatusCode::OK;
    response
}

/// The echo page: who is signed in, what the backend received, identity
/// first.
#[derive(askama::Template)]
#[template(path = "echo.html")]
struct EchoPage<'a> {
    identity: Option<&'a ShownIdentity>,
    method: &'a str,
    uri: String,
    identity_headers: Vec<&'a (String, String)>,
    identity_cookies: Vec<&'a (String, String)>,
    jwt: Option<DecodedJwt<'a>>,
    other_headers: Vec<&'a (String, String)>,
    other_cookies: Vec<&'a (String, String)>,
}

/// The identity JWT's header and claims, pretty-printed; the signature is
/// left out (the backend verifies it, the page only shows what it says).
struct DecodedJwt<'a> {
    header_name: &'a str,
    header: String,
    claims: String,
}

fn html<B>(
    request: &Request<B>,
    identity: Option<&ShownIdentity>,
    headers: &[(String, String)],
    cookies: &[(String, String)],
) -> String {
    let is_identity_header =
        |name: &str| identity.is_some_and(|i| i.headers.iter().any(|h| h.as_str() == name));
    let is_identity_cookie =
        |name: &str| identity.is_some_and(|i| i.cookies.iter().any(|c| c == name));
    let (identity_headers, other_headers): (Vec<_>, Vec<_>) =
        headers.iter().partition(|(k, _)| is_identity_header(k));
    let (identity_cookies, other_cookies): (Vec<_>, Vec<_>) =
        cookies.iter().partition(|(k, _)| is_identity_cookie(k));
    let jwt = identity
        .and_then(|i| i.jwt_header.as_ref())
        .and_then(|name| {
            headers
                .iter()
                .find(|(k, _)| k == name.as_str())
                .map(|(_, token)| decoded_jwt(name.as_str(), token))
        });
    let main = page::body(&EchoPage {
        identity,
        method: request.method().as_str(),
        uri: request.uri().to_string(),
        identity_headers,
        identity_cookies,
        jwt,
        other_headers,
        other_cookies,
    });
    page::render("Portcullis echo", &main, page::Width::Wide)
}

fn decoded_jwt<'a>(header_name: &'a str, token: &str) -> DecodedJwt<'a> {
    let mut parts = token.split('.');
    let mut decoded = [parts.next(), parts.next()].into_iter().map(|part| {
        part.and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| "(not readable as JSON)".to_string())
    });
    DecodedJwt {
        header_name,
        header: decoded.next().unwrap_or_default(),
        claims: decoded.next().unwrap_or_default(),
    }
}
