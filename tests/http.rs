//! The limiter pacing real HTTP requests against the strict mock provider on
//! loopback, judged by the provider's own bookkeeping.
//!
//! These run on the real clock, because the provider must see real arrival
//! times. Limits are short and request counts small so each test ends in
//! about a second, and the assertions are the provider's exact counts. The
//! limiters use a 40 ms guard instead of the default 5 ms at these 200 ms
//! intervals, so a busy two-core machine that delays a request between its
//! grant and its arrival does not fail the test.

use std::num::NonZeroU32;
use std::time::Duration;

use tollgate::testing::MockProvider;
use tollgate::{Limiter, Margin, Policy, RateLimit};

const KEY: &str = "cred_http_test";

/// The guard added to each interval, larger than scheduling delays on a
/// loaded machine.
const GUARD: Margin = Margin::Guard(Duration::from_millis(40));

fn limit(allowed: u32, interval_ms: u64, cap: u32) -> RateLimit {
    RateLimit::new(allowed, interval_ms, cap).expect("valid test limit")
}

/// Sends `requests` GETs from `workers` tasks, each paced by `limiter` when
/// one is given, and returns the provider's report for the key.
async fn drive(
    provider: &MockProvider,
    limiter: Option<Limiter>,
    workers: usize,
    requests: usize,
) -> tollgate::testing::KeyReport {
    let client = reqwest::Client::new();
    let url = format!("{}/records?limit=1", provider.url());
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (client, url, limiter) = (client.clone(), url.clone(), limiter.clone());
        let share = requests / workers + usize::from(worker < requests % workers);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                let _permit = match &limiter {
                    Some(limiter) => Some(limiter.acquire().await),
                    None => None,
                };
                let response = client
                    .get(&url)
                    .bearer_auth(KEY)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .expect("request to the mock provider");
                // Read the body so the request is complete while the permit
                // is held.
                response.bytes().await.expect("response body");
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker task");
    }
    provider.report().key(KEY).expect("key report").clone()
}

async fn provider(limit: RateLimit) -> MockProvider {
    MockProvider::builder()
        .credential(KEY, limit)
        .latency(Duration::from_millis(10))
        .start()
        .await
        .expect("mock provider starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_window_passes_strict_provider() {
    let limit = limit(10, 200, 3);
    let provider = provider(limit).await;
    let report = drive(
        &provider,
        Some(Limiter::builder(limit).margin(GUARD).build()),
        8,
        60,
    )
    .await;

    assert_eq!(report.requests, 60);
    assert_eq!(report.rejected_429, 0, "{report:?}");
    assert!(
        report.worst_window <= 10,
        "worst window {}",
        report.worst_window
    );
    assert!(
        report.peak_in_flight <= 3,
        "peak in flight {}",
        report.peak_in_flight
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_burst_one_passes_strict_provider() {
    let limit = limit(20, 200, 0);
    let provider = provider(limit).await;
    let limiter = Limiter::builder(limit)
        .policy(Policy::token_bucket(NonZeroU32::MIN))
        .margin(GUARD)
        .build();
    let report = drive(&provider, Some(limiter), 6, 60).await;

    assert_eq!(report.requests, 60);
    assert_eq!(report.rejected_429, 0, "{report:?}");
    assert!(
        report.worst_window <= 20,
        "worst window {}",
        report.worst_window
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_grants_pass_strict_provider() {
    // Each acquire of weight 2 sends two requests at once, as a batch does.
    // The grant counts both units when it is issued, so requests sent one
    // after another under one permit could land in a later window.
    let limit = limit(10, 200, 0);
    let provider = provider(limit).await;
    let limiter = Limiter::builder(limit).margin(GUARD).build();
    let client = reqwest::Client::new();
    let url = format!("{}/records?limit=1", provider.url());
    let send = || async {
        let response = client
            .get(&url)
            .bearer_auth(KEY)
            .send()
            .await
            .expect("request");
        response.bytes().await.expect("response body");
    };
    for _ in 0..15 {
        let _permit = limiter.acquire_weighted(2).await.expect("weight 2 fits");
        tokio::join!(send(), send());
    }

    let report = provider.report().key(KEY).expect("key report").clone();
    assert_eq!(report.requests, 30);
    assert_eq!(report.rejected_429, 0, "{report:?}");
    assert!(
        report.worst_window <= 10,
        "worst window {}",
        report.worst_window
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaced_client_is_caught() {
    // Without the limiter the same load breaks the limit, which shows the
    // provider's judgement in the tests above can fail.
    let limit = limit(10, 200, 3);
    let provider = provider(limit).await;
    let report = drive(&provider, None, 8, 60).await;

    assert!(report.rejected_429 > 0, "{report:?}");
    assert!(
        report.worst_window > 10,
        "worst window {}",
        report.worst_window
    );
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Limiter>();
    assert_send_sync::<tollgate::Permit>();
    assert_send::<tollgate::AcquireOwned>();
    assert_send::<tollgate::Acquire<'static>>();
}
