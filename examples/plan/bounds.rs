//! The two lower bounds on a workload's duration, one per limit, that tell
//! which limit binds.

use std::time::Duration;

use tollgate::Policy;

use crate::args::Options;
use crate::units::format_duration;

/// The time the rate limit alone and the concurrency alone would need.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    /// `allowed_requests` after the margin.
    pub(crate) allowed: u32,
    /// The interval after the margin.
    pub(crate) interval: Duration,
    /// The arithmetic behind the rate bound, for the output.
    pub(crate) rate_reason: String,
    /// The time the rate limit alone needs: when it lets the last request
    /// start, plus one mean latency.
    pub(crate) rate: Duration,
    /// Requests that can be in flight at once: the worker count, capped by
    /// `max_concurrent_requests`.
    pub(crate) parallel: u32,
    /// `requests * mean latency / parallel`: the time the concurrency alone
    /// needs.
    pub(crate) concurrency: Duration,
}

impl Bounds {
    /// Computes both bounds for the workload in `options` at `mean_latency`.
    pub(crate) fn new(options: &Options, mean_latency: Duration) -> Self {
        let (allowed, interval) = options.margin.effective_limit(&options.limit);
        let requests = u128::from(options.requests);
        let interval_ns = interval.as_nanos();
        let windows = requests.div_ceil(u128::from(allowed));

        // A strict window admits `allowed` at the start of each interval. A
        // token bucket admits its burst at once and then one request every
        // `interval / allowed`.
        let (last_start_ns, rate_reason) = match options.policy {
            Policy::TokenBucket { burst } => {
                let burst = burst.get().min(allowed);
                let spacing = interval / allowed;
                let spaced = requests.saturating_sub(u128::from(burst));
                let reason = format!(
                    "a burst of {burst}, then one request every {}",
                    format_duration(spacing)
                );
                (spaced * interval_ns / u128::from(allowed), reason)
            }
            _ => {
                let reason = format!("{windows} windows of {}", format_duration(interval));
                ((windows - 1) * interval_ns, reason)
            }
        };

        let parallel = match options.limit.concurrency_cap() {
            Some(cap) => cap.get().min(options.workers),
            None => options.workers,
        };
        let concurrency_ns = requests * mean_latency.as_nanos() / u128::from(parallel);

        Self {
            allowed,
            interval,
            rate_reason,
            rate: from_nanos(last_start_ns) + mean_latency,
            parallel,
            concurrency: from_nanos(concurrency_ns),
        }
    }

    /// Names the limit with the longer bound, and how much longer it is.
    pub(crate) fn binding(&self) -> String {
        let (name, longer, shorter) = if self.rate >= self.concurrency {
            ("rate", self.rate, self.concurrency)
        } else {
            ("concurrency", self.concurrency, self.rate)
        };
        let ratio = longer.as_secs_f64() / shorter.as_secs_f64().max(1e-12);
        if ratio < 1.1 {
            format!("{name}, but both bounds are within 10% of each other")
        } else {
            format!("{name}, {ratio:.1} times the other bound")
        }
    }
}

fn from_nanos(nanos: u128) -> Duration {
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}
