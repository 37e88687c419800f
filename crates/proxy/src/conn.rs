//! One client connection: TLS handshake under a deadline, HTTP/1.1 or
//! HTTP/2 chosen by ALPN, the head and idle clocks, graceful shutdown on
//! drain, and a lingering close.
//!
//! Two clocks bound every connection, on both protocols:
//!
//! - the **head clock**: a request head must be complete within
//!   `header_read_timeout` of its first byte, and a connection's first head
//!   (TLS handshake included) within `header_read_timeout` of the accept.
//!   HTTP/1.1 learns when hyper starts waiting for a head through
//!   [`HeadTimer`]: hyper's own head timer starts as soon as a keep-alive
//!   connection turns idle, which would close it at `header_read_timeout`
//!   instead of `idle_timeout`. HTTP/2 learns it from [`H2Frames`], which
//!   follows the frame headers the client sends and sees each header block
//!   open and close: a trickled header block is cut, while DATA may move as
//!   slowly as it likes.
//! - the **idle clock**: no request in flight (its handler running or its
//!   response body streaming) and no head under way for a whole
//!   `idle_timeout` starts a graceful close. Control frames (PING, SETTINGS,
//!   WINDOW_UPDATE) do not keep an idle HTTP/2 connection open.
//!
//! When hyper closes a connection while the client may still be sending (a
//! 413 or 431 answered before the request was read), the socket is drained
//! for a bounded time before it is closed ([`linger`]): closing a socket
//! with unread data makes the kernel send a reset, which destroys the
//! answer in the client's receive buffer.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::forward::ClientInfo;
use crate::pipeline::{self, Shared};
use crate::request_id::RequestId;
use crate::respond::{self, Failure};

/// Connection-level limits, copied from the plan at accept time.
#[derive(Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// hyper parses up to this many HTTP/1.1 headers on the stack; any other
/// count moves the parse to the heap, so it is only set when it differs.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// How long a closed connection keeps reading what the client still sends
/// (see the module comment). nginx's `lingering_close` does the same, for
/// up to 30 s with 5 s between reads; a client that is still sending after
/// a few seconds is uploading far more than it will be let in, and under a
/// flood a lingering socket holds a connection slot.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_QUIET: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// The generation of a connection's first head wait, which counts from the
/// accept rather than from its first byte.
const FIRST_HEAD: u64 = 1;

/// What the clocks of one connection watch. Written by the socket, the
/// frame scanner, hyper's head timer and the request guards; read by
/// [`drive`]. No clock is read on the I/O path: a head's deadline is set
/// once, when `drive` first sees it under way.
pub struct Activity {
    /// Socket reads that returned bytes: an HTTP/1.1 head wait has begun
    /// once this moves past the count its wait started at.
    reads: AtomicU64,
    /// Bumped when a request starts and when its response ends.
    epoch: AtomicU64,
    /// Requests whose response has not ended: the handler is running or the
    /// body is still streaming.
    in_flight: AtomicUsize,
    head: HeadWait,
    /// The client closed its side (a read returned end of file).
    peer_closed: AtomicBool,
    /// hyper shut our write side down (a graceful close).
    closed_write: AtomicBool,
    /// The socket, handed back for a lingering close.
    lingering: Mutex<Option<TcpStream>>,
}

