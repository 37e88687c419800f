use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::access::AccessEntry;
use crate::rewrite::{CodedRewriter, RewriteBodyError, RewritingBody};
use crate::upstream::Lease;

pin_project_lite::pin_project! {
    /// Every response body the gateway sends. An enum rather than a boxed
    /// trait object so that streaming an upstream body costs no allocation.
    #[project = ProxyBodyProj]
    pub enum ProxyBody {
        /// `lease` puts a pooled upstream connection back once `body` ends;
        /// `ended`, when set, cuts the body off once the gateway session
        /// that requested it ends (a stream must not outlive a logout);
        /// `quiet` cuts it off when the upstream sends nothing for
        /// `upstream_inactivity_timeout` while we wait for it; `end` is told
        /// how the body ended.
        Upstream {
            #[pin] body: Incoming,
            lease: Option<Lease>,
            ended: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
            quiet: Quiet,
            end: EndGuard,
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
    #[error("the upstream sent nothing for {0:?}")]
    UpstreamStalled(Duration),
    #[error("the gateway session ended")]
    SessionEnded,
    #[error("rewriting the body: {0}")]
    Rewrite(std::io::Error),
}

/// How a streamed upstream body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOutcome {
    Complete,
    /// The upstream connection broke off mid-body.
    UpstreamBroke,
    /// The upstream went quiet for `upstream_inactivity_timeout`.
    UpstreamStalled,
    SessionEnded,
    /// The client went away (or reset the stream) before the end.
    ClientClosed,
}

impl BodyOutcome {
    /// The access log's `error` for a body that did not end whole.
    pub fn code(self) -> Option<&'static str> {
        match self {
            BodyOutcome::Complete => None,
            BodyOutcome::UpstreamBroke => Some("upstream_truncated"),
            BodyOutcome::UpstreamStalled => Some("upstream_stalled"),
            BodyOutcome::SessionEnded => Some("session_ended"),
            BodyOutcome::ClientClosed => Some("client_closed"),
        }
    }

    /// The upstream's fault: counted in `portcullis_upstream_errors`.
    pub fn truncated(self) -> bool {
        matches!(
            self,
            BodyOutcome::UpstreamBroke | BodyOutcome::UpstreamStalled
        )
    }
}

/// Told once how a streamed body ended: the log phase, which writes the
/// access log and counts truncated bodies. A trait so that bodies need not
/// know the plan; the plan the request started on implements it.
pub trait EndSink: Send + Sync {
    fn body_ended(&self, app: usize, entry: Option<Box<AccessEntry>>, outcome: BodyOutcome);
}

/// A report waiting for a body's end.
pub struct BodyEnd {
    pub sink: Arc<dyn EndSink>,
    /// The app's index in the plan.
    pub app: usize,
    pub entry: Option<Box<AccessEntry>>,
}

impl BodyEnd {
    fn finish(self, outcome: BodyOutcome) {
        self.sink.body_ended(self.app, self.entry, outcome);
    }
}

/// Reports once; a body dropped before its end reports the client gone.
#[derive(Default)]
pub struct EndGuard(Option<BodyEnd>);

impl EndGuard {
    fn finish(&mut self, outcome: BodyOutcome) {
        if let Some(end) = self.0.take() {
            end.finish(outcome);
        }
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.finish(BodyOutcome::ClientClosed);
    }
}

/// The inactivity clock of an upstream body: it runs only while the body
/// waits for the upstream, not while the client is slow to take what was
/// sent. The timer is made on the first wait, so a body that arrives
/// whole costs none.
pub struct Quiet {
    limit: Duration,
    waiting: bool,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Quiet {
    fn new(limit: Duration) -> Self {
        Quiet {
            limit,
            waiting: false,
            timer: None,
        }
    }

    /// Called when the upstream had nothing: ready once it has had nothing
    /// for `limit`.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + self.limit;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
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

    /// `inactivity`: how long the upstream may send nothing while the body
    /// waits for it.
    pub(crate) fn upstream(body: Incoming, mut lease: Option<Lease>, inactivity: Duration) -> Self {
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
            quiet: Quiet::new(inactivity),
            end: EndGuard::default(),
        }
    }

    /// Has `end` told how this body ends, if it streams from an upstream
    /// and has not ended yet; otherwise hands `end` back to report now.
    pub(crate) fn report_end(&mut self, end: BodyEnd) -> Option<BodyEnd> {
        match self {
            ProxyBody::Upstream {
                body, end: slot, ..
            } if !body.is_end_stream() => {
                slot.0 = Some(end);
                None
            }
            ProxyBody::Rewritten { body } => body.as_mut().inner_mut().get_mut().report_end(end),
            ProxyBody::Upstream { .. } | ProxyBody::Full { .. } => Some(end),
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
        inactivity: Duration,
        ended: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let mut proxied = ProxyBody::upstream(body, lease, inactivity);
        if let ProxyBody::Upstream { ended: slot, .. } = &mut proxied {
            *slot = Some(Box::pin(ended));
        }
        proxied
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
                quiet,
                end,
            } => {
                if let Some(ended) = ended {
                    if ended.as_mut().poll(cx).is_ready() {
                        // The connection is mid-body: never back to the pool.
                        *lease = None;
                        end.finish(BodyOutcome::SessionEnded);
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
                        end.finish(BodyOutcome::UpstreamBroke);
                        false
                    }
                    Poll::Pending => {
                        if quiet.poll_stalled(cx).is_ready() {
                            *lease = None;
                            end.finish(BodyOutcome::UpstreamStalled);
                            return Poll::Ready(Some(Err(BodyError::UpstreamStalled(quiet.limit))));
                        }
                        false
                    }
                };
                if result.is_ready() {
                    quiet.waiting = false;
                }
                if finished {
                    if let Some(lease) = lease {
                        lease.finished();
                    }
                    end.finish(BodyOutcome::Complete);
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
