//! The plain-HTTP listener: it serves nothing but a redirect to https, and
//! only for hosts the gateway publishes (so it cannot be used to bounce a
//! browser to an arbitrary site).

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::body::ProxyBody;
use crate::pipeline::Shared;
use crate::request_id::RequestId;
use crate::respond::{self, Failure};
use crate::route::split_authority;

pub fn respond<B>(shared: &Shared, https_port: u16, request: &Request<B>) -> Response<ProxyBody> {
    let request_id = RequestId::new();
    let plan = shared.plan.load();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| split_authority(h, 80))
        .map(|(host, _)| host)
        .filter(|host| plan.routes.knows_host(host));
    let Some(host) = host else {
        return respond::failure(
            Failure::NoRoute,
            &request_id,
            respond::wants_json(request.headers()),
        );
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let authority = if https_port == 443 {
        host
    } else {
        format!("{host}:{https_port}")
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{authority}{path}");
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            let mut response = Response::new(ProxyBody::empty());
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => respond::failure(Failure::BadRequest, &request_id, false),
    }
}
