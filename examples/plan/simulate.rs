//! The prediction: the workload run against a real tollgate `Limiter` on
//! tokio's paused clock.
//!
//! With the clock paused, tokio jumps straight to the next timer whenever
//! every task waits, so a sync of hours runs in milliseconds of real time.
//! The limiter, its queue and its timers are the ones a program uses, which
//! is why the prediction matches what the limiter does.

use std::cell::RefCell;
use std::error::Error;
use std::rc::Rc;
use std::time::Duration;

use tokio::task::{JoinSet, LocalSet};
use tokio::time::Instant;
use tollgate::Limiter;

use crate::args::Options;
use crate::bounds::Bounds;
use crate::latency::{Latency, SplitMix64};

/// The simulation's forecast for a workload.
#[derive(Debug, Clone)]
pub(crate) struct Prediction {
    /// Time from the first request until the last response.
    pub(crate) duration: Duration,
    /// Queue wait of every request, from calling `acquire` until its permit,
    /// in nanoseconds, sorted.
    pub(crate) waits: Vec<u64>,
    /// Request-time spent queued while every concurrency slot was in use.
    pub(crate) slot_wait: Duration,
    /// Request-time spent queued while a slot was free, so waiting for the
    /// rate limit.
    pub(crate) rate_wait: Duration,
    /// Maximum number of requests that started in any window `[t, t +
    /// interval)` of the nominal interval, which is what a provider counts.
    pub(crate) worst_window: u64,
    /// Maximum number of permits held at once.
    pub(crate) peak_in_flight: u32,
    /// Real time the simulation took.
    pub(crate) compute_time: Duration,
}

impl Prediction {
    /// Returns the queue wait at `percent` (0 to 100) by the nearest-rank
    /// method.
    pub(crate) fn wait_percentile(&self, percent: f64) -> Duration {
        let count = self.waits.len();
        if count == 0 {
            return Duration::ZERO;
        }
        let rank = (percent / 100.0 * count as f64).ceil() as usize;
        Duration::from_nanos(self.waits[rank.clamp(1, count) - 1])
    }