/// The head clock's state. A wait that is already running keeps its start
/// when asked to begin again, so the first head on either protocol counts
/// from the accept.
struct HeadWait {
    generation: AtomicU64,
    waiting: AtomicBool,
    /// Its first byte is known to have arrived (or it counts from the accept).
    started: AtomicBool,
    /// `reads` when the wait began: any later read is the head's first byte.
    reads_at: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            reads: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head: HeadWait {
                generation: AtomicU64::new(FIRST_HEAD),
                waiting: AtomicBool::new(true),
                started: AtomicBool::new(true),
                reads_at: AtomicU64::new(0),
            },
            peer_closed: AtomicBool::new(false),
            closed_write: AtomicBool::new(false),
            lingering: Mutex::new(None),
        })
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// A head wait begins: `started` when its first byte is already known
    /// to be here (HTTP/2 sees the frame), else from the next read.
    fn begin_head(&self, started: bool) -> u64 {
        let head = &self.head;
        if head.waiting.load(Ordering::Relaxed) {
            return head.generation.load(Ordering::Relaxed);
        }
        let generation = head.generation.fetch_add(1, Ordering::Relaxed) + 1;
        head.reads_at
            .store(self.reads.load(Ordering::Relaxed), Ordering::Relaxed);
        head.started.store(started, Ordering::Relaxed);
        head.waiting.store(true, Ordering::Relaxed);
        generation
    }

    /// The head is complete. `generation` is that of the wait that ends,
    /// or `None` for whichever is running.
    fn end_head(&self, generation: Option<u64>) {
        let head = &self.head;
        if generation.is_none_or(|g| g == head.generation.load(Ordering::Relaxed)) {
            head.waiting.store(false, Ordering::Relaxed);
        }
    }

    /// The running head wait, if any: its generation and whether its first
    /// byte has arrived.
    fn head_under_way(&self) -> Option<(u64, bool)> {
        let head = &self.head;
        if !head.waiting.load(Ordering::Relaxed) {
            return None;
        }
        let started = head.started.load(Ordering::Relaxed)
            || self.reads.load(Ordering::Relaxed) > head.reads_at.load(Ordering::Relaxed);
        Some((head.generation.load(Ordering::Relaxed), started))
    }

    /// Nothing in flight and no head arriving.
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && !self.head_under_way().is_some_and(|(_, started)| started)
    }

    fn take_lingering(&self) -> Option<TcpStream> {
        self.lingering.lock().ok()?.take()
    }
}

/// Holds a request's place in the in-flight count until its response has
/// ended (hyper drops the response body) or the request is abandoned.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.epoch.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.epoch.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it has been
    /// sent (or dropped), so a streaming download is never taken for an
    /// idle connection.
    pub struct Counted<B> {
        #[pin]
        body: B,
        in_flight: InFlight,
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client's TCP socket. It counts reads for the head clock, notes who
/// closed first, and, dropped after hyper shut its write side while the
/// client had not closed, hands itself back for a lingering close.
pub struct Socket {
    stream: Option<TcpStream>,
    activity: Arc<Activity>,
}

impl Socket {
    fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        Socket {
            stream: Some(stream),
            activity,
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = this.stream()?.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            if buf.filled().len() > before {
                this.activity.reads.fetch_add(1, Ordering::Relaxed);
            } else {
                this.activity.peer_closed.store(true, Ordering::Relaxed);
            }
        }
        result
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream()?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream()?.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = this.stream()?.poll_shutdown(cx);
        if let Poll::Ready(Ok(())) = result {
            this.activity.closed_write.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let activity = &self.activity;
        if activity.closed_write.load(Ordering::Relaxed)
            && !activity.peer_closed.load(Ordering::Relaxed)
        {
            if let (Some(stream), Ok(mut slot)) = (self.stream.take(), activity.lingering.lock()) {
                *slot = Some(stream);
            }
        }
    }
}

/// HTTP/1.1's window on hyper: hyper asks its timer for a sleep exactly
/// when it starts waiting for a request head and drops it once the head is
/// parsed. The sleep never fires by itself; it only marks the wait, and
/// [`drive`] enforces the deadline from the head's first byte.
#[derive(Clone)]
struct HeadTimer(Arc<Activity>);

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, _: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep::begin(&self.0))
    }

    fn sleep_until(&self, _: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep::begin(&self.0))
    }

    /// The same wait goes on: its deadline is `drive`'s to keep.
    fn reset(&self, _: &mut Pin<Box<dyn hyper::rt::Sleep>>, _: std::time::Instant) {}
}

struct HeadSleep {
    activity: Arc<Activity>,
    generation: u64,
}

