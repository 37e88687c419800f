//! The request path, top-down, as named phases:
//!
//! route → forward (strip hop-by-hop, set forwarding headers) → upstream
//! (pool or built-in) → respond (strip hop-by-hop, tunnel upgrades) → log.
//!
//! Each phase either continues or ends the request with a response; every
//! failure becomes exactly one response in [`crate::respond`]. The service is
//! infallible at the hyper boundary.

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::local::{LocalApp, LocalMeta, LOCAL_BODY_LIMIT};

use crate::body::ProxyBody;
use crate::echo;
use crate::forward::{self, ClientInfo, X_REQUEST_ID};
use crate::metrics::{Metrics, RequestLabels, UpstreamErrorLabels};
use crate::plan::{AppPlan, Plan, UpstreamPlan};
use crate::request_id::RequestId;
use crate::respond::{self, Failure};
use crate::rewrite;
use crate::session::Session;
use crate::sso::{self, Gate};
use crate::tunnel;
use crate::upstream::SendError;

/// State shared by every connection; the plan is swapped on reload.
pub struct Shared {
    pub plan: ArcSwap<Plan>,
    pub metrics: Arc<Metrics>,
    /// False while starting and once draining; drives `/readyz`. One flag
    /// for all workers.
    pub ready: Arc<AtomicBool>,
}

/// Per-request context carried through the phases.
struct Context<'a> {
    request_id: RequestId,
    client: &'a ClientInfo,
    json: bool,
    /// Cookie names the gateway owns; never forwarded upstream.
    gateway_cookies: &'a [String],
}

pub async fn handle(
    shared: Arc<Shared>,
    client: Arc<ClientInfo>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let plan = shared.plan.load_full();
    let ctx = Context {
        request_id: RequestId::new(),
        client: &client,
        json: respond::wants_json(request.headers()),
        gateway_cookies: &plan.gateway_cookies,
    };
    // Kept only for the access log: cloning the URI costs reference-count
    // updates on every request.
    let head = plan.access_log.then(|| {
        (
            request.method().clone(),
            request.uri().clone(),
            request.version(),
        )
    });

    let (app, outcome) = match route(&plan, &request) {
        Some((app, host)) => (Some(app), forward(app, &ctx, host, request).await),
        None => (None, Err(Failure::NoRoute)),
    };
    let failure = outcome.as_ref().err().copied();
    let mut response = match outcome {
        Ok(response) => response,
        Err(failure) => respond::failure(failure, &ctx.request_id, ctx.json),
    };
    if let Some(app) = app.filter(|a| !a.error_pages.is_empty()) {
        response = respond::custom_error(response, &app.error_pages, ctx.json);
    }
    response
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), ctx.request_id.header_value());

    // Phase: log.
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    match app {
        Some(app) => {
            app.latency.observe(plan.shard, elapsed.as_secs_f64());
            if let Some(kind) = failure.and_then(Failure::upstream_kind) {
                shared
                    .metrics
                    .upstream_errors
                    .get_or_create(&UpstreamErrorLabels {
                        app: app.name.clone(),
                        kind,
                    })
                    .inc();
            }
            app.count_request(&shared.metrics, status, plan.shard);
        }
        None => shared
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                app: Arc::from("-"),
                code: status,
            })
            .inc(plan.shard),
    }
    if let Some((method, uri, version)) = head {
        tracing::info!(
            target: "portcullis::access",
            app = app.map_or("-", |a| &*a.name),
            request.id = ctx.request_id.as_str(),
            client.addr = %client.addr,
            http.method = %method,
            http.path = uri.path(),
            http.version = ?version,
            http.status = status,
            error = failure.map(Failure::code),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
        );
    }
    Ok(response)
}

/// A built-in service (the IdP): the whole body is read first, within
/// [`LOCAL_BODY_LIMIT`].
async fn local(
    service: &dyn LocalApp,
    ctx: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Failure> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, LOCAL_BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(Failure::PayloadTooLarge),
        Err(_) => return Err(Failure::BadRequest),
    };
    let meta = LocalMeta {
        client_addr: ctx.client.addr,
        request_id: ctx.request_id.as_str().to_string(),
    };
    let response = service.call(Request::from_parts(parts, body), meta).await;
    Ok(response.map(ProxyBody::full))
}

