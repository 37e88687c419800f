//! An idle HTTP/1.1 connection parked outside hyper.
//!
//! Between two requests hyper keeps a connection's read and write buffers
//! (8 KiB each), the slots for a request future and a response body, and
//! the previous request's header map. nginx frees the same between
//! requests; here, once hyper waits for the next head with nothing read,
//! nothing in flight and everything it wrote flushed, the TLS stream is
//! taken back from hyper ([`http1::Connection::into_parts`]) and the rest
//! dropped. The parked connection waits for the socket to become readable,
//! without a buffer, and is then handed to a new hyper connection. An
//! idle connection costs its TLS session, its socket and its clocks.
//!
//! A new hyper connection costs about as many instructions as a small
//! proxied request, so a connection is not parked the moment it goes idle
//! but at a check [`PARK_CHECK`] after it went idle, if it is idle then (a
//! connection busy at the check is checked again [`PARK_CHECK`] after it
//! next goes idle): a client sending one request after another rarely
//! pays for a new hyper connection, and one that has gone quiet gives up
//! its buffers within a second.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

use tokio::time::Sleep;

use super::clocks::{Activity, Socket};
use super::Graceful;

/// How long after it first goes idle a connection is checked for parking
/// (again once it next goes idle, if it was busy at the check).
pub(super) const PARK_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The TLS stream as hyper sees it: it notes in [`Activity`] whether
/// everything written has been flushed, and replays bytes hyper had read
/// but not parsed when it was parked.
pub(super) struct H1Io {
    tls: TlsStream<Socket>,
    replay: Bytes,
    activity: Arc<Activity>,
}

impl H1Io {
    fn new(tls: TlsStream<Socket>, activity: Arc<Activity>) -> Self {
        H1Io {
            tls,
            replay: Bytes::new(),
            activity,
        }
    }

    fn wrote(&self) {
        self.activity.unflushed.store(true, Ordering::Relaxed);
    }
}

impl AsyncRead for H1Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(this.replay.get(..n).unwrap_or_default());
            this.replay.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for H1Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.wrote();
        Pin::new(&mut this.tls).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.wrote();
        Pin::new(&mut this.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.tls).poll_flush(cx);
        if let Poll::Ready(Ok(())) = result {
            this.activity.unflushed.store(false, Ordering::Relaxed);
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
    }
}

type Serving<S> = http1::UpgradeableConnection<TokioIo<H1Io>, S>;

enum Stage<S: HttpService<Incoming>> {
    /// Boxed, so that a parked connection does not keep its size.
    Serving(Pin<Box<Serving<S>>>),
    Parked {
        io: H1Io,
        service: S,
    },
    /// Closed while parked: the TLS close is being sent.
    Closing(H1Io),
    Done,
}

/// An HTTP/1.1 TLS connection that leaves hyper while it is idle.
pub(super) struct Parking<S: HttpService<Incoming>> {
    stage: Stage<S>,
    builder: http1::Builder,
    activity: Arc<Activity>,
    closing: bool,
    /// The park check, running since the connection went idle. Boxed: a
    /// sleep cannot move once polled, and the rest of this can.
    check: Pin<Box<Sleep>>,
    check_running: bool,
    /// `reads` when hyper was handed bytes it had read but not parsed: it
    /// is not parked again before the client sends more, or it would be
    /// parked with the same bytes over and over.
    replayed_at: Option<u64>,
}

impl<S, B> Parking<S>
where
    S: HttpService<Incoming, ResBody = B> + Unpin,
    S::Future: Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pub(super) fn new(
        builder: http1::Builder,
        tls: TlsStream<Socket>,
        service: S,
        activity: Arc<Activity>,
    ) -> Self {
        let io = H1Io::new(tls, activity.clone());
        let mut parking = Parking {
            stage: Stage::Done,
            builder,
            activity,
            closing: false,
            check: Box::pin(tokio::time::sleep(PARK_CHECK)),
            check_running: false,
            replayed_at: None,
        };
        parking.stage = parking.serve(io, service);
        parking
    }

    fn serve(&self, io: H1Io, service: S) -> Stage<S> {
        Stage::Serving(Box::pin(
            self.builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades(),
        ))
    }

    /// hyper waits for a head of which no byte has arrived, nothing is in
    /// flight and nothing it wrote can still be in its buffer.
    fn parkable(&self) -> bool {
        let activity = &self.activity;
        !self.closing
            && activity.in_flight.load(Ordering::Acquire) == 0
            && activity
                .head_under_way()
                .is_some_and(|(_, started)| !started)
            && !activity.unflushed.load(Ordering::Relaxed)
            && self
                .replayed_at
                .is_none_or(|at| activity.reads.load(Ordering::Relaxed) > at)
    }
}