impl HeadSleep {
    fn begin(activity: &Arc<Activity>) -> Self {
        HeadSleep {
            generation: activity.begin_head(false),
            activity: activity.clone(),
        }
    }
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl hyper::rt::Sleep for HeadSleep {}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        self.activity.end_head(Some(self.generation));
    }
}

/// HTTP/2 frame types and flags the head clock follows (RFC 9113 §6).
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_HEADERS: u8 = 0x4;
const FRAME_HEADER_LEN: usize = 9;
const CLIENT_PREFACE_LEN: usize = 24;

/// Where the client's byte stream stands in HTTP/2 framing. Payloads are
/// skipped by length, so the cost is per frame, not per byte.
struct FrameScan {
    preface_left: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_filled: usize,
    payload_left: usize,
    kind: u8,
    flags: u8,
}

impl FrameScan {
    fn new() -> Self {
        FrameScan {
            preface_left: CLIENT_PREFACE_LEN,
            header: [0; FRAME_HEADER_LEN],
            header_filled: 0,
            payload_left: 0,
            kind: 0,
            flags: 0,
        }
    }

    fn scan(&mut self, mut bytes: &[u8], activity: &Activity) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = bytes.get(n..).unwrap_or_default();
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = bytes.get(n..).unwrap_or_default();
                if self.payload_left == 0 {
                    self.frame_ended(activity);
                }
            } else {
                let n = (FRAME_HEADER_LEN - self.header_filled).min(bytes.len());
                let (taken, rest) = bytes.split_at(n);
                if let Some(slot) = self
                    .header
                    .get_mut(self.header_filled..self.header_filled + n)
                {
                    slot.copy_from_slice(taken);
                }
                self.header_filled += n;
                bytes = rest;
                if self.header_filled == FRAME_HEADER_LEN {
                    self.header_filled = 0;
                    let [l0, l1, l2, kind, flags, ..] = self.header;
                    self.payload_left =
                        usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                    self.kind = kind;
                    self.flags = flags;
                    if kind == FRAME_HEADERS {
                        activity.begin_head(true);
                    }
                    if self.payload_left == 0 {
                        self.frame_ended(activity);
                    }
                }
            }
        }
    }

    fn frame_ended(&self, activity: &Activity) {
        if matches!(self.kind, FRAME_HEADERS | FRAME_CONTINUATION)
            && self.flags & FLAG_END_HEADERS != 0
        {
            activity.end_head(None);
        }
    }
}

pin_project_lite::pin_project! {
    /// The decrypted HTTP/2 stream, followed frame by frame on the way in.
    struct H2Frames<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
        scan: FrameScan,
    }
}

impl<T: AsyncRead> AsyncRead for H2Frames<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            if let Some(read) = buf.filled().get(before..) {
                this.scan.scan(read, this.activity);
            }
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for H2Frames<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
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

/// Why [`drive`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// hyper finished the connection (closed by either side, or upgraded).
    Finished,
    /// A request head did not arrive within `header_read_timeout`.
    HeadTimeout,
}

