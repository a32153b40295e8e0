//! Idle eviction: which limiters a sweep evicts, when sweeps are due, and
//! the background task that runs them.

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use super::shard::Shard;
use super::{IdleKeys, Shared};
use crate::clock::{duration_to_nanos, Clock};
use crate::Limiter;

/// Reports whether a sweep may evict `limiter` from its map.
///
/// The caller holds the write lock of the limiter's shard. While it does,
/// no other thread can take a new handle from the map, so a count of one
/// handle (the map's own) cannot rise before the limiter is evicted.
fn is_evictable(limiter: &Limiter) -> bool {
    if limiter.handles() != 1 {
        return false;
    }
    // Pairs with the release decrement of each dropped handle, so the idle
    // check below observes every grant and release made through them.
    fence(Ordering::Acquire);
    limiter.is_idle()
}

impl Shard {
    /// Evicts every evictable limiter in this shard and returns how many it
    /// evicted. `idle_keys` decides whether their keys stay, dormant, or go.
    pub(super) fn sweep(&self, idle_keys: IdleKeys) -> usize {
        // The evicted limiters are dropped after the lock is released, so
        // freeing their memory does not hold up lookups.
        let evicted = self.write().evict(idle_keys, is_evictable);
        evicted.len()
    }
}

/// When shards are due to be swept.
///
/// Sweeps walk the shards round-robin, one shard every `tick`, so each
/// shard is swept once per eviction period. The caller that finds a sweep
/// due (the background task, an insert or a lookup that wakes a dormant
/// key) claims it with a compare-and-swap on `next_due`, so no shard is
/// swept twice for one tick.
pub(super) struct Schedule {
    /// The clock time, in nanoseconds, at which the next shard sweep is due.
    next_due: AtomicU64,
    /// The position of the next shard to sweep, counted modulo the number
    /// of shards. Only the claimant of a sweep advances it.
    cursor: AtomicUsize,
    /// The eviction period divided by the number of shards, at least 1 ns.
    tick: u64,
    period: Duration,
    shards: usize,
}

/// The shard positions that one claim may sweep.
pub(super) struct Claim {
    pub(super) first: usize,
    pub(super) count: usize,
}

impl Schedule {
    /// Creates a schedule whose first sweep is due one tick after `now`.
    pub(super) fn new(now: u64, period: Duration, shards: usize) -> Self {
        let shards = shards.max(1);
        let tick = (duration_to_nanos(period) / shards as u64).max(1);
        Self {
            next_due: AtomicU64::new(now.saturating_add(tick)),
            cursor: AtomicUsize::new(0),
            tick,
            period,
            shards,
        }
    }

    pub(super) fn period(&self) -> Duration {
        self.period
    }

    pub(super) fn next_due(&self) -> u64 {
        self.next_due.load(Ordering::Acquire)
    }

    /// Claims up to `max` of the shard sweeps that are due at `now`.
    ///
    /// At most one round of sweeps (one per shard) is ever owed, however
    /// long no sweep ran, because sweeping a shard twice in a row removes
    /// nothing more. Sweeps that are owed but not claimed stay due for the
    /// next caller.
    pub(super) fn claim(&self, now: u64, max: usize) -> Option<Claim> {
        let mut due = self.next_due.load(Ordering::Acquire);
        loop {
            if now < due {
                return None;
            }
            let owed = ((now - due) / self.tick).saturating_add(1);
            let owed = usize::try_from(owed).unwrap_or(usize::MAX).min(self.shards);
            let count = owed.min(max.max(1));

            // The sweeps left owed after this claim fall due at once. With
            // none left, the next falls due one tick from now.
            let left = (owed - count) as u64;
            let next = now
                .saturating_add(self.tick)
                .saturating_sub(left.saturating_mul(self.tick));

            // Loses to another claimant that advanced `next_due` first, and
            // then recomputes what is still owed from the new value.
            match self.next_due.compare_exchange_weak(
                due,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let first = self.cursor.fetch_add(count, Ordering::Relaxed);
                    return Some(Claim { first, count });
                }
                Err(actual) => due = actual,
            }
        }
    }
}

impl Shared {
    /// Sweeps the shard that is due at `now`, if any. Inserts, and lookups
    /// that wake a dormant key, call this so that a registry outside any
    /// tokio runtime still evicts.
    pub(super) fn sweep_one_if_due(&self, now: u64) {
        let Some(claim) = self.schedule.claim(now, 1) else {
            return;
        };
        let mut evicted = 0;
        for offset in 0..claim.count {
            evicted += self
                .shards
                .at(claim.first.wrapping_add(offset))
                .sweep(self.idle_keys);
        }
        log_sweep(claim.count, evicted);
    }
}

fn log_sweep(shards: usize, evicted: usize) {
    if evicted > 0 {
        tracing::debug!(shards, evicted, "evicted idle limiters");
    } else {
        tracing::trace!(shards, "swept shards, nothing idle");
    }
}

/// Spawns the background sweeper on `runtime` and returns a handle to
/// abort it.
///
/// The task holds only a weak reference to the registry, so it never keeps
/// the registry alive, and the registry aborts it when dropped.
pub(super) fn spawn_sweeper(
    runtime: &Handle,
    registry: Weak<Shared>,
    clock: Arc<dyn Clock>,
) -> AbortHandle {
    runtime.spawn(run_sweeper(registry, clock)).abort_handle()
}

async fn run_sweeper(registry: Weak<Shared>, clock: Arc<dyn Clock>) {
    tracing::debug!("registry sweeper started");
    while let Some(due) = registry.upgrade().map(|shared| shared.schedule.next_due()) {
        clock.sleep_until(due).await;

        let Some(shared) = registry.upgrade() else {
            break;
        };
        let Some(claim) = shared.schedule.claim(clock.now(), usize::MAX) else {
            // An insert claimed the sweep first, or the clock woke the sleep
            // early. Yielding keeps a clock that always wakes early from
            // holding the worker thread in this loop.
            drop(shared);
            tokio::task::yield_now().await;
            continue;
        };

        // A catch-up round can sweep every shard, so yielding between
        // shards keeps one worker thread from being held for the round.
        let mut evicted = 0;
        for offset in 0..claim.count {
            if offset > 0 {
                tokio::task::yield_now().await;
            }
            evicted += shared
                .shards
                .at(claim.first.wrapping_add(offset))
                .sweep(shared.idle_keys);
        }
        log_sweep(claim.count, evicted);
    }
}
