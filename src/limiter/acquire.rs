//! The future that waits for a permit.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::core::Status;
use super::{Limiter, Permit};

/// A future that resolves to a [`Permit`] once the limiter grants it.
///
/// Returned by [`Limiter::acquire`]. It does nothing until polled: the first
/// poll takes capacity directly when nobody is queued, or else joins the
/// queue.
///
/// # Cancel safety
///
/// Dropping it before it completes consumes nothing: a queued request leaves
/// the queue, and one granted in the instant before the drop returns its
/// concurrency slot and its rate grant (the token bucket returns the grant
/// only if no later grant followed it). The next waiter takes its place with
/// no gap.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    limiter: &'a Limiter,
    weight: u32,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Queued(u64),
    Done,
}

impl<'a> Acquire<'a> {
    /// The caller has checked that `weight` is grantable.
    pub(crate) fn new(limiter: &'a Limiter, weight: u32) -> Self {
        Self {
            limiter,
            weight,
            state: State::Start,
        }
    }

    fn permit(&mut self) -> Permit {
        self.state = State::Done;
        Permit::new(self.limiter.clone(), self.weight)
    }
}

impl Future for Acquire<'_> {
    type Output = Permit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let this = self.get_mut();
        let core = &this.limiter.core;
        match this.state {
            State::Start => {
                if core.try_direct(this.weight).is_ok() {
                    tracing::trace!(weight = this.weight, "granted without waiting");
                    return Poll::Ready(this.permit());
                }
                let (id, status) = core.enqueue(this.weight, cx.waker().clone());
                match status {
                    Status::Granted => Poll::Ready(this.permit()),
                    Status::Waiting => {
                        tracing::trace!(weight = this.weight, id, "queued");
                        this.state = State::Queued(id);
                        Poll::Pending
                    }
                }
            }
            State::Queued(id) => match core.poll_status(id, cx.waker()) {
                Status::Granted => Poll::Ready(this.permit()),
                Status::Waiting => Poll::Pending,
            },
            State::Done => panic!("`Acquire` polled after it completed"),
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if let State::Queued(id) = self.state {
            self.limiter.core.cancel(id, self.weight);
        }
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("weight", &self.weight)
            .field("state", &self.state)
            .finish()
    }
}
