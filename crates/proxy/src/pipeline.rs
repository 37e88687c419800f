//! The request path, top-down, one function per phase:
//!
//! route → gate → enhance → upstream → respond → log
//!
//! Each phase either continues or ends the request with a response; every
//! failure becomes exactly one response in [`crate::respond`]. The service is
//! infallible at the hyper boundary. See `docs/architecture.md`.

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::access::AccessEntry;
use crate::auth::{Admission, EnhanceError, Gate, RequestFacts};
use crate::balance::{Balancer, Picked};
use crate::body::{BodyEnd, BodyOutcome, EndSink, ProxyBody};
use crate::client_ip::{self, ClientIp};
use crate::echo;
use crate::forward::{self, ClientInfo, X_PORTCULLIS_USER, X_REQUEST_ID};
use crate::local::{LocalApp, LocalMeta, LOCAL_BODY_LIMIT};
use crate::metrics::{Metrics, RequestLabels, UpstreamErrorLabels};
use crate::plan::{AppPlan, Plan, UpstreamPlan};
use crate::request_id::RequestId;
use crate::respond::{self, Failure};
use crate::rewrite;
use crate::tunnel;
use crate::upstream::{SendError, Upstreamed};
use portcullis_config::IDP_COOKIE_PREFIX;

/// State shared by every connection; the plan is swapped on reload.
pub struct Shared {
    pub plan: ArcSwap<Plan>,
    pub metrics: Arc<Metrics>,
    /// False while starting and once draining; drives `/readyz`. One flag
    /// for all workers.
    pub ready: Arc<AtomicBool>,
    /// The shared session store's readiness, when there is one.
    pub store_ready: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

/// Per-request context carried through the phases.
struct Context<'a> {
    request_id: RequestId,
    client: &'a ClientInfo,
    /// Who the client is behind `[server] trusted_proxies`: resolved once,
    /// used by every phase that asks for the client's address.
    client_ip: ClientIp,
    json: bool,
    plan: &'a Plan,
    /// The same plan, for a streamed body to report its end to.
    plan_arc: &'a Arc<Plan>,
}

/// What the access log needs of the request head; kept only when the log
/// is on, because cloning the URI costs reference-count updates.
type Head = (Method, Uri, Version);

pub async fn handle(
    shared: Arc<Shared>,
    client: Arc<ClientInfo>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let plan = shared.plan.load_full();
    let request_id = RequestId::new();
    let client_ip = client_ip::resolve(client.addr.ip(), request.headers(), &plan.trusted_proxies);
    client_ip::note(&client_ip, client.addr.ip(), request_id.as_str());
    let ctx = Context {
        request_id,
        client: &client,
        client_ip,
        json: respond::wants_json(request.headers()),
        plan: &plan,
        plan_arc: &plan,
    };
    // Only a browser that does not send this node's value yet is told it.
    let route_cookie = plan.route_cookie.as_ref().filter(|route| {
        crate::cookie::get(request.headers(), &route.name) != Some(route.value.as_str())
    });
    let head = plan.access_log.then(|| {
        (
            request.method().clone(),
            request.uri().clone(),
            request.version(),
        )
    });
    // The phases are awaited here, in one async body, rather than through
    // nested async fns: every nesting level stores its child future again,
    // and the request future is copied whole each time it moves.
    let (app, outcome) = match route(&plan, &request) {
        None => (None, Err(Failure::NoRoute)),
        Some((index, app, host)) => {
            // Phase: gate. An app with an auth phase decides here; others
            // continue as they came.
            let gated = match &app.auth {
                None => Gate::Continue(request, Box::new(Anonymous)),
                Some(auth) => auth.gate(request, facts(&ctx)).await,
            };
            let outcome = match gated {
                Gate::Respond(response) => Ok(response),
                Gate::Continue(mut request, admission) => {
                    let upgrade = upgrade(app, &request);
                    match enhance(
                        app,
                        &ctx,
                        &host,
                        &mut request,
                        &*admission,
                        upgrade.as_ref(),
                    ) {
                        Ok(()) => upstream(app, &ctx, request, upgrade, &*admission).await,
                        Err(failure) => Err(failure),
                    }
                }
            };
            (Some((index, app)), outcome)
        }
    };
    let failure = outcome.as_ref().err().copied();
    let mut response = respond(app.map(|(_, app)| app), &ctx, outcome);
    if let Some(route) = route_cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, route.set_cookie.clone());
    }
    log(
        &shared,
        &ctx,
        app,
        head,
        &mut response,
        failure,
        started.elapsed(),
    );
    Ok(response)
}

