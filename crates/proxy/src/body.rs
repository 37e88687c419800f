use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::upstream::Lease;

pin_project_lite::pin_project! {
    /// Every response body the gateway sends. An enum rather than a boxed
    /// trait object so that streaming an upstream body costs no allocation.
    #[project = ProxyBodyProj]
    pub enum ProxyBody {
        /// `lease` puts a pooled upstream connection back once `body` ends.
        Upstream { #[pin] body: Incoming, lease: Option<Lease> },
        Full { #[pin] body: Full<Bytes> },
    }
}

impl ProxyBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ProxyBody::Full {
            body: Full::new(bytes.into()),
        }
    }

    pub fn empty() -> Self {
        ProxyBody::full(Bytes::new())
    }

    pub fn upstream(body: Incoming, mut lease: Option<Lease>) -> Self {
        // An empty body (HEAD, 204, 304, `Content-Length: 0`) may never be
        // polled at all.
        if body.is_end_stream() {
            if let Some(lease) = &mut lease {
                lease.finished();
            }
        }
        ProxyBody::Upstream { body, lease }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            ProxyBodyProj::Upstream { mut body, lease } => {
                let result = body.as_mut().poll_frame(cx);
                // hyper's server stops polling once `is_end_stream` says the
                // body is done, so the end is detected here rather than only
                // on `None`.
                let ended = match &result {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
                    Poll::Ready(Some(Err(_))) => {
                        // A broken body leaves the connection unusable.
                        *lease = None;
                        false
                    }
                    Poll::Pending => false,
                };
                if ended {
                    if let Some(lease) = lease {
                        lease.finished();
                    }
                }
                result
            }
            ProxyBodyProj::Full { body } => match body.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Full { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Full { body } => body.size_hint(),
        }
    }
}
