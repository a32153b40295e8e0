//! The generic cell rate algorithm (GCRA), lock-free.
//!
//! Symbols: `T` is the emission interval, `interval / allowed`, the time one
//! unit of capacity takes to refill. `tau = burst * T` is how far ahead of
//! `now` the bucket may run. The state is the theoretical arrival time `tat`:
//! the time at which the bucket would be full again. A request of weight `w`
//! at `now` is granted when `max(tat, now) + w * T <= now + tau`, and moves
//! `tat` to `max(tat, now) + w * T`.
//!
//! Window bound: if `n` grants start within a window of length `L`, the last
//! one was admitted with `tat >= first + (n - 1) * T`, so
//! `(n - 1) * T <= L + tau - T`, that is `n <= L / T + burst`, fewer than
//! `allowed + burst` per interval.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use super::{div_ceil, Decision, Stamp};

/// A token bucket whose whole state is one `AtomicU64`.
#[derive(Debug)]
pub(crate) struct Gcra {
    /// The theoretical arrival time, in nanoseconds since the epoch. Every
    /// grant writes it with a compare-and-swap; readers need only `Acquire`
    /// because no other memory is published through it.
    tat: AtomicU64,
    /// The emission interval `T` in nanoseconds, rounded up so the sustained
    /// rate never exceeds the limit. The shortfall is under one part in `T`.
    emission: u64,
    /// The burst in units.
    burst: u32,
}

impl Gcra {
    /// Creates a full bucket of `burst` units refilled at `allowed` per
    /// `interval` nanoseconds.
    pub(crate) fn new(allowed: u32, interval: u64, burst: u32) -> Self {
        Self {
            tat: AtomicU64::new(0),
            emission: div_ceil(interval, u64::from(allowed)).max(1),
            burst: burst.max(1),
        }
    }

    /// Returns the largest weight that can ever be granted.
    pub(crate) fn capacity(&self) -> u32 {
        self.burst
    }

    fn tolerance(&self) -> u64 {
        self.emission.saturating_mul(u64::from(self.burst))
    }

    /// Grants `weight` units at `now` or returns the earliest time it could.
    ///
    /// The caller checks `weight <= capacity()` first.
    pub(crate) fn try_grant(&self, now: u64, weight: u32) -> Decision {
        let increment = self.emission.saturating_mul(u64::from(weight));
        let tolerance = self.tolerance();
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let after = tat.max(now).saturating_add(increment);
            if after > now.saturating_add(tolerance) {
                return Decision::NotBefore(after - tolerance);
            }

            // The swap fails when another grant or a refund moved `tat` since
            // the load; the loop then decides again from the new value, so a
            // lost race can only turn a grant into a wait, never the reverse.
            match self
                .tat
                .compare_exchange_weak(tat, after, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Decision::Granted(Stamp::Bucket { before: tat, after });
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// Returns the earliest time at which `total` units, granted one after
    /// another from `now`, could all have been granted.
    pub(crate) fn forecast(&self, now: u64, total: u64) -> u64 {
        let tat = self.tat.load(Ordering::Acquire).max(now);
        let needed = tat.saturating_add(self.emission.saturating_mul(total));
        needed.saturating_sub(self.tolerance()).max(now)
    }

    /// Takes back a grant that was never used, but only while no later grant
    /// has moved `tat`: undoing an older grant under a newer one could let
    /// more through than the limit allows.
    pub(crate) fn refund(&self, before: u64, after: u64) -> bool {
        self.tat
            .compare_exchange(after, before, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn burst_then_even_spacing() {
        let bucket = Gcra::new(10, SECOND, 10);
        for _ in 0..10 {
            assert!(matches!(bucket.try_grant(0, 1), Decision::Granted(_)));
        }
        assert_eq!(bucket.try_grant(0, 1), Decision::NotBefore(SECOND / 10));
        assert!(matches!(
            bucket.try_grant(SECOND / 10, 1),
            Decision::Granted(_)
        ));
    }

    #[test]
    fn burst_one_spaces_grants() {
        let bucket = Gcra::new(3, SECOND, 1);
        assert!(matches!(bucket.try_grant(0, 1), Decision::Granted(_)));
        // 1 s / 3 rounds up to 333_333_334 ns.
        assert_eq!(bucket.try_grant(1, 1), Decision::NotBefore(333_333_334));
    }

    #[test]
    fn weight_needs_its_share() {
        let bucket = Gcra::new(10, SECOND, 10);
        assert!(matches!(bucket.try_grant(0, 8), Decision::Granted(_)));
        assert_eq!(bucket.try_grant(0, 5), Decision::NotBefore(3 * SECOND / 10));
    }

    #[test]
    fn refund_only_latest_grant() {
        let bucket = Gcra::new(10, SECOND, 2);
        let Decision::Granted(Stamp::Bucket { before, after }) = bucket.try_grant(0, 1) else {
            panic!("first grant refused");
        };
        let Decision::Granted(Stamp::Bucket {
            before: later_before,
            after: later_after,
        }) = bucket.try_grant(0, 1)
        else {
            panic!("second grant refused");
        };
        assert!(
            !bucket.refund(before, after),
            "an older grant must not be refunded"
        );
        assert!(bucket.refund(later_before, later_after));
        assert!(matches!(bucket.try_grant(0, 1), Decision::Granted(_)));
    }

    #[test]
    fn earlier_now_admits_nothing_extra() {
        let bucket = Gcra::new(1, SECOND, 1);
        assert!(matches!(
            bucket.try_grant(5 * SECOND, 1),
            Decision::Granted(_)
        ));
        assert_eq!(bucket.try_grant(0, 1), Decision::NotBefore(6 * SECOND));
    }
}
