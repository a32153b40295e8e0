//! Tests of the strict mock provider over real HTTP on loopback.
//!
//! Tests that make exact timing claims run on tokio's paused clock with zero
//! latency, and send their requests from a separate thread that has its own
//! runtime on the real clock. The paused runtime then has no timer at all.
//! Tokio's auto-advance jumps to the next timer whenever the runtime idles,
//! also while it waits for socket I/O. With no timer it has nothing to jump
//! to, so the clock moves only when a test calls `tokio::time::advance`.
#![cfg(feature = "mock-provider")]

use std::io;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::advance;
use tollgate::testing::{MockProvider, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use tollgate::RateLimit;

/// Bound on every request, so that a hung server fails the test instead of
/// stalling it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A response reduced to what the tests check.
#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

fn limit(allowed_requests: u32, interval_ms: u64, max_concurrent_requests: u32) -> RateLimit {
    RateLimit::new(allowed_requests, interval_ms, max_concurrent_requests)
        .expect("test rate limits are valid")
}

fn new_client() -> reqwest::Client {
    // `no_proxy` keeps every request on loopback even when the environment
    // names a proxy.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("the HTTP client builds")
}

/// Sends `GET url` with the bearer key `key`, or with no `Authorization`
/// header when `key` is `None`.
async fn send(client: &reqwest::Client, url: &str, key: Option<&str>) -> Reply {
    let mut request = client.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("the mock provider answers");

    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|value| {
        let text = value.to_str().expect("Retry-After is ASCII");
        text.parse().expect("Retry-After is whole seconds")
    });
    let body = response.json().await.expect("the body is JSON");
    Reply {
        status,
        retry_after,
        body,
    }
}

/// Sends `count` concurrent `GET url` requests with the bearer key `key`.
async fn burst(url: String, key: String, count: usize) -> Vec<Reply> {
    let client = new_client();
    let mut requests = JoinSet::new();
    for _ in 0..count {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        requests.spawn(async move { send(&client, &url, Some(&key)).await });
    }

    let mut replies = Vec::with_capacity(count);
    while let Some(reply) = requests.join_next().await {
        replies.push(reply.expect("the request task does not panic"));
    }
    replies
}

/// Runs [`burst`] on a new thread with its own runtime on the real clock, so
/// that the client sets no timer on the test's paused clock.
async fn burst_from_thread(url: &str, key: &str, count: usize) -> Vec<Reply> {
    let (url, key) = (url.to_owned(), key.to_owned());
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the client runtime builds");
        let replies = runtime.block_on(burst(url, key, count));
        let _ = sender.send(replies);
    });
    receiver
        .await
        .expect("the client thread returns its replies")
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    let mut statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
    statuses.sort_unstable();
    statuses
}

fn record_ids(body: &Value) -> Vec<u64> {
    let records = body["records"].as_array().expect("`records` is an array");
    records
        .iter()
        .map(|record| record["id"].as_u64().expect("`id` is a number"))
        .collect()
}

/// Counts the maximum number of arrivals in any window `[t, t + interval)`
/// the slow way. Sliding a window's start to its first arrival keeps every
/// arrival in it, so trying each arrival as a start finds the maximum.
fn brute_force_worst_window(arrivals: &[Duration], interval: Duration) -> u64 {
    let counts = arrivals.iter().map(|&start| {
        arrivals
            .iter()
            .filter(|&&arrival| start <= arrival && arrival < start + interval)
            .count()
    });
    counts.max().unwrap_or(0) as u64
}

#[tokio::test]
async fn paging_returns_each_record_once() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(1000, 1000, 0))
        .records("key-a", 23)
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let client = new_client();

    let mut ids = Vec::new();
    let mut page_sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let url = match &cursor {
            Some(cursor) => format!("{}/records?cursor={cursor}&limit=10", provider.url()),
            None => format!("{}/records?limit=10", provider.url()),
        };
        let reply = send(&client, &url, Some("key-a")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);

        let page = record_ids(&reply.body);
        page_sizes.push(page.len());
        ids.extend(page);
        cursor = reply.body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }

    assert_eq!(cursor, None, "paging did not end within 10 pages");
    assert_eq!(page_sizes, [10, 10, 3]);
    assert_eq!(ids, (1..=23).collect::<Vec<u64>>());
    let report = provider.report();
    assert!(report.is_clean(), "{:?}", report.violations());
}

