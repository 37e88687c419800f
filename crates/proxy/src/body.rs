use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

pin_project_lite::pin_project! {
    /// Every response body the gateway sends. An enum rather than a boxed
    /// trait object so that streaming an upstream body costs no allocation.
    #[project = ProxyBodyProj]
    pub enum ProxyBody {
        Upstream { #[pin] body: Incoming },
        Full { #[pin] body: Full<Bytes> },
        /// An upstream body that must stop when the gateway session that
        /// requested it ends (a stream must not outlive a logout).
        SessionBound { #[pin] body: Incoming, ended: Pin<Box<dyn Future<Output = ()> + Send>> },
    }
}

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Upstream(#[from] hyper::Error),
    #[error("the gateway session ended")]
    SessionEnded,
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

    pub fn upstream(body: Incoming) -> Self {
        ProxyBody::Upstream { body }
    }

    /// An upstream body cut off once `ended` resolves.
    pub fn session_bound(body: Incoming, ended: impl Future<Output = ()> + Send + 'static) -> Self {
        ProxyBody::SessionBound {
            body,
            ended: Box::pin(ended),
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
            ProxyBodyProj::Upstream { body } => body.poll_frame(cx).map_err(BodyError::from),
            ProxyBodyProj::SessionBound { body, ended } => {
                if ended.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(BodyError::SessionEnded)));
                }
                body.poll_frame(cx).map_err(BodyError::from)
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
            ProxyBody::Upstream { body } | ProxyBody::SessionBound { body, .. } => {
                body.is_end_stream()
            }
            ProxyBody::Full { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body } | ProxyBody::SessionBound { body, .. } => body.size_hint(),
            ProxyBody::Full { body } => body.size_hint(),
        }
    }
}
