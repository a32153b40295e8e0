//! The shared state behind every clone of a limiter and its queue.
//!
//! # How waiters are served
//!
//! Requests that find the queue empty take a slot and a rate grant directly,
//! lock-free. Otherwise they join a FIFO queue under a mutex. Grants are
//! handed off: whoever holds the queue lock after an event that may free
//! capacity (a new waiter, a dropped permit, a cancelled waiter, the timer)
//! grants waiters from the head in order until the head cannot be granted.
//! The head first takes a concurrency slot, then its rate grant, so the grant
//! is stamped when the request is released and waiting for a slot never
//! bunches grants.
//!
//! When the head needs time to pass, the limiter arms one timer, owned by the
//! queue rather than by any waiter. Its waker grants the head itself, so N
//! waiters cost about N task wakeups. A waiter that is leaked without being
//! dropped is granted in its turn and the queue moves on. It then keeps its
//! concurrency slot, as a leaked permit would.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Wake, Waker};

use crate::clock::{Clock, Sleep};
use crate::policy::{Decision, Gcra, Margin, Policy, Stamp, WindowLog};
use crate::RateLimit;

use super::slots::Slots;

/// The rate state of one limiter. The bucket is boxed because its table of
/// parameters by generation is several times larger than a window's state.
#[derive(Debug)]
pub(crate) enum Rate {
    Bucket(Box<Gcra>),
    Window(Mutex<WindowLog>),
}

impl Rate {
    pub(crate) fn new(policy: Policy, allowed: u32, interval: u64) -> Self {
        match policy {
            Policy::StrictWindow => Rate::Window(Mutex::new(WindowLog::new(allowed, interval))),
            Policy::TokenBucket { burst } => {
                let burst = burst.get().min(allowed);
                Rate::Bucket(Box::new(Gcra::new(allowed, interval, burst)))
            }
        }
    }

    pub(crate) fn capacity(&self) -> u32 {
        match self {
            Rate::Bucket(bucket) => bucket.capacity(),
            Rate::Window(log) => lock(log).capacity(),
        }
    }

    pub(crate) fn try_grant(&self, now: u64, weight: u32) -> Decision {
        match self {
            Rate::Bucket(bucket) => bucket.try_grant(now, weight),
            Rate::Window(log) => lock(log).try_grant(now, weight),
        }
    }

    pub(crate) fn forecast(&self, now: u64, total: u64) -> u64 {
        match self {
            Rate::Bucket(bucket) => bucket.forecast(now, total),
            Rate::Window(log) => lock(log).forecast(now, total),
        }
    }

    fn refund(&self, stamp: Stamp, weight: u32) {
        let refunded = match (self, stamp) {
            (Rate::Bucket(bucket), Stamp::Bucket { before, after }) => bucket.refund(before, after),
            (Rate::Window(log), Stamp::Window { at }) => lock(log).refund(at, weight),
            _ => false,
        };
        tracing::trace!(weight, refunded, "cancelled waiter returned its grant");
    }

    /// Switches the policy to `allowed` per `interval` nanoseconds; a token
    /// bucket takes its configured burst, capped at the new `allowed`.
    pub(crate) fn reconfigure(&self, now: u64, allowed: u32, interval: u64, policy: Policy) {
        match self {
            Rate::Bucket(bucket) => {
                let burst = match policy {
                    Policy::TokenBucket { burst } => burst.get().min(allowed),
                    Policy::StrictWindow => allowed,
                };
                bucket.reconfigure(now, allowed, interval, burst);
            }
            Rate::Window(log) => lock(log).reconfigure(now, allowed, interval),
        }
    }

    /// Reports whether no past grant still limits what can start at `now`.
    pub(crate) fn is_idle(&self, now: u64) -> bool {
        match self {
            Rate::Bucket(bucket) => bucket.is_idle(now),
            Rate::Window(log) => lock(log).is_idle(now),
        }
    }

