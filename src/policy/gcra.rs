//! The generic cell rate algorithm (GCRA), lock-free and reconfigurable.
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
//!
//! # Live changes
//!
//! The state word packs a 4-bit generation above a 60-bit `tat`. Each
//! generation's `(T, burst)` sits in a 16-slot table. A grant reads the word,
//! then that generation's slot, and commits with a compare-and-swap on the
//! word, so it succeeds only if the generation, and so the parameters it
//! used, were still current. A change writes the next slot first and then
//! swaps in the next generation with `tat` converted to the new parameters.

#[cfg(all(test, tollgate_loom))]
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(all(test, tollgate_loom)))]
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::{div_ceil, Decision, Stamp};

const TAT_BITS: u32 = 60;
/// The largest `tat`: 2^60 ns, about 36.5 years after the limiter's epoch.
const TAT_MAX: u64 = (1 << TAT_BITS) - 1;
const GENERATIONS: usize = 16;

fn pack(generation: u64, tat: u64) -> u64 {
    (generation % GENERATIONS as u64) << TAT_BITS | tat.min(TAT_MAX)
}

fn generation(word: u64) -> u64 {
    word >> TAT_BITS
}

fn tat(word: u64) -> u64 {
    word & TAT_MAX
}

/// One generation's parameters.
#[derive(Debug)]
struct Slot {
    /// The emission interval `T` in nanoseconds, rounded up so the sustained
    /// rate never exceeds the limit. The shortfall is under one part in `T`.
    emission: AtomicU64,
    /// The burst in units.
    burst: AtomicU32,
}

#[derive(Clone, Copy)]
struct Params {
    emission: u64,
    burst: u32,
}

impl Params {
    fn new(allowed: u32, interval: u64, burst: u32) -> Self {
        Self {
            emission: div_ceil(interval, u64::from(allowed.max(1))).max(1),
            burst: burst.max(1),
        }
    }

    fn tolerance(self) -> u64 {
        self.emission.saturating_mul(u64::from(self.burst))
    }
}

/// A token bucket whose whole mutable state is one `AtomicU64`.
#[derive(Debug)]
pub(crate) struct Gcra {
    /// The generation and theoretical arrival time, in nanoseconds since the
    /// epoch. Grants and changes write it with a compare-and-swap (`AcqRel`),
    /// which also publishes the slot a change wrote before it.
    state: AtomicU64,
    /// Parameters by generation. Only [`Gcra::reconfigure`] writes a slot,
    /// and only the one of the generation it is about to publish.
    slots: [Slot; GENERATIONS],
}

impl Gcra {
    /// Creates a full bucket of `burst` units refilled at `allowed` per
    /// `interval` nanoseconds.
    pub(crate) fn new(allowed: u32, interval: u64, burst: u32) -> Self {
        let params = Params::new(allowed, interval, burst);
        let slots = std::array::from_fn(|_| Slot {
            emission: AtomicU64::new(params.emission),
            burst: AtomicU32::new(params.burst),
        });
        Self {
            state: AtomicU64::new(pack(0, 0)),
            slots,
        }
    }

    fn params(&self, word: u64) -> Params {
        let slot = &self.slots[generation(word) as usize];
        Params {
            emission: slot.emission.load(Ordering::Relaxed),
            burst: slot.burst.load(Ordering::Relaxed),
        }
    }

    /// Returns the largest weight that can be granted at once.
    pub(crate) fn capacity(&self) -> u32 {
        self.params(self.state.load(Ordering::Acquire)).burst
    }