    /// Returns the mean rate in requests per second.
    pub(crate) fn rate(&self) -> f64 {
        self.waits.len() as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

/// Runs the workload in `options` with latencies drawn from `latency`.
///
/// # Errors
///
/// Returns an error when the runtime cannot be built, a worker panics, or
/// the simulation passes its virtual time limit, which means the limiter
/// stopped granting permits.
pub(crate) fn simulate(options: &Options, latency: Latency) -> Result<Prediction, Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    let started = std::time::Instant::now();
    let mut prediction = LocalSet::new().block_on(&runtime, run(options, latency))?;
    prediction.compute_time = started.elapsed();
    Ok(prediction)
}

async fn run(options: &Options, latency: Latency) -> Result<Prediction, Box<dyn Error>> {
    // Built inside the runtime, so the limiter's clock is the paused one.
    let limiter = Limiter::builder(options.limit)
        .policy(options.policy)
        .margin(options.margin)
        .build();
    let ledger = Rc::new(RefCell::new(Ledger::new(options, latency)));

    let mut workers = JoinSet::new();
    for _ in 0..options.workers {
        workers.spawn_local(work(limiter.clone(), ledger.clone()));
    }
    let all_done = async {
        while let Some(result) = workers.join_next().await {
            result?;
        }
        Ok::<(), tokio::task::JoinError>(())
    };
    let time_limit = virtual_time_limit(options, latency);
    match tokio::time::timeout(time_limit, all_done).await {
        Ok(result) => result.map_err(|error| format!("a simulated worker failed: {error}"))?,
        Err(_) => {
            return Err(format!(
                "the simulation did not finish within {time_limit:?} of virtual time, \
                 far beyond both bounds; the limiter stopped granting permits"
            )
            .into())
        }
    }

    let prediction = ledger
        .borrow_mut()
        .take_prediction(options.limit.interval());
    Ok(prediction)
}

/// Returns a virtual deadline far beyond any plausible duration, so that a
/// limiter that stops granting ends the run instead of hanging it.
fn virtual_time_limit(options: &Options, latency: Latency) -> Duration {
    let bounds = Bounds::new(options, latency.mean());
    let worst = bounds.rate + bounds.concurrency + latency.max();
    worst
        .saturating_mul(10)
        .saturating_add(Duration::from_secs(1))
}

/// Sends requests one at a time until the workload has none left.
async fn work(limiter: Limiter, ledger: Rc<RefCell<Ledger>>) {
    // Each pass takes one of the workload's requests, so the loop ends.
    loop {
        let Some(requested) = ledger.borrow_mut().begin() else {
            return;
        };
        let permit = limiter.acquire().await;
        let latency = ledger.borrow_mut().grant(requested);
        // NOTE: tokio's timer rounds deadlines up to whole milliseconds
        // (`deadline_to_tick` in tokio 1.54), so this sleep lasts the latency
        // rounded up, as on the real clock. A provider that responds in under
        // a millisecond finishes sooner than predicted.
        tokio::time::sleep(latency).await;
        ledger.borrow_mut().finish();
        drop(permit);
    }
}

/// The shared record of the simulation, changed only between awaits.
struct Ledger {
    latency: Latency,
    rng: SplitMix64,
    start: Instant,
    /// The concurrency cap, 0 for none.
    cap: u32,
    unstarted: u64,
    queued: u64,
    in_flight: u32,
    peak_in_flight: u32,
    last_change: Instant,
    slot_wait_ns: u128,
    rate_wait_ns: u128,
    /// Queue wait of each request, in nanoseconds, in grant order.
    waits: Vec<u64>,
    /// Grant time of each request, in nanoseconds since the start, in order.
    grants: Vec<u64>,
    last_response: Instant,
}

impl Ledger {
    fn new(options: &Options, latency: Latency) -> Self {
        let now = Instant::now();
        let capacity = usize::try_from(options.requests).unwrap_or(0);
        Self {
            latency,
            rng: SplitMix64::new(options.seed),
            start: now,
            cap: options.limit.max_concurrent_requests(),
            unstarted: options.requests,
            queued: 0,
            in_flight: 0,
            peak_in_flight: 0,
            last_change: now,
            slot_wait_ns: 0,
            rate_wait_ns: 0,
            waits: Vec::with_capacity(capacity),
            grants: Vec::with_capacity(capacity),
            last_response: now,
        }
    }

    /// Takes the next request, if any are left, and returns when it started.
    fn begin(&mut self) -> Option<Instant> {
        if self.unstarted == 0 {
            return None;
        }
        self.unstarted -= 1;
        let now = self.charge_waits();
        self.queued += 1;
        Some(now)
    }

    /// Records the permit of a request that started at `requested`, and
    /// draws its latency.
    fn grant(&mut self, requested: Instant) -> Duration {
        let now = self.charge_waits();
        self.queued -= 1;
        self.in_flight += 1;
        self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
        self.waits.push(nanos(now - requested));
        self.grants.push(nanos(now - self.start));
        self.latency.sample(&mut self.rng)
    }

    /// Records a response, just before its permit drops.
    fn finish(&mut self) {
        let now = self.charge_waits();
        self.in_flight -= 1;
        self.last_response = now;
    }

    /// Charges the time since the last change, once per queued request, to
    /// what the queue was waiting for, and returns the current time.
    ///
    /// Between two changes the counts are constant. While every slot is in
    /// use, no queued request can hold one, so all of them wait for a slot.
    /// Otherwise the head has a free slot or can take one, and waits for
    /// the rate limit, with the others behind it.
    fn charge_waits(&mut self) -> Instant {
        let now = Instant::now();
        let since = now - self.last_change;
        let request_time = since.as_nanos() * u128::from(self.queued);
        if self.cap > 0 && self.in_flight >= self.cap {
            self.slot_wait_ns += request_time;
        } else {
            self.rate_wait_ns += request_time;
        }
        self.last_change = now;
        now
    }

