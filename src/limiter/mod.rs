//! The limiter for one credential: concurrency slots, a rate policy and a
//! FIFO queue.

mod acquire;
mod core;
mod error;
mod permit;
mod slots;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

pub use acquire::{Acquire, AcquireOwned};
pub use error::{AcquireError, TryAcquireError};
pub use permit::Permit;

use self::core::{lock, Core, Rate, Settings};
use crate::clock::{duration_to_nanos, Clock, TokioClock};
use crate::policy::{Margin, Policy};
use crate::RateLimit;

/// Paces the requests made with one credential so that they stay within its
/// [`RateLimit`].
///
/// A `Limiter` is cheap to clone; clones, and every task that uses them,
/// share one limit. Each request takes a concurrency slot (when
/// `max_concurrent_requests` is non-zero) and then a rate grant under the
/// chosen [`Policy`], and holds the slot in a [`Permit`] until it drops.
///
/// Waiting needs a tokio runtime with its time driver when the limiter uses
/// the default [`TokioClock`]: without one, a request that must wait never
/// completes. [`try_acquire`](Self::try_acquire) never waits and works
/// anywhere.
///
/// # Fairness
///
/// Requests are granted in arrival order. A request that cannot be granted
/// at once joins a FIFO queue, and nothing behind the head is granted before
/// it, so a heavy request at the head is not starved by light ones. While
/// anything is queued, new requests queue too. One timer serves the whole
/// queue, so N waiters cost about N wakeups.
///
/// # Accuracy
///
/// Time is whole nanoseconds from the limiter's [`Clock`]. With the
/// [`StrictWindow`](Policy::StrictWindow) policy at most `allowed_requests`
/// units start in any half-open window `[t, t + interval + guard)`, where the
/// guard comes from the [`Margin`]. With a [`TokenBucket`](Policy::TokenBucket)
/// of burst `b`, fewer than `allowed_requests + b` start in any such window.
/// Waits are rounded up and never reported as zero while one remains. A clock
/// that steps backwards makes the limiter admit less, never more.
///
/// The token bucket rounds its emission interval `interval / allowed` up to a
/// whole nanosecond, so its sustained rate never exceeds the limit. The cost
/// is that a bucket emptied at once is full again up to `burst - 1`
/// nanoseconds after one interval, instead of exactly then. The strict window
/// has no such rounding.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Limiter, RateLimit};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // 10 requests per second, at most 2 in flight.
/// let limiter = Limiter::new(RateLimit::new(10, 1000, 2)?);
/// let start = tokio::time::Instant::now();
/// for _ in 0..11 {
///     let _permit = limiter.acquire().await;
/// }
/// // The 11th waited for the first to leave the window (1 s plus the
/// // default 10 ms margin).
/// assert_eq!(start.elapsed(), Duration::from_millis(1010));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Limiter {
    core: Arc<Core>,
}

impl Limiter {
    /// Creates a limiter for `limit` with the strict window policy, the
    /// default margin and tokio's clock.
    pub fn new(limit: RateLimit) -> Self {
        Self::builder(limit).build()
    }

    /// Returns a builder to choose the policy, margin or clock.
    pub fn builder(limit: RateLimit) -> LimiterBuilder {
        LimiterBuilder {
            limit,
            policy: Policy::default(),
            margin: Margin::default(),
            clock: None,
        }
    }

