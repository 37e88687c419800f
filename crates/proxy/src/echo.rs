//! `upstream = "builtin:echo"`: a backend inside the gateway that shows what
//! a real backend would receive (after hop-by-hop removal, forwarding
//! headers and identity injection). The demo proxies to it.

use http::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::body::ProxyBody;
use crate::page::{self, escape};
use crate::respond::wants_json;

pub fn respond<B>(request: &Request<B>) -> Response<ProxyBody> {
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
        let body = json!({
            "method": request.method().as_str(),
            "path": request.uri().path(),
            "query": query,
            "headers": header_map,
            "cookies": cookie_map,
        });
        let mut response = Response::new(ProxyBody::full(body.to_string()));
        crate::respond::set_json_headers(response.headers_mut());
        response
    } else {
        let mut response = Response::new(ProxyBody::full(html(request, &headers, &cookies)));
        page::set_headers(response.headers_mut());
        response
    };
    *response.status_mut() = StatusCode::OK;
    response
}

fn html<B>(
    request: &Request<B>,
    headers: &[(String, String)],
    cookies: &[(String, String)],
) -> String {
    let mut rows = String::new();
    for (k, v) in headers {
        rows.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(v)
        ));
    }
    let mut cookie_rows = String::new();
    for (k, v) in cookies {
        cookie_rows.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(v)
        ));
    }
    if cookie_rows.is_empty() {
        cookie_rows.push_str("<tr><td colspan=\"2\">none</td></tr>");
    }
    let main = format!(
        "<h1>What the backend received</h1><p><code>{} {}</code></p>\
<h2>Headers</h2><table id=\"headers\">{rows}</table><h2>Cookies</h2><table id=\"cookies\">{cookie_rows}</table>",
        escape(request.method().as_str()),
        escape(&request.uri().to_string()),
    );
    page::render("Portcullis echo", &main, page::Width::Wide)
}