/// Phase: route. Picks the app by host and longest path prefix, and returns
/// its index, itself and the public host value to forward.
fn route<'p>(
    plan: &'p Plan,
    request: &Request<Incoming>,
) -> Option<(usize, &'p AppPlan, HeaderValue)> {
    // HTTP/2 carries the host in :authority; HTTP/1.1 in Host (or an
    // absolute-form target, which takes precedence per RFC 9112 §3.2.2).
    let host = match request.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok()?,
        None => request.headers().get(header::HOST)?.clone(),
    };
    let index = plan
        .routes
        .lookup(host.to_str().ok()?, plan.default_port, request.uri().path())?;
    Some((index, plan.apps.get(index)?, host))
}

/// Upgrades are an HTTP/1.1 mechanism, and only proxied apps relay them.
fn upgrade(app: &AppPlan, request: &Request<Incoming>) -> Option<HeaderValue> {
    match (&app.upstream, request.version()) {
        (UpstreamPlan::Http(_), Version::HTTP_11) => forward::upgrade_requested(request.headers()),
        _ => None,
    }
}

/// What the auth phase is told about the request.
fn facts<'a>(ctx: &'a Context<'_>) -> RequestFacts<'a> {
    RequestFacts {
        request_id: ctx.request_id.as_str(),
        client_ip: ctx.client_ip.ip,
        json: ctx.json,
    }
}

/// Requests of apps without an auth phase: nobody's identity travels.
struct Anonymous;

impl Admission for Anonymous {
    fn enhance(&self, headers: &mut http::HeaderMap) -> Result<(), EnhanceError> {
        headers.remove(&X_PORTCULLIS_USER);
        Ok(())
    }

    fn ended(&self) -> Option<crate::auth::SessionEnd> {
        None
    }

    fn user(&self) -> Option<&str> {
        None
    }
}

/// Phase: enhance. Toward a backend: the gateway's own cookies removed, the
/// identity the auth phase admitted added, then the forwarding headers.
/// Built-in services (the IdP) get only the forwarding headers: their own
/// cookies are theirs to read.
fn enhance(
    app: &AppPlan,
    ctx: &Context<'_>,
    host: &HeaderValue,
    request: &mut Request<Incoming>,
    admission: &dyn Admission,
    upgrade: Option<&HeaderValue>,
) -> Result<(), Failure> {
    if !matches!(app.upstream, UpstreamPlan::Local(_)) {
        let gateway_cookies = &ctx.plan.gateway_cookies;
        crate::cookie::retain(request.headers_mut(), |name| {
            !name.starts_with(IDP_COOKIE_PREFIX) && !gateway_cookies.iter().any(|g| g == name)
        });
        admission.enhance(request.headers_mut()).map_err(|e| {
            tracing::warn!(
                request.id = ctx.request_id.as_str(),
                app = &*app.name,
                user = admission.user(),
                error = %e,
                "identity not sent to the backend"
            );
            match e {
                EnhanceError::TooLarge { .. } => Failure::IdentityTooLarge,
                EnhanceError::Unavailable(_) => Failure::IdentityUnavailable,
            }
        })?;
    }
    forward::prepare_request(
        request.headers_mut(),
        ctx.client,
        ctx.client_ip.peer_trusted,
        host,
        &ctx.request_id,
        upgrade,
    );
    Ok(())
}

/// Phase: upstream, for a built-in service (the IdP): the whole body is
/// read first, within [`LOCAL_BODY_LIMIT`].
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
        client_ip: ctx.client_ip.ip,
        request_id: ctx.request_id.as_str().to_string(),
    };
    let response = service.call(Request::from_parts(parts, body), meta).await;
    Ok(response.map(ProxyBody::full))
}

