//! The management listener: liveness, readiness and Prometheus metrics.
//! Meant for loopback or an internal network; it serves no app traffic.

use std::sync::atomic::Ordering;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::body::ProxyBody;
use crate::pipeline::Shared;

pub fn respond<B>(shared: &Shared, request: &Request<B>) -> Response<ProxyBody> {
    let (status, content_type, body) = match request.uri().path() {
        "/healthz" => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok\n".to_string(),
        ),
        "/readyz" if !shared.ready.load(Ordering::Acquire) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "draining\n".to_string(),
        ),
        "/readyz" if shared.store_ready.as_ref().is_some_and(|up| !up()) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "session store unreachable\n".to_string(),
        ),
        "/readyz" => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ready\n".to_string(),
        ),
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics.encode(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".to_string(),
        ),
    };
    let mut response = Response::new(ProxyBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
