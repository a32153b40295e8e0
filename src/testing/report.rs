//! Snapshots of the mock provider's bookkeeping: [`MockReport`] and
//! [`KeyReport`].

use std::time::Duration;

use crate::model::RateLimit;

/// A snapshot of what the mock provider saw, taken by
/// [`MockProvider::report`](super::MockProvider::report).
///
/// # Examples
///
/// ```
/// use tollgate::testing::MockProvider;
/// use tollgate::RateLimit;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let provider = MockProvider::builder()
///     .credential("key-a", RateLimit::new(5, 1000, 0)?)
///     .start()
///     .await?;
///
/// let report = provider.report();
/// assert_eq!(report.total_requests(), 0);
/// assert!(report.is_clean(), "{:?}", report.violations());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MockReport {
    /// One report per registered credential, sorted by key.
    pub keys: Vec<KeyReport>,
    /// Requests rejected with 401 because their `Authorization` header was
    /// missing, was not `Bearer KEY`, or named an unregistered key.
    pub unauthorized: u64,
}

/// The bookkeeping of one credential, as of the snapshot.
///
/// `requests == accepted + rejected_429` and
/// `rejected_429 == rejected_by_window + rejected_by_concurrency` always hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyReport {
    /// Credential key, in full, because the provider accepts only keys that
    /// the test registered.
    pub key: String,
    /// Rate limit that the provider enforced for this key.
    pub limit: RateLimit,
    /// Requests that carried this key, whatever their path or outcome.
    pub requests: u64,
    /// Requests that passed both the window and the concurrency rule.
    pub accepted: u64,
    /// Requests rejected with 429 Too Many Requests.
    pub rejected_429: u64,
    /// Requests rejected because they would have put more than
    /// `allowed_requests` arrivals in one window.
    pub rejected_by_window: u64,
    /// Requests rejected because `max_concurrent_requests` accepted requests
    /// were already in flight.
    pub rejected_by_concurrency: u64,
    /// Maximum number of arrivals, accepted or rejected, in any half-open
    /// window `[t, t + interval)`.
    pub worst_window: u64,
    /// Maximum number of accepted requests in flight at once.
    ///
    /// It never exceeds a non-zero `max_concurrent_requests`, because the
    /// provider rejects the excess: a client that breaks the cap shows up in
    /// `rejected_by_concurrency` instead.
    pub peak_in_flight: u32,
    /// Accepted requests still in flight when the snapshot was taken.
    pub in_flight: u32,
    /// Arrival time of every request with this key, as the offset from the
    /// provider's start on tokio's clock, in arrival order.
    pub arrivals: Vec<Duration>,
}

impl KeyReport {
    /// Lists how this key broke its rate limit, one sentence per problem.
    ///
    /// The list is empty when no request got a 429 and `worst_window` is at
    /// most `allowed_requests`.
    pub fn violations(&self) -> Vec<String> {
        let mut violations = Vec::new();
        let allowed = self.limit.allowed_requests();
        let interval_ms = self.limit.interval_ms();

        if self.rejected_by_window > 0 {
            violations.push(format!(
                "key {:?}: {} request(s) got 429 for exceeding {allowed} per {interval_ms} ms",
                self.key, self.rejected_by_window,
            ));
        }
        if self.rejected_by_concurrency > 0 {
            violations.push(format!(
                "key {:?}: {} request(s) got 429 for exceeding {} in flight",
                self.key,
                self.rejected_by_concurrency,
                self.limit.max_concurrent_requests(),
            ));
        }
        if self.worst_window > u64::from(allowed) {
            violations.push(format!(
                "key {:?}: {} requests arrived within one {interval_ms} ms window, \
                 but only {allowed} are allowed",
                self.key, self.worst_window,
            ));
        }
        violations
    }

    /// Returns `true` when [`KeyReport::violations`] is empty.
    pub fn is_clean(&self) -> bool {
        self.violations().is_empty()
    }
}

impl MockReport {
    /// Returns the report of `key`, or `None` when it was never registered.
    pub fn key(&self, key: &str) -> Option<&KeyReport> {
        self.keys.iter().find(|report| report.key == key)
    }

    /// Returns the number of requests the provider received, including the
    /// unauthorized ones.
    pub fn total_requests(&self) -> u64 {
        self.keys.iter().map(|report| report.requests).sum::<u64>() + self.unauthorized
    }

    /// Returns the number of requests rejected with 429 or 401.
    pub fn total_rejected(&self) -> u64 {
        self.keys
            .iter()
            .map(|report| report.rejected_429)
            .sum::<u64>()
            + self.unauthorized
    }

    /// Lists the rate-limit violations of every key, one sentence per problem.
    ///
    /// Unauthorized requests are not rate-limit violations, so they do not
    /// appear here. Check [`MockReport::unauthorized`] for them.
    pub fn violations(&self) -> Vec<String> {
        self.keys.iter().flat_map(KeyReport::violations).collect()
    }

    /// Returns `true` when no key has a rate-limit violation.
    ///
    /// A clean report means that no request got a 429 and no window held more
    /// than `allowed_requests` arrivals. It ignores 401 responses.
    pub fn is_clean(&self) -> bool {
        self.keys.iter().all(KeyReport::is_clean)
    }
}
