//! Per-key bookkeeping of the mock provider: arrival times, the sliding-window
//! and concurrency decisions, and the counters behind a [`KeyReport`].
//!
//! The ledger keeps every arrival as an offset from the provider's start, in
//! arrival order. For a request arriving at `now`, the windows
//! `[t, t + interval)` that contain `now` are those with
//! `now - interval < t <= now`. The fullest of them contains exactly the
//! earlier arrivals in `(now - interval, now]`, so one binary search over the
//! sorted offsets decides the request. The same count, taken at each
//! arrival, also gives the fullest window over the whole run, because the
//! count taken at any window's latest arrival includes every other arrival of
//! that window.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::report::KeyReport;
use crate::model::RateLimit;

/// The bookkeeping of one credential.
#[derive(Debug)]
pub(crate) struct KeyLedger {
    limit: RateLimit,
    record_count: usize,
    started: Instant,
    latency: Duration,
    /// Arrival offsets from `started`, nondecreasing because the clock is read
    /// while the ledger's lock is held.
    arrivals: Vec<Duration>,
    accepted: u64,
    rejected_by_window: u64,
    rejected_by_concurrency: u64,
    worst_window: u64,
    in_flight: u32,
    peak_in_flight: u32,
}

/// The reason a request was rejected with 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectReason {
    /// Counting the request would put more than `allowed_requests` arrivals
    /// in one window.
    Window,
    /// Accepting the request would put more than `max_concurrent_requests`
    /// requests in flight.
    Concurrency,
}

/// A 429 decision with the wait that the `Retry-After` header announces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejection {
    pub(crate) reason: RejectReason,
    pub(crate) retry_after: Duration,
}

/// The values that a per-request trace log reports about a decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecisionContext {
    /// Arrivals in the window that ends at this request, this one included.
    pub(crate) in_window: u64,
    /// Accepted requests in flight after the decision.
    pub(crate) in_flight: u32,
}

impl KeyLedger {
    /// Creates an empty ledger for a credential with `record_count` records.
    pub(crate) fn new(
        limit: RateLimit,
        record_count: usize,
        started: Instant,
        latency: Duration,
    ) -> Self {
        Self {
            limit,
            record_count,
            started,
            latency,
            arrivals: Vec::new(),
            accepted: 0,
            rejected_by_window: 0,
            rejected_by_concurrency: 0,
            worst_window: 0,
            in_flight: 0,
            peak_in_flight: 0,
        }
    }

    /// Returns how many records this credential can page through.
    pub(crate) fn record_count(&self) -> usize {
        self.record_count
    }

    /// Records an arrival at `now` and decides whether to accept it.
    ///
    /// Every arrival is recorded and counts toward later windows, whether it
    /// is accepted or rejected. An accepted request takes an in-flight slot
    /// that the caller must give back with [`KeyLedger::release`].
    pub(crate) fn admit(&mut self, now: Instant) -> (Result<(), Rejection>, DecisionContext) {
        let at = now.saturating_duration_since(self.started);
        let interval = self.limit.interval();

        // Earlier arrivals at or before `now - interval` are outside every
        // window that contains `now`.
        let window_start = self
            .arrivals
            .partition_point(|&earlier| at.saturating_sub(earlier) >= interval);
        self.arrivals.push(at);
        let in_window = self.arrivals.len() - window_start;
        self.worst_window = self.worst_window.max(in_window as u64);

        let decision = self.decide(window_start, in_window, at);
        match decision {
            Ok(()) => {
                self.accepted += 1;
                self.in_flight += 1;
                self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
            }
            Err(Rejection {
                reason: RejectReason::Window,
                ..
            }) => self.rejected_by_window += 1,
            Err(Rejection {
                reason: RejectReason::Concurrency,
                ..
            }) => {
                self.rejected_by_concurrency += 1;
            }
        }

        let context = DecisionContext {
            in_window: in_window as u64,
            in_flight: self.in_flight,
        };
        (decision, context)
    }

    /// Applies the window rule, then the concurrency rule, to the arrival
    /// just pushed at offset `at`.
    fn decide(&self, window_start: usize, in_window: usize, at: Duration) -> Result<(), Rejection> {
        let allowed = self.limit.allowed_requests() as usize;
        if in_window > allowed {
            // The arrivals of this window stay counted, so a client that sends
            // nothing more is accepted again once only `allowed - 1` of them
            // remain in the window: when the `allowed`-th newest one leaves it.
            let leaving = self.arrivals[window_start + in_window - allowed];
            let retry_after = (leaving + self.limit.interval()).saturating_sub(at);
            return Err(Rejection {
                reason: RejectReason::Window,
                retry_after,
            });
        }

        let cap = self.limit.max_concurrent_requests();
        if cap > 0 && self.in_flight >= cap {
            // NOTE: the latency is when the oldest slot frees at the latest if
            // the client reads its responses promptly. It is a hint, not a
            // promise: other requests may take the slot first.
            return Err(Rejection {
                reason: RejectReason::Concurrency,
                retry_after: self.latency,
            });
        }

        Ok(())
    }

    /// Gives back the in-flight slot of an accepted request.
    pub(crate) fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Copies the counters into a report for `key`.
    pub(crate) fn report(&self, key: &str) -> KeyReport {
        let rejected_429 = self.rejected_by_window + self.rejected_by_concurrency;
        KeyReport {
            key: key.to_owned(),
            limit: self.limit,
            requests: self.accepted + rejected_429,
            accepted: self.accepted,
            rejected_429,
            rejected_by_window: self.rejected_by_window,
            rejected_by_concurrency: self.rejected_by_concurrency,
            worst_window: self.worst_window,
            peak_in_flight: self.peak_in_flight,
            in_flight: self.in_flight,
            arrivals: self.arrivals.clone(),
        }
    }
}

/// Locks a ledger, recovering it from a poisoned lock.
///
/// No code panics while holding a ledger's lock, and every update leaves the
/// counters consistent, so a poisoned lock still guards valid data.
pub(crate) fn lock(ledger: &Mutex<KeyLedger>) -> MutexGuard<'_, KeyLedger> {
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The in-flight slot of an accepted request, given back when dropped.
///
/// Dropping the slot also covers a client that disconnects while the request
/// is held, because hyper then drops the handler future that owns the slot.
#[derive(Debug)]
pub(crate) struct InFlightSlot {
    ledger: Arc<Mutex<KeyLedger>>,
}

impl InFlightSlot {
    /// Wraps the slot that [`KeyLedger::admit`] took on `ledger`.
    pub(crate) fn new(ledger: Arc<Mutex<KeyLedger>>) -> Self {
        Self { ledger }
    }
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        lock(&self.ledger).release();
    }
}
