//! The concurrency counter and the count of queued waiters.
//!
//! The two counters form a Dekker-style handshake, so every access is
//! `SeqCst`. A waiter increments `waiters` and then tries to take a slot; a
//! releaser decrements `in_flight` and then reads `waiters`. In the single
//! total order of `SeqCst` operations, either the waiter's attempt sees the
//! freed slot or the releaser sees the waiter and drives the queue, so a
//! release is never lost.
//!
//! Each side also issues a `SeqCst` fence between its write and its read.
//! The C++20 memory model, which Rust follows, does not need it, but loom
//! 0.7 models `SeqCst` loads as `Acquire` and reports the handshake as racy
//! without it. The cost is one fence on the release and queueing paths, none
//! on the path that takes a slot without waiting.

#[cfg(all(test, tollgate_loom))]
use loom::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering::SeqCst};
#[cfg(not(all(test, tollgate_loom)))]
use std::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering::SeqCst};

#[derive(Debug)]
pub(crate) struct Slots {
    /// Permits out plus the slot the queue head may hold while it waits for
    /// its rate grant. Counted even without a cap, so a cap set later applies
    /// to the requests already in flight.
    in_flight: AtomicU32,
    /// The concurrency cap; 0 means none.
    cap: AtomicU32,
    /// Waiters in the queue. While it is non-zero, new requests join the
    /// queue instead of taking capacity directly, which keeps grants FIFO.
    waiters: AtomicUsize,
}

impl Slots {
    pub(crate) fn new(cap: u32) -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            cap: AtomicU32::new(cap),
            waiters: AtomicUsize::new(0),
        }
    }

    /// Takes a slot if one is free.
    pub(crate) fn try_take(&self) -> bool {
        let mut current = self.in_flight.load(SeqCst);
        loop {
            let cap = self.cap.load(SeqCst);
            if cap != 0 && current >= cap {
                return false;
            }

            // Loses to another taker or a releaser; the loop re-reads the
            // count and checks the cap again.
            match self
                .in_flight
                .compare_exchange_weak(current, current + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Returns a slot and reports whether waiters are queued, in which case
    /// the caller must drive the queue.
    pub(crate) fn release(&self) -> bool {
        self.in_flight.fetch_sub(1, SeqCst);
        fence(SeqCst);
        self.waiters.load(SeqCst) != 0
    }

    pub(crate) fn add_waiter(&self) {
        self.waiters.fetch_add(1, SeqCst);
        fence(SeqCst);
    }

    pub(crate) fn remove_waiter(&self) {
        self.waiters.fetch_sub(1, SeqCst);
    }

    pub(crate) fn waiters(&self) -> usize {
        self.waiters.load(SeqCst)
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(SeqCst)
    }

    /// Sets a new cap. Slots already taken stay taken; a lower cap admits
    /// nothing new until enough of them are released.
    pub(crate) fn set_cap(&self, cap: u32) {
        self.cap.store(cap, SeqCst);
    }

    pub(crate) fn cap(&self) -> u32 {
        self.cap.load(SeqCst)
    }
}

#[cfg(all(test, tollgate_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;

    /// A waiter that finds no slot is always seen by the releaser.
    #[test]
    fn release_never_lost() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            assert!(slots.try_take());
            let blocked = Arc::new(AtomicBool::new(false));

            let waiter = {
                let slots = slots.clone();
                let blocked = blocked.clone();
                thread::spawn(move || {
                    slots.add_waiter();
                    if !slots.try_take() {
                        blocked.store(true, SeqCst);
                    }
                })
            };
            let must_drive = slots.release();
            waiter.join().expect("waiter thread");

            if blocked.load(SeqCst) {
                assert!(
                    must_drive,
                    "the waiter found no slot and nobody drives the queue"
                );
            }
        });
    }

    /// Two takers never exceed a cap of one.
    #[test]
    fn cap_holds_under_race() {
        loom::model(|| {
            let slots = Arc::new(Slots::new(1));
            let other = {
                let slots = slots.clone();
                thread::spawn(move || slots.try_take())
            };
            let mine = slots.try_take();
            let theirs = other.join().expect("other thread");
            assert!(mine ^ theirs, "exactly one taker must win");
            assert_eq!(slots.in_flight(), 1);
        });
    }
}