    /// Waits for a permit for one request.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future consumes nothing (see [`Acquire`]).
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire::new(self, 1)
    }

    /// Returns a `'static` future that waits for a permit for `weight`
    /// units, holding its own handle to the limiter.
    ///
    /// # Errors
    ///
    /// Returns [`AcquireError::InvalidWeight`] at once, as
    /// [`acquire_weighted`](Self::acquire_weighted) does.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future consumes nothing.
    pub fn acquire_owned(&self, weight: u32) -> Result<AcquireOwned, AcquireError> {
        self.check_weight(weight)?;
        Ok(AcquireOwned::new(self.clone(), weight))
    }

    /// Waits for a permit for a request that costs `weight` units of the
    /// rate limit, such as a batch or a GraphQL query with a known cost. The
    /// permit holds one concurrency slot whatever its weight.
    ///
    /// # Errors
    ///
    /// Returns [`AcquireError::InvalidWeight`] at once when `weight` is 0 or
    /// more than the policy can ever grant: `allowed_requests` for the strict
    /// window (after any [`Margin::Share`]), the burst for a token bucket.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future consumes nothing.
    pub async fn acquire_weighted(&self, weight: u32) -> Result<Permit, AcquireError> {
        self.check_weight(weight)?;
        Ok(Acquire::new(self, weight).await)
    }

    /// Waits for a permit for `weight` units, but no longer than `timeout`.
    ///
    /// When the rate limit alone already makes the wait longer than
    /// `timeout`, counting the queue ahead, it fails at once without
    /// queueing. Otherwise it waits at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`AcquireError::InvalidWeight`] as for
    /// [`acquire_weighted`](Self::acquire_weighted);
    /// [`AcquireError::DeadlineUnreachable`] when the predicted wait passes
    /// the deadline; [`AcquireError::TimedOut`] when the deadline passed
    /// while waiting. Neither consumes anything.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future consumes nothing.
    pub async fn acquire_timeout(
        &self,
        weight: u32,
        timeout: Duration,
    ) -> Result<Permit, AcquireError> {
        self.check_weight(weight)?;
        let clock = &self.core.clock;
        let now = clock.now();
        let deadline = now.saturating_add(duration_to_nanos(timeout));

        let (queued_weight, _) = self.core.queued();
        let ready_at = self
            .core
            .rate
            .forecast(now, queued_weight + u64::from(weight));
        if ready_at > deadline {
            return Err(AcquireError::DeadlineUnreachable {
                predicted_wait: Duration::from_nanos(ready_at - now),
                timeout,
            });
        }

        let mut acquire = pin!(Acquire::new(self, weight));
        let mut expiry = clock.sleep_until(deadline);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(permit) = acquire.as_mut().poll(cx) {
                return Poll::Ready(Ok(permit));
            }
            if expiry.as_mut().poll(cx).is_ready() {
                tracing::trace!(weight, ?timeout, "acquire timed out");
                return Poll::Ready(Err(AcquireError::TimedOut { timeout }));
            }
            Poll::Pending
        })
        .await
    }

    /// Takes a permit for one request if the limiter can grant it now.
    ///
    /// # Errors
    ///
    /// Returns a [`TryAcquireError`] with the reason no permit was granted
    /// and, where the rate limit determines it, the earliest retry time.
    pub fn try_acquire(&self) -> Result<Permit, TryAcquireError> {
        self.try_acquire_weighted(1)
    }

    /// Takes a permit for `weight` units if the limiter can grant it now.
    ///
    /// It never waits. While requests are queued it returns
    /// [`TryAcquireError::Queued`] instead of taking capacity ahead of them.
    /// A request that joins the queue at the same instant may still be
    /// overtaken, as with any two concurrent arrivals.
    ///
    /// # Errors
    ///
    /// Returns a [`TryAcquireError`] with the reason no permit was granted
    /// and, where the rate limit determines it, the earliest retry time.
    pub fn try_acquire_weighted(&self, weight: u32) -> Result<Permit, TryAcquireError> {
        if let Err(AcquireError::InvalidWeight { weight, capacity }) = self.check_weight(weight) {
            return Err(TryAcquireError::InvalidWeight { weight, capacity });
        }
        let core = &self.core;
        let now = core.clock.now();

        // The queue lock is taken only when the lock-free count shows waiters,
        // so a grant that needs no wait stays lock-free.
        if core.slots.waiters() > 0 {
            let (queued_weight, waiting) = core.queued();
            if waiting > 0 {
                let ready_at = core.rate.forecast(now, queued_weight + u64::from(weight));
                return Err(TryAcquireError::Queued {
                    waiting,
                    retry_after: (ready_at > now).then(|| Duration::from_nanos(ready_at - now)),
                });
            }
        }

        match core.try_direct(weight, now) {
            Ok(()) => Ok(Permit::new(self.clone(), weight)),
            Err(Some(at)) => Err(TryAcquireError::RateLimited {
                retry_after: Duration::from_nanos(at.saturating_sub(now).max(1)),
            }),
            Err(None) if core.slots.waiters() > 0 => Err(TryAcquireError::Queued {
                waiting: core.slots.waiters(),
                retry_after: None,
            }),
            Err(None) => Err(TryAcquireError::ConcurrencyLimited {
                cap: core.slots.cap(),
            }),
        }
    }

    /// Runs `future` under a permit for one request, releasing the slot when
    /// it completes.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future before the permit is granted consumes
    /// nothing; dropping it later releases the slot.
    pub async fn run<F: Future>(&self, future: F) -> F::Output {
        let _permit = self.acquire().await;
        future.await
    }

    /// Returns the current rate limit.
    pub fn rate_limit(&self) -> RateLimit {
        *lock(&self.core.settings.limit)
    }

    /// Changes the rate limit while the limiter is in use.
    ///
    /// - Requests that already started keep counting in their window, so a
    ///   change never opens a fresh burst.
    /// - A raised limit admits within one new interval and never locks the
    ///   limiter out; a lowered one applies at once.
    /// - Capacity earned while idle was earned at the old rate and stays
    ///   capped as before. A token bucket keeps its configured burst, capped
    ///   at the new `allowed_requests`.
    /// - A lower concurrency cap cancels nothing in flight. It admits nothing
    ///   new until in-flight requests drop below it. A higher cap admits
    ///   queued requests at once.
    /// - Queued requests keep their order. One queued with a weight above the
    ///   new capacity is granted as a full-capacity request.
    pub fn set_rate_limit(&self, limit: RateLimit) {
        let mut current = lock(&self.core.settings.limit);
        if *current == limit {
            return;
        }
        warn_if_seconds_as_milliseconds(&limit);
        let (allowed, interval) = self.core.settings.margin.apply(&limit);
        let core = &self.core;
        core.rate.reconfigure(
            core.clock.now(),
            allowed,
            interval,
            self.core.settings.policy,
        );
        self.core
            .settings
            .capacity
            .store(core.rate.capacity(), Ordering::Relaxed);
        core.slots.set_cap(limit.max_concurrent_requests());
        tracing::debug!(from = %*current, to = %limit, "rate limit changed");
        *current = limit;
        drop(current);

        core.limits_changed();
    }

    /// Reports whether the limiter holds no state worth keeping: nothing in
    /// flight, nothing queued, and no past grant that still limits new ones.
    /// An idle limiter behaves like a new one under its current limit. Only a
    /// later change to a longer interval tells them apart: the idle limiter
    /// still counts its past grants inside the longer window, as the
    /// provider does, and a new one cannot.
    pub fn is_idle(&self) -> bool {
        let core = &self.core;
        core.slots.in_flight() == 0
            && core.slots.waiters() == 0
            && core.rate.is_idle(core.clock.now())
    }

    /// Returns the admission policy.
    pub fn policy(&self) -> Policy {
        self.core.settings.policy
    }

    /// Returns the safety margin.
    pub fn margin(&self) -> Margin {
        self.core.settings.margin
    }

    /// Returns the largest weight a single request can be granted.
    pub fn capacity(&self) -> u32 {
        self.core.settings.capacity.load(Ordering::Relaxed)
    }

    /// Returns the number of concurrency slots in use, including the one the
    /// queue head may hold while it waits for its rate grant.
    pub fn in_flight(&self) -> u32 {
        self.core.slots.in_flight()
    }

    /// Returns the number of queued requests.
    pub fn waiting(&self) -> usize {
        self.core.slots.waiters()
    }

    /// Returns the number of live handles to this limiter: clones, permits
    /// and owned acquire futures each hold one, and the queue's timer holds
    /// one while it fires. The read need not synchronize with the drops that
    /// lowered the count, so a caller that acts on a count of 1 issues an
    /// acquire fence first to observe what the dropped handles did.
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.core)
    }

    fn check_weight(&self, weight: u32) -> Result<(), AcquireError> {
        let capacity = self.capacity();
        if weight == 0 || weight > capacity {
            return Err(AcquireError::InvalidWeight { weight, capacity });
        }
        Ok(())
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("rate_limit", &self.rate_limit())
            .field("policy", &self.core.settings.policy)
            .field("margin", &self.core.settings.margin)
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .field("window_entries", &self.core.rate.log_len())
            .finish()
    }
}