    /// Returns the number of entries in a window log, or 0 for a bucket.
    pub(crate) fn log_len(&self) -> usize {
        match self {
            Rate::Bucket(_) => 0,
            Rate::Window(log) => lock(log).len(),
        }
    }
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the
/// state consistent before anything in it can panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A queued request.
#[derive(Debug)]
struct Entry {
    weight: u32,
    /// Whether this entry holds a concurrency slot while it waits for its
    /// rate grant. Only the head ever does.
    has_slot: bool,
    waker: Option<Waker>,
}

/// The FIFO queue and its timer.
#[derive(Default)]
pub(crate) struct Queue {
    /// Waiting requests keyed by arrival number, so the first key is the head.
    entries: BTreeMap<u64, Entry>,
    /// Requests granted by hand-off whose futures have not collected them yet.
    granted: HashMap<u64, Stamp>,
    next_id: u64,
    /// The sum of the weights in `entries`.
    queued_weight: u64,
    /// The one timer, armed for the head's earliest grant time.
    timer: Option<(u64, Sleep)>,
}

/// The state of a queued request, as its future finds it.
pub(crate) enum Status {
    Granted,
    Waiting,
}

/// The configuration a limiter was built with, and its current limit.
pub(crate) struct Settings {
    /// The current limit; `Limiter::set_rate_limit` replaces it and holds
    /// the lock for the whole change, which serializes changes.
    pub(crate) limit: Mutex<RateLimit>,
    pub(crate) policy: Policy,
    pub(crate) margin: Margin,
    /// The largest grantable weight, read on every weighted acquire.
    pub(crate) capacity: AtomicU32,
}

/// The state shared by all clones of one limiter.
pub(crate) struct Core {
    pub(crate) settings: Settings,
    pub(crate) rate: Rate,
    pub(crate) slots: Slots,
    pub(crate) clock: Arc<dyn Clock>,
    queue: Mutex<Queue>,
    timer_waker: Waker,
}

/// Grants the queue head when the shared timer fires.
struct TimerWake(Weak<Core>);

impl Wake for TimerWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(core) = self.0.upgrade() {
            core.on_timer();
        }
    }
}