    /// Grants `weight` units at `now` or returns the earliest time it could.
    ///
    /// A weight above the burst is granted as the whole burst, so a request
    /// queued before the burst was lowered can still be served.
    pub(crate) fn try_grant(&self, now: u64, weight: u32) -> Decision {
        let now = now.min(TAT_MAX);
        let mut word = self.state.load(Ordering::Acquire);
        loop {
            let params = self.params(word);
            let increment = params
                .emission
                .saturating_mul(u64::from(weight.min(params.burst)));
            let tolerance = params.tolerance();
            let after = tat(word).max(now).saturating_add(increment);
            if after > now.saturating_add(tolerance) {
                return Decision::NotBefore(after - tolerance);
            }

            // The swap fails when a grant, refund or change moved the word
            // since the load. The loop then decides again from the new value
            // and generation, so a lost race can only turn a grant into a
            // wait, never the reverse.
            let next = pack(generation(word), after);
            match self
                .state
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Decision::Granted(Stamp::Bucket {
                        before: word,
                        after: next,
                    })
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Returns the earliest time at which `total` units, granted one after
    /// another from `now`, could all have been granted.
    pub(crate) fn forecast(&self, now: u64, total: u64) -> u64 {
        let word = self.state.load(Ordering::Acquire);
        let params = self.params(word);
        let needed = tat(word)
            .max(now)
            .saturating_add(params.emission.saturating_mul(total));
        needed.saturating_sub(params.tolerance()).max(now)
    }

    /// Takes back a grant that was never used, but only while no later grant
    /// or change has moved the state: undoing an older grant under a newer
    /// one could let more through than the limit allows.
    pub(crate) fn refund(&self, before: u64, after: u64) -> bool {
        self.state
            .compare_exchange(after, before, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Reports whether the bucket is full at `now`.
    pub(crate) fn is_idle(&self, now: u64) -> bool {
        tat(self.state.load(Ordering::Acquire)) <= now
    }

    /// Switches to `allowed` per `interval` nanoseconds with `burst`, keeping
    /// the bucket's level. The units available at `now` were earned at the
    /// old rate and capped by the old burst, and they stay available up to
    /// the new burst. Units still owed stay owed at the new rate.
    ///
    /// Callers serialize changes; grants may run concurrently.
    pub(crate) fn reconfigure(&self, now: u64, allowed: u32, interval: u64, burst: u32) {
        let now = now.min(TAT_MAX);
        let new = Params::new(allowed, interval, burst);
        let mut word = self.state.load(Ordering::Acquire);
        let next_generation = generation(word) + 1;
        let slot = &self.slots[(next_generation % GENERATIONS as u64) as usize];
        slot.emission.store(new.emission, Ordering::Relaxed);
        slot.burst.store(new.burst, Ordering::Relaxed);

        loop {
            let old = self.params(word);
            // Units available now, rounded down so a change never adds one.
            let headroom = now
                .saturating_add(old.tolerance())
                .saturating_sub(tat(word));
            let available = (headroom / old.emission)
                .min(u64::from(old.burst))
                .min(u64::from(new.burst));
            let converted = now
                .saturating_add(new.tolerance())
                .saturating_sub(available.saturating_mul(new.emission));
            let next = pack(next_generation, converted);

            // Loses to a concurrent grant or refund; convert the new state.
            match self
                .state
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn granted(decision: Decision) -> bool {
        matches!(decision, Decision::Granted(_))
    }

    #[test]
    fn burst_then_even_spacing() {
        let bucket = Gcra::new(10, SECOND, 10);
        for _ in 0..10 {
            assert!(granted(bucket.try_grant(0, 1)));
        }
        assert_eq!(bucket.try_grant(0, 1), Decision::NotBefore(SECOND / 10));
        assert!(granted(bucket.try_grant(SECOND / 10, 1)));
    }

    #[test]
    fn burst_one_spaces_grants() {
        let bucket = Gcra::new(3, SECOND, 1);
        assert!(granted(bucket.try_grant(0, 1)));
        // 1 s / 3 rounds up to 333_333_334 ns.
        assert_eq!(bucket.try_grant(1, 1), Decision::NotBefore(333_333_334));
    }

    #[test]
    fn weight_needs_its_share() {
        let bucket = Gcra::new(10, SECOND, 10);
        assert!(granted(bucket.try_grant(0, 8)));
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
        assert!(granted(bucket.try_grant(0, 1)));
    }

    #[test]
    fn earlier_now_admits_nothing_extra() {
        let bucket = Gcra::new(1, SECOND, 1);
        assert!(granted(bucket.try_grant(5 * SECOND, 1)));
        assert_eq!(bucket.try_grant(0, 1), Decision::NotBefore(6 * SECOND));
    }

    #[test]
    fn change_keeps_level_without_fresh_burst() {
        let bucket = Gcra::new(10, SECOND, 10);
        for _ in 0..10 {
            assert!(granted(bucket.try_grant(0, 1)));
        }
        // Empty bucket: doubling the limit must not refill it.
        bucket.reconfigure(0, 20, SECOND, 20);
        assert_eq!(bucket.try_grant(0, 1), Decision::NotBefore(SECOND / 20));
    }

    #[test]
    fn raise_admits_within_new_interval() {
        let bucket = Gcra::new(1, 60 * SECOND, 1);
        assert!(granted(bucket.try_grant(0, 1)));
        bucket.reconfigure(0, 10, SECOND, 1);
        assert_eq!(bucket.try_grant(0, 1), Decision::NotBefore(SECOND / 10));
    }

    #[test]
    fn idle_credit_capped_by_old_burst() {
        let bucket = Gcra::new(10, SECOND, 2);
        // Idle for a long time: the old bucket holds only its burst of 2.
        bucket.reconfigure(100 * SECOND, 10, SECOND, 10);
        assert!(granted(bucket.try_grant(100 * SECOND, 2)));
        assert!(!granted(bucket.try_grant(100 * SECOND, 1)));
    }

    #[test]
    fn lowering_applies_at_once() {
        let bucket = Gcra::new(100, SECOND, 100);
        bucket.reconfigure(0, 1, SECOND, 1);
        assert!(granted(bucket.try_grant(0, 1)));
        assert_eq!(bucket.try_grant(0, 1), Decision::NotBefore(SECOND));
        assert_eq!(bucket.capacity(), 1);
    }

    #[test]
    fn sixteen_changes_wrap_generation() {
        let bucket = Gcra::new(1, SECOND, 1);
        for round in 0..41 {
            bucket.reconfigure(0, 1 + round % 3, SECOND, 1);
        }
        // The last round is 40, and 40 % 3 == 1, so it set 2 per second.
        assert!(granted(bucket.try_grant(0, 1)));
        assert_eq!(bucket.try_grant(0, 1), Decision::NotBefore(SECOND / 2));
    }
}

#[cfg(all(test, tollgate_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Three threads race for a burst of 2 at one instant: exactly two win,
    /// and `tat` ends two emission intervals ahead.
    #[test]
    fn concurrent_grants_share_burst() {
        loom::model(|| {
            // 10 per 1000 ns: an emission interval of 100 ns.
            let bucket = Arc::new(Gcra::new(10, 1_000, 2));
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let bucket = bucket.clone();
                    thread::spawn(move || matches!(bucket.try_grant(0, 1), Decision::Granted(_)))
                })
                .collect();
            let mine = matches!(bucket.try_grant(0, 1), Decision::Granted(_));
            let granted = others
                .into_iter()
                .map(|other| other.join().expect("granting thread panicked"))
                .filter(|granted| *granted)
                .count()
                + usize::from(mine);

            assert_eq!(granted, 2, "a burst of 2 must admit exactly 2 of 3");
            assert_eq!(
                tat(bucket.state.load(Ordering::Acquire)),
                200,
                "two grants must move `tat` by two emission intervals"
            );
        });
    }

    /// A refund racing a later grant never returns units the later grant
    /// built on: `tat` always counts exactly the units still granted.
    #[test]
    fn refund_races_grant() {
        loom::model(|| {
            let bucket = Arc::new(Gcra::new(10, 1_000, 2));
            let Decision::Granted(Stamp::Bucket { before, after }) = bucket.try_grant(0, 1) else {
                panic!("the first grant of a full bucket was rejected");
            };
            let other = {
                let bucket = bucket.clone();
                thread::spawn(move || matches!(bucket.try_grant(0, 1), Decision::Granted(_)))
            };
            let refunded = bucket.refund(before, after);
            let granted = other.join().expect("granting thread panicked");

            assert!(granted, "a burst of 2 must admit the second unit");
            let units = 2 - u64::from(refunded);
            assert_eq!(
                tat(bucket.state.load(Ordering::Acquire)),
                units * 100,
                "`tat` must count the {units} units still granted (refunded: {refunded})"
            );
        });
    }
}
