//! Errors returned by the limiter.

use std::time::Duration;

/// An error from a waiting acquire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The weight is 0 or larger than the policy can ever grant at once.
    #[error(
        "weight must be between 1 and {capacity} (the largest grant this limiter allows), \
         got {weight}; split a heavier request into parts of at most {capacity}"
    )]
    InvalidWeight {
        /// The weight requested.
        weight: u32,
        /// The largest weight the policy can grant.
        capacity: u32,
    },
    /// The predicted wait already passes the deadline, so the acquire failed
    /// without waiting.
    #[error(
        "predicted wait of {predicted_wait:?} exceeds the timeout of {timeout:?}; \
         retry later or allow a longer timeout"
    )]
    DeadlineUnreachable {
        /// The shortest wait the rate limit and the queue allow.
        predicted_wait: Duration,
        /// The timeout given.
        timeout: Duration,
    },
    /// The deadline passed while waiting. Nothing was consumed.
    #[error("acquire timed out after {timeout:?}; nothing was consumed")]
    TimedOut {
        /// The timeout given.
        timeout: Duration,
    },
}

/// The reason [`Limiter::try_acquire`](crate::Limiter::try_acquire) returned
/// no permit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// The rate limit has no room now; a retry after `retry_after` can
    /// succeed if nothing else takes the capacity first.
    #[error("rate limited; retry in {retry_after:?}")]
    RateLimited {
        /// The earliest wait after which the same request can be granted.
        retry_after: Duration,
    },
    /// All concurrency slots are taken; a retry can succeed once a permit is
    /// dropped.
    #[error("all {cap} concurrency slots are in use; retry after a permit is dropped")]
    ConcurrencyLimited {
        /// The concurrency cap.
        cap: u32,
    },
    /// Other requests are queued and are served first.
    #[error("requests queued ahead: {waiting}; retry after they are served{}", RetryHint(*retry_after))]
    Queued {
        /// The number of queued requests.
        waiting: usize,
        /// A lower bound on the wait when the rate limit sets one: its time to
        /// serve the queue and this request. `None` when the rate limit would
        /// allow them now, so the wait depends on requests in flight
        /// finishing.
        retry_after: Option<Duration>,
    },
    /// The weight is 0 or larger than the policy can ever grant at once.
    #[error(
        "weight must be between 1 and {capacity} (the largest grant this limiter allows), \
         got {weight}; split a heavier request into parts of at most {capacity}"
    )]
    InvalidWeight {
        /// The weight requested.
        weight: u32,
        /// The largest weight the policy can grant.
        capacity: u32,
    },
}

/// Formats an optional lower bound on a wait for an error message.
struct RetryHint(Option<Duration>);

impl std::fmt::Display for RetryHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(wait) => write!(f, ", in {wait:?} at the earliest"),
            None => Ok(()),
        }
    }
}

impl TryAcquireError {
    /// Returns how long to wait before a retry can succeed, when the rate
    /// limit determines it. `None` means the wait depends on other requests
    /// finishing.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TryAcquireError::RateLimited { retry_after } => Some(*retry_after),
            TryAcquireError::Queued { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
