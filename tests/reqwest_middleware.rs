//! Tests of the reqwest-middleware middleware over real HTTP on loopback.
//!
//! Every test runs on the real clock, because tokio's paused clock jumps to
//! the next timer whenever the runtime idles, also while a request waits for
//! the socket, and reqwest's connection pool keeps timers of its own. Rate
//! claims are checked by the mock provider's own bookkeeping, with a limiter
//! guard of 100 ms that absorbs the time between a grant and the provider
//! reading the request. Concurrency claims are checked by counters on the
//! server, which a response leaves before the client can see its end.

mod common;

use common::{StreamServer, CHUNKS};

use std::future::Future;
use std::time::Duration;

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokio::task::JoinSet;
use tollgate::middleware::{Error, LimitMiddleware};
use tollgate::registry::Registry;
use tollgate::testing::MockProvider;
use tollgate::tower::{CredentialKey, ExtensionKey, HeaderKey, Rejection, Release};
use tollgate::{Limiter, Margin, RateLimit, TryAcquireError};

/// Bound on every test, so that a hang fails the test instead of stalling
/// it.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra time the client-side limiters add to each interval, covering the
/// delay between a grant and the provider reading the request.
const GUARD: Duration = Duration::from_millis(100);

fn limit(allowed_requests: u32, interval_ms: u64, max_concurrent_requests: u32) -> RateLimit {
    RateLimit::new(allowed_requests, interval_ms, max_concurrent_requests)
        .expect("test rate limits are valid")
}

fn guarded_limiter(limit: RateLimit) -> Limiter {
    Limiter::builder(limit).margin(Margin::Guard(GUARD)).build()
}

fn reqwest_client() -> reqwest::Client {
    // `no_proxy` keeps every request on loopback even when the environment
    // names a proxy.
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("the HTTP client builds")
}

fn client_with(middleware: LimitMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest_client())
        .with(middleware)
        .build()
}

/// Returns the tollgate error inside a middleware error.
fn limit_error(error: &reqwest_middleware::Error) -> &Error {
    match error {
        reqwest_middleware::Error::Middleware(inner) => inner
            .downcast_ref::<Error>()
            .expect("the middleware error is tollgate's"),
        reqwest_middleware::Error::Reqwest(error) => panic!("the request failed: {error}"),
    }
}

