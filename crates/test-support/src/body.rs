use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A body of `len` zero bytes produced in 64 KiB chunks, never held in
/// memory at once: for streaming tests that must notice whole-body buffering.
pub struct ZeroBody {
    remaining: u64,
    chunk: Bytes,
}

impl ZeroBody {
    pub fn new(len: u64) -> Self {
        ZeroBody {
            remaining: len,
            chunk: Bytes::from(vec![0u8; 64 * 1024]),
        }
    }
}

impl Body for ZeroBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
