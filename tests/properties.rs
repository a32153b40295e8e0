//! Property tests of the limiter on tokio's paused clock: the rate bounds,
//! the concurrency cap, FIFO order, cancellation and liveness.
//!
//! Each case replays random arrivals against a fresh limiter on a fresh
//! current-thread runtime with paused time and records every grant. The
//! checks compare the record with the configured limit and with a reference
//! model written here from the policies' definitions.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tollgate::{Limiter, Margin, Permit, Policy, RateLimit, TryAcquireError};

/// One millisecond in nanoseconds.
const MS: u64 = 1_000_000;

/// Returns the proptest configuration: 128 cases per property, which take
/// a few seconds in all in a debug build because each case replays at most
/// 60 requests on paused time. `PROPTEST_CASES` overrides the count.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            128
        },
        // Keeps failing seeds in `tests/properties.proptest-regressions`.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        // A stuck replay takes `REAL_LIMIT` per attempt, so shrinking one
        // stops after two minutes.
        max_shrink_time: 120_000,
        ..default
    }
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// How a request is cancelled, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    /// The request runs to completion.
    Never,
    /// The request drops its `acquire_weighted` future if it has not been
    /// granted this many milliseconds after arrival.
    DropAfter(u64),
    /// Another task aborts the request's task this many milliseconds after
    /// arrival, whether it is still waiting or already holds its permit.
    AbortAfter(u64),
}

#[derive(Debug, Clone)]
struct Request {
    /// Milliseconds after the previous request's arrival. With 0 it arrives
    /// at the same paused instant, after the previous request in spawn order.
    gap_ms: u64,
    weight: u32,
    /// How long the permit is held before it drops, in milliseconds.
    hold_ms: u64,
    cancel: Cancel,
}

#[derive(Debug, Clone)]
struct Scenario {
    allowed: u32,
    interval_ms: u64,
    /// `max_concurrent_requests`, where 0 means no cap.
    cap: u32,
    policy: Policy,
    margin: Margin,
    requests: Vec<Request>,
}

impl Scenario {
    /// Returns the interval the policy enforces, in nanoseconds: the
    /// configured one plus the margin's guard.
    fn effective_interval(&self) -> u64 {
        let interval = self.interval_ms * MS;
        match self.margin {
            Margin::None => interval,
            // The documented default: interval / 100, clamped to [5 ms, 1 s].
            Margin::Auto => interval + (interval / 100).clamp(5 * MS, 1000 * MS),
            other => panic!("scenarios use Margin::None or Margin::Auto, got {other:?}"),
        }
    }

    /// Returns the largest weight one request may have.
    fn capacity(&self) -> u32 {
        match self.policy {
            Policy::TokenBucket { burst } => burst.get(),
            _ => self.allowed,
        }
    }

    /// Returns the burst of a token bucket, or `None` for the strict window.
    fn burst(&self) -> Option<u32> {
        match self.policy {
            Policy::TokenBucket { burst } => Some(burst.get()),
            _ => None,
        }
    }

