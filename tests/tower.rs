//! Tests of the tower layers over real HTTP on loopback.
//!
//! Tests that send HTTP requests run on the real clock. Tokio's paused clock
//! jumps to the next timer whenever the runtime idles, also while a request
//! waits for the socket, so an arrival could be recorded later than it
//! happened. Their rate claims are checked by the mock
//! provider's own bookkeeping, with a limiter guard of 100 ms that absorbs
//! the time between a grant and the provider reading the request. Their
//! concurrency claims are checked by counters on the server, which a
//! response leaves before the client can see its end, so they need no
//! timing at all. Tests without HTTP run on the paused clock and check exact
//! times.

mod common;

use common::{StreamServer, CHUNKS};

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tollgate::registry::Registry;
use tollgate::testing::MockProvider;
use tollgate::tower::{
    CredentialKey, Error, ExtensionKey, HeaderKey, KeyedLimitLayer, LimitLayer, Rejection, Release,
};
use tollgate::{Limiter, Margin, RateLimit, TryAcquireError};
use tower::{service_fn, Layer, Service, ServiceExt};

/// Bound on every test that uses the network, so that a hang fails the test
/// instead of stalling it.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra time the client-side limiters add to each interval, covering the
/// delay between a grant and the provider reading the request.
const GUARD: Duration = Duration::from_millis(100);

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn limit(allowed_requests: u32, interval_ms: u64, max_concurrent_requests: u32) -> RateLimit {
    RateLimit::new(allowed_requests, interval_ms, max_concurrent_requests)
        .expect("test rate limits are valid")
}

fn guarded_limiter(limit: RateLimit) -> Limiter {
    Limiter::builder(limit).margin(Margin::Guard(GUARD)).build()
}

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn get(url: &str, bearer: Option<&str>) -> Request<Empty<Bytes>> {
    let mut request = Request::get(url);
    if let Some(key) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {key}"));
    }
    request
        .body(Empty::new())
        .expect("the test request is valid")
}

/// Bounds a test on the real clock.
async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("the test finishes within its time bound")
}

/// An inner service that counts its calls and returns `ok` at once.
fn counting_service(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
    service_fn(move |_request: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    })
}

