//! The client's HTTP/2 byte stream followed frame by frame on the way in,
//! so the head clock sees each header block open and close (RFC 9113 §4,
//! §6.2, §6.10) without parsing HPACK: a trickled header block can be cut
//! while DATA moves as slowly as it likes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;

use super::clocks::Activity;
use super::park::PARK_CHECK;

/// HTTP/2 frame types and flags the head clock follows (RFC 9113 §6).
pub(super) const FRAME_HEADERS: u8 = 0x1;
pub(super) const FRAME_CONTINUATION: u8 = 0x9;
pub(super) const FLAG_END_HEADERS: u8 = 0x4;
const FRAME_HEADER_LEN: usize = 9;
const CLIENT_PREFACE_LEN: usize = 24;

/// Where the client's byte stream stands in HTTP/2 framing. Payloads are
/// skipped by length, so the cost is per frame, not per byte.
pub(super) struct FrameScan {
    preface_left: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_filled: usize,
    payload_left: usize,
    kind: u8,
    flags: u8,
}

impl FrameScan {
    pub(super) fn new() -> Self {
        FrameScan {
            preface_left: CLIENT_PREFACE_LEN,
            header: [0; FRAME_HEADER_LEN],
            header_filled: 0,
            payload_left: 0,
            kind: 0,
            flags: 0,
        }
    }

    pub(super) fn scan(&mut self, mut bytes: &[u8], activity: &Activity) {
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
    /// It also gives back the TLS read buffer once the connection has been
    /// idle at a check [`PARK_CHECK`] after it went idle, as a parked
    /// HTTP/1.1 connection does (park.rs): sizing that buffer again costs
    /// a 4 KiB fill, too much to pay between every two requests.
    pub(super) struct H2Frames<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
        scan: FrameScan,
        // Boxed: hyper needs the stream to be `Unpin`.
        release_check: Pin<Box<Sleep>>,
        check_armed: bool,
    }
}

impl<T> H2Frames<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>) -> Self {
        H2Frames {
            inner,
            activity,
            scan: FrameScan::new(),
            release_check: Box::pin(tokio::time::sleep(PARK_CHECK)),
            check_armed: false,
        }
    }
}

/// A transport whose read buffer can be given back while nothing is
/// half-received: the TLS stream, through the patched rustls
/// (vendor/README.md).
pub(super) trait ReleaseReadBuffer {
    fn release_read_buffer(self: Pin<&mut Self>);
}

impl<IO: Unpin> ReleaseReadBuffer for TlsStream<IO> {
    fn release_read_buffer(self: Pin<&mut Self>) {
        self.get_mut().get_mut().1.release_read_buffer();
    }
}

impl<T: AsyncRead + ReleaseReadBuffer> AsyncRead for H2Frames<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let before = buf.filled().len();
        let result = this.inner.as_mut().poll_read(cx, buf);
        match result {
            Poll::Ready(Ok(())) => {
                if let Some(read) = buf.filled().get(before..) {
                    this.scan.scan(read, this.activity);
                    if !read.is_empty() && *this.check_armed && this.release_check.is_elapsed() {
                        // Awake again after a check: the next idle spell
                        // gets a check of its own.
                        *this.check_armed = false;
                    }
                }
            }
            Poll::Pending if this.activity.is_idle() => {
                if !*this.check_armed {
                    let at = tokio::time::Instant::now() + PARK_CHECK;
                    this.release_check.as_mut().reset(at);
                    *this.check_armed = true;
                }
                // Ready at the check and on every idle read after it (each
                // read sizes the buffer again) until the peer writes.
                if this.release_check.as_mut().poll(cx).is_ready() {
                    this.inner.release_read_buffer();
                }
            }
            _ => {}
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
