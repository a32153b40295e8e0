//! Paces one hyper-util client, shared by three credentials, with the keyed
//! tower layer against the mock provider on 127.0.0.1. Run it with
//! `cargo run --example tower_client`.
//!
//! Every credential sends its requests at once, and the layer keeps each
//! within its own rate limit and concurrency cap. The program prints what the provider
//! saw per credential and exits non-zero if it reports any 429 or violation.

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tollgate::registry::Registry;
use tollgate::testing::MockProvider;
use tollgate::tower::{HeaderKey, KeyedLimitLayer};
use tollgate::{Margin, RateLimit};
use tower::{ServiceBuilder, ServiceExt};

/// Requests each credential sends, all at once.
const REQUESTS_PER_KEY: usize = 15;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let credentials = [
        ("key-a", RateLimit::new(5, 500, 2)?),
        ("key-b", RateLimit::new(10, 500, 3)?),
        ("key-c", RateLimit::new(20, 500, 1)?),
    ];

    // The 50 ms guard covers the time from a grant to the provider reading
    // the request, which the default margin of 5 ms may not on a busy host.
    let registry = Registry::builder()
        .margin(Margin::Guard(Duration::from_millis(50)))
        .build();
    let mut provider = MockProvider::builder().latency(Duration::from_millis(20));
    for (key, limit) in credentials {
        registry.insert(key, limit);
        provider = provider.credential(key, limit);
    }
    let provider = provider.start().await?;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(KeyedLimitLayer::new(registry, HeaderKey::bearer()))
        .service(client);

    let started = Instant::now();
    let mut requests = JoinSet::new();
    for (key, _) in credentials {
        for _ in 0..REQUESTS_PER_KEY {
            let request = http::Request::get(format!("{}/records?limit=5", provider.url()))
                .header(AUTHORIZATION, format!("Bearer {key}"))
                .body(Empty::new())?;
            let service = service.clone();
            requests.spawn(async move {
                let response = service.oneshot(request).await?;
                response.into_body().collect().await?;
                Ok::<_, BoxError>(())
            });
        }
    }
    while let Some(request) = requests.join_next().await {
        request??;
    }
    let elapsed = started.elapsed();

    let report = provider.report();
    println!("sent {} requests in {elapsed:.2?}", report.total_requests());
    for key in &report.keys {
        println!(
            "{}: {} requests, {} got 429, worst window {} of {} allowed, peak in flight {} of {}",
            key.key,
            key.requests,
            key.rejected_429,
            key.worst_window,
            key.limit.allowed_requests(),
            key.peak_in_flight,
            key.limit.max_concurrent_requests(),
        );
    }
    provider.shutdown().await;

    if !report.is_clean() {
        for violation in report.violations() {
            eprintln!("violation: {violation}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