pub async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> Ended {
    let opened = Instant::now();
    let activity = Activity::new();
    let socket = Socket::new(stream, activity.clone());
    // The handshake counts against the first head's deadline: a client that
    // opens a socket and never finishes TLS is the same slowloris as one
    // that never finishes its headers.
    let tls =
        match tokio::time::timeout_at(opened + limits.header_read, acceptor.accept(socket)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(client.addr = %peer, error = %e, "TLS handshake failed");
                return Ended::Finished;
            }
            Err(_) => {
                tracing::debug!(client.addr = %peer, "TLS handshake timed out");
                return Ended::HeadTimeout;
            }
        };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let client = Arc::new(ClientInfo::new(peer));
    let service = {
        let activity = activity.clone();
        service_fn(move |request: Request<Incoming>| {
            let shared = shared.clone();
            let client = client.clone();
            let in_flight = InFlight::enter(&activity);
            // hyper enforces both limits on HTTP/1.1 heads itself.
            let refused = (h2 && !h2_head_fits(&request, limits)).then(|| {
                respond::failure(
                    Failure::HeadersTooLarge,
                    &RequestId::new(),
                    respond::wants_json(request.headers()),
                )
            });
            async move {
                let response = match refused {
                    Some(response) => response,
                    None => match pipeline::handle(shared, client, request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                };
                Ok::<_, std::convert::Infallible>(response.map(|body| Counted { body, in_flight }))
            }
        })
    };
    let ended = if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(h2_header_list_size(limits));
        let io = TokioIo::new(H2Frames {
            inner: tls,
            activity: activity.clone(),
            scan: FrameScan::new(),
        });
        drive(
            builder.serve_connection(io, service),
            &activity,
            limits,
            opened,
            shutdown,
        )
        .await
    } else {
        let conn = h1_builder(limits, &activity)
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades();
        drive(conn, &activity, limits, opened, shutdown).await
    };
    if ended == Ended::HeadTimeout {
        tracing::debug!(client.addr = %peer, h2, "request head not received in time; connection closed");
    }
    linger(&activity).await;
    ended
}

/// Plain-HTTP connections (redirect and admin listeners): HTTP/1.1 only.
pub async fn serve_plain(
    stream: TcpStream,
    peer: SocketAddr,
    role: Role,
    shared: Arc<Shared>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> Ended {
    let opened = Instant::now();
    let activity = Activity::new();
    let io = TokioIo::new(Socket::new(stream, activity.clone()));
    let service = {
        let activity = activity.clone();
        service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::enter(&activity);
            let response = match role {
                Role::Admin => crate::admin::respond(&shared, &request),
                Role::Redirect { https_port } => {
                    crate::redirect::respond(&shared, https_port, &request)
                }
                Role::Proxy => respond::failure(Failure::NoRoute, &RequestId::new(), false),
            };
            std::future::ready(Ok::<_, std::convert::Infallible>(
                response.map(|body| Counted { body, in_flight }),
            ))
        })
    };
    tracing::trace!(client.addr = %peer, "plain connection");
    let conn = h1_builder(limits, &activity)
        .serve_connection(io, service)
        .with_upgrades();
    let ended = drive(conn, &activity, limits, opened, shutdown).await;
    linger(&activity).await;
    ended
}

fn h1_builder(limits: Limits, activity: &Arc<Activity>) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(HeadTimer(activity.clone()))
        // Only marks when a head wait starts; `drive` keeps the deadline.
        .header_read_timeout(limits.header_read)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        builder.max_headers(limits.max_headers);
    }
    builder
}

/// SETTINGS_MAX_HEADER_LIST_SIZE: h2 refuses a larger block before it is
/// decoded. It counts 32 bytes per field beyond name and value, where the
/// HTTP/1.1 form counts 4, so it is set loose enough for every head that
/// fits `max_header_bytes` in HTTP/1.1 form (four pseudo-headers included);
/// [`h2_head_fits`] then applies the exact limit.
fn h2_header_list_size(limits: Limits) -> u32 {
    let loose = limits
        .max_header_bytes
        .saturating_add(limits.max_headers.saturating_add(4).saturating_mul(32));
    u32::try_from(loose).unwrap_or(u32::MAX)
}

/// Whether an HTTP/2 request head is within the limits an HTTP/1.1 head
/// gets: no more than `max_headers` fields and no more than
/// `max_header_bytes` written as HTTP/1.1. `:authority` counts as the
/// `Host` line it stands for, and cookie crumbs (RFC 9113 §8.2.3) as the one
/// `Cookie` line they were split from.
fn h2_head_fits<B>(request: &Request<B>, limits: Limits) -> bool {
    let headers = request.headers();
    let cookies = headers.get_all(http::header::COOKIE).iter().count();
    let host_line = request
        .uri()
        .authority()
        .filter(|_| !headers.contains_key(http::header::HOST));
    let count = headers.len() - cookies.saturating_sub(1) + usize::from(host_line.is_some());
    if count > limits.max_headers {
        return false;
    }
    // "METHOD target HTTP/1.1\r\n", then "name: value\r\n" per line, then
    // the blank line; crumbs are joined with "; ".
    let target = request
        .uri()
        .path_and_query()
        .map_or(1, |pq| pq.as_str().len());
    let mut size = request.method().as_str().len() + 1 + target + 11 + 2;
    size += host_line.map_or(0, |a| "host: \r\n".len() + a.as_str().len());
    for (name, value) in headers {
        size += name.as_str().len() + 4 + value.len();
    }
    size -= cookies.saturating_sub(1) * ("cookie".len() + 2);
    size <= limits.max_header_bytes
}

