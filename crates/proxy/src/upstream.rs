//! The upstream side: one keep-alive pool per app, URI mapping from the
//! public prefix to the upstream base path, and the timed request.
//!
//! Plain-HTTP upstreams use [`H1Pool`], a small pool of hyper HTTP/1.1
//! connections owned by one worker. https upstreams keep hyper-util's pool
//! with the rustls connector (private CA, fixed SNI).
//!
//! Timeouts follow nginx's model: the exchange fails when no byte has moved
//! either way for `upstream_inactivity_timeout` (the request body going
//! out counts, through [`Outgoing`]; so does the response body coming back,
//! in [`crate::body`]), so a slow but moving upload or download succeeds
//! however long it takes. `upstream_response_timeout`, when set, also caps
//! the time from sending the request to its response head.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use portcullis_config::UpstreamTarget;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::Error;
use crate::log_rate::LogRate;
use crate::tls;

type Pool = Client<HttpsConnector<HttpConnector>, Outgoing>;

/// How long an idle pooled upstream connection is kept. Shorter than the
/// common 60–75 s server keep-alive so the gateway closes first and never
/// sends a request on a connection the backend is closing.
const POOL_IDLE: Duration = Duration::from_secs(50);

pub struct HttpUpstream {
    transport: Transport,
    scheme: Scheme,
    authority: Authority,
    /// Upstream path that replaces the app's public prefix; empty for `/`.
    base_path: String,
    /// Length of the public prefix to cut from request paths (0 for `/`).
    public_prefix_len: usize,
    timeouts: UpstreamTimeouts,
    pub label: String,
    /// "upstream request failed" is logged once per interval per target
    /// and worker: an outage fails every request.
    pub failures: LogRate,
}

/// How long an upstream exchange may take; see the module comment.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    pub inactivity: Duration,
    pub total: Option<Duration>,
}

enum Transport {
    /// Plain HTTP: this worker's own HTTP/1.1 pool.
    Plain(Arc<H1Pool>),
    /// https: hyper-util's pool with the rustls connector (boxed: it is
    /// much larger than the plain variant).
    Tls(Box<Pool>),
}

/// A response from an upstream plus, for a pooled plain-HTTP connection,
/// the lease that puts the connection back once its body has been read.
pub struct Upstreamed {
    pub response: Response<Incoming>,
    pub lease: Option<Lease>,
}

/// What went wrong talking to an upstream, for metrics and the error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    Connect,
    Timeout,
    Protocol,
}

impl UpstreamError {
    pub fn kind(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol => "protocol",
        }
    }
}