    /// Summarizes the run, moving the recorded waits out of the ledger.
    fn take_prediction(&mut self, interval: Duration) -> Prediction {
        let mut waits = std::mem::take(&mut self.waits);
        waits.sort_unstable();
        Prediction {
            duration: self.last_response - self.start,
            waits,
            slot_wait: from_nanos(self.slot_wait_ns),
            rate_wait: from_nanos(self.rate_wait_ns),
            worst_window: worst_window(&self.grants, nanos(interval)),
            peak_in_flight: self.peak_in_flight,
            compute_time: Duration::ZERO,
        }
    }
}

/// Returns the maximum number of sorted `times` in any half-open window
/// `[t, t + interval)`.
fn worst_window(times: &[u64], interval: u64) -> u64 {
    let mut first = 0;
    let mut worst = 0;
    for (last, &time) in times.iter().enumerate() {
        while time - times[first] >= interval {
            first += 1;
        }
        worst = worst.max(last - first + 1);
    }
    worst as u64
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn from_nanos(nanos: u128) -> Duration {
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Command};

    fn predict(line: &str) -> Prediction {
        let options = match parse(line.split_whitespace().map(str::to_owned)) {
            Ok(Command::Plan(options)) => options,
            other => panic!("{line:?} parsed to {other:?}"),
        };
        simulate(&options, options.latency).unwrap_or_else(|error| panic!("{line:?}: {error}"))
    }

    #[test]
    fn rate_bound_run_is_exact() {
        // 10 per second, 2 at a time for 100 ms: each window's 10 requests
        // take 500 ms, and the second window opens at 1 s.
        let prediction =
            predict("--limit 10/1s --concurrency 2 --margin none --latency 100ms --requests 20");
        assert_eq!(prediction.duration, Duration::from_millis(1500));
        assert_eq!(prediction.waits.len(), 20);
        assert_eq!(prediction.worst_window, 10);
        assert_eq!(prediction.peak_in_flight, 2);
        assert_eq!(prediction.slot_wait, Duration::ZERO);
        // Requests 11 and 12, one per worker, wait from 500 ms until the
        // second window opens at 1 s.
        assert_eq!(
            prediction.wait_percentile(100.0),
            Duration::from_millis(500)
        );
        assert_eq!(prediction.rate_wait, Duration::from_secs(1));
    }

    #[test]
    fn slot_bound_run_charges_slots() {
        // Three workers share one slot; the rate never binds.
        let prediction =
            predict("--limit 1000/1s --concurrency 1 --workers 3 --latency 10ms --requests 30");
        assert_eq!(prediction.duration, Duration::from_millis(300));
        assert_eq!(prediction.peak_in_flight, 1);
        assert_eq!(prediction.rate_wait, Duration::ZERO);
        assert!(prediction.slot_wait > Duration::ZERO);
        // After the start, two requests always wait 20 ms for the slot.
        assert_eq!(prediction.wait_percentile(100.0), Duration::from_millis(20));
    }

    #[test]
    fn same_seed_same_prediction() {
        let line = "--limit 20/1s --concurrency 4 --latency exp:10ms+30ms --requests 200 --seed 9";
        let (first, second) = (predict(line), predict(line));
        assert_eq!(first.duration, second.duration);
        assert_eq!(first.waits, second.waits);
    }

    #[test]
    fn worst_window_counts_half_open() {
        assert_eq!(worst_window(&[], 10), 0);
        assert_eq!(worst_window(&[0, 5, 9, 10, 19], 10), 3);
        assert_eq!(worst_window(&[0, 10, 20], 10), 1);
        assert_eq!(worst_window(&[3, 3, 3, 12], 10), 4);
    }
}