/// Phase: upstream. A built-in service answers in-process; a proxied app's
/// request goes to a target its balancer picks — once more to another
/// target if it never left and may be sent twice — and what comes back is
/// relayed ([`relay`]).
async fn upstream(
    app: &AppPlan,
    ctx: &Context<'_>,
    mut request: Request<Incoming>,
    upgrade: Option<HeaderValue>,
    admission: &dyn Admission,
) -> Result<Response<ProxyBody>, Failure> {
    let balancer = match &app.upstream {
        // Boxed: buffering the body is large state proxied requests should not carry.
        UpstreamPlan::Local(service) => {
            return Box::pin(local(service.as_ref(), ctx, request)).await
        }
        UpstreamPlan::Echo => {
            return Ok(echo::respond(&request, admission.shown_identity().as_ref()))
        }
        UpstreamPlan::Http(balancer) => balancer,
    };
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
    let mut picked = balancer.pick();
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
    if app.upstream_host_header {
        set_upstream_host(&mut parts.headers, picked.upstream());
    }
    let mut sent = picked
        .upstream()
        .send_or_return(Request::from_parts(parts, body))
        .await;
    if let Some((other, unsent)) = retry_target(app, ctx, balancer, &picked, &mut sent, retry_uri)?
    {
        picked = other;
        sent = picked.upstream().send_or_return(unsent).await;
    }
    let upstreamed = match sent {
        Ok(upstreamed) => {
            picked.outcome(Some(upstreamed.response.status()));
            upstreamed
        }
        Err(SendError { error, .. }) => {
            picked.outcome(None);
            // An outage fails every request: one warning per interval says
            // how many were left out; the metric counts each one.
            match picked.upstream().failures.note() {
                Some(left_out) => tracing::warn!(
                    request.id = ctx.request_id.as_str(),
                    app = &*app.name,
                    upstream.addr = %picked.upstream().label,
                    error.kind = error.kind(),
                    left_out,
                    "upstream request failed"
                ),
                None => tracing::debug!(
                    request.id = ctx.request_id.as_str(),
                    app = &*app.name,
                    upstream.addr = %picked.upstream().label,
                    error.kind = error.kind(),
                    "upstream request failed"
                ),
            }
            return Err(error.into());
        }
    };
    relay(app, &picked, upstreamed, client_upgrade, admission.ended())
}

/// A request that never left (no connection to its target) goes to another
/// target once, if it is idempotent: the other target and the request,
/// mapped for it. `None` leaves the first outcome standing.
fn retry_target<'b>(
    app: &AppPlan,
    ctx: &Context<'_>,
    balancer: &'b Balancer,
    picked: &Picked<'b>,
    sent: &mut Result<Upstreamed, SendError>,
    retry_uri: Option<Uri>,
) -> Result<Option<(Picked<'b>, Request<Incoming>)>, Failure> {
    let (Err(SendError { unsent, error }), Some(original)) = (sent, retry_uri) else {
        return Ok(None);
    };
    let Some(mut unsent) = unsent.take() else {
        return Ok(None);
    };
    picked.outcome(None);
    let Some(other) = balancer.pick_other(picked) else {
        return Ok(None);
    };
    tracing::info!(
        request.id = ctx.request_id.as_str(),
        app = &*app.name,
        from = %picked.upstream().label,
        to = %other.upstream().label,
        error.kind = error.kind(),
        "retrying on another upstream target"
    );
    *unsent.uri_mut() = other
        .upstream()
        .map_uri(original)
        .ok_or(Failure::BadRequest)?;
    if app.upstream_host_header {
        set_upstream_host(unsent.headers_mut(), other.upstream());
    }
    Ok(Some((other, unsent)))
}