impl HttpUpstream {
    pub fn new(
        app: &str,
        target: &UpstreamTarget,
        // The app's base path (`""` for `/`): what the public path loses.
        public_base_path: &str,
        timeouts: UpstreamTimeouts,
    ) -> Result<Self, Error> {
        let connect_timeout = timeouts.connect;
        let app_error = |reason: String| Error::App {
            app: app.to_string(),
            reason,
        };
        let authority: Authority = target
            .authority
            .parse()
            .map_err(|e| app_error(format!("upstream authority: {e}")))?;
        let transport = if target.tls {
            Transport::Tls(Box::new(tls_pool(app, target, connect_timeout)?))
        } else {
            Transport::Plain(Arc::new(H1Pool {
                idle: Mutex::new(Vec::new()),
                authority: target.authority.clone(),
                connect_timeout,
            }))
        };
        let scheme = if target.tls {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        Ok(HttpUpstream {
            label: target_label(target),
            transport,
            scheme,
            authority,
            base_path: target.base_path.clone(),
            public_prefix_len: public_base_path.len(),
            timeouts,
            failures: LogRate::default(),
        })
    }

    /// How long the upstream may send nothing while a response body waits.
    pub fn inactivity(&self) -> Duration {
        self.timeouts.inactivity
    }

    /// The upstream URI for a client request URI: public prefix replaced by
    /// the upstream base path, query kept. Origin-form (`/path?query`) for
    /// the plain pool, which writes the URI as given; absolute for hyper-util's
    /// pool, which needs the scheme and authority to pick a connection.
    pub fn map_uri(&self, uri: Uri) -> Option<Uri> {
        let plain = matches!(self.transport, Transport::Plain(_));
        let unchanged = self.public_prefix_len == 0 && self.base_path.is_empty();
        // An HTTP/1.1 client sends origin-form already: nothing to rebuild.
        if plain && unchanged && uri.scheme().is_none() && uri.authority().is_none() {
            return Some(uri);
        }
        let path_and_query = if unchanged {
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        } else {
            let rest = uri.path().get(self.public_prefix_len..).unwrap_or("");
            let mut joined = String::with_capacity(
                self.base_path.len() + rest.len() + uri.query().map_or(0, |q| q.len() + 1) + 1,
            );
            joined.push_str(&self.base_path);
            if !rest.starts_with('/') {
                joined.push('/');
            }
            joined.push_str(rest);
            if let Some(q) = uri.query() {
                joined.push('?');
                joined.push_str(q);
            }
            PathAndQuery::try_from(joined).ok()?
        };
        if plain {
            return Some(Uri::from(path_and_query));
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .ok()
    }

    /// `host:port` this target connects to.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Sends upstream; a request that never left the gateway (no connection
    /// could be made) comes back in the error, so it can go to another
    /// target. Waits for the response head while bytes keep moving (see the
    /// module comment).
    pub async fn send_or_return(
        &self,
        request: Request<Incoming>,
    ) -> Result<Upstreamed, SendError> {
        let started = Instant::now();
        // Only a request with a body can show progress while we wait.
        let progress = (!request.body().is_end_stream()).then(|| Arc::new(Progress::new(started)));
        let request = request.map(|body| Outgoing {
            body,
            progress: progress.clone(),
        });
        let timed_out = || SendError {
            error: UpstreamError::Timeout,
            unsent: None,
        };
        match &self.transport {
            Transport::Plain(pool) => {
                match self
                    .within(started, progress.as_deref(), pool.send(request))
                    .await
                {
                    None => Err(timed_out()),
                    Some(Ok(upstreamed)) => Ok(upstreamed),
                    Some(Err((error, unsent))) => Err(SendError {
                        error,
                        unsent: unsent.map(|r| r.map(|o| o.body)),
                    }),
                }
            }
            Transport::Tls(pool) => {
                let error = |error| SendError {
                    error,
                    unsent: None,
                };
                match self
                    .within(started, progress.as_deref(), pool.request(request))
                    .await
                {
                    None => Err(timed_out()),
                    Some(Ok(response)) => Ok(Upstreamed {
                        response,
                        lease: None,
                    }),
                    Some(Err(e)) if e.is_connect() => {
                        tracing::debug!(error = %e, "upstream connect failed");
                        Err(error(UpstreamError::Connect))
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "upstream request failed");
                        let source = std::error::Error::source(&e)
                            .and_then(|s| s.downcast_ref::<hyper::Error>());
                        Err(error(classify(source)))
                    }
                }
            }
        }
    }

    /// `exchange`'s output, or `None` once nothing has moved for the
    /// inactivity timeout, or the optional total has passed.
    async fn within<F: Future>(
        &self,
        started: Instant,
        progress: Option<&Progress>,
        exchange: F,
    ) -> Option<F::Output> {
        let total = self.timeouts.total.map(|total| started + total);
        let inactivity = self.timeouts.inactivity;
        let mut quiet_until = started + inactivity;
        tokio::pin!(exchange);
        loop {
            let wake = total.map_or(quiet_until, |total| total.min(quiet_until));
            tokio::select! {
                output = &mut exchange => return Some(output),
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if total.is_some_and(|total| now >= total) {
                        return None;
                    }
                    // The deadline moves with the last byte the request
                    // body handed over.
                    match progress.map(|p| p.last_moved() + inactivity) {
                        Some(next) if next > now => quiet_until = next,
                        _ => return None,
                    }
                }
            }
        }
    }
}

/// When the request body last handed a frame to the upstream connection;
/// shared between the body (polled by that connection) and the wait. A
/// clock read per frame, never per byte.
struct Progress {
    base: Instant,
    moved_ns: AtomicU64,
}