/// Runs a connection to completion, with the head clock, the idle clock
/// (an idle connection closes between one and two `idle` periods after its
/// last request ended) and a graceful shutdown on drain. A client that does
/// not complete a graceful close (an HTTP/2 client that never acknowledges
/// the GOAWAY's PING) is dropped once nothing is in flight and
/// `header_read` has passed.
async fn drive<C: Graceful>(
    conn: C,
    activity: &Activity,
    limits: Limits,
    opened: Instant,
    mut shutdown: watch::Receiver<bool>,
) -> Ended {
    tokio::pin!(conn);
    let mut closing = false;
    let mut check_at = Instant::now() + limits.idle;
    let begin_close = |conn: Pin<&mut C>, closing: &mut bool, check_at: &mut Instant| {
        *closing = true;
        conn.begin_shutdown();
        *check_at = Instant::now() + limits.header_read;
    };
    if *shutdown.borrow() {
        begin_close(conn.as_mut(), &mut closing, &mut check_at);
    }
    let head_deadline = tokio::time::sleep_until(opened + limits.header_read);
    tokio::pin!(head_deadline);
    let mut head_armed = Some(FIRST_HEAD);
    let mut epoch = activity.epoch();
    loop {
        tokio::select! {
            // The connection first: what it has just read decides the head
            // clock, polled right after it.
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return Ended::Finished;
            }
            () = std::future::poll_fn(|cx| {
                poll_head(cx, activity, &mut head_armed, head_deadline.as_mut(), limits.header_read)
            }) => return Ended::HeadTimeout,
            () = tokio::time::sleep_until(check_at) => {
                if closing {
                    if activity.in_flight.load(Ordering::Acquire) == 0 {
                        return Ended::Finished;
                    }
                    check_at = Instant::now() + limits.header_read;
                    continue;
                }
                let now_epoch = activity.epoch();
                if now_epoch == epoch && activity.is_idle() {
                    begin_close(conn.as_mut(), &mut closing, &mut check_at);
                } else {
                    check_at = Instant::now() + limits.idle;
                }
                epoch = now_epoch;
            }
            changed = shutdown.changed(), if !closing => {
                if changed.is_err() || *shutdown.borrow() {
                    begin_close(conn.as_mut(), &mut closing, &mut check_at);
                }
            }
        }
    }
}

/// Ready once the head under way has taken longer than `header_read`. The
/// deadline is set the first time a wait is seen with its first byte in
/// (the first head's was set at the accept), so a fast head costs no clock
/// read at all.
fn poll_head(
    cx: &mut Context<'_>,
    activity: &Activity,
    armed: &mut Option<u64>,
    mut deadline: Pin<&mut Sleep>,
    header_read: Duration,
) -> Poll<()> {
    let Some((generation, started)) = activity.head_under_way() else {
        *armed = None;
        return Poll::Pending;
    };
    if *armed != Some(generation) {
        if !started {
            // Idle between requests: the idle clock's business.
            return Poll::Pending;
        }
        deadline.as_mut().reset(Instant::now() + header_read);
        *armed = Some(generation);
    }
    deadline.poll(cx)
}

