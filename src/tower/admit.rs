//! Admission of a request: the options that the layers and the middleware
//! share, and the future that waits for a permit under them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::Rejection;
use crate::{AcquireError, AcquireOwned, Limiter, Permit};

/// The moment a request's concurrency slot returns to its limiter.
///
/// The rate grant is never returned: it counts from the moment the permit
/// was issued, whichever variant is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Release {
    /// When the response body has been read to the end, has failed, or has
    /// been dropped. This is the default, because the provider counts a
    /// request as in flight until it has sent the whole body.
    #[default]
    AtBodyEnd,
    /// As soon as the response headers arrive, or the request fails.
    AtHeaders,
}

/// The admission settings of one layer or middleware.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// The maximum wait for a permit. `None` means no maximum.
    pub(crate) max_wait: Option<Duration>,
    pub(crate) release: Release,
}

type BoundedAcquire = Pin<Box<dyn Future<Output = Result<Permit, AcquireError>> + Send>>;

/// A future that resolves to a permit for one request, or to the reason it
/// was rejected.
///
/// Dropping it before it completes consumes nothing from the limiter, as for
/// [`AcquireOwned`].
pub(crate) struct Admit {
    state: State,
}

enum State {
    /// No maximum wait.
    Waiting(AcquireOwned),
    /// A non-zero maximum wait, through [`Limiter::acquire_timeout`].
    Bounded(BoundedAcquire),
    /// The outcome is known; `None` once it has been returned.
    Done(Option<Result<Permit, Rejection>>),
}

impl Admit {
    /// Starts admitting one request to `limiter`. With a maximum wait of
    /// zero the permit is taken or rejected here, before the first poll.
    pub(crate) fn new(limiter: &Limiter, max_wait: Option<Duration>) -> Self {
        let state = match max_wait {
            None => match limiter.acquire_owned(1) {
                Ok(acquire) => State::Waiting(acquire),
                Err(error) => State::Done(Some(Err(error.into()))),
            },
            Some(Duration::ZERO) => State::Done(Some(limiter.try_acquire().map_err(Into::into))),
            Some(timeout) => {
                let limiter = limiter.clone();
                State::Bounded(Box::pin(async move {
                    limiter.acquire_timeout(1, timeout).await
                }))
            }
        };
        Self { state }
    }
}

impl Future for Admit {
    type Output = Result<Permit, Rejection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Waiting(acquire) => Pin::new(acquire).poll(cx).map(Ok),
            State::Bounded(acquire) => acquire.as_mut().poll(cx).map_err(Into::into),
            State::Done(outcome) => match outcome.take() {
                Some(outcome) => Poll::Ready(outcome),
                None => panic!("admission future polled after it completed"),
            },
        }
    }
}

impl fmt::Debug for Admit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting(_) => "waiting",
            State::Bounded(_) => "waiting with a maximum wait",
            State::Done(Some(Ok(_))) => "granted",
            State::Done(Some(Err(_))) => "rejected",
            State::Done(None) => "done",
        };
        f.debug_struct("Admit").field("state", &state).finish()
    }
}