impl Progress {
    fn new(base: Instant) -> Self {
        Progress {
            base,
            moved_ns: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.moved_ns.store(ns, Ordering::Relaxed);
    }

    fn last_moved(&self) -> Instant {
        self.base + Duration::from_nanos(self.moved_ns.load(Ordering::Relaxed))
    }
}

pin_project_lite::pin_project! {
    /// A client's request body on its way upstream, noting each frame it
    /// hands over so that a slow but moving upload never looks inactive.
    pub struct Outgoing {
        #[pin]
        body: Incoming,
        progress: Option<Arc<Progress>>,
    }
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let result = this.body.poll_frame(cx);
        if let (Poll::Ready(Some(Ok(_))), Some(progress)) = (&result, this.progress) {
            progress.touch();
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A failed send; `unsent` holds the request when no byte of it left.
pub struct SendError {
    pub error: UpstreamError,
    pub unsent: Option<Request<Incoming>>,
}

/// A hyper error after the request was handed to a connection: a malformed
/// response is a protocol error; anything else (typically a connection
/// closed before any response byte) reads as "unavailable" to the user,
/// like a refused connect.
fn classify(error: Option<&hyper::Error>) -> UpstreamError {
    if error.is_some_and(|h| h.is_parse() || h.is_parse_status()) {
        UpstreamError::Protocol
    } else {
        UpstreamError::Connect
    }
}

fn tls_pool(app: &str, target: &UpstreamTarget, connect_timeout: Duration) -> Result<Pool, Error> {
    let connector = tls::upstream_connector(
        app,
        target.ca.as_deref(),
        target.sni.as_deref(),
        connect_timeout,
    )?;
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector))
}

type Sender = http1::SendRequest<Outgoing>;

/// A pooled send that failed: why, and the request when no byte of it left.
type PoolError = (UpstreamError, Option<Request<Outgoing>>);

/// Keep-alive HTTP/1.1 connections to one plain-HTTP upstream, owned by one
/// worker (each worker compiles its own plan), so the lock is never
/// contended; it only makes the plan `Sync`. Compared with hyper-util's
/// pool this skips the per-request pool key, checkout future, absolute URI
/// and the task spawned to wait for the connection to become idle again:
/// a connection comes back when its response body has been read (see
/// [`Lease`]).
pub struct H1Pool {
    /// Most recently returned last, so the warmest connection is reused first.
    idle: Mutex<Vec<Idle>>,
    /// `host:port`, resolved on each new connection (DNS may change).
    authority: String,
    connect_timeout: Duration,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

impl H1Pool {
    /// Sends on a pooled connection, or a new one. A request that a pooled
    /// connection refused before writing anything (it closed while idle) is
    /// retried, as hyper-util's pool does; one on a new connection is not.
    async fn send(
        self: &Arc<Self>,
        mut request: Request<Outgoing>,
    ) -> Result<Upstreamed, PoolError> {
        let sent = |error| (error, None);
        while let Some(mut sender) = self.checkout() {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.leased(response, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => {
                        tracing::debug!(error = %e.error(), "pooled upstream connection closed; retrying");
                        request = unsent;
                    }
                    None => {
                        let e = e.into_error();
                        tracing::debug!(error = %e, "upstream request failed");
                        return Err(sent(classify(Some(&e))));
                    }
                },
            }
        }
        // Boxed: connecting (DNS, TCP, handshake) is rare and its state
        // would otherwise enlarge every request's future.
        let mut sender = match Box::pin(self.connect()).await {
            Ok(sender) => sender,
            Err(error) => return Err((error, Some(request))),
        };
        match sender.send_request(request).await {
            Ok(response) => Ok(self.leased(response, sender)),
            Err(e) => {
                tracing::debug!(error = %e, "upstream request failed");
                Err(sent(classify(Some(&e))))
            }
        }
    }

    fn leased(self: &Arc<Self>, response: Response<Incoming>, sender: Sender) -> Upstreamed {
        Upstreamed {
            response,
            lease: Some(Lease {
                pool: self.clone(),
                sender: Some(sender),
                reusable: false,
            }),
        }
    }

    /// The newest idle connection that can take a request now. Closed and
    /// expired ones are dropped; ones whose previous exchange hyper has not
    /// finished yet stay for a later request.
    fn checkout(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        let mut index = idle.len();
        while index > 0 {
            index -= 1;
            let entry = &idle[index];
            if entry.sender.is_closed() || now.saturating_duration_since(entry.since) > POOL_IDLE {
                idle.swap_remove(index);
            } else if entry.sender.is_ready() {
                return Some(idle.swap_remove(index).sender);
            }
        }
        None
    }

    fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let now = Instant::now();
            // The oldest connection sits at the bottom, where checkouts
            // rarely look: close it here once it has idled too long, as
            // hyper-util's reaper did, rather than leave it to the backend.
            if idle
                .first()
                .is_some_and(|oldest| now.saturating_duration_since(oldest.since) > POOL_IDLE)
            {
                idle.remove(0);
            }
            idle.push(Idle { sender, since: now });
        }
    }

    async fn connect(&self) -> Result<Sender, UpstreamError> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&*self.authority))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "upstream connect failed");
                    return Err(UpstreamError::Connect);
                }
                Err(_) => {
                    tracing::debug!("upstream connect timed out");
                    return Err(UpstreamError::Connect);
                }
            };
        // Small request heads must not wait for Nagle.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on upstream connection");
        }
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| {
            tracing::debug!(error = %e, "upstream handshake failed");
            UpstreamError::Connect
        })?;
        // Upgrades: a 101 hands this connection to a WebSocket tunnel.
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// A pooled connection on loan to one response. Dropping it returns the
/// connection to its pool only when the response body was read to the end
/// (`reusable`); otherwise hyper closes the connection, since unread bytes
/// or an upgrade make it unusable for another request.
pub struct Lease {
    pool: Arc<H1Pool>,
    sender: Option<Sender>,
    reusable: bool,
}

impl Lease {
    /// The response body has been read completely.
    pub fn finished(&mut self) {
        self.reusable = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.reusable {
            if let Some(sender) = self.sender.take() {
                self.pool.put(sender);
            }
        }
    }
}

/// How a target is named in metrics and on the admin console:
/// `scheme://host:port`.
pub fn target_label(target: &UpstreamTarget) -> String {
    let scheme = if target.tls { "https" } else { "http" };
    format!("{scheme}://{}", target.authority)
}