/// Drains what the client still sends after hyper closed the connection
/// (see the module comment), within [`LINGER_TIME`], [`LINGER_QUIET`]
/// between reads and [`LINGER_BYTES`]. Boxed: its buffer must not enlarge
/// every connection's future.
async fn linger(activity: &Activity) {
    let Some(stream) = activity.take_lingering() else {
        return;
    };
    Box::pin(drain(stream)).await;
}

async fn drain(mut stream: TcpStream) {
    let deadline = Instant::now() + LINGER_TIME;
    let mut buf = vec![0u8; 16 * 1024];
    let mut left = LINGER_BYTES;
    while left > 0 {
        let quiet = (Instant::now() + LINGER_QUIET).min(deadline);
        match tokio::time::timeout_at(quiet, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => left = left.saturating_sub(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read: Duration::from_secs(1),
            idle: Duration::from_secs(2),
            max_header_bytes: 200,
            max_headers: 4,
        }
    }

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frame_scan_follows_header_blocks_byte_by_byte() {
        let activity = Activity::new();
        let mut scan = FrameScan::new();
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(0x4, 0, &[0; 12])); // SETTINGS
        scan.scan(&stream, &activity);
        assert_eq!(activity.head_under_way(), Some((FIRST_HEAD, true)));
        // The first head ends, then a second opens and trickles.
        scan.scan(&frame(FRAME_HEADERS, FLAG_END_HEADERS, &[0x82]), &activity);
        assert_eq!(activity.head_under_way(), None);
        let headers = frame(FRAME_HEADERS, 0, &[0x82, 0x87]);
        let continuation = frame(FRAME_CONTINUATION, FLAG_END_HEADERS, &[0x84]);
        for byte in &headers {
            scan.scan(std::slice::from_ref(byte), &activity);
        }
        assert_eq!(activity.head_under_way(), Some((FIRST_HEAD + 1, true)));
        scan.scan(&frame(0x6, 0, &[0; 8]), &activity); // a PING in between is no end
        for byte in &continuation {
            assert!(activity.head_under_way().is_some());
            scan.scan(std::slice::from_ref(byte), &activity);
        }
        assert_eq!(activity.head_under_way(), None);
        // DATA of any length never opens a head.
        scan.scan(&frame(0x0, 0, &[0; 3000]), &activity);
        assert_eq!(activity.head_under_way(), None);
    }

    #[test]
    fn an_http1_wait_starts_with_the_next_read() {
        let activity = Activity::new();
        activity.end_head(Some(FIRST_HEAD));
        let wait = HeadSleep::begin(&activity);
        assert_eq!(activity.head_under_way(), Some((wait.generation, false)));
        assert!(activity.is_idle());
        activity.reads.fetch_add(1, Ordering::Relaxed);
        assert_eq!(activity.head_under_way(), Some((wait.generation, true)));
        assert!(!activity.is_idle());
        // A reset keeps the wait.
        let timer = HeadTimer(activity.clone());
        let mut boxed: Pin<Box<dyn hyper::rt::Sleep>> = Box::pin(wait);
        hyper::rt::Timer::reset(&timer, &mut boxed, std::time::Instant::now());
        assert!(activity.head_under_way().is_some());
        drop(boxed);
        assert_eq!(activity.head_under_way(), None);
    }

    #[test]
    fn h2_heads_are_measured_as_http1_heads() {
        let request = |headers: &[(&str, &str)]| {
            let mut builder = Request::get("https://app.test/path?q=1");
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(()).expect("request")
        };
        assert!(h2_head_fits(
            &request(&[("a", "1"), ("b", "2"), ("c", "3")]),
            limits()
        ));
        assert!(
            !h2_head_fits(
                &request(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]),
                limits()
            ),
            "the Host line counts"
        );
        let crumbs = [
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("cookie", "c=3"),
            ("x", "y"),
        ];
        assert!(
            h2_head_fits(&request(&crumbs), limits()),
            "crumbs are one line"
        );
        let long = "v".repeat(180);
        assert!(!h2_head_fits(&request(&[("x", long.as_str())]), limits()));
        assert!(h2_header_list_size(limits()) > 200);
    }
}
