//! Time sources for the limiter.
//!
//! A limiter reads time as whole nanoseconds since its clock's epoch and
//! sleeps through the same clock, so tests can drive it with tokio's paused
//! clock ([`TokioClock`], the default) or step it by hand ([`ManualClock`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::runtime::Handle;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of time for a limiter.
///
/// Implementations may step backwards: the limiter then admits nothing extra
/// and does not panic, because every policy treats an earlier `now` as less
/// elapsed time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Returns the nanoseconds elapsed since this clock's epoch.
    fn now(&self) -> u64;

    /// Returns a future that completes once [`now`](Clock::now) has reached
    /// `deadline`.
    ///
    /// The future may be polled from any thread, and its waker may be called
    /// from any thread, such as tokio's timer driver.
    fn sleep_until(&self, deadline: u64) -> Sleep;
}

/// Converts a duration to whole nanoseconds, saturating at `u64::MAX`
/// (about 584 years).
pub(crate) fn duration_to_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The tokio clock: `tokio::time::Instant` and `tokio::time::sleep_until`.
///
/// It follows tokio's paused clock in tests that pause time. Sleeping needs a
/// tokio runtime with the time driver enabled: the clock uses the runtime it
/// is called from, or else the last runtime it saw.
pub struct TokioClock {
    epoch: tokio::time::Instant,
    handle: OnceLock<Handle>,
}

impl TokioClock {
    /// Creates a clock whose epoch is now.
    pub fn new() -> Self {
        let handle = OnceLock::new();
        if let Ok(current) = Handle::try_current() {
            let _ = handle.set(current);
        }
        Self {
            epoch: tokio::time::Instant::now(),
            handle,
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TokioClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioClock")
            .field("now_ns", &self.now())
            .finish()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> u64 {
        duration_to_nanos(tokio::time::Instant::now().saturating_duration_since(self.epoch))
    }

    fn sleep_until(&self, deadline: u64) -> Sleep {
        let at = self.epoch + Duration::from_nanos(deadline);
        if let Ok(current) = Handle::try_current() {
            let _ = self.handle.set(current);
            return Box::pin(tokio::time::sleep_until(at));
        }

        // A permit dropped on a thread outside any runtime can still need a
        // timer for the waiters it lets through.
        match self.handle.get() {
            Some(handle) => {
                let _entered = handle.enter();
                Box::pin(tokio::time::sleep_until(at))
            }
            None => {
                tracing::warn!("TokioClock cannot sleep: no tokio runtime has used this clock");
                Box::pin(std::future::pending())
            }
        }
    }
}

/// A clock that moves only when a test moves it, for deterministic tests.
///
/// Clones share one time. [`advance`](ManualClock::advance) wakes every sleep
/// whose deadline has passed; [`set`](ManualClock::set) may also move time
/// backwards.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tollgate::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now(), 5_000_000);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    shared: Arc<Mutex<ManualState>>,
}

#[derive(Default)]
struct ManualState {
    now: u64,
    sleepers: Vec<(u64, Waker)>,
}

impl ManualClock {
    /// Creates a clock that reads zero.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, ManualState> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves the clock forward by `step` and wakes the sleeps that are due.
    pub fn advance(&self, step: Duration) {
        let target = self.now().saturating_add(duration_to_nanos(step));
        self.set(Duration::from_nanos(target));
    }

    /// Sets the time since the epoch, forwards or backwards, and wakes the
    /// sleeps that are due.
    pub fn set(&self, since_epoch: Duration) {
        let due: Vec<Waker> = {
            let mut state = self.state();
            state.now = duration_to_nanos(since_epoch);
            let now = state.now;
            let (due, pending) = std::mem::take(&mut state.sleepers)
                .into_iter()
                .partition(|(deadline, _)| *deadline <= now);
            state.sleepers = pending;
            due.into_iter().map(|(_, waker)| waker).collect()
        };

        // Wake outside the lock: a woken task may read the clock at once.
        for waker in due {
            waker.wake();
        }
    }

    /// Returns how many sleeps are waiting for the clock to move.
    pub fn sleepers(&self) -> usize {
        self.state().sleepers.len()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("ManualClock")
            .field("now_ns", &state.now)
            .field("sleepers", &state.sleepers.len())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.state().now
    }

    fn sleep_until(&self, deadline: u64) -> Sleep {
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: u64,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.clock.state();
        if state.now >= self.deadline {
            return Poll::Ready(());
        }
        state.sleepers.push((self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}