#[tokio::test]
async fn page_size_defaults_and_cap() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(1000, 1000, 0))
        .default_records(250)
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let client = new_client();
    let url = provider.url();

    let default_page = send(&client, &format!("{url}/records"), Some("key-a")).await;
    assert_eq!(default_page.status, 200);
    assert_eq!(record_ids(&default_page.body).len(), DEFAULT_PAGE_SIZE);
    assert_eq!(default_page.body["next_cursor"], "10");

    let capped = send(&client, &format!("{url}/records?limit=1000"), Some("key-a")).await;
    assert_eq!(capped.status, 200);
    assert_eq!(record_ids(&capped.body).len(), MAX_PAGE_SIZE);

    let last = send(
        &client,
        &format!("{url}/records?cursor=240&limit=50"),
        Some("key-a"),
    )
    .await;
    assert_eq!(record_ids(&last.body), (241..=250).collect::<Vec<u64>>());
    assert_eq!(last.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn invalid_queries_and_paths_are_rejected() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(1000, 1000, 0))
        .records("key-a", 5)
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let client = new_client();
    let url = provider.url();

    let cases = [
        ("/records?cursor=abc", 400),
        ("/records?cursor=6", 400),
        ("/records?limit=0", 400),
        ("/records?limit=-1", 400),
        ("/missing", 404),
    ];
    for (path, expected) in cases {
        let reply = send(&client, &format!("{url}{path}"), Some("key-a")).await;
        assert_eq!(reply.status, expected, "GET {path}: {:?}", reply.body);
        assert!(
            reply.body["error"].is_string(),
            "GET {path}: {:?}",
            reply.body
        );
    }

    let post = client
        .post(format!("{url}/records"))
        .bearer_auth("key-a")
        .send()
        .await
        .expect("the mock provider answers");
    assert_eq!(post.status().as_u16(), 405);

    // Every request carried a registered key, so each one counts.
    let report = provider.report();
    let key = report.key("key-a").expect("key-a is registered");
    assert_eq!(key.requests, 6);
    assert_eq!(key.accepted, 6);
}

#[tokio::test]
async fn missing_or_unknown_key_gets_401() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(5, 1000, 0))
        .start()
        .await
        .expect("the provider starts");
    let client = new_client();
    let url = format!("{}/records", provider.url());

    let missing = send(&client, &url, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["error"], "unauthorized");

    let unknown = send(&client, &url, Some("key-b")).await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.body["error"], "unauthorized");

    let basic = client
        .get(&url)
        .basic_auth("key-a", None::<&str>)
        .send()
        .await
        .expect("the mock provider answers");
    assert_eq!(basic.status().as_u16(), 401);
    assert_eq!(
        basic
            .headers()
            .get("www-authenticate")
            .map(|value| value.as_bytes()),
        Some(&b"Bearer"[..]),
    );

    let report = provider.report();
    assert_eq!(report.unauthorized, 3);
    assert_eq!(report.total_requests(), 3);
    assert_eq!(report.total_rejected(), 3);
    let key = report.key("key-a").expect("key-a is registered");
    assert_eq!(key.requests, 0);
    // A 401 is not a rate-limit violation.
    assert!(report.is_clean());
}

#[tokio::test(start_paused = true)]
async fn sixth_request_in_window_gets_429() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(5, 1000, 0))
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let url = format!("{}/records", provider.url());

    let first = burst_from_thread(&url, "key-a", 5).await;
    assert_eq!(statuses(&first), [200; 5]);

    let sixth = burst_from_thread(&url, "key-a", 1).await;
    assert_eq!(sixth[0].status, 429);
    assert_eq!(sixth[0].body["error"], "too_many_requests");
    // All six arrived at the same instant, so the second one leaves the
    // window after exactly the full interval.
    assert_eq!(sixth[0].retry_after, Some(1));

    let report = provider.report();
    let key = report.key("key-a").expect("key-a is registered");
    assert_eq!(key.requests, 6);
    assert_eq!(key.accepted, 5);
    assert_eq!(key.rejected_429, 1);
    assert_eq!(key.rejected_by_window, 1);
    assert_eq!(key.rejected_by_concurrency, 0);
    // The rejected arrival counts too.
    assert_eq!(key.worst_window, 6);
    assert_eq!(key.arrivals, [Duration::ZERO; 6]);
    assert_eq!(report.total_rejected(), 1);
    assert!(!report.is_clean());
    assert_eq!(report.violations().len(), 2, "{:?}", report.violations());
}

#[tokio::test(start_paused = true)]
async fn window_slides_after_interval() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(5, 1000, 0))
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let url = format!("{}/records", provider.url());

    let first = burst_from_thread(&url, "key-a", 5).await;
    assert_eq!(statuses(&first), [200; 5]);

    // The window is half-open, so arrivals exactly one interval apart never
    // share it.
    advance(Duration::from_millis(1000)).await;
    let second = burst_from_thread(&url, "key-a", 5).await;
    assert_eq!(statuses(&second), [200; 5]);

    let report = provider.report();
    let key = report.key("key-a").expect("key-a is registered");
    assert_eq!(key.requests, 10);
    assert_eq!(key.rejected_429, 0);
    assert_eq!(key.worst_window, 5);
    assert!(report.is_clean(), "{:?}", report.violations());
}

