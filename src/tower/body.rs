//! The response body that holds a request's concurrency slot.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::Permit;

pin_project! {
    /// A response body that holds the request's [`Permit`] until the body
    /// ends.
    ///
    /// The permit drops, returning the concurrency slot, at the first of:
    /// the inner body reports its end, it returns an error, or this body is
    /// dropped. With [`Release::AtHeaders`](super::Release::AtHeaders) it
    /// holds no permit and only passes the inner body through.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        permit: Option<Permit>,
    }
}

impl<B: Body> ResponseBody<B> {
    /// Wraps `inner`, holding `permit` until it ends. A body that is already
    /// at its end, such as the empty body of a `HEAD` response, releases the
    /// permit at once.
    pub(crate) fn new(inner: B, permit: Option<Permit>) -> Self {
        let permit = if inner.is_end_stream() { None } else { permit };
        Self { inner, permit }
    }
}

impl<B> ResponseBody<B> {
    /// Reports whether this body still holds a concurrency slot.
    pub fn holds_permit(&self) -> bool {
        self.permit.is_some()
    }

    /// Returns a reference to the inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Unwraps the inner body. The permit drops here, returning the
    /// concurrency slot while the rest of the body may still be unread.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));

        let finished = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(_)) => this.inner.is_end_stream(),
        };
        if finished {
            this.permit.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}