/// Polls `service` for readiness once and reports whether it was ready.
async fn poll_ready_once<S, Req>(service: &mut S) -> bool
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    poll_fn(|cx| Poll::Ready(service.poll_ready(cx)))
        .await
        .map(|ready| ready.expect("poll_ready does not fail"))
        .is_ready()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_clones_share_limiter() {
    bounded(async {
        let rate_limit = limit(10, 300, 3);
        let provider = MockProvider::builder()
            .credential("key-a", rate_limit)
            .latency(Duration::from_millis(20))
            .start()
            .await
            .expect("the provider starts");
        let limiter = guarded_limiter(rate_limit);
        let layer = LimitLayer::new(limiter.clone());
        let client = http_client();
        let url = format!("{}/records", provider.url());

        // 8 services from one layer value, and a clone of each.
        let mut tasks = JoinSet::new();
        for _ in 0..8 {
            let service = layer.layer(client.clone());
            for handle in [service.clone(), service] {
                let url = url.clone();
                tasks.spawn(async move {
                    let mut statuses = Vec::new();
                    for _ in 0..3 {
                        let response = handle
                            .clone()
                            .oneshot(get(&url, Some("key-a")))
                            .await
                            .expect("the provider answers");
                        statuses.push(response.status().as_u16());
                        response
                            .into_body()
                            .collect()
                            .await
                            .expect("the body reads");
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

#[tokio::test(start_paused = true)]
async fn dropped_reservations_return_capacity() {
    let limiter = Limiter::new(limit(100, 1000, 16));
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = LimitLayer::new(limiter.clone());

    // 8 services from the layer, each cloned into 8 handles.
    let mut services = Vec::new();
    for _ in 0..8 {
        let service = layer.layer(counting_service(Arc::clone(&calls)));
        services.extend(std::iter::repeat_n(service, 8));
    }
    let mut ready = 0;
    for service in &mut services {
        if poll_ready_once(service).await {
            ready += 1;
        }
    }
    assert_eq!(services.len(), 64);
    assert_eq!(ready, 16);
    assert_eq!(limiter.in_flight(), 16);
    assert_eq!(limiter.waiting(), 48);

    drop(services);
    assert_eq!(limiter.in_flight(), 0);
    assert_eq!(limiter.waiting(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Every slot is free again: a full burst of 16 is granted at once.
    let burst: Vec<_> = (0..16).map(|_| limiter.try_acquire()).collect();
    assert!(burst.iter().all(Result::is_ok), "{burst:?}");
    assert!(matches!(
        limiter.try_acquire(),
        Err(TryAcquireError::ConcurrencyLimited { cap: 16 })
    ));
    drop(burst);

    // Only the 16 reserved permits and this burst took rate grants; the 48
    // dropped waiters took none, so 68 of the window's 100 remain.
    for granted in 0..68 {
        let permit = limiter.try_acquire();
        assert!(permit.is_ok(), "grant {granted}: {permit:?}");
    }
    assert!(matches!(
        limiter.try_acquire(),
        Err(TryAcquireError::RateLimited { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn clone_starts_with_nothing_reserved() {
    let limiter = Limiter::new(limit(100, 1000, 1));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut first = LimitLayer::new(limiter.clone()).layer(counting_service(Arc::clone(&calls)));

    assert!(poll_ready_once(&mut first).await);
    let mut clone = first.clone();
    assert_eq!(limiter.in_flight(), 1);
    // The only slot belongs to `first`, so the clone has to wait for it.
    assert!(!poll_ready_once(&mut clone).await);

    drop(first);
    assert!(poll_ready_once(&mut clone).await);
    let response = clone
        .call(Request::new(()))
        .await
        .expect("the call succeeds");
    assert_eq!(limiter.in_flight(), 1);
    drop(response);
    assert_eq!(limiter.in_flight(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_holds_slot_until_read() {
    bounded(async {
        let server = StreamServer::start().await;
        let limiter = Limiter::new(limit(1000, 1000, 2));
        let service = LimitLayer::new(limiter.clone()).layer(http_client());

        let mut tasks = JoinSet::new();
        for _ in 0..10 {
            let (service, url) = (service.clone(), server.url());
            tasks.spawn(async move {
                let response = service
                    .oneshot(get(&url, None))
                    .await
                    .expect("the server answers");
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("the body reads");
                body.to_bytes().len()
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
        let service = LimitLayer::new(limiter.clone())
            .max_wait(Duration::ZERO)
            .layer(http_client());

        let first = service.clone().oneshot(get(&server.url(), None)).await;
        let second = service.clone().oneshot(get(&server.url(), None)).await;
        let (first, second) = (
            first.expect("first answers"),
            second.expect("second answers"),
        );
        assert!(first.body().holds_permit());
        assert_eq!(limiter.in_flight(), 2);

        // Both slots are held by unread bodies, so a third request is rejected.
        let third = service.clone().oneshot(get(&server.url(), None)).await;
        assert!(
            matches!(
                third,
                Err(Error::Rejected {
                    cause: Rejection::TryAcquire(TryAcquireError::ConcurrencyLimited { cap: 2 }),
                    ..
                })
            ),
            "{third:?}"
        );

        first.into_body().collect().await.expect("the body reads");
        assert_eq!(limiter.in_flight(), 1);
        drop(second);
        assert_eq!(limiter.in_flight(), 0);
        assert_eq!(server.responses.served(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_at_headers_frees_slot() {
    bounded(async {
        let server = StreamServer::start().await;
        let limiter = Limiter::new(limit(1000, 1000, 2));
        let service = LimitLayer::new(limiter.clone())
            .release(Release::AtHeaders)
            .layer(http_client());

        // Four unread responses at once, past the cap of 2.
        let mut responses = Vec::new();
        for _ in 0..4 {
            let response = service.clone().oneshot(get(&server.url(), None)).await;
            let response = response.expect("the server answers");
            assert!(!response.body().holds_permit());
            assert_eq!(limiter.in_flight(), 0);
            responses.push(response);
        }
        assert_eq!(server.responses.served(), 4);

        for response in responses {
            let body = response
                .into_body()
                .collect()
                .await
                .expect("the body reads");
            assert_eq!(body.to_bytes().len(), CHUNKS * b"chunk\n".len());
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn zero_wait_rejects_without_calling() {
    let limiter = Limiter::new(limit(2, 1000, 0));
    let calls = Arc::new(AtomicUsize::new(0));
    let service = LimitLayer::new(limiter.clone())
        .max_wait(Duration::ZERO)
        .layer(counting_service(Arc::clone(&calls)));
    let start = Instant::now();

    for _ in 0..2 {
        let response = service.clone().oneshot(Request::new(())).await;
        assert!(response.is_ok(), "{response:?}");
    }
    let rejected = service.clone().oneshot(Request::new(())).await;

    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let Err(error) = rejected else {
        panic!("the third request was let through");
    };
    // The default margin adds 10 ms to the 1 s interval.
    assert_eq!(error.retry_after(), Some(Duration::from_millis(1010)));
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
    assert!(error.to_string().contains("rejected"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn bounded_wait_rejects_at_bound() {
    let calls = Arc::new(AtomicUsize::new(0));

    // The rate limit alone needs 1010 ms, so a 100 ms bound fails at once.
    let limiter = Limiter::new(limit(1, 1000, 0));
    let service = LimitLayer::new(limiter)
        .max_wait(Duration::from_millis(100))
        .layer(counting_service(Arc::clone(&calls)));
    service
        .clone()
        .oneshot(Request::new(()))
        .await
        .expect("first is granted");
    let start = Instant::now();
    let rejected = service.oneshot(Request::new(())).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    let error = rejected.expect_err("the second request is rejected");
    assert_eq!(error.retry_after(), Some(Duration::from_millis(1010)));

    // A held concurrency slot has no predictable end, so the wait runs to
    // the bound.
    let limiter = Limiter::new(limit(100, 1000, 1));
    let service = LimitLayer::new(limiter)
        .max_wait(Duration::from_millis(100))
        .layer(counting_service(Arc::clone(&calls)));
    let first_response = service
        .clone()
        .oneshot(Request::new(()))
        .await
        .expect("first is granted");
    let start = Instant::now();
    let rejected = service.oneshot(Request::new(())).await;
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    let error = rejected.expect_err("the second request is rejected");
    assert_eq!(error.retry_after(), None);
    assert!(matches!(error, Error::Rejected { .. }), "{error:?}");

    drop(first_response);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
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
        let service = KeyedLimitLayer::new(registry, HeaderKey::bearer()).layer(http_client());
        let url = format!("{}/records", provider.url());

        let mut tasks = JoinSet::new();
        for index in 0..32 {
            let key = if index % 2 == 0 { "key-a" } else { "key-b" };
            let (service, url) = (service.clone(), url.clone());
            tasks.spawn(async move {
                let response = service.oneshot(get(&url, Some(key))).await;
                let response = response.expect("the provider answers");
                let status = response.status().as_u16();
                response
                    .into_body()
                    .collect()
                    .await
                    .expect("the body reads");
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
        let service = KeyedLimitLayer::new(registry, HeaderKey::bearer()).layer(http_client());

        let unknown = service.clone().oneshot(get(&url, Some("key-z"))).await;
        let Err(Error::UnknownKey { key }) = &unknown else {
            panic!("an unknown key was let through: {unknown:?}");
        };
        assert_eq!(key.expose(), "key-z");
        let message = unknown.expect_err("checked above").to_string();
        assert!(
            !message.contains("key-z"),
            "the message leaks the key: {message}"
        );

        let missing = service.clone().oneshot(get(&url, None)).await;
        assert!(matches!(missing, Err(Error::MissingKey)), "{missing:?}");

        let known = service.oneshot(get(&url, Some("key-a"))).await;
        assert_eq!(known.expect("key-a is known").status(), 200);
        // Only the request with a known key reached the provider.
        assert_eq!(provider.report().total_requests(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_reads_extension_key() {
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
        let service = KeyedLimitLayer::new(registry, ExtensionKey::<CredentialKey>::new())
            .max_wait(Duration::ZERO)
            .layer(http_client());

        let mut statuses = Vec::new();
        for _ in 0..3 {
            let mut request = get(&url, Some("key-a"));
            request
                .extensions_mut()
                .insert(CredentialKey::new("cred_1"));
            match service.clone().oneshot(request).await {
                Ok(response) => statuses.push(response.status().as_u16()),
                Err(error) => {
                    assert!(error.retry_after().is_some(), "{error:?}");
                    statuses.push(0);
                }
            }
        }

        // cred_1 allows 2 per second, so the third is rejected unsent.
        assert_eq!(statuses, [200, 200, 0]);
        assert_eq!(provider.report().total_requests(), 2);
        assert_eq!(limiter.in_flight(), 0);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn keyed_poll_ready_reserves_nothing() {
    let registry = Registry::new();
    let limiter = registry.insert("key-a", limit(100, 1000, 1));
    let calls = Arc::new(AtomicUsize::new(0));
    let extract = |request: &Request<()>| {
        let key = request.headers().get("x-key")?.to_str().ok()?;
        Some(key.to_owned())
    };
    let service = KeyedLimitLayer::new(registry, extract).layer(counting_service(calls.clone()));

    let mut services = vec![service; 64];
    for service in &mut services {
        assert!(poll_ready_once(service).await);
    }
    assert_eq!(limiter.in_flight(), 0);
    drop(services);

    // A call waits for its key's permit in the response future.
    let mut first = KeyedLimitLayer::new(limiter_lookup(&limiter), extract)
        .layer(counting_service(calls.clone()));
    assert!(poll_ready_once(&mut first).await);
    let request = Request::get("/").header("x-key", "key-a").body(());
    let response = first
        .call(request.expect("the test request is valid"))
        .await
        .expect("the call succeeds");
    assert_eq!(limiter.in_flight(), 1);
    drop(response);
    assert_eq!(limiter.in_flight(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Returns a lookup closure that finds only `key-a`.
fn limiter_lookup(limiter: &Limiter) -> impl Fn(&str) -> Option<Limiter> + Send + Sync + 'static {
    let limiter = limiter.clone();
    move |key: &str| (key == "key-a").then(|| limiter.clone())
}