    /// Returns each request's arrival time in nanoseconds after the start.
    fn arrivals(&self) -> Vec<u64> {
        self.requests
            .iter()
            .scan(0, |at, request| {
                *at += request.gap_ms * MS;
                Some(*at)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum PolicyChoice {
    StrictWindow,
    /// A token bucket with a burst from 1 to `allowed`.
    TokenBucket,
    /// A token bucket with burst 1.
    BurstOne,
    Either,
}

#[derive(Debug, Clone, Copy)]
enum MarginChoice {
    None,
    Auto,
    Either,
}

fn policy_strategy(choice: PolicyChoice, allowed: u32) -> BoxedStrategy<Policy> {
    let bucket = (1..=allowed)
        .prop_map(|burst| Policy::token_bucket(NonZeroU32::new(burst).expect("burst starts at 1")));
    match choice {
        PolicyChoice::StrictWindow => Just(Policy::StrictWindow).boxed(),
        PolicyChoice::TokenBucket => bucket.boxed(),
        PolicyChoice::BurstOne => Just(Policy::token_bucket(NonZeroU32::MIN)).boxed(),
        PolicyChoice::Either => prop_oneof![Just(Policy::StrictWindow), bucket].boxed(),
    }
}

fn margin_strategy(choice: MarginChoice) -> BoxedStrategy<Margin> {
    match choice {
        MarginChoice::None => Just(Margin::None).boxed(),
        MarginChoice::Auto => Just(Margin::Auto).boxed(),
        MarginChoice::Either => prop_oneof![Just(Margin::None), Just(Margin::Auto)].boxed(),
    }
}

fn request_strategy(capacity: u32) -> impl Strategy<Value = Request> {
    let gap_ms = prop_oneof![2 => Just(0), 3 => 1..=100u64, 1 => 101..=1500u64];
    let weight = prop_oneof![Just(1), 1..=capacity];
    let hold_ms = prop_oneof![Just(0), 0..=1200u64];
    let cancel = prop_oneof![
        6 => Just(Cancel::Never),
        1 => (1..=1500u64).prop_map(Cancel::DropAfter),
        1 => (1..=1500u64).prop_map(Cancel::AbortAfter),
    ];
    (gap_ms, weight, hold_ms, cancel).prop_map(|(gap_ms, weight, hold_ms, cancel)| Request {
        gap_ms,
        weight,
        hold_ms,
        cancel,
    })
}

/// Generates a limit of 1 to 20 requests per 1 to 2000 ms, the given cap
/// range, policy and margin, and 1 to 60 requests.
fn scenario(
    policy: PolicyChoice,
    margin: MarginChoice,
    caps: RangeInclusive<u32>,
) -> impl Strategy<Value = Scenario> {
    (1..=20u32, 1..=2000u64, caps, margin_strategy(margin))
        .prop_flat_map(move |(allowed, interval_ms, cap, margin)| {
            (
                Just((allowed, interval_ms, cap, margin)),
                policy_strategy(policy, allowed),
            )
        })
        .prop_flat_map(|((allowed, interval_ms, cap, margin), policy)| {
            let capacity = match policy {
                Policy::TokenBucket { burst } => burst.get(),
                _ => allowed,
            };
            prop::collection::vec(request_strategy(capacity), 1..=60).prop_map(move |requests| {
                Scenario {
                    allowed,
                    interval_ms,
                    cap,
                    policy,
                    margin,
                    requests,
                }
            })
        })
}

// ---------------------------------------------------------------------------
// Replaying a scenario against the limiter
// ---------------------------------------------------------------------------

/// What one replay observed.
#[derive(Debug)]
struct Outcome {
    /// Each request's grant time in nanoseconds after the start, or `None`
    /// when it was cancelled before it was granted.
    grants: Vec<Option<u64>>,
    /// The maximum number of permits held at once.
    max_held: usize,
    /// `in_flight()` and `waiting()` once every request task has ended.
    in_flight_at_end: u32,
    waiting_at_end: usize,
    /// `in_flight()` and `waiting()` after a further idle interval.
    in_flight_after_idle: u32,
    waiting_after_idle: usize,
    /// `try_acquire_weighted(capacity)` after the idle interval.
    full_request_after_idle: Result<(), TryAcquireError>,
}

/// Counts the permits held at once and keeps the maximum.
#[derive(Default)]
struct PermitCounter {
    current: AtomicUsize,
    max: AtomicUsize,
}

/// A permit whose holding is counted: the count rises after the grant and
/// falls before the permit drops, so the count never exceeds the permits
/// actually held.
struct CountedPermit {
    counter: Arc<PermitCounter>,
    _permit: Permit,
}

impl CountedPermit {
    fn new(counter: Arc<PermitCounter>, permit: Permit) -> Self {
        let count = counter.current.fetch_add(1, Ordering::SeqCst) + 1;
        counter.max.fetch_max(count, Ordering::SeqCst);
        Self {
            counter,
            _permit: permit,
        }
    }
}

impl Drop for CountedPermit {
    // Runs before the `_permit` field drops.
    fn drop(&mut self) {
        self.counter.current.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("a request task panicked while recording")
}

fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).expect("a replay lasts less than 584 years")
}

/// The paused time after which a replay counts as stuck. By estimate a
/// scenario needs under 7 minutes: arrivals spread over at most 90 s, then
/// each of up to 60 requests waits at most about one interval (2.02 s), one
/// hold (1.2 s) and one cancellation delay (1.5 s).
const PAUSED_LIMIT: Duration = Duration::from_secs(3600);

/// The real time after which a replay counts as stuck in a loop that never
/// yields to the runtime, which paused time cannot interrupt. A replay
/// normally takes milliseconds.
const REAL_LIMIT: Duration = Duration::from_secs(30);

/// Runs the future that `make` returns on a fresh current-thread runtime
/// with paused time, on a thread of its own, and returns its output.
///
/// # Panics
///
/// Panics when the future panics, runs for longer than [`PAUSED_LIMIT`] of
/// paused time (a request that is never granted) or [`REAL_LIMIT`] of real
/// time (a busy loop). A busy thread is left running.
fn run_paused<T, F>(make: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    let (sender, receiver) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("failed to build a paused tokio runtime");
        let output = runtime.block_on(async { tokio::time::timeout(PAUSED_LIMIT, make()).await });
        // The receiver is gone only if it already gave up on this thread.
        let _ = sender.send(output);
    });

    match receiver.recv_timeout(REAL_LIMIT) {
        Ok(Ok(output)) => output,
        Ok(Err(_elapsed)) => {
            panic!(
                "still running after {PAUSED_LIMIT:?} of paused time: a request was never granted"
            )
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("still running after {REAL_LIMIT:?} of real time: a loop never yields")
        }
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the replay thread sends its output before it ends"),
        },
    }
}

