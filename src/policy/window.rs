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
    /// The latest time ever recorded, kept after its entry expires. A change
    /// to a longer interval reads it to find how far back grants can reach.
    latest: Option<u64>,
}

impl WindowLog {
    /// Creates an empty log for `allowed` units per `interval` nanoseconds.
    pub(crate) fn new(allowed: u32, interval: u64) -> Self {
        Self {
            entries: VecDeque::new(),
            used: 0,
            allowed,
            interval: interval.max(1),
            latest: None,
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
    ///
    /// A weight above `allowed` is granted as `allowed`, so a request queued
    /// before the limit was lowered can still be served.
    pub(crate) fn try_grant(&mut self, now: u64, weight: u32) -> Decision {
        let weight = weight.min(self.allowed);
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
        self.latest = Some(at);
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

        // Unreachable while `used` matches the entries. If it ever does not,
        // waiting one more interval is the safe result.
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

    /// Switches to `allowed` units per `interval` nanoseconds.
    ///
    /// Grants already in the log keep counting, so a change never opens a
    /// fresh burst. A longer interval reaches back past what the log still
    /// remembers. That gap is filled as if the old limit had been used in
    /// full, back to the latest real grant, so capacity frees at the old rate
    /// until the new window has passed. A limiter that was idle for the whole
    /// new window gets no such entries.
    pub(crate) fn reconfigure(&mut self, now: u64, allowed: u32, interval: u64) {
        let interval = interval.max(1);
        self.expire(now);
        if interval > self.interval {
            self.backfill(now, interval);
        }
        self.allowed = allowed;
        self.interval = interval;
    }

    /// Prepends assumed full windows of the old limit between the start of
    /// the new window and the oldest entry the log remembers.
    fn backfill(&mut self, now: u64, new_interval: u64) {
        const MAX_ENTRIES: u64 = 1024;
        let Some(latest) = self.latest else {
            return;
        };
        let old_interval = self.interval;
        let window_start = now.saturating_sub(new_interval);

        // The newest assumed grant: one old interval before now, when the
        // log's memory ends, but never after the latest real grant.
        let Some(newest) = now.checked_sub(old_interval) else {
            return;
        };
        let newest = newest.min(latest);
        if newest <= window_start {
            return;
        }

        // Group old windows so at most MAX_ENTRIES are added; each group is
        // recorded at its newest time, which keeps it in the log longest.
        let windows = (newest - window_start).div_ceil(old_interval);
        let group = windows.div_ceil(MAX_ENTRIES).max(1);
        let step = old_interval.saturating_mul(group);
        let units = u32::try_from(u64::from(self.allowed) * group).unwrap_or(u32::MAX);

        let mut assumed = Vec::new();
        let mut at = newest;
        while at > window_start {
            assumed.push((at, units));
            self.used += u64::from(units);
            match at.checked_sub(step) {
                Some(earlier) => at = earlier,
                None => break,
            }
        }
        for entry in assumed {
            self.entries.push_front(entry);
        }
    }

    /// Reports whether the log holds nothing that still counts at `now`.
    pub(crate) fn is_idle(&mut self, now: u64) -> bool {
        self.expire(now);
        self.entries.is_empty()
    }

    /// Returns the number of entries in the log.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
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
    fn raise_keeps_started_grants() {
        let mut log = WindowLog::new(2, SECOND);
        assert!(granted(log.try_grant(0, 2)));
        log.reconfigure(10, 3, SECOND);
        assert!(granted(log.try_grant(10, 1)));
        assert_eq!(log.try_grant(10, 1), Decision::NotBefore(SECOND));
    }

    #[test]
    fn longer_interval_assumes_old_rate() {
        let mut log = WindowLog::new(10, SECOND);
        // Greedy for 5 s: 10 grants at the start of each second.
        for second in 0..5 {
            assert!(granted(log.try_grant(second * SECOND, 10)));
        }
        let now = 5 * SECOND - 1;
        log.reconfigure(now, 600, 60 * SECOND);
        // The log remembers 10 grants and assumes 10 more per second back to
        // the start, so 600 - 50 are free now, and no fresh 600.
        assert!(granted(log.try_grant(now, 550)));
        assert!(!granted(log.try_grant(now, 1)));
    }

    #[test]
    fn idle_log_needs_no_backfill() {
        let mut log = WindowLog::new(10, SECOND);
        assert!(granted(log.try_grant(0, 10)));
        let now = 120 * SECOND;
        log.reconfigure(now, 600, 60 * SECOND);
        assert!(granted(log.try_grant(now, 600)));
    }

    #[test]
    fn backfill_entries_stay_bounded() {
        let mut log = WindowLog::new(1, 1_000);
        let day = 86_400 * SECOND;
        assert!(granted(log.try_grant(day, 1)));
        log.reconfigure(day + 1_000, 1, day);
        assert!(log.len() <= 1025, "{} entries", log.len());
        assert!(!granted(log.try_grant(day + 1_000, 1)));
    }

    #[test]
    fn backwards_clock_stays_sorted() {
        let mut log = WindowLog::new(2, SECOND);
        assert!(granted(log.try_grant(SECOND, 1)));
        assert!(granted(log.try_grant(0, 1)));
        assert_eq!(log.try_grant(0, 1), Decision::NotBefore(2 * SECOND));
    }
}
