//! The strict rolling window.
//!
//! The log keeps `(time, units)` entries for the grants still inside the
//! window, oldest first. An entry granted at `g` leaves the window at
//! `g + interval`: from then on no half-open window `[t, t + interval)` that
//! contains `now` also contains `g`. A request is granted when the units
//! still in the log plus its weight fit in `allowed`, so no window ever holds
//! more than `allowed` units.

use std::collections::VecDeque;

use super::{Decision, Stamp};

/// The grant log of one strict window.
#[derive(Debug)]
pub(crate) struct WindowLog {
    /// Grants inside the window, oldest first, times non-decreasing.
    entries: VecDeque<(u64, u32)>,
    /// The sum of the units in `entries`.
    used: u64,
    allowed: u32,
    interval: u64,
}

impl WindowLog {
    /// Creates an empty log for `allowed` units per `interval` nanoseconds.
    pub(crate) fn new(allowed: u32, interval: u64) -> Self {
        Self {
            entries: VecDeque::new(),
            used: 0,
            allowed,
            interval: interval.max(1),
        }
    }

    /// Returns the largest weight that can ever be granted.
    pub(crate) fn capacity(&self) -> u32 {
        self.allowed
    }

    /// Drops the entries that have left the window at `now`.
    fn expire(&mut self, now: u64) {
        while let Some(&(at, units)) = self.entries.front() {
            if at.saturating_add(self.interval) > now {
                break;
            }
            self.entries.pop_front();
            self.used -= u64::from(units);
        }
    }

    /// Grants `weight` units at `now` or returns the earliest time it could.
    ///
    /// The caller checks `weight <= capacity()` first.
    pub(crate) fn try_grant(&mut self, now: u64, weight: u32) -> Decision {
        self.expire(now);
        if self.used + u64::from(weight) <= u64::from(self.allowed) {
            return Decision::Granted(Stamp::Window {
                at: self.record(now, weight),
            });
        }
        Decision::NotBefore(self.forecast(now, u64::from(weight)))
    }

    /// Appends a grant and returns the time it was recorded at.
    fn record(&mut self, now: u64, weight: u32) -> u64 {
        // A clock that stepped backwards must not unsort the log, so such a
        // grant is recorded at the newest time already present. That keeps it
        // in the log at least as long as its real start time would.
        let at = match self.entries.back_mut() {
            Some((last, units)) if *last >= now => {
                *units += weight;
                *last
            }
            _ => {
                self.entries.push_back((now, weight));
                now
            }
        };
        self.used += u64::from(weight);
        at
    }

    /// Returns the earliest time at which `total` units, granted greedily one
    /// after another from `now`, could all have been granted.
    ///
    /// Number every unit in order: the `used` units in the log, then the new
    /// ones. Unit `i` can start only once unit `i - allowed` has left the
    /// window. So new unit `m` waits for log unit `used + m - allowed`, or for
    /// new unit `m - allowed` plus one interval. The log is expired first.
    pub(crate) fn forecast(&mut self, now: u64, total: u64) -> u64 {
        self.expire(now);
        if total == 0 {
            return now;
        }
        let allowed = u64::from(self.allowed);

        // Fold whole windows of new units: unit m = r + k * allowed starts k
        // intervals after unit r, where 1 <= r <= allowed.
        let windows = (total - 1) / allowed;
        let remainder = total - windows * allowed;
        let delay = windows.saturating_mul(self.interval);

        let blocking = self.used + remainder;
        if blocking <= allowed {
            return now.saturating_add(delay);
        }

        // Log unit number `blocking - allowed` (1-based) must leave first.
        let mut position = blocking - allowed;
        for &(at, units) in &self.entries {
            let units = u64::from(units);
            if position <= units {
                let free_at = at.saturating_add(self.interval).max(now);
                return free_at.saturating_add(delay);
            }
            position -= units;
        }

        // Unreachable while `used` matches the entries; waiting one interval
        // longer is the safe answer if it ever does not.
        now.saturating_add(self.interval).saturating_add(delay)
    }

    /// Takes back `weight` units recorded at `at`, if that entry is still in
    /// the log. An entry that already left the window needs no refund.
    pub(crate) fn refund(&mut self, at: u64, weight: u32) -> bool {
        let Ok(index) = self.entries.binary_search_by_key(&at, |&(time, _)| time) else {
            return false;
        };
        let Some((_, units)) = self.entries.get_mut(index) else {
            return false;
        };
        let taken = (*units).min(weight);
        *units -= taken;
        self.used -= u64::from(taken);
        if *units == 0 {
            self.entries.remove(index);
        }
        true
    }

    /// Returns the number of entries in the log.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn granted(decision: Decision) -> bool {
        matches!(decision, Decision::Granted(_))
    }

    #[test]
    fn full_window_then_wait() {
        let mut log = WindowLog::new(3, SECOND);
        assert!(granted(log.try_grant(0, 1)));
        assert!(granted(log.try_grant(10, 1)));
        assert!(granted(log.try_grant(20, 1)));
        assert_eq!(log.try_grant(30, 1), Decision::NotBefore(SECOND));
        assert!(!granted(log.try_grant(SECOND - 1, 1)));
        assert!(granted(log.try_grant(SECOND, 1)));
        assert_eq!(log.try_grant(SECOND, 1), Decision::NotBefore(SECOND + 10));
    }

    #[test]
    fn weight_waits_for_enough_expiry() {
        let mut log = WindowLog::new(4, SECOND);
        assert!(granted(log.try_grant(0, 2)));
        assert!(granted(log.try_grant(100, 2)));
        assert_eq!(log.try_grant(200, 3), Decision::NotBefore(SECOND + 100));
    }

    #[test]
    fn same_tick_grants_share_entry() {
        let mut log = WindowLog::new(100, SECOND);
        for _ in 0..100 {
            assert!(granted(log.try_grant(7, 1)));
        }
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn forecast_beyond_one_window() {
        let mut log = WindowLog::new(2, SECOND);
        assert!(granted(log.try_grant(0, 1)));
        // Units: log [0], new 1 at now, new 2 at 0 + 1 s, new 3 at 1 s + 1 s.
        assert_eq!(log.forecast(5, 1), 5);
        assert_eq!(log.forecast(5, 2), SECOND);
        assert_eq!(log.forecast(5, 3), SECOND + 5);
        assert_eq!(log.forecast(5, 4), 2 * SECOND);
    }

    #[test]
    fn refund_restores_capacity() {
        let mut log = WindowLog::new(1, SECOND);
        let Decision::Granted(Stamp::Window { at }) = log.try_grant(0, 1) else {
            panic!("first grant refused");
        };
        assert!(log.refund(at, 1));
        assert!(granted(log.try_grant(1, 1)));
    }

    #[test]
    fn backwards_clock_stays_sorted() {
        let mut log = WindowLog::new(2, SECOND);
        assert!(granted(log.try_grant(SECOND, 1)));
        assert!(granted(log.try_grant(0, 1)));
        assert_eq!(log.try_grant(0, 1), Decision::NotBefore(2 * SECOND));
    }
}
