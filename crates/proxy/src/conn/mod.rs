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
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::forward::ClientInfo;

mod clocks;
mod h2_frames;
mod park;

use crate::pipeline::{self, Shared};
use crate::request_id::RequestId;
use crate::respond::{self, Failure};
use clocks::{Activity, Counted, HeadTimer, InFlight, Socket, FIRST_HEAD};
use h2_frames::H2Frames;

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

/// What the proxy service answers a request with, boxed (see [`serve_tls`]).
type RequestFuture = Pin<
    Box<
        dyn Future<
                Output = Result<
                    http::Response<Counted<crate::body::ProxyBody>>,
                    std::convert::Infallible,
                >,
            > + Send,
    >,
>;

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
    // Boxed, like both connection kinds below: the handshake's state (a
    // whole rustls connection) would otherwise size this task for the
    // connection's life, long after the handshake is over.
    let handshake = Box::pin(acceptor.accept(socket));
    let tls = match tokio::time::timeout_at(opened + limits.header_read, handshake).await {
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
            // Boxed: hyper's HTTP/1.1 dispatcher keeps a slot the size of
            // this future for the whole connection, idle or not; boxed, the
            // pipeline's state exists only while a request runs.
            let handled: RequestFuture = Box::pin(async move {
                let response = match refused {
                    Some(response) => response,
                    None => match pipeline::handle(shared, client, request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                };
                let mut response = response.map(|body| Counted { body, in_flight });
                if h2 {
                    detach_header_values(response.headers_mut());
                }
                Ok(response)
            });
            handled
        })
    };
    let ended = if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(h2_header_list_size(limits));
        let io = TokioIo::new(H2Frames::new(tls, activity.clone()));
        // Boxed: inline, the HTTP/2 connection would size every
        // connection's task, HTTP/1.1 ones included.
        let mut conn = Box::pin(builder.serve_connection(io, service));
        drive(conn.as_mut(), &activity, limits, opened, shutdown).await
    } else {
        let mut conn = Box::pin(park::Parking::new(
            h1_builder(limits, &activity),
            tls,
            service,
            activity.clone(),
        ));
        drive(conn.as_mut(), &activity, limits, opened, shutdown).await
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
    let conn = std::pin::pin!(h1_builder(limits, &activity)
        .serve_connection(io, service)
        .with_upgrades());
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

/// Moves every header value into one allocation of the response's own.
/// The HPACK encoder keeps the values it indexes for the connection's
/// lifetime, and a value parsed from an upstream response is a slice of
/// that upstream connection's whole read buffer: indexed as it is, it would
/// keep 8 KiB or more alive per idle HTTP/2 client.
fn detach_header_values(headers: &mut http::HeaderMap) {
    let total = headers.values().map(|v| v.len()).sum();
    let mut all = bytes::BytesMut::with_capacity(total);
    for value in headers.values() {
        all.extend_from_slice(value.as_bytes());
    }
    let mut all = all.freeze();
    for value in headers.values_mut() {
        let own = all.split_to(value.len().min(all.len()));
        if let Ok(mut copy) = http::HeaderValue::from_maybe_shared(own) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
    }
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
///
/// The connection is pinned by the caller: taken by value, it would be
/// stored twice in this future (argument and pinned local).
async fn drive<C: Graceful>(
    mut conn: Pin<&mut C>,
    activity: &Activity,
    limits: Limits,
    opened: Instant,
    mut shutdown: watch::Receiver<bool>,
) -> Ended {
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
    use super::clocks::HeadSleep;
    use super::h2_frames::{FrameScan, FLAG_END_HEADERS, FRAME_CONTINUATION, FRAME_HEADERS};
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
