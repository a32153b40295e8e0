//! Scenario tests of the limiter's guarantees, on tokio's paused clock or a
//! manual clock.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;
use tollgate::clock::{Clock, ManualClock};
use tollgate::{AcquireError, Limiter, Margin, Policy, RateLimit, TryAcquireError};

fn limit(allowed: u32, interval_ms: u64, cap: u32) -> RateLimit {
    RateLimit::new(allowed, interval_ms, cap).expect("valid test limit")
}

fn exact(limit: RateLimit) -> Limiter {
    Limiter::builder(limit).margin(Margin::None).build()
}

fn bucket(limit: RateLimit, burst: u32) -> Limiter {
    let burst = NonZeroU32::new(burst).expect("burst of at least 1");
    Limiter::builder(limit)
        .policy(Policy::token_bucket(burst))
        .margin(Margin::None)
        .build()
}

/// Returns the largest number of instants in any half-open window of length
/// `window` starting at one of them.
fn max_in_window(times: &[Duration], window: Duration) -> usize {
    times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| **t >= *start && **t < *start + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn greedy_caller_sixty_seconds() {
    // The default margin applies, as for any user who does not choose one.
    let limiter = Limiter::new(limit(10, 1000, 0));
    let start = Instant::now();
    let mut grants = Vec::new();
    while start.elapsed() < Duration::from_secs(60) {
        let _permit = limiter.acquire().await;
        let at = start.elapsed();
        if at < Duration::from_secs(60) {
            grants.push(at);
        }
    }

    assert!(grants.len() >= 595, "only {} grants in 60 s", grants.len());
    let worst = max_in_window(&grants, Duration::from_secs(1));
    assert!(
        worst <= 10,
        "{worst} grants started within one 1000 ms window"
    );
}

#[tokio::test(start_paused = true)]
async fn boundary_burst_stays_in_window() {
    // One request, a pause of 0.99 interval, then a greedy caller: the
    // classic case where a fixed window or full bucket lets 19 through.
    let limiter = exact(limit(10, 1000, 0));
    let start = Instant::now();
    let mut grants = Vec::new();
    let _first = limiter.acquire().await;
    grants.push(start.elapsed());
    tokio::time::sleep(Duration::from_millis(990)).await;
    for _ in 0..30 {
        let _permit = limiter.acquire().await;
        grants.push(start.elapsed());
    }

    assert_eq!(max_in_window(&grants, Duration::from_secs(1)), 10);
    assert_eq!(
        grants[10],
        Duration::from_millis(1000),
        "the 11th waits for the first to expire"
    );
}

#[tokio::test(start_paused = true)]
async fn full_bucket_admits_documented_excess() {
    // The documented token-bucket trade-off: with burst = allowed, up to
    // 2 * allowed - 1 start within one window.
    let limiter = bucket(limit(10, 1000, 0), 10);
    let start = Instant::now();
    let mut grants = Vec::new();
    let _first = limiter.acquire().await;
    grants.push(start.elapsed());
    tokio::time::sleep(Duration::from_millis(999)).await;
    for _ in 0..30 {
        let _permit = limiter.acquire().await;
        grants.push(start.elapsed());
    }

    let worst = max_in_window(&grants, Duration::from_secs(1));
    assert!(worst <= 19, "{worst} exceeds 2 * allowed - 1");
    assert!(worst > 10, "the test no longer exercises the burst case");
}

#[tokio::test(start_paused = true)]
async fn burst_one_spaces_grants_evenly() {
    let limiter = bucket(limit(4, 1000, 0), 1);
    let start = Instant::now();
    let mut grants = Vec::new();
    for _ in 0..9 {
        let _permit = limiter.acquire().await;
        grants.push(start.elapsed());
    }

    for (index, at) in grants.iter().enumerate() {
        assert_eq!(
            *at,
            Duration::from_millis(250) * index as u32,
            "grant {index}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn two_hundred_waiters_in_order() {
    let limiter = bucket(limit(1000, 1000, 0), 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();

    let mut tasks = Vec::new();
    for index in 0..200u32 {
        let limiter = limiter.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limiter.acquire().await;
            order
                .lock()
                .expect("order lock")
                .push((index, start.elapsed()));
        }));
        // Let each task poll and queue before the next one is spawned.
        tokio::task::yield_now().await;
    }
    for task in tasks {
        task.await.expect("waiter task");
    }

    let order = order.lock().expect("order lock");
    let indices: Vec<u32> = order.iter().map(|(index, _)| *index).collect();
    let expected: Vec<u32> = (0..200).collect();
    assert_eq!(indices, expected, "grants out of arrival order");
    assert_eq!(
        order[199].1,
        Duration::from_millis(199),
        "grants are 1 ms apart"
    );
}

#[tokio::test(start_paused = true)]
async fn heavy_head_not_starved() {
    let limiter = exact(limit(10, 1000, 0));
    let _burst = limiter.acquire_weighted(9).await.expect("weight 9 fits");

    // A heavy request queues first; light ones arrive behind it.
    let heavy = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let _permit = limiter.acquire_weighted(10).await.expect("weight 10 fits");
            Instant::now()
        })
    };
    tokio::task::yield_now().await;
    let start = Instant::now();
    let light = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let _permit = limiter.acquire().await;
            Instant::now()
        })
    };

    let heavy_at = heavy.await.expect("heavy task");
    let light_at = light.await.expect("light task");
    assert_eq!(
        heavy_at - start,
        Duration::from_secs(1),
        "heavy waits one window"
    );
    assert!(
        light_at > heavy_at,
        "a light request overtook the heavy head"
    );
    assert_eq!(
        light_at - start,
        Duration::from_secs(2),
        "light follows one window later"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_cap_holds() {
    let limiter = exact(limit(1000, 1000, 3));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let limiter = limiter.clone();
        let in_flight = in_flight.clone();
        let peak = peak.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limiter.acquire().await;
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for task in tasks {
        task.await.expect("worker task");
    }

    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(limiter.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn slot_wait_does_not_bunch_grants() {
    // Cap 1 and a slow first request: the requests that waited for the slot
    // must still be spaced by the rate limit once the slot frees.
    let limiter = bucket(limit(10, 1000, 1), 1);
    let start = Instant::now();
    let first = limiter.acquire().await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limiter.acquire().await;
            let at = start.elapsed();
            tokio::time::sleep(Duration::from_millis(1)).await;
            at
        }));
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(first);

    let mut grants = Vec::new();
    for task in tasks {
        grants.push(task.await.expect("waiter task"));
    }
    assert_eq!(grants[0], Duration::from_millis(500));
    assert_eq!(grants[1], Duration::from_millis(600));
    assert_eq!(grants[2], Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn permit_released_on_panic() {
    let limiter = exact(limit(100, 1000, 1));
    let task = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let _permit = limiter.acquire().await;
            panic!("request handler failed");
        })
    };
    assert!(task.await.is_err(), "the task should have panicked");
    assert_eq!(limiter.in_flight(), 0);
    assert!(limiter.try_acquire().is_ok(), "the slot did not come back");
}

