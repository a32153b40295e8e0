//! Changing a limiter's rate limit while it is in use, on tokio's paused
//! clock. Each rule of `Limiter::set_rate_limit` has its own test, for both
//! policies where the rule applies to both.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tollgate::{Limiter, Margin, Policy, RateLimit};

fn limit(allowed: u32, interval_ms: u64, cap: u32) -> RateLimit {
    RateLimit::new(allowed, interval_ms, cap).expect("valid test limit")
}

fn window(limit: RateLimit) -> Limiter {
    Limiter::builder(limit).margin(Margin::None).build()
}

fn bucket(limit: RateLimit, burst: u32) -> Limiter {
    let burst = NonZeroU32::new(burst).expect("burst of at least 1");
    Limiter::builder(limit)
        .policy(Policy::token_bucket(burst))
        .margin(Margin::None)
        .build()
}

/// Takes permits without waiting until the limiter refuses, and returns how
/// many it granted.
fn drain(limiter: &Limiter) -> usize {
    let mut granted = 0;
    while let Ok(permit) = limiter.try_acquire() {
        drop(permit);
        granted += 1;
        assert!(granted <= 100_000, "the limiter never refused");
    }
    granted
}

#[tokio::test(start_paused = true)]
async fn raise_opens_no_fresh_burst() {
    let limiter = window(limit(10, 1000, 0));
    assert_eq!(drain(&limiter), 10);

    limiter.set_rate_limit(limit(15, 1000, 0));
    assert_eq!(drain(&limiter), 5, "the 10 already started still count");
    assert_eq!(limiter.rate_limit(), limit(15, 1000, 0));
}

#[tokio::test(start_paused = true)]
async fn bucket_raise_opens_no_fresh_burst() {
    let limiter = bucket(limit(10, 1000, 0), 10);
    assert_eq!(drain(&limiter), 10);

    limiter.set_rate_limit(limit(100, 1000, 0));
    assert_eq!(drain(&limiter), 0, "an empty bucket stays empty");
    tokio::time::advance(Duration::from_millis(10)).await;
    assert_eq!(
        drain(&limiter),
        1,
        "refills at the new rate of one per 10 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn raise_admits_within_new_interval() {
    // A one-per-minute limit, used, then raised to ten per second: the next
    // grant must come within one new interval, not after the old minute.
    for limiter in [window(limit(1, 60_000, 0)), bucket(limit(1, 60_000, 0), 1)] {
        let _first = limiter.acquire().await;
        let start = Instant::now();
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let _permit = limiter.acquire().await;
                start.elapsed()
            })
        };
        tokio::task::yield_now().await;

        limiter.set_rate_limit(limit(10, 1000, 0));
        let waited = waiter.await.expect("waiter");
        assert!(
            waited <= Duration::from_secs(1),
            "{:?}: waited {waited:?}",
            limiter.policy()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn lowering_applies_at_once() {
    for limiter in [window(limit(10, 1000, 0)), bucket(limit(10, 1000, 0), 10)] {
        assert_eq!(drain(&limiter), 10);
        tokio::time::advance(Duration::from_secs(5)).await;

        limiter.set_rate_limit(limit(2, 1000, 0));
        assert_eq!(drain(&limiter), 2, "{:?}", limiter.policy());
        assert_eq!(limiter.capacity(), 2, "{:?}", limiter.policy());
    }
}

#[tokio::test(start_paused = true)]
async fn longer_interval_earns_at_old_rate() {
    // 10 per second, used greedily for 5 s, then changed to 600 per minute:
    // the 50 already started count, so 550 are free, not a fresh 600.
    let limiter = window(limit(10, 1000, 0));
    for second in 0..5 {
        if second > 0 {
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(drain(&limiter), 10);
    }
    tokio::time::advance(Duration::from_millis(999)).await;

    limiter.set_rate_limit(limit(600, 60_000, 0));
    assert_eq!(drain(&limiter), 550);
}

#[tokio::test(start_paused = true)]
async fn idle_credit_capped_as_before() {
    // A bucket idle for a minute holds only its burst of 2; a change to a
    // larger burst does not pay out the minute's credit at the new size.
    let limiter = bucket(limit(10, 1000, 0), 2);
    tokio::time::advance(Duration::from_secs(60)).await;

    let raised = limit(100, 1000, 0);
    limiter.set_rate_limit(raised);
    assert_eq!(drain(&limiter), 2);
}

#[tokio::test(start_paused = true)]
async fn lower_cap_cancels_nothing() {
    let limiter = window(limit(100, 1000, 3));
    let held: Vec<_> = (0..3)
        .map(|_| limiter.try_acquire().expect("slot"))
        .collect();

    limiter.set_rate_limit(limit(100, 1000, 1));
    assert_eq!(limiter.in_flight(), 3, "nothing in flight is cancelled");

    let mut held = held;
    held.pop();
    assert!(
        limiter.try_acquire().is_err(),
        "2 in flight is not below the new cap of 1"
    );
    held.pop();
    assert!(
        limiter.try_acquire().is_err(),
        "1 in flight is not below the new cap of 1"
    );
    held.pop();
    assert!(limiter.try_acquire().is_ok(), "0 in flight admits one");
}

#[tokio::test(start_paused = true)]
async fn higher_cap_admits_queued_at_once() {
    let limiter = window(limit(100, 1000, 1));
    let _held = limiter.acquire().await;
    let start = Instant::now();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let permit = limiter.acquire().await;
                (start.elapsed(), permit)
            })
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(limiter.waiting(), 3);

    limiter.set_rate_limit(limit(100, 1000, 4));
    let mut permits = Vec::new();
    for waiter in waiters {
        let (waited, permit) = waiter.await.expect("waiter");
        assert_eq!(
            waited,
            Duration::ZERO,
            "queued request not admitted at once"
        );
        permits.push(permit);
    }
    assert_eq!(limiter.in_flight(), 4);
}

#[tokio::test(start_paused = true)]
async fn queue_order_survives_changes() {
    let limiter = window(limit(1, 1000, 0));
    let _first = limiter.acquire().await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for index in 0..6u32 {
        let limiter = limiter.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limiter.acquire().await;
            order.lock().expect("order lock").push(index);
        }));
        tokio::task::yield_now().await;
    }

    limiter.set_rate_limit(limit(2, 1000, 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    limiter.set_rate_limit(limit(1, 500, 0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    limiter.set_rate_limit(limit(3, 2000, 2));
    for task in tasks {
        task.await.expect("waiter");
    }

    let order = order.lock().expect("order lock");
    assert_eq!(*order, vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn queued_heavy_request_survives_lowering() {
    let limiter = window(limit(10, 1000, 0));
    let _burst = limiter.acquire_weighted(10).await.expect("weight 10");
    let heavy = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire_weighted(8).await })
    };
    tokio::task::yield_now().await;

    limiter.set_rate_limit(limit(4, 1000, 0));
    let permit = heavy
        .await
        .expect("heavy task")
        .expect("weight 8 was valid when queued");
    assert_eq!(permit.weight(), 8);
    assert!(
        limiter.try_acquire().is_err(),
        "the heavy request took the whole capacity"
    );
}

#[tokio::test(start_paused = true)]
async fn burst_capped_at_allowed() {
    // A burst above allowed_requests would break the documented window bound.
    let limiter = bucket(limit(3, 1000, 0), 10);
    assert_eq!(limiter.capacity(), 3);
    assert_eq!(drain(&limiter), 3);
}
