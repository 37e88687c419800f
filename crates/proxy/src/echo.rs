//! `upstream = "builtin:echo"`: a backend inside the gateway that shows what
//! a real backend would receive (after hop-by-hop removal, forwarding
//! headers and identity injection). The demo proxies to it.

use base64::Engine;
use http::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::auth::ShownIdentity;
use crate::body::ProxyBody;
use crate::page::{self, escape};
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

    let mut main = String::new();
    match identity {
        Some(identity) => main.push_str(&format!(
            "<div class=\"signed-in\"><p>Signed in as <strong>{}</strong></p>\
<form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form></div>",
            escape(&identity.user),
            escape(&identity.sign_out),
        )),
        None => main.push_str("<p>Not signed in.</p>"),
    }
    main.push_str(&format!(
        "<h1>What the backend received</h1><p><code>{} {}</code></p>",
        escape(request.method().as_str()),
        escape(&request.uri().to_string()),
    ));
    if identity.is_some() {
        main.push_str("<h2>Identity</h2><table id=\"identity\">");
        main.push_str(&rows(&identity_headers, "no identity header"));
        main.push_str("</table>");
        if !identity_cookies.is_empty() {
            main.push_str("<h2>Identity cookies</h2><table id=\"identity-cookies\">");
            main.push_str(&rows(&identity_cookies, ""));
            main.push_str("</table>");
        }
        let jwt = identity
            .and_then(|i| i.jwt_header.as_ref())
            .and_then(|name| {
                headers
                    .iter()
                    .find(|(k, _)| k == name.as_str())
                    .map(|(_, v)| (name, v))
            });
        if let Some((name, token)) = jwt {
            main.push_str(&format!(
                "<h2>Identity JWT (<code>{}</code>), decoded</h2>",
                escape(name.as_str())
            ));
            main.push_str(&decoded_jwt(token));
        }
    }
    main.push_str("<h2>Headers</h2><table id=\"headers\">");
    main.push_str(&rows(&other_headers, "none"));
    main.push_str("</table><h2>Cookies</h2><table id=\"cookies\">");
    main.push_str(&rows(&other_cookies, "none"));
    main.push_str("</table>");
    page::render("Portcullis echo", &main, page::Width::Wide)
}

fn rows(pairs: &[&(String, String)], when_empty: &str) -> String {
    if pairs.is_empty() {
        return format!("<tr><td colspan=\"2\">{}</td></tr>", escape(when_empty));
    }
    pairs
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v)))
        .collect()
}

/// The token's header and claims, pretty-printed; the signature is left
/// out (the backend verifies it, the page only shows what it says).
fn decoded_jwt(token: &str) -> String {
    let mut parts = token.split('.');
    let decoded: Vec<String> = [parts.next(), parts.next()]
        .into_iter()
        .map(|part| {
            part.and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|value| serde_json::to_string_pretty(&value).ok())
            .unwrap_or_else(|| "(not readable as JSON)".to_string())
        })
        .collect();
    format!(
        "<pre id=\"jwt-header\">{}</pre><pre id=\"jwt-claims\">{}</pre>",
        escape(decoded.first().map_or("", String::as_str)),
        escape(decoded.get(1).map_or("", String::as_str)),
    )
}
