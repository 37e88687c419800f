use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::rewrite::{CodedRewriter, RewriteBodyError, RewritingBody};
use crate::upstream::Lease;

pin_project_lite::pin_project! {
    /// Every response body the gateway sends. An enum rather than a boxed
    /// trait object so that streaming an upstream body costs no allocation.
    #[project = ProxyBodyProj]
    pub enum ProxyBody {
        /// `lease` puts a pooled upstream connection back once `body` ends;
        /// `ended`, when set, cuts the body off once the gateway session
        /// that requested it ends (a stream must not outlive a logout).
        Upstream {
            #[pin] body: Incoming,
            lease: Option<Lease>,
            ended: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
        },
        Full { #[pin] body: Full<Bytes> },
        /// An upstream body with internal URLs rewritten (`rewrite_body`).
        Rewritten { body: Pin<Box<RewritingBody<ProxyBody>>> },
    }
}

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Upstream(#[from] hyper::Error),
    #[error("the gateway session ended")]
    SessionEnded,
    #[error("rewriting the body: {0}")]
    Rewrite(std::io::Error),
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

    pub(crate) fn upstream(body: Incoming, mut lease: Option<Lease>) -> Self {
        // An empty body (HEAD, 204, 304, `Content-Length: 0`) may never be
        // polled at all.
        if body.is_end_stream() {
            if let Some(lease) = &mut lease {
                lease.finished();
            }
        }
        ProxyBody::Upstream {
            body,
            lease,
            ended: None,
        }
    }

    /// `inner` with internal URLs rewritten on the way through.
    pub(crate) fn rewritten(inner: ProxyBody, rewriter: CodedRewriter) -> Self {
        ProxyBody::Rewritten {
            body: Box::pin(RewritingBody::new(inner, rewriter)),
        }
    }

    /// An upstream body that is also cut off once `ended` resolves.
    pub(crate) fn session_bound(
        body: Incoming,
        lease: Option<Lease>,
        ended: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        match ProxyBody::upstream(body, lease) {
            ProxyBody::Upstream { body, lease, .. } => ProxyBody::Upstream {
                body,
                lease,
                ended: Some(Box::pin(ended)),
            },
            full => full,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            ProxyBodyProj::Upstream {
                mut body,
                lease,
                ended,
            } => {
                if let Some(ended) = ended {
                    if ended.as_mut().poll(cx).is_ready() {
                        // The connection is mid-body: never back to the pool.
                        *lease = None;
                        return Poll::Ready(Some(Err(BodyError::SessionEnded)));
                    }
                }
                let result = body.as_mut().poll_frame(cx);
                // hyper's server stops polling once `is_end_stream` says the
                // body is done, so the end is detected here rather than only
                // on `None`.
                let finished = match &result {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
                    Poll::Ready(Some(Err(_))) => {
                        // A broken body leaves the connection unusable.
                        *lease = None;
                        false
                    }
                    Poll::Pending => false,
                };
                if finished {
                    if let Some(lease) = lease {
                        lease.finished();
                    }
                }
                result.map_err(BodyError::from)
            }
            ProxyBodyProj::Rewritten { body } => {
                body.as_mut().poll_frame(cx).map_err(|e| match e {
                    RewriteBodyError::Inner(e) => e,
                    RewriteBodyError::Codec(e) => BodyError::Rewrite(e),
                })
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
            ProxyBody::Rewritten { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Full { body } => body.size_hint(),
            ProxyBody::Rewritten { body } => body.size_hint(),
        }
    }
}
