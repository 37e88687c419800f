//! `upstream = "builtin:echo"`: a backend inside the gateway that shows what
//! a real backend would receive (after hop-by-hop removal, forwarding
//! headers and, later, identity injection). The demo proxies to it.

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::body::ProxyBody;
use crate::respond::{escape, wants_json};

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
    let cookies: Vec<(String, String)> = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect();
    let query = request.uri().query().unwrap_or("");
    let json_wanted = wants_json(request.headers()) || query.split('&').any(|p| p == "format=json");
    let (content_type, body) = if json_wanted {
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
        ("application/json", body.to_string())
    } else {
        (
            "text/html; charset=utf-8",
            html(request, &headers, &cookies),
        )
    };
    let mut response = Response::new(ProxyBody::full(body));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Portcullis echo</title>\
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#1f2933}}table{{border-collapse:collapse}}\
th,td{{border:1px solid #cbd2d9;padding:.25rem .5rem;text-align:left;font-family:ui-monospace,monospace;font-size:.875rem}}</style>\
</head><body><main><h1>What the backend received</h1><p><code>{} {}</code></p>\
<h2>Headers</h2><table id=\"headers\">{rows}</table><h2>Cookies</h2><table id=\"cookies\">{cookie_rows}</table>\
</main></body></html>\n",
        escape(request.method().as_str()),
        escape(&request.uri().to_string()),
    )
}
