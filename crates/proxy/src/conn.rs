//! One client connection: TLS handshake under a deadline, HTTP/1.1 or
//! HTTP/2 chosen by ALPN, an idle watchdog, and graceful shutdown on drain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::forward::ClientInfo;
use crate::pipeline::{self, Shared};

/// Connection-level limits, copied from the plan at accept time.
#[derive(Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub max_header_bytes: usize,
}

/// I/O events and requests in flight, for the idle watchdog. The socket
/// wrapper only bumps a counter (no clock read on the hot path); the
/// watchdog compares counts once per idle period.
pub struct Activity {
    io_events: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            io_events: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        self.io_events.fetch_add(1, Ordering::Relaxed);
    }

    fn events(&self) -> u64 {
        self.io_events.load(Ordering::Relaxed)
    }
}

/// Decrements the in-flight count when a request's handler finishes.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A socket that records when it last moved a byte.
    pub struct TrackedIo<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
    }
}

impl<T: AsyncRead> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let result = this.inner.poll_read(cx, buf);
        if result.is_ready() {
            this.activity.touch();
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write(cx, buf);
        if result.is_ready() {
            this.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write_vectored(cx, bufs);
        if result.is_ready() {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// A hyper connection that can be asked to finish gracefully.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn begin_shutdown(self: Pin<&mut Self>);
}

impl<I, S> Graceful for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for http2::Connection<I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Future: Send + 'static,
    S::ResBody: http_body::Body + Send + 'static,
    <S::ResBody as http_body::Body>::Data: Send,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Which service a listener runs.
#[derive(Clone, Copy)]
pub enum Role {
    /// The public TLS listener: the proxy pipeline.
    Proxy,
    /// Plain HTTP that only redirects to https on this port.
    Redirect { https_port: u16 },
    /// The management listener.
    Admin,
}

pub async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    let tracked = TrackedIo {
        inner: stream,
        activity: activity.clone(),
    };
    // The handshake counts against the header deadline: a client that opens
    // a socket and never finishes TLS is the same slowloris as one that never
    // finishes its headers.
    let tls = match tokio::time::timeout(limits.header_read, acceptor.accept(tracked)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(client.addr = %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(client.addr = %peer, "TLS handshake timed out");
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let client = Arc::new(ClientInfo::new(peer));
    let service = {
        let activity = activity.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            let client = client.clone();
            let in_flight = InFlight::enter(&activity);
            async move {
                let response = pipeline::handle(shared, client, request).await;
                drop(in_flight);
                response
            }
        })
    };
    if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        drive(
            builder.serve_connection(io, service),
            &activity,
            limits.idle,
            shutdown,
        )
        .await;
    } else {
        let conn = h1_builder(limits)
            .serve_connection(io, service)
            .with_upgrades();
        drive(conn, &activity, limits.idle, shutdown).await;
    }
}

/// Plain-HTTP connections (redirect and admin listeners): HTTP/1.1 only.
pub async fn serve_plain(
    stream: TcpStream,
    peer: SocketAddr,
    role: Role,
    shared: Arc<Shared>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::enter(&activity);
            let response = match role {
                Role::Admin => crate::admin::respond(&shared, &request),
                Role::Redirect { https_port } => {
                    crate::redirect::respond(&shared, https_port, &request)
                }
                Role::Proxy => crate::respond::failure(
                    crate::respond::Failure::NoRoute,
                    &crate::request_id::RequestId::new(),
                    false,
                ),
            };
            drop(in_flight);
            std::future::ready(Ok::<_, std::convert::Infallible>(response))
        })
    };
    tracing::trace!(client.addr = %peer, "plain connection");
    let conn = h1_builder(limits)
        .serve_connection(io, service)
        .with_upgrades();
    drive(conn, &activity, limits.idle, shutdown).await;
}

fn h1_builder(limits: Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    builder
}

/// Runs a connection to completion, closing it once a whole `idle` period
/// has passed with no I/O and no request in flight (so an idle connection
/// closes between `idle` and twice `idle` after its last byte), or
/// gracefully on drain.
async fn drive<C: Graceful>(
    conn: C,
    activity: &Activity,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::pin!(conn);
    let mut closing = *shutdown.borrow();
    if closing {
        conn.as_mut().begin_shutdown();
    }
    let mut seen = activity.events();
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline), if !closing => {
                let now_seen = activity.events();
                if now_seen == seen && activity.in_flight.load(Ordering::Acquire) == 0 {
                    closing = true;
                    conn.as_mut().begin_shutdown();
                }
                seen = now_seen;
                deadline = Instant::now() + idle;
            }
            changed = shutdown.changed(), if !closing => {
                if changed.is_err() || *shutdown.borrow() {
                    closing = true;
                    conn.as_mut().begin_shutdown();
                }
            }
        }
    }
}