/// What comes back from a target, toward the client: a `101` becomes a
/// byte tunnel; anything else loses its hop-by-hop headers, gets its
/// internal URLs rewritten, and streams — cut off if the session it was
/// opened in ends.
fn relay(
    app: &AppPlan,
    picked: &Picked<'_>,
    upstreamed: Upstreamed,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ended: Option<crate::auth::SessionEnd>,
) -> Result<Response<ProxyBody>, Failure> {
    let Upstreamed {
        mut response,
        lease,
    } = upstreamed;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            // A 101 nobody asked for cannot be relayed safely.
            return Err(Failure::UpstreamProtocol);
        };
        // The connection now belongs to the tunnel, never the pool.
        drop(lease);
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tunnel::spawn(client_upgrade, upstream_upgrade, app.name.clone(), ended);
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
    let inactivity = picked.upstream().inactivity();
    let response = match ended {
        Some(ended) => {
            response.map(|body| ProxyBody::session_bound(body, lease, inactivity, ended))
        }
        None => response.map(|body| ProxyBody::upstream(body, lease, inactivity)),
    };
    Ok(match rewriter {
        Some(rewriter) => response.map(|body| ProxyBody::rewritten(body, rewriter)),
        None => response,
    })
}

/// RFC 9110 §9.2.2: safe to send twice.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// `host_header = "upstream"`: the target's own authority.
fn set_upstream_host(headers: &mut http::HeaderMap, upstream: &crate::upstream::HttpUpstream) {
    if let Ok(value) = HeaderValue::from_str(upstream.authority().as_str()) {
        headers.insert(header::HOST, value);
    }
}

/// Phase: respond. A failure becomes its one response (the app's own error
/// page for browsers, where it has one); every response carries the
/// request id.
fn respond(
    app: Option<&AppPlan>,
    ctx: &Context<'_>,
    outcome: Result<Response<ProxyBody>, Failure>,
) -> Response<ProxyBody> {
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
    response
}

/// Phase: log. Metrics (sharded by worker: no lock, no shared cache line)
/// and one access-log event: now, or, for a body streaming from an
/// upstream, when that body ends ([`EndSink`]).
fn log(
    shared: &Shared,
    ctx: &Context<'_>,
    app: Option<(usize, &AppPlan)>,
    head: Option<Head>,
    response: &mut Response<ProxyBody>,
    failure: Option<Failure>,
    elapsed: Duration,
) {
    let status = response.status().as_u16();
    let shard = ctx.plan.shard;
    match app {
        Some((_, app)) => {
            app.latency.observe(shard, elapsed.as_secs_f64());
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
            app.count_request(&shared.metrics, status, shard);
        }
        None => shared
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                app: Arc::from("-"),
                code: status,
            })
            .inc(shard),
    }
    let entry = head.map(|(method, uri, version)| AccessEntry {
        request_id: ctx.request_id.clone(),
        client: ctx.client.addr,
        client_ip: ctx.client_ip.ip,
        method,
        uri,
        version,
        status,
        error: failure.map(Failure::code),
        elapsed,
    });
    let Some((index, app)) = app else {
        if let Some(entry) = entry {
            entry.write("-", None);
        }
        return;
    };
    // Only a proxied body can be cut short by its upstream: it reports when
    // it ends. Anything else is written now.
    let entry = match &app.truncated {
        Some(_) => {
            let end = BodyEnd {
                sink: ctx.plan_arc.clone() as Arc<dyn EndSink>,
                app: index,
                entry: entry.map(Box::new),
            };
            response
                .body_mut()
                .report_end(end)
                .and_then(|end| end.entry.map(|entry| *entry))
        }
        None => entry,
    };
    if let Some(entry) = entry {
        entry.write(&app.name, None);
    }
}

/// The plan a request started on hears how its streamed body ended.
impl EndSink for Plan {
    fn body_ended(&self, app: usize, entry: Option<Box<AccessEntry>>, outcome: BodyOutcome) {
        let Some(app) = self.apps.get(app) else {
            return;
        };
        if outcome.truncated() {
            if let Some(truncated) = &app.truncated {
                truncated.inc();
            }
        }
        if let Some(entry) = entry {
            entry.write(&app.name, outcome.code());
        }
    }
}