#[tokio::test(start_paused = true)]
async fn cancelled_waiter_consumes_nothing() {
    let limiter = exact(limit(2, 1000, 0));
    let _a = limiter.acquire().await;
    let _b = limiter.acquire().await;
    let start = Instant::now();

    // Queue three waiters, then cancel the middle one.
    let spawn_waiter = |limiter: Limiter| {
        tokio::spawn(async move {
            let _permit = limiter.acquire().await;
            start.elapsed()
        })
    };
    let first = spawn_waiter(limiter.clone());
    tokio::task::yield_now().await;
    let cancelled = spawn_waiter(limiter.clone());
    tokio::task::yield_now().await;
    let third = spawn_waiter(limiter.clone());
    tokio::task::yield_now().await;
    assert_eq!(limiter.waiting(), 3);

    cancelled.abort();
    assert!(cancelled.await.expect_err("aborted").is_cancelled());
    assert_eq!(limiter.waiting(), 2);

    // Both remaining waiters take the two units freed at 1 s: no gap.
    assert_eq!(first.await.expect("first"), Duration::from_secs(1));
    assert_eq!(third.await.expect("third"), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn cancelled_head_passes_timer_on() {
    let limiter = exact(limit(1, 1000, 0));
    let _held = limiter.acquire().await;
    let start = Instant::now();
    let head = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire().await })
    };
    tokio::task::yield_now().await;
    let next = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let _permit = limiter.acquire().await;
            start.elapsed()
        })
    };
    tokio::task::yield_now().await;

    head.abort();
    let _ = head.await;
    assert_eq!(next.await.expect("next"), Duration::from_secs(1));
}