/// Replays `scenario` against a fresh limiter (see [`run_paused`]).
fn replay(scenario: &Scenario) -> Outcome {
    let scenario = scenario.clone();
    run_paused(move || async move { replay_async(&scenario).await })
}

async fn replay_async(scenario: &Scenario) -> Outcome {
    // The limiter's epoch is the runtime's start, so the limiter's clock and
    // the timer wheel's millisecond ticks line up with `start`.
    let start = Instant::now();
    let limit = RateLimit::new(scenario.allowed, scenario.interval_ms, scenario.cap)
        .expect("scenarios generate valid limits");
    let limiter = Limiter::builder(limit)
        .policy(scenario.policy)
        .margin(scenario.margin)
        .build();
    let grants = Arc::new(Mutex::new(vec![None; scenario.requests.len()]));
    let counter = Arc::new(PermitCounter::default());

    // Requests are spawned in index order. Those arriving at one instant are
    // spawned back to back without yielding, and the current-thread
    // scheduler polls tasks in spawn order, so they reach the limiter in
    // index order too.
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    for (index, (request, arrival)) in scenario
        .requests
        .iter()
        .zip(scenario.arrivals())
        .enumerate()
    {
        let arrival = start + Duration::from_nanos(arrival);
        if Instant::now() < arrival {
            tokio::time::sleep_until(arrival).await;
        }

        let drop_at = match request.cancel {
            Cancel::DropAfter(ms) => Some(arrival + Duration::from_millis(ms)),
            _ => None,
        };
        let task = tokio::spawn(run_request(
            limiter.clone(),
            index,
            request.clone(),
            drop_at,
            start,
            grants.clone(),
            counter.clone(),
        ));

        match request.cancel {
            Cancel::AbortAfter(ms) => {
                let abort_at = arrival + Duration::from_millis(ms);
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep_until(abort_at).await;
                    task.abort();
                    join_ignoring_cancellation(task).await;
                }));
            }
            _ => tasks.push(task),
        }
    }
    for task in tasks {
        join_ignoring_cancellation(task).await;
    }

    let in_flight_at_end = limiter.in_flight();
    let waiting_at_end = limiter.waiting();
    tokio::time::sleep(Duration::from_nanos(scenario.effective_interval())).await;
    let in_flight_after_idle = limiter.in_flight();
    let waiting_after_idle = limiter.waiting();
    let full_request_after_idle = limiter.try_acquire_weighted(limiter.capacity()).map(drop);

    let grants = lock(&grants).clone();
    Outcome {
        grants,
        max_held: counter.max.load(Ordering::SeqCst),
        in_flight_at_end,
        waiting_at_end,
        in_flight_after_idle,
        waiting_after_idle,
        full_request_after_idle,
    }
}

