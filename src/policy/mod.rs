//! Admission arithmetic over integer time: the GCRA token bucket and the
//! strict rolling window.
//!
//! Both policies work in whole nanoseconds since the limiter's epoch and
//! know nothing of queues, tasks or I/O. A decision is either a grant or the
//! earliest time at which the same request could be granted if nothing else
//! changed. Times passed in need not be monotonic: an earlier `now` than one
//! seen before only makes a policy admit less.

mod gcra;
mod window;

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

pub(crate) use gcra::Gcra;
pub(crate) use window::WindowLog;

use crate::clock::duration_to_nanos;
use crate::RateLimit;

/// The admission rule a limiter enforces.
///
/// | policy | guarantee for `allowed_requests = A` per `interval = I` |
/// |---|---|
/// | [`StrictWindow`](Policy::StrictWindow) | at most `A` units start in any half-open window `[t, t + I)` |
/// | [`TokenBucket`](Policy::TokenBucket) with burst `b` | sustained `A` per `I`; at most `A + b - 1` start in any window of length `I` |
///
/// The strict window is the default because a provider that counts requests
/// in a rolling window rejects the extra `b - 1` requests that a token bucket
/// lets through when a full bucket meets a fresh window. A token bucket with
/// burst 1 spaces grants evenly, `I / A` apart, and never exceeds the window
/// bound either, but it cannot use the full limit after an idle period.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Policy {
    /// A rolling window that remembers recent grants.
    ///
    /// After an idle interval the full `allowed_requests` are available at
    /// once, and a greedy caller sustains the limit. Memory: one 16-byte
    /// entry per distinct grant time still inside the window, so at most
    /// `allowed_requests` entries; grants in the same nanosecond share one.
    #[default]
    StrictWindow,
    /// A token bucket (the generic cell rate algorithm) holding up to `burst`
    /// units, refilled at `allowed_requests` per `interval`.
    ///
    /// A grant that needs no wait is one compare-and-swap on a single
    /// `AtomicU64`, with no lock and no allocation. Memory: 8 bytes of state.
    /// With `burst > 1`, up to `2 * allowed_requests - 1` requests can start
    /// in one window when `burst = allowed_requests`: a full bucket at the
    /// end of one window plus the refill during the next.
    TokenBucket {
        /// The largest weight that can be granted at once. The limiter caps
        /// it at `allowed_requests`, also after a change of limit, so the
        /// window bound above holds with `b <= allowed_requests`.
        burst: NonZeroU32,
    },
}

impl Policy {
    /// Returns a token bucket policy with the given burst.
    pub fn token_bucket(burst: NonZeroU32) -> Self {
        Policy::TokenBucket { burst }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::StrictWindow => f.write_str("StrictWindow"),
            Policy::TokenBucket { burst } => {
                f.debug_struct("TokenBucket").field("burst", burst).finish()
            }
        }
    }
}

/// A safety margin that keeps pacing below the provider's limit.
///
/// A provider sees each request some time after the limiter released it, and
/// not always in release order. Pacing exactly at the limit therefore draws
/// 429s from a strict provider whenever that delay varies by more than the
/// slack in its window.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Margin {
    /// Adds `interval / 100` to the interval, clamped to between 5 ms and
    /// 1 s: 10 ms on a one-second limit, 1 s on an hourly one. This costs
    /// at most 1% of the limit for intervals of 500 ms and longer, and
    /// absorbs that much variation in the delay between a request's release
    /// and its arrival at the provider.
    #[default]
    Auto,
    /// Paces at exactly the configured limit.
    None,
    /// Adds a fixed guard time to the interval.
    Guard(Duration),
    /// Uses only this percentage of `allowed_requests`, rounded down but at
    /// least 1. Values outside 1 to 100 are clamped to that range.
    Share(u8),
}

impl Margin {
    /// Returns the `allowed_requests` and interval that a limiter with this
    /// margin enforces for `limit`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Margin, RateLimit};
    ///
    /// let limit = RateLimit::new(100, 1000, 0)?;
    /// assert_eq!(Margin::Auto.effective_limit(&limit), (100, Duration::from_millis(1010)));
    /// assert_eq!(Margin::Share(90).effective_limit(&limit), (90, Duration::from_secs(1)));
    /// # Ok::<(), tollgate::ValidationError>(())
    /// ```
    pub fn effective_limit(self, limit: &RateLimit) -> (u32, Duration) {
        let (allowed, interval) = self.apply(limit);
        (allowed, Duration::from_nanos(interval))
    }

    /// Returns the effective `(allowed_requests, interval in nanoseconds)`
    /// that the policy enforces for `limit`.
    pub(crate) fn apply(self, limit: &RateLimit) -> (u32, u64) {
        let allowed = limit.allowed_requests();
        let interval = duration_to_nanos(limit.interval());
        match self {
            Margin::Auto => {
                let guard = (interval / 100).clamp(5_000_000, 1_000_000_000);
                (allowed, interval.saturating_add(guard))
            }
            Margin::None => (allowed, interval),
            Margin::Guard(guard) => (allowed, interval.saturating_add(duration_to_nanos(guard))),
            Margin::Share(percent) => {
                let percent = u64::from(percent.clamp(1, 100));
                let share = u64::from(allowed) * percent / 100;
                (u32::try_from(share.max(1)).unwrap_or(allowed), interval)
            }
        }
    }
}

impl fmt::Debug for Margin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Margin::Auto => f.write_str("Auto"),
            Margin::None => f.write_str("None"),
            Margin::Guard(guard) => f.debug_tuple("Guard").field(guard).finish(),
            Margin::Share(percent) => write!(f, "Share({percent}%)"),
        }
    }
}

/// The outcome of asking a policy for `weight` units at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The units were granted; the value identifies the grant for a refund.
    Granted(Stamp),
    /// Nothing was granted; the same request succeeds at this time at the
    /// earliest, always later than `now`.
    NotBefore(u64),
}

/// The record a policy needs to take back a grant that was never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stamp {
    /// A token bucket grant: the theoretical arrival time before and after.
    Bucket { before: u64, after: u64 },
    /// A window grant: the time it was recorded at.
    Window { at: u64 },
}

/// Rounds the quotient of two integers up.
pub(crate) fn div_ceil(numerator: u64, denominator: u64) -> u64 {
    numerator.div_ceil(denominator.max(1))
}