/// Configures a [`Limiter`].
///
/// # Examples
///
/// ```
/// use std::num::NonZeroU32;
/// use tollgate::{Limiter, Margin, Policy, RateLimit};
///
/// # fn main() -> Result<(), tollgate::ValidationError> {
/// let burst = NonZeroU32::new(5).unwrap();
/// let limiter = Limiter::builder(RateLimit::new(100, 10_000, 0)?)
///     .policy(Policy::token_bucket(burst))
///     .margin(Margin::None)
///     .build();
/// assert_eq!(limiter.capacity(), 5);
/// # Ok(())
/// # }
/// ```
pub struct LimiterBuilder {
    limit: RateLimit,
    policy: Policy,
    margin: Margin,
    clock: Option<Arc<dyn Clock>>,
}

impl LimiterBuilder {
    /// Sets the admission policy (default: [`Policy::StrictWindow`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the safety margin (default: [`Margin::Auto`]).
    pub fn margin(mut self, margin: Margin) -> Self {
        self.margin = margin;
        self
    }

    /// Sets the clock (default: a new [`TokioClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Builds the limiter.
    pub fn build(self) -> Limiter {
        warn_if_seconds_as_milliseconds(&self.limit);
        let (allowed, interval) = self.margin.apply(&self.limit);
        let rate = Rate::new(self.policy, allowed, interval);
        let capacity = rate.capacity();
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(TokioClock::new()) as Arc<dyn Clock>);
        let settings = Settings {
            limit: Mutex::new(self.limit),
            policy: self.policy,
            margin: self.margin,
            capacity: AtomicU32::new(capacity),
        };
        let core = Core::new(rate, self.limit.max_concurrent_requests(), clock, settings);
        tracing::debug!(limit = %self.limit, policy = ?self.policy, margin = ?self.margin, "limiter created");

        Limiter { core }
    }
}

impl fmt::Debug for LimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterBuilder")
            .field("limit", &self.limit)
            .field("policy", &self.policy)
            .field("margin", &self.margin)
            .field("clock", &self.clock)
            .finish()
    }
}

/// Logs one warning per distinct limit when an interval under one second
/// allows more than 1,000 requests per second: such limits are most often
/// seconds written where the API expects milliseconds.
fn warn_if_seconds_as_milliseconds(limit: &RateLimit) {
    static WARNED: Mutex<Option<HashSet<RateLimit>>> = Mutex::new(None);

    let interval = limit.interval_ms();
    let per_second = u64::from(limit.allowed_requests()) * 1000 / interval;
    if interval >= 1000 || per_second <= 1000 {
        return;
    }

    let mut warned = lock(&WARNED);
    let warned = warned.get_or_insert_with(HashSet::new);
    if warned.len() < 1024 && warned.insert(*limit) {
        tracing::warn!(
            allowed_requests = limit.allowed_requests(),
            interval_ms = interval,
            per_second,
            "rate limit allows {per_second} requests per second; `interval` is in \
             milliseconds, so an interval of {interval} may be seconds written as milliseconds"
        );
    }
}
