//! Pages through one credential's records with concurrent requests from a
//! reqwest-middleware client that the tollgate middleware paces, against the
//! mock provider on 127.0.0.1. Run it with `cargo run --example reqwest_client`.
//!
//! The program prints what the provider saw and exits non-zero if it
//! reports any 429 or violation, or if a record is missing.

use std::collections::BTreeSet;
use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use reqwest_middleware::ClientBuilder;
use serde_json::Value;
use tokio::task::JoinSet;
use tollgate::middleware::LimitMiddleware;
use tollgate::testing::MockProvider;
use tollgate::{Limiter, Margin, RateLimit};

const RECORDS: usize = 200;
const PAGE_SIZE: usize = 10;

type BoxError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let limit = RateLimit::new(10, 500, 2)?;
    let provider = MockProvider::builder()
        .credential("key-a", limit)
        .records("key-a", RECORDS)
        .latency(Duration::from_millis(20))
        .start()
        .await?;

    // The 50 ms guard covers the time from a grant to the provider reading
    // the request, which the default margin of 5 ms may not on a busy host.
    let limiter = Limiter::builder(limit)
        .margin(Margin::Guard(Duration::from_millis(50)))
        .build();
    // `no_proxy` keeps the requests on loopback even when the environment
    // names a proxy.
    let client = reqwest::Client::builder().no_proxy().build()?;
    let client = ClientBuilder::new(client)
        .with(LimitMiddleware::new(limiter))
        .build();

    // Every page's cursor is known in advance, so all pages are requested
    // at once and the middleware spaces them out.
    let started = Instant::now();
    let mut pages = JoinSet::new();
    for start in (0..RECORDS).step_by(PAGE_SIZE) {
        let url = format!(
            "{}/records?cursor={start}&limit={PAGE_SIZE}",
            provider.url()
        );
        let client = client.clone();
        pages.spawn(async move {
            let response = client.get(url).bearer_auth("key-a").send().await?;
            let page: Value = response.error_for_status()?.json().await?;
            Ok::<_, BoxError>(page)
        });
    }
    let mut ids = BTreeSet::new();
    while let Some(page) = pages.join_next().await {
        let page = page??;
        let records = page["records"].as_array().cloned().unwrap_or_default();
        ids.extend(records.iter().filter_map(|record| record["id"].as_u64()));
    }
    let elapsed = started.elapsed();

    let report = provider.report();
    provider.shutdown().await;
    let key = report
        .key("key-a")
        .ok_or("the provider has no report for key-a")?;
    println!(
        "key-a: {} records in {} requests over {elapsed:.2?}, {} got 429, \
         worst window {} of {} allowed, peak in flight {} of {}",
        ids.len(),
        key.requests,
        key.rejected_429,
        key.worst_window,
        limit.allowed_requests(),
        key.peak_in_flight,
        limit.max_concurrent_requests(),
    );

    let mut failed = false;
    for violation in report.violations() {
        eprintln!("violation: {violation}");
        failed = true;
    }
    if ids.len() != RECORDS {
        eprintln!("expected {RECORDS} distinct records, got {}", ids.len());
        failed = true;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
