//! A connection's clocks: what they watch ([`Activity`]: reads, requests in
//! flight, the head wait under way, who closed first) and the wrappers that
//! feed them — the client socket, hyper's head timer on HTTP/1.1, and the
//! response body that keeps its request in flight until it has been sent.
//! [`super::drive`] reads them; nothing here reads a clock on the I/O path.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The generation of a connection's first head wait, which counts from the
/// accept rather than from its first byte.
pub(super) const FIRST_HEAD: u64 = 1;

/// What the clocks of one connection watch. Written by the socket, the
/// frame scanner, hyper's head timer and the request guards; read by
/// [`drive`]. No clock is read on the I/O path: a head's deadline is set
/// once, when `drive` first sees it under way.
pub(super) struct Activity {
    /// Socket reads that returned bytes: an HTTP/1.1 head wait has begun
    /// once this moves past the count its wait started at.
    pub(super) reads: AtomicU64,
    /// Bumped when a request starts and when its response ends.
    epoch: AtomicU64,
    /// Requests whose response has not ended: the handler is running or the
    /// body is still streaming.
    pub(super) in_flight: AtomicUsize,
    head: HeadWait,
    /// The client closed its side (a read returned end of file).
    peer_closed: AtomicBool,
    /// hyper shut our write side down (a graceful close).
    closed_write: AtomicBool,
    /// The socket, handed back for a lingering close.
    lingering: Mutex<Option<TcpStream>>,
    /// HTTP/1.1 over TLS: something was written since the last completed
    /// flush, so hyper may still hold bytes and the connection must not be
    /// parked ([`super::park`]).
    pub(super) unflushed: AtomicBool,
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
    pub(super) fn new() -> Arc<Self> {
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
            unflushed: AtomicBool::new(false),
        })
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// A head wait begins: `started` when its first byte is already known
    /// to be here (HTTP/2 sees the frame), else from the next read.
    pub(super) fn begin_head(&self, started: bool) -> u64 {
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
    pub(super) fn end_head(&self, generation: Option<u64>) {
        let head = &self.head;
        if generation.is_none_or(|g| g == head.generation.load(Ordering::Relaxed)) {
            head.waiting.store(false, Ordering::Relaxed);
        }
    }

    /// The running head wait, if any: its generation and whether its first
    /// byte has arrived.
    pub(super) fn head_under_way(&self) -> Option<(u64, bool)> {
        let head = &self.head;
        if !head.waiting.load(Ordering::Relaxed) {
            return None;
        }
        let started = head.started.load(Ordering::Relaxed)
            || self.reads.load(Ordering::Relaxed) > head.reads_at.load(Ordering::Relaxed);
        Some((head.generation.load(Ordering::Relaxed), started))
    }

    /// Nothing in flight and no head arriving.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && !self.head_under_way().is_some_and(|(_, started)| started)
    }

    pub(super) fn take_lingering(&self) -> Option<TcpStream> {
        self.lingering.lock().ok()?.take()
    }
}

/// Holds a request's place in the in-flight count until its response has
/// ended (hyper drops the response body) or the request is abandoned.
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    pub(super) fn enter(activity: &Arc<Activity>) -> Self {
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
        pub(super) body: B,
        pub(super) in_flight: InFlight,
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
    pub(super) fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        Socket {
            stream: Some(stream),
            activity,
        }
    }

    /// Ready once the socket has something to read (or has closed or
    /// failed): what a parked connection waits for, without a buffer.
    pub(super) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.stream {
            Some(stream) => stream.poll_read_ready(cx).map(|_| ()),
            None => Poll::Ready(()),
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
pub(super) struct HeadTimer(pub(super) Arc<Activity>);

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

pub(super) struct HeadSleep {
    activity: Arc<Activity>,
    pub(super) generation: u64,
}

impl HeadSleep {
    pub(super) fn begin(activity: &Arc<Activity>) -> Self {
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
