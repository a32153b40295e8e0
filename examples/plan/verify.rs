//! The check: the same workload sent over HTTP to the mock provider on the
//! real clock, paced by the same kind of limiter.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tollgate::testing::{KeyReport, MockProvider, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use tollgate::Limiter;

use crate::args::Options;

/// The bearer key the mock provider registers for the run.
const KEY: &str = "plan-key";

/// Failed requests printed in full; later ones are only counted.
const MAX_PRINTED_FAILURES: u64 = 3;

/// The outcome of the run on the real clock.
#[derive(Debug)]
pub(crate) struct Measurement {
    /// Time from the first request until the last response was read.
    pub(crate) duration: Duration,
    /// Responses with status 429, as the client saw them.
    pub(crate) client_429: u64,
    /// Requests that failed in another way: another status, a transport
    /// error or an unreadable body.
    pub(crate) failures: u64,
    /// The provider's own bookkeeping of the key.
    pub(crate) report: KeyReport,
    pub(crate) address: SocketAddr,
}

impl Measurement {
    /// Returns the mean rate in requests per second.
    pub(crate) fn rate(&self) -> f64 {
        self.report.requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

/// Counters shared by the workers.
#[derive(Default)]
struct Counters {
    /// Index of the next request to send.
    next: AtomicU64,
    client_429: AtomicU64,
    failures: AtomicU64,
}

/// Sends the workload in `options` to a mock provider that responds to
/// every request after `latency`.
///
/// # Errors
///
/// Returns an error when the runtime, the provider or the HTTP client cannot
/// start, or a worker panics. Failed requests are counted, not returned.
pub(crate) fn verify(options: &Options, latency: Duration) -> Result<Measurement, Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(options, latency))
}

async fn run(options: &Options, latency: Duration) -> Result<Measurement, Box<dyn Error>> {
    // The mock serves at most MAX_PAGE_SIZE records per page, so larger
    // pages are sent as pages of that size: the request count is what the
    // rate limit counts.
    let page_size = options
        .page_size
        .unwrap_or(DEFAULT_PAGE_SIZE as u64)
        .min(MAX_PAGE_SIZE as u64);
    let records = usize::try_from(options.requests.saturating_mul(page_size))?;
    let provider = MockProvider::builder()
        .credential(KEY, options.limit)
        .records(KEY, records)
        .latency(latency)
        .start()
        .await?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let limiter = Limiter::builder(options.limit)
        .policy(options.policy)
        .margin(options.margin)
        .build();
    let counters = Arc::new(Counters::default());

    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..options.workers {
        workers.spawn(fetch_pages(
            limiter.clone(),
            client.clone(),
            format!("{}/records", provider.url()),
            page_size,
            options.requests,
            counters.clone(),
        ));
    }
    while let Some(result) = workers.join_next().await {
        result?;
    }
    let duration = started.elapsed();

    let address = provider.addr();
    let report = provider.report();
    provider.shutdown().await;
    let report = report
        .key(KEY)
        .cloned()
        .ok_or("the mock provider's report has no entry for the key it registered")?;
    Ok(Measurement {
        duration,
        client_429: counters.client_429.load(Ordering::Relaxed),
        failures: counters.failures.load(Ordering::Relaxed),
        report,
        address,
    })
}

/// Fetches pages one at a time, each under a permit held until its body is
/// read, until the workload has none left.
async fn fetch_pages(
    limiter: Limiter,
    client: reqwest::Client,
    records_url: String,
    page_size: u64,
    requests: u64,
    counters: Arc<Counters>,
) {
    // Each pass takes one of the workload's requests, so the loop ends.
    loop {
        let index = counters.next.fetch_add(1, Ordering::Relaxed);
        if index >= requests {
            return;
        }
        let cursor = index * page_size;
        let request = client
            .get(&records_url)
            .query(&[("cursor", cursor), ("limit", page_size)])
            .bearer_auth(KEY);

        let permit = limiter.acquire().await;
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|_| status)
            }
            Err(error) => Err(error),
        };
        drop(permit);

        let failure = match outcome {
            Ok(status) if status.is_success() => continue,
            Ok(status) if status.as_u16() == 429 => {
                counters.client_429.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok(status) => format!("unexpected status {status}"),
            Err(error) => format!("request failed: {error}"),
        };
        let earlier = counters.failures.fetch_add(1, Ordering::Relaxed);
        if earlier < MAX_PRINTED_FAILURES {
            eprintln!("request for cursor {cursor}: {failure}");
        }
    }
}