impl Core {
    pub(crate) fn new(
        rate: Rate,
        cap: u32,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak| Core {
            settings,
            rate,
            slots: Slots::new(cap),
            clock,
            queue: Mutex::new(Queue::default()),
            timer_waker: Waker::from(Arc::new(TimerWake(weak.clone()))),
        })
    }

    /// Takes a slot and a rate grant at `now` when nobody is queued.
    pub(crate) fn try_direct(&self, weight: u32, now: u64) -> Result<(), Option<u64>> {
        if self.slots.waiters() != 0 || !self.slots.try_take() {
            return Err(None);
        }
        match self.rate.try_grant(now, weight) {
            Decision::Granted(_) => Ok(()),
            Decision::NotBefore(at) => {
                self.release_slot();
                Err(Some(at))
            }
        }
    }

    /// Returns a slot and lets the queue use it.
    pub(crate) fn release_slot(&self) {
        if self.slots.release() {
            self.drive();
        }
    }

    /// Grants what the queue head allows, then wakes the granted waiters
    /// outside the lock.
    fn drive(&self) {
        let wakers = {
            let mut queue = lock(&self.queue);
            self.process(&mut queue)
        };
        wake_all(wakers);
    }

    fn on_timer(&self) {
        let wakers = {
            let mut queue = lock(&self.queue);
            // The fired timer is spent. A stale wake from a replaced timer
            // also lands here; `process` re-arms whatever is still needed.
            queue.timer = None;
            self.process(&mut queue)
        };
        wake_all(wakers);
    }

    /// Grants waiters from the head in order until the head must wait, and
    /// returns the wakers of the granted ones.
    fn process(&self, queue: &mut Queue) -> Vec<Waker> {
        let mut wakers = Vec::new();
        loop {
            let Some(mut head) = queue.entries.first_entry() else {
                queue.timer = None;
                break;
            };
            let entry = head.get_mut();

            // Slot first, so the rate grant below is stamped at release.
            if !entry.has_slot {
                if !self.slots.try_take() {
                    // A dropped permit calls `drive` again.
                    break;
                }
                entry.has_slot = true;
            }

            let weight = entry.weight;
            match self.rate.try_grant(self.clock.now(), weight) {
                Decision::Granted(stamp) => {
                    let (id, entry) = head.remove_entry();
                    queue.queued_weight -= u64::from(weight);
                    queue.granted.insert(id, stamp);
                    self.slots.remove_waiter();
                    wakers.extend(entry.waker);
                }
                Decision::NotBefore(at) => {
                    if self.arm_timer(queue, at) {
                        continue;
                    }
                    break;
                }
            }
        }
        wakers
    }

    /// Arms the shared timer for `at` and reports whether it is already due.
    fn arm_timer(&self, queue: &mut Queue, at: u64) -> bool {
        if matches!(queue.timer, Some((armed, _)) if armed == at) {
            return false;
        }
        let mut sleep = self.clock.sleep_until(at);
        let mut context = Context::from_waker(&self.timer_waker);
        if sleep.as_mut().poll(&mut context).is_ready() {
            queue.timer = None;
            return true;
        }
        queue.timer = Some((at, sleep));
        false
    }

    /// Queues a request and serves the queue; returns its arrival number.
    pub(crate) fn enqueue(&self, weight: u32, waker: Waker) -> (u64, Status) {
        let (id, wakers, status) = {
            let mut queue = lock(&self.queue);
            let id = queue.next_id;
            queue.next_id += 1;
            queue.entries.insert(
                id,
                Entry {
                    weight,
                    has_slot: false,
                    waker: Some(waker),
                },
            );
            queue.queued_weight += u64::from(weight);
            self.slots.add_waiter();

            let wakers = self.process(&mut queue);
            let status = collect(&mut queue, id, None);
            (id, wakers, status)
        };
        wake_all(wakers);
        (id, status)
    }

    /// Reports whether request `id` was granted, and stores a new waker if not.
    pub(crate) fn poll_status(&self, id: u64, waker: &Waker) -> Status {
        let mut queue = lock(&self.queue);
        collect(&mut queue, id, Some(waker))
    }

    /// Withdraws request `id`: a waiting one leaves the queue, and a granted
    /// one that was never collected returns its slot and, where the policy
    /// can, its rate grant.
    pub(crate) fn cancel(&self, id: u64, weight: u32) {
        let wakers = {
            let mut queue = lock(&self.queue);
            let was_head = queue.entries.first_key_value().map(|(first, _)| *first) == Some(id);

            if let Some(entry) = queue.entries.remove(&id) {
                queue.queued_weight -= u64::from(entry.weight);
                self.slots.remove_waiter();
                if entry.has_slot {
                    self.slots.release();
                }
            } else if let Some(stamp) = queue.granted.remove(&id) {
                self.rate.refund(stamp, weight);
                self.slots.release();
            }

            // A new head may be grantable now, or need its own timer.
            if was_head || !queue.entries.is_empty() {
                self.process(&mut queue)
            } else {
                Vec::new()
            }
        };
        wake_all(wakers);
    }

    /// Serves the queue after a change of limits.
    pub(crate) fn limits_changed(&self) {
        self.drive();
    }

    /// Returns the total weight and count of queued requests.
    pub(crate) fn queued(&self) -> (u64, usize) {
        let queue = lock(&self.queue);
        (queue.queued_weight, queue.entries.len())
    }
}

/// Takes request `id`'s grant if it has one, else refreshes its waker.
fn collect(queue: &mut Queue, id: u64, waker: Option<&Waker>) -> Status {
    if queue.granted.remove(&id).is_some() {
        return Status::Granted;
    }
    if let (Some(entry), Some(waker)) = (queue.entries.get_mut(&id), waker) {
        match &entry.waker {
            Some(stored) if stored.will_wake(waker) => {}
            _ => entry.waker = Some(waker.clone()),
        }
    }
    Status::Waiting
}

fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}
