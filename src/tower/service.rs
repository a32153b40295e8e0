//! The service that paces every request with one limiter.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tower_service::Service;

use super::{Admit, Error, Failure, Options, Rejection, ResponseBody, ResponseFuture};
use crate::{Limiter, Permit};

/// Paces the requests of an inner HTTP service with one [`Limiter`].
///
/// `poll_ready` waits for the inner service and then reserves a permit;
/// `call` moves the permit into the [`ResponseFuture`], and from there into
/// the [`ResponseBody`]. A clone starts with nothing reserved. Dropping the
/// service after `poll_ready`, or the future before it completes, returns
/// the concurrency slot; a rate grant already taken stays counted.
///
/// Built by [`LimitLayer`](super::LimitLayer), or by [`Limit::new`] with the
/// default options.
///
/// # Accuracy
///
/// The rate grant counts from the moment `poll_ready` returns `Ready`, so
/// call the service right after it, as `ServiceExt::oneshot` and
/// `ServiceExt::ready` followed by `call` do. A caller that waits between the
/// two sends the request later than its grant, which can bunch requests
/// together at the provider.
pub struct Limit<S> {
    inner: S,
    limiter: Limiter,
    options: Options,
    state: State,
}

enum State {
    /// Nothing reserved.
    Idle,
    /// The inner service is ready and a permit is on its way.
    Admitting(Admit),
    /// The inner service is ready and the limiter has decided; `call`
    /// consumes this.
    Decided(Result<Permit, Rejection>),
}

impl<S> Limit<S> {
    /// Wraps `inner`, waiting as long as `limiter` needs and holding each
    /// concurrency slot until the response body ends.
    pub fn new(inner: S, limiter: Limiter) -> Self {
        Self::from_parts(inner, limiter, Options::default())
    }

    pub(crate) fn from_parts(inner: S, limiter: Limiter, options: Options) -> Self {
        Self {
            inner,
            limiter,
            options,
            state: State::Idle,
        }
    }

    /// Returns the limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Returns a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service. A reserved permit drops, which returns its
    /// concurrency slot.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, B> Service<Req> for Limit<S>
where
    S: Service<Req, Response = http::Response<B>>,
    B: http_body::Body,
{
    type Response = http::Response<ResponseBody<B>>;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.state {
                State::Idle => {
                    // The inner service goes first, so that the rate grant is
                    // not taken while the request still waits for it.
                    ready!(self.inner.poll_ready(cx)).map_err(Error::Inner)?;
                    let admit = Admit::new(&self.limiter, self.options.max_wait);
                    self.state = State::Admitting(admit);
                }
                State::Admitting(admit) => {
                    let decision = ready!(Pin::new(admit).poll(cx));
                    self.state = State::Decided(decision);
                }
                // A rejection is returned by the response future, because an
                // error here would mark the service as failed for good.
                State::Decided(_) => return Poll::Ready(Ok(())),
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match mem::replace(&mut self.state, State::Idle) {
            State::Decided(Ok(permit)) => {
                ResponseFuture::new(self.inner.call(request), permit, self.options.release)
            }
            State::Decided(Err(rejection)) => {
                tracing::trace!(%rejection, "request rejected by the limiter");
                ResponseFuture::failed(Failure::Rejected(rejection))
            }
            State::Idle | State::Admitting(_) => {
                panic!("Limit::call was called before poll_ready returned Ready(Ok)")
            }
        }
    }
}

impl<S: Clone> Clone for Limit<S> {
    fn clone(&self) -> Self {
        Self::from_parts(self.inner.clone(), self.limiter.clone(), self.options)
    }
}

impl<S: fmt::Debug> fmt::Debug for Limit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Idle => "idle",
            State::Admitting(_) => "admitting",
            State::Decided(Ok(_)) => "reserved",
            State::Decided(Err(_)) => "rejected",
        };
        f.debug_struct("Limit")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter)
            .field("options", &self.options)
            .field("state", &state)
            .finish()
    }
}