/// A waker that counts how often it is woken.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn leaked_waiter_costs_own_place() {
    let limiter = exact(limit(1, 1000, 0));
    let _held = limiter.acquire().await;

    // Poll one acquire once, so it queues, then leak it without dropping.
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut leaked = Box::pin(limiter.acquire());
    assert!(leaked
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    std::mem::forget(leaked);

    let start = Instant::now();
    let _next = limiter.acquire().await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "the leaked waiter took one place"
    );
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "the leaked waiter was granted and woken"
    );
}

#[tokio::test(start_paused = true)]
async fn wakeups_scale_with_waiters() {
    let limiter = bucket(limit(100, 1000, 0), 1);
    let _first = limiter.acquire().await;
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut context = Context::from_waker(&waker);

    let mut waiters: Vec<Pin<Box<_>>> = (0..100).map(|_| Box::pin(limiter.acquire())).collect();
    for waiter in &mut waiters {
        assert!(waiter.as_mut().poll(&mut context).is_pending());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut permits = Vec::new();
    for waiter in &mut waiters {
        match waiter.as_mut().poll(&mut context) {
            Poll::Ready(permit) => permits.push(permit),
            Poll::Pending => panic!("waiter not granted after 2 s"),
        }
    }
    assert_eq!(permits.len(), 100);
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        100,
        "one wakeup per waiter"
    );
}

#[tokio::test(start_paused = true)]
async fn weight_over_capacity_rejected() {
    let limiter = exact(limit(10, 1000, 0));
    let error = limiter
        .acquire_weighted(11)
        .await
        .expect_err("weight 11 > 10");
    assert_eq!(
        error,
        AcquireError::InvalidWeight {
            weight: 11,
            capacity: 10
        }
    );
    assert!(error.to_string().contains("got 11"));

    let error = limiter.acquire_weighted(0).await.expect_err("weight 0");
    assert_eq!(
        error,
        AcquireError::InvalidWeight {
            weight: 0,
            capacity: 10
        }
    );

    let bucket = bucket(limit(10, 1000, 0), 3);
    let error = bucket
        .try_acquire_weighted(4)
        .expect_err("weight 4 > burst 3");
    assert_eq!(
        error,
        TryAcquireError::InvalidWeight {
            weight: 4,
            capacity: 3
        }
    );
}

#[tokio::test(start_paused = true)]
async fn try_acquire_reports_retry_time() {
    let limiter = exact(limit(2, 1000, 0));
    let _a = limiter.try_acquire().expect("first");
    tokio::time::advance(Duration::from_millis(300)).await;
    let _b = limiter.try_acquire().expect("second");

    let error = limiter.try_acquire().expect_err("window full");
    assert_eq!(
        error,
        TryAcquireError::RateLimited {
            retry_after: Duration::from_millis(700)
        }
    );

    tokio::time::advance(Duration::from_millis(699)).await;
    let error = limiter.try_acquire().expect_err("still 1 ms early");
    assert_eq!(error.retry_after(), Some(Duration::from_millis(1)));

    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(
        limiter.try_acquire().is_ok(),
        "granted at the reported time"
    );
}

#[tokio::test(start_paused = true)]
async fn try_acquire_reports_concurrency() {
    let limiter = exact(limit(100, 1000, 1));
    let held = limiter.try_acquire().expect("first");
    let error = limiter.try_acquire().expect_err("cap 1 in use");
    assert_eq!(error, TryAcquireError::ConcurrencyLimited { cap: 1 });
    drop(held);
    assert!(limiter.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn try_acquire_never_jumps_queue() {
    let limiter = exact(limit(1, 1000, 0));
    let _held = limiter.acquire().await;
    let waiter = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire().await })
    };
    tokio::task::yield_now().await;

    let error = limiter.try_acquire().expect_err("a waiter is queued");
    assert!(
        matches!(error, TryAcquireError::Queued { waiting: 1, .. }),
        "{error:?}"
    );
    assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
    drop(waiter.await.expect("waiter"));
}