#[tokio::test(start_paused = true)]
async fn window_holds_until_interval_ends() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(5, 1000, 0))
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let url = format!("{}/records", provider.url());

    burst_from_thread(&url, "key-a", 5).await;
    advance(Duration::from_millis(999)).await;
    let late = burst_from_thread(&url, "key-a", 1).await;

    assert_eq!(late[0].status, 429);
    // The wait is 1 ms, which rounds up to a whole second.
    assert_eq!(late[0].retry_after, Some(1));
    let report = provider.report();
    assert_eq!(report.key("key-a").map(|key| key.worst_window), Some(6));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_exact_wait_rounded_up() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(2, 5000, 0))
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let url = format!("{}/records", provider.url());

    burst_from_thread(&url, "key-a", 2).await;
    advance(Duration::from_millis(1500)).await;
    let rejected = burst_from_thread(&url, "key-a", 1).await;

    // The arrivals at 0 ms leave the window at 5000 ms, 3500 ms from now.
    assert_eq!(rejected[0].status, 429);
    assert_eq!(rejected[0].retry_after, Some(4));

    advance(Duration::from_millis(3500)).await;
    let retried = burst_from_thread(&url, "key-a", 1).await;
    assert_eq!(retried[0].status, 200);
}

#[tokio::test(start_paused = true)]
async fn rejected_arrivals_count_toward_window() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(1, 1000, 0))
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let url = format!("{}/records", provider.url());

    // A client that retries every 500 ms keeps one arrival in each window.
    let mut observed = Vec::new();
    for _ in 0..4 {
        observed.push(burst_from_thread(&url, "key-a", 1).await[0].status);
        advance(Duration::from_millis(500)).await;
    }
    assert_eq!(observed, [200, 429, 429, 429]);

    // After a full interval of silence the next request is accepted.
    advance(Duration::from_millis(500)).await;
    let after_silence = burst_from_thread(&url, "key-a", 1).await;
    assert_eq!(after_silence[0].status, 200);

    let report = provider.report();
    let key = report.key("key-a").expect("key-a is registered");
    assert_eq!(key.requests, 5);
    assert_eq!(key.rejected_by_window, 3);
    assert_eq!(key.worst_window, 2);
}

#[tokio::test]
async fn concurrency_cap_rejects_excess() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(100, 1000, 2))
        .latency(Duration::from_millis(300))
        .start()
        .await
        .expect("the provider starts");

    // NOTE: this test runs on the real clock, because a paused clock would
    // skip the latency while the runtime waits for the other connections. It
    // assumes that the four requests arrive within the 300 ms latency.
    let replies = burst(format!("{}/records", provider.url()), "key-a".to_owned(), 4).await;

    assert_eq!(statuses(&replies), [200, 200, 429, 429]);
    for reply in replies.iter().filter(|reply| reply.status == 429) {
        assert_eq!(reply.retry_after, Some(1));
    }
    let report = provider.report();
    let key = report.key("key-a").expect("key-a is registered");
    assert_eq!(key.requests, 4);
    assert_eq!(key.accepted, 2);
    assert_eq!(key.rejected_by_concurrency, 2);
    assert_eq!(key.rejected_by_window, 0);
    assert_eq!(key.peak_in_flight, 2);
    assert_eq!(key.in_flight, 0);
    assert_eq!(key.worst_window, 4);
    assert!(!report.is_clean());
    assert_eq!(report.violations().len(), 1, "{:?}", report.violations());
}

#[tokio::test(start_paused = true)]
async fn keys_are_independent() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(2, 1000, 0))
        .credential("key-b", limit(2, 1000, 0))
        .records("key-a", 3)
        .records("key-b", 7)
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let url = format!("{}/records?limit=100", provider.url());

    let a = burst_from_thread(&url, "key-a", 3).await;
    let b = burst_from_thread(&url, "key-b", 2).await;

    assert_eq!(statuses(&a), [200, 200, 429]);
    assert_eq!(statuses(&b), [200, 200]);
    assert_eq!(record_ids(&a[0].body).len(), 3);
    assert_eq!(record_ids(&b[0].body).len(), 7);

    let report = provider.report();
    let key_a = report.key("key-a").expect("key-a is registered");
    let key_b = report.key("key-b").expect("key-b is registered");
    assert_eq!(key_a.requests, 3);
    assert_eq!(key_a.rejected_429, 1);
    assert!(!key_a.is_clean());
    assert_eq!(key_b.requests, 2);
    assert_eq!(key_b.rejected_429, 0);
    assert_eq!(key_b.worst_window, 2);
    assert!(key_b.is_clean());
    assert_eq!(report.total_requests(), 5);
}

