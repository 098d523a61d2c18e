//! What an upstream request holds while it is in flight: its circuit
//! breaker admission and its place in the endpoint's active request count.
//! The response body carries them, so they are given back when the
//! response ends (or fails, or is dropped), not when its headers arrive:
//! an HTTP/1.1 connection stays busy until the body is read.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

use crate::circuit_breaker::Admission;

/// One request counted in an endpoint's active requests until dropped.
#[derive(Debug)]
#[must_use]
pub struct ActiveRequest(Arc<AtomicUsize>);

impl ActiveRequest {
    pub fn start(count: &Arc<AtomicUsize>) -> ActiveRequest {
        count.fetch_add(1, Ordering::AcqRel);
        ActiveRequest(count.clone())
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Held, never read: dropping it gives everything back.
#[derive(Debug)]
pub struct InUse {
    _admission: Admission,
    _active: ActiveRequest,
}

impl InUse {
    pub fn new(admission: Admission, active: ActiveRequest) -> InUse {
        InUse {
            _admission: admission,
            _active: active,
        }
    }
}

/// A response body that releases what its request held once it is over.
pub struct GuardedBody<B> {
    inner: B,
    held: Option<InUse>,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, held: InUse) -> GuardedBody<B> {
        GuardedBody {
            inner,
            held: Some(held),
        }
    }
}

impl<B: Body + Unpin> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let over = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if over {
            self.held = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