#[tokio::test(start_paused = true)]
async fn deadline_unreachable_fails_at_once() {
    let limiter = exact(limit(1, 1000, 0));
    let _held = limiter.acquire().await;
    let start = Instant::now();

    let error = limiter
        .acquire_timeout(1, Duration::from_millis(500))
        .await
        .expect_err("the next grant is 1 s away");
    assert_eq!(
        error,
        AcquireError::DeadlineUnreachable {
            predicted_wait: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
        }
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "failed without waiting");
    assert_eq!(limiter.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn deadline_timeout_consumes_nothing() {
    let limiter = exact(limit(5, 1000, 1));
    let held = limiter.acquire().await;
    let start = Instant::now();

    // The rate allows it at once, but the only slot is held past the timeout.
    let error = limiter
        .acquire_timeout(1, Duration::from_millis(200))
        .await
        .expect_err("slot held for longer than the timeout");
    assert_eq!(
        error,
        AcquireError::TimedOut {
            timeout: Duration::from_millis(200)
        }
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(200),
        "waited exactly the timeout"
    );
    assert_eq!(limiter.waiting(), 0);

    drop(held);
    for _ in 0..4 {
        assert!(
            limiter.try_acquire().is_ok(),
            "the timed-out acquire took rate capacity"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_met_within_timeout() {
    let limiter = exact(limit(1, 1000, 0));
    let _held = limiter.acquire().await;
    let start = Instant::now();
    let permit = limiter
        .acquire_timeout(1, Duration::from_millis(1500))
        .await;
    assert!(permit.is_ok());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_limit() {
    let limiter = exact(limit(3, 1000, 0));
    let clones: Vec<Limiter> = (0..3).map(|_| limiter.clone()).collect();
    let mut permits = Vec::new();
    for clone in &clones {
        permits.push(clone.try_acquire().expect("shared capacity"));
    }
    assert!(
        limiter.try_acquire().is_err(),
        "clones must share one window"
    );
}

#[tokio::test(start_paused = true)]
async fn run_holds_permit_during_call() {
    let limiter = exact(limit(10, 1000, 1));
    let observed = limiter
        .run(async {
            let in_flight = limiter.in_flight();
            tokio::time::sleep(Duration::from_millis(5)).await;
            in_flight
        })
        .await;
    assert_eq!(observed, 1);
    assert_eq!(limiter.in_flight(), 0);
}

#[test]
fn manual_clock_drives_waiters() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder(limit(1, 1000, 0))
        .margin(Margin::None)
        .clock(Arc::new(clock.clone()))
        .build();
    let _first = limiter.try_acquire().expect("first");

    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut context = Context::from_waker(&waker);
    let mut waiter = Box::pin(limiter.acquire());
    assert!(waiter.as_mut().poll(&mut context).is_pending());

    clock.advance(Duration::from_millis(999));
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "woken 1 ms early");
    clock.advance(Duration::from_millis(1));
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(waiter.as_mut().poll(&mut context).is_ready());
}

#[test]
fn backwards_clock_admits_nothing_extra() {
    for policy in [Policy::StrictWindow, Policy::token_bucket(NonZeroU32::MIN)] {
        let clock = ManualClock::new();
        clock.set(Duration::from_secs(10));
        let limiter = Limiter::builder(limit(1, 1000, 0))
            .policy(policy)
            .margin(Margin::None)
            .clock(Arc::new(clock.clone()))
            .build();
        let _first = limiter.try_acquire().expect("first");

        clock.set(Duration::from_secs(5));
        assert!(
            limiter.try_acquire().is_err(),
            "{policy:?}: admitted after a backwards step"
        );
        clock.set(Duration::from_millis(10_999));
        assert!(limiter.try_acquire().is_err(), "{policy:?}: admitted early");
        clock.set(Duration::from_secs(11));
        assert!(
            limiter.try_acquire().is_ok(),
            "{policy:?}: not admitted on time"
        );
        assert!(clock.now() > 0);
    }
}

#[tokio::test(start_paused = true)]
async fn queued_behind_slot_has_no_retry_time() {
    // The rate limit allows the request now. Only the request ahead, waiting
    // for the one slot, stands in the way, so no retry time can be promised.
    let limiter = exact(limit(100, 1000, 1));
    let _held = limiter.acquire().await;
    let waiter = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire().await })
    };
    tokio::task::yield_now().await;

    let error = limiter.try_acquire().expect_err("a waiter is queued");
    assert_eq!(
        error,
        TryAcquireError::Queued {
            waiting: 1,
            retry_after: None
        }
    );
    assert_eq!(error.retry_after(), None);
    assert_eq!(
        error.to_string(),
        "requests queued ahead: 1; retry after they are served"
    );
    waiter.abort();
}