#[tokio::test(start_paused = true)]
async fn worst_window_matches_brute_force() {
    let interval = Duration::from_millis(1000);
    let provider = MockProvider::builder()
        .credential("key-a", limit(3, 1000, 0))
        .latency(Duration::ZERO)
        .start()
        .await
        .expect("the provider starts");
    let url = format!("{}/records", provider.url());

    // Pairs of (pause before the burst in ms, requests in the burst). The
    // pauses put arrivals 1 ms inside, exactly at and 1 ms past the edge of
    // earlier windows.
    let schedule = [
        (0, 2),
        (400, 1),
        (599, 1),
        (1, 2),
        (999, 1),
        (1000, 3),
        (250, 1),
        (10, 2),
        (740, 1),
        (1, 1),
        (2000, 4),
        (999, 1),
        (1, 1),
    ];
    let mut expected_arrivals = Vec::new();
    let mut offset = Duration::ZERO;
    for (pause_ms, count) in schedule {
        advance(Duration::from_millis(pause_ms)).await;
        offset += Duration::from_millis(pause_ms);
        burst_from_thread(&url, "key-a", count).await;
        expected_arrivals.extend(std::iter::repeat_n(offset, count));
    }

    let report = provider.report();
    let key = report.key("key-a").expect("key-a is registered");
    assert_eq!(key.arrivals, expected_arrivals);
    assert_eq!(
        key.worst_window,
        brute_force_worst_window(&key.arrivals, interval)
    );
    // Three arrivals at 2999 ms, one at 3249 ms and two at 3259 ms.
    assert_eq!(key.worst_window, 6);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_and_stops_accepting() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(100, 1000, 0))
        .latency(Duration::from_millis(200))
        .start()
        .await
        .expect("the provider starts");
    let addr = provider.addr();
    let url = format!("{}/records", provider.url());
    assert!(provider.url().starts_with("http://127.0.0.1:"));
    assert!(addr.ip().is_loopback());

    let in_flight = tokio::spawn(async move { send(&new_client(), &url, Some("key-a")).await });
    for _ in 0..200 {
        let report = provider.report();
        if report.key("key-a").map(|key| key.in_flight) == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let report = provider.report();
    assert_eq!(report.key("key-a").map(|key| key.in_flight), Some(1));

    provider.shutdown().await;

    let reply = in_flight.await.expect("the request task does not panic");
    assert_eq!(reply.status, 200);
    let refused = TcpStream::connect(addr).await;
    assert_eq!(
        refused.map_err(|error| error.kind()).err(),
        Some(io::ErrorKind::ConnectionRefused),
    );
}

#[tokio::test]
async fn drop_stops_server() {
    let provider = MockProvider::builder()
        .credential("key-a", limit(100, 1000, 0))
        .start()
        .await
        .expect("the provider starts");
    let addr = provider.addr();
    TcpStream::connect(addr)
        .await
        .expect("the provider accepts connections");

    drop(provider);

    // The aborted server task closes its listener when the runtime next runs
    // it, so the first attempts may still connect, or be reset when a
    // connection queued in the listener's backlog is dropped with it.
    let mut last_error = None;
    for _ in 0..100 {
        match TcpStream::connect(addr).await {
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                last_error = Some(error.kind());
                break;
            }
            Err(error) => last_error = Some(error.kind()),
            Ok(_) => last_error = None,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last_error, Some(io::ErrorKind::ConnectionRefused));
}

#[tokio::test]
async fn start_rejects_invalid_configuration() {
    let empty_key = MockProvider::builder()
        .credential("", limit(1, 1000, 0))
        .start()
        .await;
    assert_eq!(
        empty_key.map(|_| ()).map_err(|error| error.kind()),
        Err(io::ErrorKind::InvalidInput),
    );

    let spaced_key = MockProvider::builder()
        .credential("key a", limit(1, 1000, 0))
        .start()
        .await;
    assert_eq!(
        spaced_key.map(|_| ()).map_err(|error| error.kind()),
        Err(io::ErrorKind::InvalidInput),
    );

    let unregistered_records = MockProvider::builder()
        .credential("key-a", limit(1, 1000, 0))
        .records("key-b", 10)
        .start()
        .await;
    assert_eq!(
        unregistered_records
            .map(|_| ())
            .map_err(|error| error.kind()),
        Err(io::ErrorKind::InvalidInput),
    );
}