/// Bounds a test on the real clock.
async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("the test finishes within its time bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_share_one_limiter() {
    bounded(async {
        let rate_limit = limit(10, 300, 3);
        let provider = MockProvider::builder()
            .credential("key-a", rate_limit)
            .latency(Duration::from_millis(20))
            .start()
            .await
            .expect("the provider starts");
        let limiter = guarded_limiter(rate_limit);
        let middleware = LimitMiddleware::new(limiter.clone());
        let url = format!("{}/records", provider.url());

        // 8 clients built with one middleware value, and a clone of each.
        let mut tasks = JoinSet::new();
        for _ in 0..8 {
            let client = client_with(middleware.clone());
            for handle in [client.clone(), client] {
                let url = url.clone();
                tasks.spawn(async move {
                    let mut statuses = Vec::new();
                    for _ in 0..3 {
                        let response = handle.get(&url).bearer_auth("key-a").send().await;
                        let response = response.expect("the provider answers");
                        statuses.push(response.status().as_u16());
                        response.bytes().await.expect("the body reads");
                    }
                    statuses
                });
            }
        }
        let mut statuses = Vec::new();
        while let Some(task) = tasks.join_next().await {
            statuses.extend(task.expect("the request task does not panic"));
        }

        assert_eq!(statuses.len(), 48);
        assert!(statuses.iter().all(|&status| status == 200), "{statuses:?}");
        let report = provider.report();
        let key = report.key("key-a").expect("key-a is registered");
        assert_eq!(key.requests, 48);
        assert_eq!(key.rejected_429, 0, "{:?}", report.violations());
        assert!(key.worst_window <= 10, "worst window {}", key.worst_window);
        assert!(
            key.peak_in_flight <= 3,
            "peak in flight {}",
            key.peak_in_flight
        );
        assert_eq!(limiter.in_flight(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_holds_each_key_to_its_limit() {
    bounded(async {
        let (limit_a, limit_b) = (limit(4, 300, 1), limit(12, 300, 4));
        let provider = MockProvider::builder()
            .credential("key-a", limit_a)
            .credential("key-b", limit_b)
            .latency(Duration::from_millis(10))
            .start()
            .await
            .expect("the provider starts");
        let registry = Registry::builder().margin(Margin::Guard(GUARD)).build();
        let limiter_a = registry.insert("key-a", limit_a);
        let limiter_b = registry.insert("key-b", limit_b);
        let client = client_with(LimitMiddleware::keyed(registry, HeaderKey::bearer()));
        let url = format!("{}/records", provider.url());

        let mut tasks = JoinSet::new();
        for index in 0..32 {
            let key = if index % 2 == 0 { "key-a" } else { "key-b" };
            let (client, url) = (client.clone(), url.clone());
            tasks.spawn(async move {
                let response = client.get(&url).bearer_auth(key).send().await;
                let response = response.expect("the provider answers");
                let status = response.status().as_u16();
                response.bytes().await.expect("the body reads");
                status
            });
        }
        while let Some(task) = tasks.join_next().await {
            assert_eq!(task.expect("the request task does not panic"), 200);
        }

        let report = provider.report();
        assert!(report.is_clean(), "{:?}", report.violations());
        let key_a = report.key("key-a").expect("key-a is registered");
        let key_b = report.key("key-b").expect("key-b is registered");
        assert_eq!((key_a.requests, key_b.requests), (16, 16));
        assert!(
            key_a.worst_window <= 4,
            "key-a worst window {}",
            key_a.worst_window
        );
        assert!(
            key_a.peak_in_flight <= 1,
            "key-a peak {}",
            key_a.peak_in_flight
        );
        assert!(
            key_b.worst_window <= 12,
            "key-b worst window {}",
            key_b.worst_window
        );
        assert!(
            key_b.peak_in_flight <= 4,
            "key-b peak {}",
            key_b.peak_in_flight
        );
        // key-b is not held to key-a's smaller limit.
        assert!(
            key_b.worst_window > 4,
            "key-b worst window {}",
            key_b.worst_window
        );
        assert!(
            key_b.peak_in_flight > 1,
            "key-b peak {}",
            key_b.peak_in_flight
        );
        assert_eq!(limiter_a.in_flight() + limiter_b.in_flight(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_holds_slot_until_read() {
    bounded(async {
        let server = StreamServer::start().await;
        let limiter = Limiter::new(limit(1000, 1000, 2));
        let client = client_with(LimitMiddleware::new(limiter.clone()));

        let mut tasks = JoinSet::new();
        for _ in 0..10 {
            let (client, url) = (client.clone(), server.url());
            tasks.spawn(async move {
                let response = client.get(&url).send().await.expect("the server answers");
                response.bytes().await.expect("the body reads").len()
            });
        }
        while let Some(task) = tasks.join_next().await {
            let length = task.expect("the request task does not panic");
            assert_eq!(length, CHUNKS * b"chunk\n".len());
        }

        assert_eq!(server.responses.served(), 10);
        assert!(
            server.responses.peak() <= 2,
            "peak {}",
            server.responses.peak()
        );
        assert_eq!(limiter.in_flight(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_bodies_keep_slots() {
    bounded(async {
        let server = StreamServer::start().await;
        let limiter = Limiter::new(limit(1000, 1000, 2));
        let client = client_with(LimitMiddleware::new(limiter.clone()).max_wait(Duration::ZERO));

        let first = client
            .get(server.url())
            .send()
            .await
            .expect("first answers");
        let second = client
            .get(server.url())
            .send()
            .await
            .expect("second answers");
        assert_eq!(limiter.in_flight(), 2);

        // Both slots are held by unread bodies, so a third request is rejected.
        let third = client.get(server.url()).send().await;
        let error = third.expect_err("the third request is rejected");
        assert!(
            matches!(
                limit_error(&error),
                Error::Rejected {
                    cause: Rejection::TryAcquire(TryAcquireError::ConcurrencyLimited { cap: 2 }),
                    ..
                }
            ),
            "{error:?}"
        );

        first.bytes().await.expect("the body reads");
        assert_eq!(limiter.in_flight(), 1);
        drop(second);
        assert_eq!(limiter.in_flight(), 0);
        assert_eq!(server.responses.served(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_response_keeps_its_parts() {
    bounded(async {
        let provider = MockProvider::builder()
            .credential("key-a", limit(100, 1000, 0))
            .latency(Duration::ZERO)
            .start()
            .await
            .expect("the provider starts");
        let url = format!("{}/records?limit=3", provider.url());
        let limiter = Limiter::new(limit(100, 1000, 1));
        let client = client_with(LimitMiddleware::new(limiter.clone()));

        let plain = reqwest_client().get(&url).bearer_auth("key-a").send().await;
        let plain = plain.expect("the provider answers");
        let paced = client.get(&url).bearer_auth("key-a").send().await;
        let paced = paced.expect("the provider answers");

        assert_eq!(paced.status(), plain.status());
        assert_eq!(paced.version(), plain.version());
        assert_eq!(paced.url(), plain.url());
        assert_eq!(paced.remote_addr(), Some(provider.addr()));
        assert_eq!(paced.content_length(), plain.content_length());
        assert!(paced.content_length().is_some());
        let header = |response: &reqwest::Response| response.headers().get("content-type").cloned();
        assert_eq!(header(&paced), header(&plain));
        assert_eq!(limiter.in_flight(), 1);

        let plain_body = plain.bytes().await.expect("the body reads");
        let paced_body = paced.bytes().await.expect("the body reads");
        assert_eq!(paced_body, plain_body);
        assert_eq!(limiter.in_flight(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_at_headers_frees_slot() {
    bounded(async {
        let server = StreamServer::start().await;
        let limiter = Limiter::new(limit(1000, 1000, 2));
        let middleware = LimitMiddleware::new(limiter.clone()).release(Release::AtHeaders);
        let client = client_with(middleware);

        // Four unread responses at once, past the cap of 2.
        let mut responses = Vec::new();
        for _ in 0..4 {
            let response = client.get(server.url()).send().await;
            responses.push(response.expect("the server answers"));
            assert_eq!(limiter.in_flight(), 0);
        }
        assert_eq!(server.responses.served(), 4);

        for response in responses {
            let body = response.bytes().await.expect("the body reads");
            assert_eq!(body.len(), CHUNKS * b"chunk\n".len());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_wait_rejects_unsent() {
    bounded(async {
        let rate_limit = limit(2, 1000, 0);
        let provider = MockProvider::builder()
            .credential("key-a", rate_limit)
            .latency(Duration::ZERO)
            .start()
            .await
            .expect("the provider starts");
        let url = format!("{}/records", provider.url());
        let limiter = Limiter::new(rate_limit);
        let client = client_with(LimitMiddleware::new(limiter).max_wait(Duration::ZERO));

        for _ in 0..2 {
            let response = client.get(&url).bearer_auth("key-a").send().await;
            assert_eq!(response.expect("the provider answers").status(), 200);
        }
        let start = std::time::Instant::now();
        let rejected = client.get(&url).bearer_auth("key-a").send().await;
        let elapsed = start.elapsed();

        let error = rejected.expect_err("the third request is rejected");
        let error = limit_error(&error);
        assert!(
            matches!(
                error,
                Error::Rejected {
                    cause: Rejection::TryAcquire(TryAcquireError::RateLimited { .. }),
                    ..
                }
            ),
            "{error:?}"
        );
        let retry_after = error
            .retry_after()
            .expect("the rate limit sets a retry time");
        assert!(
            retry_after <= Duration::from_millis(1010),
            "{retry_after:?}"
        );
        // The rejection does not wait for the window, which is 1 s long.
        assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
        let report = provider.report();
        assert_eq!(report.total_requests(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_rejects_unknown_and_missing_keys() {
    bounded(async {
        let provider = MockProvider::builder()
            .credential("key-a", limit(10, 1000, 0))
            .latency(Duration::ZERO)
            .start()
            .await
            .expect("the provider starts");
        let url = format!("{}/records", provider.url());
        let registry = Registry::new();
        let _limiter = registry.insert("key-a", limit(10, 1000, 0));
        let client = client_with(LimitMiddleware::keyed(registry, HeaderKey::bearer()));

        let unknown = client.get(&url).bearer_auth("key-z").send().await;
        let unknown = unknown.expect_err("an unknown key is rejected");
        let Error::UnknownKey { key } = limit_error(&unknown) else {
            panic!("expected an unknown key error: {unknown:?}");
        };
        assert_eq!(key.expose(), "key-z");
        assert!(!unknown.to_string().contains("key-z"), "{unknown}");

        let missing = client.get(&url).send().await;
        let missing = missing.expect_err("a request without a key is rejected");
        assert!(
            matches!(limit_error(&missing), Error::MissingKey),
            "{missing:?}"
        );

        let known = client.get(&url).bearer_auth("key-a").send().await;
        assert_eq!(known.expect("key-a is known").status(), 200);
        // Only the request with a known key reached the provider.
        assert_eq!(provider.report().total_requests(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_reads_extension_and_closure_keys() {
    bounded(async {
        let provider = MockProvider::builder()
            .credential("key-a", limit(10, 1000, 0))
            .latency(Duration::ZERO)
            .start()
            .await
            .expect("the provider starts");
        let url = format!("{}/records", provider.url());
        let registry = Registry::new();
        // The registry id differs from the bearer token the provider checks.
        let limiter = registry.insert("cred_1", limit(2, 1000, 0));

        let by_extension =
            LimitMiddleware::keyed(registry.clone(), ExtensionKey::<CredentialKey>::new())
                .max_wait(Duration::ZERO);
        let by_closure = LimitMiddleware::keyed(
            registry,
            |request: &reqwest::Request, _: &http::Extensions| {
                let key = request.headers().get("x-credential")?.to_str().ok()?;
                Some(key.to_owned())
            },
        )
        .max_wait(Duration::ZERO);

        let by_extension = client_with(by_extension);
        let first = by_extension
            .get(&url)
            .bearer_auth("key-a")
            .with_extension(CredentialKey::new("cred_1"))
            .send()
            .await;
        assert_eq!(first.expect("cred_1 is known").status(), 200);

        let by_closure = client_with(by_closure);
        let second = by_closure
            .get(&url)
            .bearer_auth("key-a")
            .header("x-credential", "cred_1")
            .send()
            .await;
        assert_eq!(second.expect("cred_1 is known").status(), 200);

        // Both clients used cred_1's limiter, which allows 2 per second.
        let third = by_closure
            .get(&url)
            .bearer_auth("key-a")
            .header("x-credential", "cred_1")
            .send()
            .await;
        let third = third.expect_err("the third request is rejected");
        assert!(limit_error(&third).retry_after().is_some(), "{third:?}");
        assert_eq!(provider.report().total_requests(), 2);
        assert_eq!(limiter.in_flight(), 0);
    })
    .await;
}
