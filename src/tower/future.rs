//! The response futures of the limiting services.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::{Admit, Error, Failure, Release, ResponseBody};
use crate::Permit;

pin_project! {
    /// The response future of [`Limit`](super::Limit); the keyed future
    /// ends in one too.
    ///
    /// It holds the request's permit while the inner future runs. When the
    /// response headers arrive, the permit moves into the [`ResponseBody`],
    /// or drops with [`Release::AtHeaders`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it returns the request's concurrency slot. The rate grant
    /// stays counted, because the request may already have been sent.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F> {
        Called {
            #[pin]
            future: F,
            permit: Option<Permit>,
            release: Release,
        },
        Failed {
            failure: Option<Failure>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, permit: Permit, release: Release) -> Self {
        let state = State::Called {
            future,
            permit: Some(permit),
            release,
        };
        Self { state }
    }

    pub(crate) fn failed(failure: Failure) -> Self {
        let state = State::Failed {
            failure: Some(failure),
        };
        Self { state }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<http::Response<ResponseBody<B>>, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Called {
                future,
                permit,
                release,
            } => {
                let response = ready!(future.poll(cx)).map_err(Error::Inner)?;
                let permit = match release {
                    Release::AtBodyEnd => permit.take(),
                    Release::AtHeaders => None,
                };
                Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, permit))))
            }
            StateProjection::Failed { failure } => match failure.take() {
                Some(failure) => Poll::Ready(Err(failure.into_error())),
                None => panic!("response future polled after it completed"),
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ResponseFuture");
        match &self.state {
            State::Called { permit, .. } => debug.field("permit", permit),
            State::Failed { failure } => debug.field("failure", failure),
        };
        debug.finish_non_exhaustive()
    }
}

pin_project! {
    /// The response future of [`KeyedLimit`](super::KeyedLimit).
    ///
    /// It waits for a permit from the request's limiter, then calls the inner
    /// service that `poll_ready` made ready and continues as a
    /// [`ResponseFuture`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it while it waits for the permit consumes nothing from the
    /// limiter and drops the ready inner service and the unsent request.
    /// Dropping it later behaves as dropping a [`ResponseFuture`].
    pub struct KeyedResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: KeyedState<S, Req, S::Future>,
    }
}

pin_project! {
    #[project = KeyedProjection]
    enum KeyedState<S, Req, F> {
        Admitting {
            admit: Admit,
            // Both are `Some` until the permit arrives.
            service: Option<S>,
            request: Option<Req>,
            release: Release,
        },
        Running {
            #[pin]
            future: ResponseFuture<F>,
        },
    }
}

impl<S: Service<Req>, Req> KeyedResponseFuture<S, Req> {
    pub(crate) fn new(admit: Admit, service: S, request: Req, release: Release) -> Self {
        let state = KeyedState::Admitting {
            admit,
            service: Some(service),
            request: Some(request),
            release,
        };
        Self { state }
    }

    pub(crate) fn failed(failure: Failure) -> Self {
        let state = KeyedState::Running {
            future: ResponseFuture::failed(failure),
        };
        Self { state }
    }
}

impl<S, Req, B> Future for KeyedResponseFuture<S, Req>
where
    S: Service<Req, Response = http::Response<B>>,
    B: http_body::Body,
{
    type Output = Result<http::Response<ResponseBody<B>>, Error<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let future = match state.as_mut().project() {
                KeyedProjection::Running { future } => return future.poll(cx),
                KeyedProjection::Admitting {
                    admit,
                    service,
                    request,
                    release,
                } => match ready!(Pin::new(admit).poll(cx)) {
                    Ok(permit) => {
                        let (mut service, request) = service.take().zip(request.take()).expect(
                            "keyed response future holds its service and request until admitted",
                        );
                        ResponseFuture::new(service.call(request), permit, *release)
                    }
                    Err(rejection) => {
                        tracing::trace!(%rejection, "request rejected by the limiter");
                        ResponseFuture::failed(Failure::Rejected(rejection))
                    }
                },
            };
            state.set(KeyedState::Running { future });
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for KeyedResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("KeyedResponseFuture");
        match &self.state {
            KeyedState::Admitting { admit, .. } => debug.field("admit", admit),
            KeyedState::Running { future } => debug.field("future", future),
        };
        debug.finish_non_exhaustive()
    }
}