impl<S, B> Future for Parking<S>
where
    S: HttpService<Incoming, ResBody = B> + Unpin,
    S::Future: Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    Serving<S>: Future<Output = Result<(), hyper::Error>>,
{
    type Output = Result<(), hyper::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.stage {
                Stage::Serving(conn) => {
                    if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                        this.stage = Stage::Done;
                        return Poll::Ready(result);
                    }
                    if !this.parkable() {
                        if this.check_running && this.check.is_elapsed() {
                            // Busy at the check: the next one counts from
                            // when it next goes idle.
                            this.check_running = false;
                        }
                        return Poll::Pending;
                    }
                    if !this.check_running {
                        this.check
                            .as_mut()
                            .reset(tokio::time::Instant::now() + PARK_CHECK);
                        this.check_running = true;
                    }
                    if this.check.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.check_running = false;
                    let Stage::Serving(conn) = std::mem::replace(&mut this.stage, Stage::Done)
                    else {
                        return Poll::Pending;
                    };
                    // `None` only once upgraded, and an upgrade resolves `poll`.
                    let Some(parts) = Pin::into_inner(conn).into_parts() else {
                        return Poll::Ready(Ok(()));
                    };
                    let mut io = parts.io.into_inner();
                    if parts.read_buf.is_empty() && io.replay.is_empty() {
                        // Parked, the connection waits for readiness on the
                        // socket and reads nothing, so the TLS read buffer
                        // stays given back until hyper reads again.
                        io.tls.get_mut().1.release_read_buffer();
                        this.stage = Stage::Parked {
                            io,
                            service: parts.service,
                        };
                    } else {
                        io.replay = join(parts.read_buf, std::mem::take(&mut io.replay));
                        this.replayed_at = Some(this.activity.reads.load(Ordering::Relaxed));
                        this.stage = this.serve(io, parts.service);
                        return Poll::Pending;
                    }
                }
                Stage::Parked { io, .. } => {
                    if this.closing {
                        let Stage::Parked { io, .. } =
                            std::mem::replace(&mut this.stage, Stage::Done)
                        else {
                            return Poll::Pending;
                        };
                        this.stage = Stage::Closing(io);
                        continue;
                    }
                    // What the TLS session itself still has to send (a
                    // ticket, an alert) goes out while parked.
                    if io.tls.get_ref().1.wants_write() {
                        if let Err(e) = ready!(Pin::new(&mut *io).poll_flush(cx)) {
                            tracing::debug!(error = %e, "parked connection failed to flush");
                            this.stage = Stage::Done;
                            return Poll::Ready(Ok(()));
                        }
                    }
                    // Readable (or closed, or failed): hyper reads the rest.
                    ready!(io.tls.get_ref().0.poll_read_ready(cx));
                    let Stage::Parked { io, service } =
                        std::mem::replace(&mut this.stage, Stage::Done)
                    else {
                        return Poll::Pending;
                    };
                    this.replayed_at = None;
                    this.stage = this.serve(io, service);
                }
                Stage::Closing(io) => {
                    // As hyper closes an idle connection: the TLS close,
                    // then the write side; a failure ends it all the same.
                    let _ = ready!(Pin::new(io).poll_shutdown(cx));
                    this.stage = Stage::Done;
                    return Poll::Ready(Ok(()));
                }
                Stage::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<S, B> Graceful for Parking<S>
where
    S: HttpService<Incoming, ResBody = B> + Unpin,
    S::Future: Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    Serving<S>: Future<Output = Result<(), hyper::Error>>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        let this = self.get_mut();
        this.closing = true;
        if let Stage::Serving(conn) = &mut this.stage {
            conn.as_mut().graceful_shutdown();
        }
    }
}

fn join(first: Bytes, then: Bytes) -> Bytes {
    if then.is_empty() {
        return first;
    }
    let mut joined = Vec::with_capacity(first.len() + then.len());
    joined.extend_from_slice(&first);
    joined.extend_from_slice(&then);
    joined.into()
}
