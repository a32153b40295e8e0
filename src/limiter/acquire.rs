//! The future that waits for a permit.

use std::borrow::Borrow;
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
    waiter: Waiter<&'a Limiter>,
}

impl<'a> Acquire<'a> {
    /// Creates a future for `weight` units, which the caller has checked.
    pub(crate) fn new(limiter: &'a Limiter, weight: u32) -> Self {
        Self {
            waiter: Waiter::new(limiter, weight),
        }
    }
}

impl Future for Acquire<'_> {
    type Output = Permit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        self.get_mut().waiter.poll_permit(cx)
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.waiter.fmt("Acquire", f)
    }
}

/// A future like [`Acquire`] that owns a handle to its limiter, so it is
/// `'static` and can be stored, for example in a tower service between
/// `poll_ready` and `call`.
///
/// Returned by [`Limiter::acquire_owned`].
///
/// # Cancel safety
///
/// The same as [`Acquire`]: dropping it consumes nothing.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned {
    waiter: Waiter<Limiter>,
}

impl AcquireOwned {
    /// Creates a future for `weight` units, which the caller has checked.
    pub(crate) fn new(limiter: Limiter, weight: u32) -> Self {
        Self {
            waiter: Waiter::new(limiter, weight),
        }
    }
}

impl Future for AcquireOwned {
    type Output = Permit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        self.get_mut().waiter.poll_permit(cx)
    }
}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.waiter.fmt("AcquireOwned", f)
    }
}

/// The state machine behind both acquire futures.
struct Waiter<L: Borrow<Limiter>> {
    limiter: L,
    weight: u32,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Queued(u64),
    Done,
}

impl<L: Borrow<Limiter>> Waiter<L> {
    fn new(limiter: L, weight: u32) -> Self {
        Self {
            limiter,
            weight,
            state: State::Start,
        }
    }

    fn permit(&mut self) -> Permit {
        self.state = State::Done;
        Permit::new(self.limiter.borrow().clone(), self.weight)
    }

    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<Permit> {
        let core = &self.limiter.borrow().core;
        match self.state {
            State::Start => {
                if core.try_direct(self.weight, core.clock.now()).is_ok() {
                    tracing::trace!(weight = self.weight, "granted without waiting");
                    return Poll::Ready(self.permit());
                }
                let (id, status) = core.enqueue(self.weight, cx.waker().clone());
                match status {
                    Status::Granted => Poll::Ready(self.permit()),
                    Status::Waiting => {
                        tracing::trace!(weight = self.weight, id, "queued");
                        self.state = State::Queued(id);
                        Poll::Pending
                    }
                }
            }
            State::Queued(id) => match core.poll_status(id, cx.waker()) {
                Status::Granted => Poll::Ready(self.permit()),
                Status::Waiting => Poll::Pending,
            },
            State::Done => panic!("acquire future polled after it completed"),
        }
    }

    fn fmt(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("weight", &self.weight)
            .field("state", &self.state)
            .finish()
    }
}

impl<L: Borrow<Limiter>> Drop for Waiter<L> {
    fn drop(&mut self) {
        if let State::Queued(id) = self.state {
            self.limiter.borrow().core.cancel(id, self.weight);
        }
    }
}