/// Waits for a task and re-raises its panic. An aborted task is no error.
async fn join_ignoring_cancellation(task: JoinHandle<()>) {
    if let Err(error) = task.await {
        if error.is_panic() {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

/// Acquires, records the grant time, holds the permit, then drops it.
async fn run_request(
    limiter: Limiter,
    index: usize,
    request: Request,
    drop_at: Option<Instant>,
    start: Instant,
    grants: Arc<Mutex<Vec<Option<u64>>>>,
    counter: Arc<PermitCounter>,
) {
    let acquire = limiter.acquire_weighted(request.weight);
    let result = match drop_at {
        // Tokio's `Timeout` (1.54) polls the acquire future before it checks
        // the deadline, so a grant made at the deadline instant is taken.
        Some(deadline) => match tokio::time::timeout_at(deadline, acquire).await {
            Ok(result) => result,
            Err(_elapsed) => return,
        },
        None => acquire.await,
    };
    let permit = result.expect("scenarios generate weights within capacity");

    lock(&grants)[index] = Some(nanos_since(start));
    let permit = CountedPermit::new(counter, permit);
    tokio::time::sleep(Duration::from_millis(request.hold_ms)).await;
    drop(permit);
}

// ---------------------------------------------------------------------------
// Checks on the record
// ---------------------------------------------------------------------------

/// Returns `(grant time, weight)` of every granted request, in time order.
fn granted_units(scenario: &Scenario, grants: &[Option<u64>]) -> Vec<(u64, u64)> {
    let mut granted: Vec<(u64, u64)> = grants
        .iter()
        .zip(&scenario.requests)
        .filter_map(|(at, request)| at.map(|at| (at, u64::from(request.weight))))
        .collect();
    granted.sort_unstable();
    granted
}

/// Returns `(start, units)` for the half-open window `[start, start +
/// length)` that starts at a grant and contains the most units. `granted`
/// must be in time order.
fn busiest_window(granted: &[(u64, u64)], length: u64) -> (u64, u64) {
    let mut busiest = (0, 0);
    for (first, &(start, _)) in granted.iter().enumerate() {
        let units: u64 = granted[first..]
            .iter()
            .take_while(|(at, _)| *at < start + length)
            .map(|(_, weight)| weight)
            .sum();
        if units > busiest.1 {
            busiest = (start, units);
        }
    }
    busiest
}

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

/// The rate rule of the reference model, from each policy's definition.
#[derive(Debug, Clone)]
enum RateRule {
    /// At most `allowed` units start in any window `[t, t + interval)`.
    Window {
        allowed: u64,
        interval: u64,
        /// `(time, units)` of every grant, in time order.
        grants: Vec<(u64, u64)>,
    },
    /// GCRA with emission interval `T = ceil(interval / allowed)` ns and
    /// tolerance `burst * T`: a grant of `w` units at `now` needs
    /// `max(tat, now) + w * T <= now + burst * T`, and moves `tat` there.
    Bucket {
        emission: u64,
        tolerance: u64,
        tat: u64,
    },
}

impl RateRule {
    fn new(scenario: &Scenario) -> Self {
        let allowed = u64::from(scenario.allowed);
        let interval = scenario.effective_interval();
        match scenario.burst() {
            None => RateRule::Window {
                allowed,
                interval,
                grants: Vec::new(),
            },
            Some(burst) => {
                let emission = interval.div_ceil(allowed);
                RateRule::Bucket {
                    emission,
                    tolerance: u64::from(burst) * emission,
                    tat: 0,
                }
            }
        }
    }

    /// Returns the earliest time at or after `now` at which `weight` more
    /// units may start, assuming no other grant in between.
    fn ready_at(&self, now: u64, weight: u64) -> u64 {
        match self {
            RateRule::Window {
                allowed,
                interval,
                grants,
            } => {
                let live: Vec<&(u64, u64)> = grants
                    .iter()
                    .filter(|(at, _)| at + interval > now)
                    .collect();
                let mut used: u64 = live.iter().map(|(_, units)| units).sum();
                if used + weight <= *allowed {
                    return now;
                }
                for (at, units) in live {
                    used -= units;
                    if used + weight <= *allowed {
                        return at + interval;
                    }
                }
                panic!("weight {weight} exceeds allowed {allowed}");
            }
            RateRule::Bucket {
                emission,
                tolerance,
                tat,
            } => {
                let after = (*tat).max(now) + weight * emission;
                if after <= now + tolerance {
                    now
                } else {
                    after - tolerance
                }
            }
        }
    }

    fn record(&mut self, at: u64, weight: u64) {
        match self {
            RateRule::Window { grants, .. } => grants.push((at, weight)),
            RateRule::Bucket { emission, tat, .. } => *tat = (*tat).max(at) + weight * *emission,
        }
    }
}

/// Rounds a deadline up to tokio's timer resolution: with paused time a
/// sleep until `deadline` ends at the next whole millisecond after the
/// runtime's start.
fn timer_fires_at(deadline: u64) -> u64 {
    deadline.div_ceil(MS) * MS
}

/// Returns the earliest time at or after `from` at which fewer than `cap`
/// of `permits` (`(grant, release)` pairs) are held. A `cap` of 0 means no
/// cap.
fn slot_free_at(permits: &[(u64, u64)], cap: u32, from: u64) -> u64 {
    if cap == 0 {
        return from;
    }
    let mut now = from;
    // Each round moves `now` to a later release time, so the loop ends
    // within `permits.len()` rounds.
    for _ in 0..=permits.len() {
        let busy: Vec<u64> = permits
            .iter()
            .filter(|(grant, release)| *grant <= now && now < *release)
            .map(|(_, release)| *release)
            .collect();
        if busy.len() < usize::try_from(cap).expect("cap fits in usize") {
            return now;
        }
        now = busy
            .into_iter()
            .min()
            .expect("at least `cap` permits, and `cap` >= 1, are held");
    }
    unreachable!("a slot is free once every permit is released");
}

/// The reference schedule and the ties it could not decide on its own.
struct Schedule {
    grants: Vec<Option<u64>>,
    /// How many bucket grants it had to guess about (see `reference_schedule`).
    guesses: u32,
}

/// Computes when each request is granted by a FIFO queue that admits its
/// head at the first instant both the concurrency cap and the rate rule
/// allow it. The queue checks only when a request arrives, a permit drops,
/// a waiter leaves or a timer fires.
///
/// A request cancelled at the very instant the model would grant it may go
/// either way on the real scheduler, so the model follows `observed` there.
/// One such tie it cannot follow: a bucket request granted and then aborted
/// in the same instant gives its units back only if no later grant has
/// moved the bucket since, and the test cannot observe which happened. Bit
/// `k` of `refunds` decides the `k`-th such tie: set means the units came
/// back.
fn reference_schedule(scenario: &Scenario, observed: &[Option<u64>], refunds: u64) -> Schedule {
    let mut rate = RateRule::new(scenario);
    let mut permits: Vec<(u64, u64)> = Vec::new();
    let mut grants = vec![None; scenario.requests.len()];
    let mut guesses = 0;
    // The time the previous request left the queue, because no request
    // overtakes it.
    let mut queue_free = 0;

    for (index, (request, arrival)) in scenario
        .requests
        .iter()
        .zip(scenario.arrivals())
        .enumerate()
    {
        let weight = u64::from(request.weight);
        let head_from = arrival.max(queue_free);
        let slot_at = slot_free_at(&permits, scenario.cap, head_from);
        let ready = rate.ready_at(slot_at, weight);
        let grant = if ready <= slot_at {
            slot_at
        } else {
            timer_fires_at(ready)
        };

        let cancel_at = match request.cancel {
            Cancel::Never => None,
            Cancel::DropAfter(ms) | Cancel::AbortAfter(ms) => Some(arrival + ms * MS),
        };
        let granted = match cancel_at {
            None => true,
            Some(cancel_at) => {
                grant < cancel_at || (grant == cancel_at && observed[index].is_some())
            }
        };

        if granted {
            let release = match (request.cancel, cancel_at) {
                (Cancel::AbortAfter(_), Some(cancel_at)) => {
                    (grant + request.hold_ms * MS).min(cancel_at)
                }
                _ => grant + request.hold_ms * MS,
            };
            rate.record(grant, weight);
            permits.push((grant, release));
            grants[index] = Some(grant);
            queue_free = grant;
            continue;
        }

        let cancel_at = cancel_at.expect("only cancelled requests go ungranted");
        let bucket_abort_tie = grant == cancel_at
            && scenario.burst().is_some()
            && matches!(request.cancel, Cancel::AbortAfter(_));
        if bucket_abort_tie {
            let refunded = guesses < 64 && (refunds >> guesses) & 1 == 1;
            guesses += 1;
            if !refunded {
                rate.record(grant, weight);
            }
        }
        queue_free = head_from.max(cancel_at);
    }

    Schedule { grants, guesses }
}

/// A request whose observed grant differs from the reference model's.
#[derive(Debug)]
struct Difference {
    request: usize,
    observed: Option<u64>,
    model: Option<u64>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let describe = |grant: Option<u64>| match grant {
            Some(at) => format!("granted at {:?}", Duration::from_nanos(at)),
            None => "cancelled".to_string(),
        };
        write!(
            f,
            "request {}: {} by the limiter, {} by the model",
            self.request,
            describe(self.observed),
            describe(self.model)
        )
    }
}

impl Difference {
    /// Reports whether the limiter granted later than the model, or not at
    /// all where the model grants before the cancellation.
    fn is_later(&self) -> bool {
        match (self.observed, self.model) {
            (None, Some(_)) => true,
            (Some(observed), Some(model)) => observed > model,
            _ => false,
        }
    }
}

/// Compares the observed grants with the reference model, trying every
/// resolution of the model's undecided ties, and returns the differences of
/// the best match (none when one matches exactly).
fn differences_from_model(scenario: &Scenario, observed: &[Option<u64>]) -> Vec<Difference> {
    let diff = |schedule: &Schedule| -> Vec<Difference> {
        observed
            .iter()
            .zip(&schedule.grants)
            .enumerate()
            .filter(|(_, (observed, model))| observed != model)
            .map(|(request, (observed, model))| Difference {
                request,
                observed: *observed,
                model: *model,
            })
            .collect()
    };

    // With no refunds the model is the most restrictive, so its differences
    // are reported if no resolution matches.
    let strictest = reference_schedule(scenario, observed, 0);
    let differences = diff(&strictest);
    if differences.is_empty() {
        return differences;
    }
    // Ties are rare, so at most 2^10 resolutions are tried.
    let resolutions = 1u64 << strictest.guesses.min(10);
    for refunds in 1..resolutions {
        if diff(&reference_schedule(scenario, observed, refunds)).is_empty() {
            return Vec::new();
        }
    }
    differences
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Strict window, `Margin::None`: at most `allowed` units start in any
    /// window `[t, t + interval)`.
    #[test]
    fn window_bound(scenario in scenario(PolicyChoice::StrictWindow, MarginChoice::None, 0..=4)) {
        let outcome = replay(&scenario);
        let interval = scenario.interval_ms * MS;
        let (start, units) = busiest_window(&granted_units(&scenario, &outcome.grants), interval);
        prop_assert!(
            units <= u64::from(scenario.allowed),
            "{units} units started in the {:?} window from {:?}, allowed {}",
            Duration::from_nanos(interval),
            Duration::from_nanos(start),
            scenario.allowed
        );
    }

    /// Strict window, default margin: at most `allowed` units start in any
    /// window `[t, t + interval + guard)`.
    #[test]
    fn window_bound_with_margin(
        scenario in scenario(PolicyChoice::StrictWindow, MarginChoice::Auto, 0..=4)
    ) {
        let outcome = replay(&scenario);
        let window = scenario.effective_interval();
        let (start, units) = busiest_window(&granted_units(&scenario, &outcome.grants), window);
        prop_assert!(
            units <= u64::from(scenario.allowed),
            "{units} units started in the {:?} window from {:?}, allowed {}",
            Duration::from_nanos(window),
            Duration::from_nanos(start),
            scenario.allowed
        );
    }

    /// Token bucket of burst `b`, `Margin::None`: at most `allowed + b - 1`
    /// units start in any window of length `interval`.
    ///
    /// Let `U` units start in `[t, t + I)`, the first at `s` and the last at
    /// `s' < s + I`. Each grant raises `tat` by at least its weight times
    /// `T = ceil(I / allowed) >= I / allowed`, so the last grant leaves
    /// `tat >= s + U * T`, and it was admitted only if `tat <= s' + b * T`.
    /// Hence `U * T <= s' - s + b * T < I + b * T <= (allowed + b) * T`,
    /// so `U < allowed + b`.
    #[test]
    fn bucket_bound(scenario in scenario(PolicyChoice::TokenBucket, MarginChoice::None, 0..=4)) {
        let outcome = replay(&scenario);
        let burst = scenario.burst().expect("a token bucket scenario");
        let interval = scenario.interval_ms * MS;
        let bound = u64::from(scenario.allowed + burst - 1);
        let (start, units) = busiest_window(&granted_units(&scenario, &outcome.grants), interval);
        prop_assert!(
            units <= bound,
            "{units} units started in the {:?} window from {:?}, bound {bound} \
             (allowed {} + burst {burst} - 1)",
            Duration::from_nanos(interval),
            Duration::from_nanos(start),
            scenario.allowed
        );
    }

    /// Token bucket of burst 1: never more than `allowed` units in any
    /// window of length `interval`, like the strict window.
    #[test]
    fn burst_one_bound(scenario in scenario(PolicyChoice::BurstOne, MarginChoice::None, 0..=4)) {
        let outcome = replay(&scenario);
        let interval = scenario.interval_ms * MS;
        let (start, units) = busiest_window(&granted_units(&scenario, &outcome.grants), interval);
        prop_assert!(
            units <= u64::from(scenario.allowed),
            "{units} units started in the {:?} window from {:?}, allowed {}",
            Duration::from_nanos(interval),
            Duration::from_nanos(start),
            scenario.allowed
        );
    }

    /// Never more than `cap` permits are held at once.
    #[test]
    fn cap_bound(scenario in scenario(PolicyChoice::Either, MarginChoice::None, 1..=4)) {
        let outcome = replay(&scenario);
        let cap = usize::try_from(scenario.cap).expect("cap fits in usize");
        prop_assert!(
            outcome.max_held <= cap,
            "{} permits were held at once, cap {cap}",
            outcome.max_held
        );
    }

    /// Grants follow arrival order: a granted request is never granted
    /// before a granted request that arrived ahead of it. Requests arriving
    /// at one instant arrive in spawn order. Grants at one instant cannot be
    /// ordered by their times, so they compare as equal.
    #[test]
    fn fifo_order(scenario in scenario(PolicyChoice::Either, MarginChoice::Either, 0..=4)) {
        let outcome = replay(&scenario);
        let mut latest: Option<(usize, u64)> = None;
        for (index, grant) in outcome.grants.iter().enumerate() {
            let Some(grant) = *grant else { continue };
            if let Some((earlier, earlier_grant)) = latest {
                prop_assert!(
                    grant >= earlier_grant,
                    "request {index} was granted at {:?}, before request {earlier} \
                     that arrived ahead of it (granted at {:?})",
                    Duration::from_nanos(grant),
                    Duration::from_nanos(earlier_grant)
                );
            }
            latest = Some((index, grant));
        }
    }

    /// Once every permit has dropped and the limiter has been idle for one
    /// interval, nothing is left in flight or queued and a request of full
    /// capacity is granted at once: cancelled waiters leave nothing behind.
    #[test]
    fn idle_restores_capacity(
        scenario in scenario(PolicyChoice::Either, MarginChoice::Either, 0..=4)
    ) {
        let outcome = replay(&scenario);
        prop_assert_eq!(outcome.in_flight_at_end, 0, "slots in use after every task ended");
        prop_assert_eq!(outcome.waiting_at_end, 0, "waiters queued after every task ended");
        prop_assert_eq!(outcome.in_flight_after_idle, 0, "slots in use after the idle interval");
        prop_assert_eq!(outcome.waiting_after_idle, 0, "waiters queued after the idle interval");
        // NOTE: a token bucket rounds its emission interval up to whole
        // nanoseconds, so refilling a burst of `b` units can take up to
        // `b - 1` ns longer than the interval (`bucket_refill_within_rounding`
        // shows it). Only that shortfall is tolerated here.
        let rounding = scenario.burst().map_or(0, |burst| u64::from(burst) - 1);
        let rounding = Duration::from_nanos(rounding);
        let rejection = match &outcome.full_request_after_idle {
            Ok(()) => None,
            Err(TryAcquireError::RateLimited { retry_after }) if *retry_after <= rounding => None,
            Err(error) => Some(error),
        };
        prop_assert!(
            rejection.is_none(),
            "a request of weight {} was rejected after the idle interval: {:?}",
            scenario.capacity(),
            rejection
        );
    }

    /// Every request is granted exactly when the reference model grants it.
    /// A later grant breaks liveness. The model admits at the first instant
    /// the rules allow, so an earlier grant means the limiter and the model
    /// disagree on the rules.
    #[test]
    fn matches_reference_model(
        scenario in scenario(PolicyChoice::Either, MarginChoice::Either, 0..=4)
    ) {
        let outcome = replay(&scenario);
        let differences = differences_from_model(&scenario, &outcome.grants);
        let later: Vec<String> = differences
            .iter()
            .filter(|difference| difference.is_later())
            .map(Difference::to_string)
            .collect();
        prop_assert!(
            later.is_empty(),
            "granted later than the reference model: {}",
            later.join("; ")
        );
        // What is left differs by an earlier grant.
        let earlier: Vec<String> = differences.iter().map(Difference::to_string).collect();
        prop_assert!(
            earlier.is_empty(),
            "granted earlier than the reference model: {}",
            earlier.join("; ")
        );
    }
}

/// A token bucket emptied at once is full again within `burst - 1` ns of
/// one interval, the documented cost of rounding its emission interval up.
///
/// With 3 per second the emission interval is `1 s / 3` rounded up to
/// 333_333_334 ns, so three units refill after 1_000_000_002 ns.
#[test]
fn bucket_refill_within_rounding() {
    let (first, at_interval, after_rounding) = run_paused(|| async {
        let limit = RateLimit::new(3, 1000, 0).expect("valid limit");
        let burst = NonZeroU32::new(3).expect("non-zero burst");
        let limiter = Limiter::builder(limit)
            .policy(Policy::token_bucket(burst))
            .margin(Margin::None)
            .build();
        let first = limiter.try_acquire_weighted(3).map(drop);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let at_interval = limiter.try_acquire_weighted(3).map(drop);
        tokio::time::advance(Duration::from_nanos(2)).await;
        let after_rounding = limiter.try_acquire_weighted(3).map(drop);
        (first, at_interval, after_rounding)
    });

    assert!(first.is_ok(), "a full bucket rejected its burst: {first:?}");
    assert_eq!(
        at_interval,
        Err(TryAcquireError::RateLimited {
            retry_after: Duration::from_nanos(2)
        }),
        "the shortfall at one interval is not the documented 2 ns"
    );
    assert!(
        after_rounding.is_ok(),
        "the burst was rejected 2 ns after one interval: {after_rounding:?}"
    );
}