/// Phase: route. Picks the app by host and longest path prefix, and returns
/// the public host value to forward.
fn route<'p>(plan: &'p Plan, request: &Request<Incoming>) -> Option<(&'p AppPlan, HeaderValue)> {
    // HTTP/2 carries the host in :authority; HTTP/1.1 in Host (or an
    // absolute-form target, which takes precedence per RFC 9112 §3.2.2).
    let host = match request.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok()?,
        None => request.headers().get(header::HOST)?.clone(),
    };
    let index = plan
        .routes
        .lookup(host.to_str().ok()?, plan.default_port, request.uri().path())?;
    Some((plan.apps.get(index)?, host))
}

/// Phases: gateway SSO (for `auth = "saml"` apps) → forward → upstream → respond.
async fn forward(
    app: &AppPlan,
    ctx: &Context<'_>,
    host: HeaderValue,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Failure> {
    let (mut request, session) = match &app.auth {
        None => (request, None),
        Some(auth) => {
            let caller = sso::Caller {
                request_id: ctx.request_id.as_str(),
                client_ip: ctx.client.addr.ip(),
                json: ctx.json,
                gateway_cookies: ctx.gateway_cookies,
            };
            // Boxed: the SSO phase's state is large and most apps never run
            // it, so it stays out of every request's future.
            match Box::pin(sso::gate(auth, &caller, request)).await {
                Gate::Continue(request, session) => (request, session),
                Gate::Respond(response) => return Ok(response),
            }
        }
    };
    if !matches!(app.upstream, UpstreamPlan::Local(_)) {
        sso::strip_gateway_cookies(request.headers_mut(), ctx.gateway_cookies);
        match &app.auth {
            Some(auth) => {
                if let Err(e) =
                    auth.identity
                        .apply(session.as_deref(), &*auth.sp, request.headers_mut())
                {
                    tracing::warn!(
                        request.id = ctx.request_id.as_str(),
                        app = &*app.name,
                        user = session.as_ref().map(|s| s.user.as_str()),
                        error = %e,
                        "identity not sent to the backend"
                    );
                    return Err(Failure::IdentityTooLarge);
                }
            }
            None => sso::set_user_header(request.headers_mut(), None),
        }
    }
    // Upgrades are an HTTP/1.1 mechanism; HTTP/2 requests never carry them.
    let upgrade = match request.version() {
        Version::HTTP_11 => forward::upgrade_requested(request.headers()),
        _ => None,
    };
    match &app.upstream {
        UpstreamPlan::Local(service) => {
            forward::prepare_request(
                request.headers_mut(),
                ctx.client,
                &host,
                &ctx.request_id,
                None,
            );
            // Boxed, like the SSO phase: its body collection is large state
            // that proxied requests should not carry.
            Box::pin(local(service.as_ref(), ctx, request)).await
        }
        UpstreamPlan::Echo => {
            forward::prepare_request(
                request.headers_mut(),
                ctx.client,
                &host,
                &ctx.request_id,
                None,
            );
            Ok(echo::respond(&request))
        }
        UpstreamPlan::Http(balancer) => {
            let mut picked = balancer.pick();
            let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
            let (mut parts, body) = request.into_parts();
            // Kept only where a second target could take the request.
            let retry_uri =
                (balancer.has_alternatives() && is_idempotent(&parts.method) && upgrade.is_none())
                    .then(|| parts.uri.clone());
            parts.uri = picked
                .upstream()
                .map_uri(std::mem::take(&mut parts.uri))
                .ok_or(Failure::BadRequest)?;
            parts.version = Version::HTTP_11;
            forward::prepare_request(
                &mut parts.headers,
                ctx.client,
                &host,
                &ctx.request_id,
                upgrade.as_ref(),
            );
            if app.upstream_host_header {
                set_upstream_host(&mut parts.headers, picked.upstream());
            }
            let mut sent = picked
                .upstream()
                .send_or_return(Request::from_parts(parts, body))
                .await;
            // A request that never left (no connection to the target) goes
            // to another target once, if it is idempotent.
            let returned = match (&mut sent, &retry_uri) {
                (Err(e), Some(_)) => take_unsent(e),
                _ => None,
            };
            if let (
                Some(SendError {
                    unsent: Some(mut unsent),
                    error,
                }),
                Some(original),
            ) = (returned, &retry_uri)
            {
                picked.outcome(None);
                match balancer.pick_other(&picked) {
                    Some(other) => {
                        tracing::info!(
                            request.id = ctx.request_id.as_str(),
                            app = &*app.name,
                            from = %picked.upstream().label,
                            to = %other.upstream().label,
                            error.kind = error.kind(),
                            "retrying on another upstream target"
                        );
                        picked = other;
                        match picked.upstream().map_uri(original.clone()) {
                            Some(uri) => *unsent.uri_mut() = uri,
                            None => return Err(Failure::BadRequest),
                        }
                        if app.upstream_host_header {
                            set_upstream_host(unsent.headers_mut(), picked.upstream());
                        }
                        sent = picked.upstream().send_or_return(unsent).await;
                    }
                    None => {
                        sent = Err(SendError {
                            error,
                            unsent: None,
                        })
                    }
                }
            }
            let upstream = picked.upstream();
            let (mut response, lease) = match sent {
                Ok(upstreamed) => {
                    picked.outcome(Some(upstreamed.response.status()));
                    (upstreamed.response, upstreamed.lease)
                }
                Err(SendError { error: e, .. }) => {
                    picked.outcome(None);
                    tracing::warn!(
                        request.id = ctx.request_id.as_str(),
                        app = &*app.name,
                        upstream.addr = %upstream.label,
                        error.kind = e.kind(),
                        "upstream request failed"
                    );
                    return Err(e.failure());
                }
            };
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                let Some(client_upgrade) = client_upgrade else {
                    // A 101 nobody asked for cannot be relayed safely.
                    return Err(Failure::UpstreamProtocol);
                };
                // The connection now belongs to the tunnel, never the pool.
                drop(lease);
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                tunnel::spawn(
                    client_upgrade,
                    upstream_upgrade,
                    app.name.clone(),
                    session.as_deref().map(Session::ended),
                );
                let (parts, _) = response.into_parts();
                return Ok(Response::from_parts(parts, ProxyBody::empty()));
            }
            forward::strip_hop_by_hop(response.headers_mut());
            rewrite::rewrite_response_headers(picked.url_map(), response.headers_mut());
            let rewriter = if app.rewrite_body {
                rewrite::CodedRewriter::for_response(picked.url_map(), response.headers())
            } else {
                None
            };
            if rewriter.as_ref().is_some_and(|r| !r.is_passthrough()) {
                rewrite::remove_content_length(response.headers_mut());
            }
            let response = match session {
                Some(session) => {
                    response.map(|body| ProxyBody::session_bound(body, lease, session.ended()))
                }
                None => response.map(|body| ProxyBody::upstream(body, lease)),
            };
            Ok(match rewriter {
                Some(rewriter) => response.map(|body| ProxyBody::rewritten(body, rewriter)),
                None => response,
            })
        }
    }
}

/// RFC 9110 §9.2.2: safe to send twice.
fn is_idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::TRACE
            | http::Method::PUT
            | http::Method::DELETE
    )
}

/// `host_header = "upstream"`: the target's own authority.
fn set_upstream_host(headers: &mut http::HeaderMap, upstream: &crate::upstream::HttpUpstream) {
    if let Ok(value) = HeaderValue::from_str(upstream.authority().as_str()) {
        headers.insert(http::header::HOST, value);
    }
}

/// Moves a returned request out of a failed send, leaving the error.
fn take_unsent(error: &mut SendError) -> Option<SendError> {
    error.unsent.take().map(|unsent| SendError {
        error: error.error,
        unsent: Some(unsent),
    })
}
