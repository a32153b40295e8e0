//! Syncs records for several credentials at once, each paced by tollgate,
//! against the strict mock provider on loopback.
//!
//! Run it with `cargo run --release --example sync`. It loads credential
//! objects from `examples/credentials.json` (or the path given as the first
//! argument), starts a mock provider that enforces each credential's
//! `rate_limit` with its own bookkeeping, and runs several workers per
//! credential that page through records over HTTP. It prints progress every
//! second, a table per credential and one summary line, and exits non-zero
//! if the provider saw any 429 or any window or concurrency violation.

use std::collections::BTreeMap;
use std::error::Error;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tollgate::testing::{KeyReport, MockProvider};
use tollgate::{Credential, Health, HealthStatus, Limiter, RateLimit};

/// Concurrent workers per credential; more than any cap in the file, so the
/// concurrency caps bind.
const WORKERS: u64 = 6;
/// Records per page request.
const PAGE_SIZE: u64 = 10;
/// How long each credential's sync should take, at its own limit.
const TARGET_RUN: Duration = Duration::from_secs(8);
/// The mock provider's response latency.
const LATENCY: Duration = Duration::from_millis(20);

/// One credential's sync: its limiter and the work it has done.
struct Sync {
    credential: Credential,
    limit: RateLimit,
    limiter: Limiter,
    pages: u64,
    done: AtomicU64,
    client_429: AtomicU64,
    other_errors: AtomicU64,
}

#[derive(Deserialize)]
struct Page {
    records: Vec<serde_json::Value>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the sync and reports whether the provider saw a clean run.
async fn run() -> Result<bool, Box<dyn Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/credentials.json").to_owned()
    });
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("cannot read {path}: {error}"))?;
    let credentials: Vec<Credential> = serde_json::from_str(&text)
        .map_err(|error| format!("invalid credentials in {path}: {error}"))?;

    let syncs = plan(credentials);
    if syncs.is_empty() {
        return Err(format!("no credential in {path} has a rate_limit").into());
    }

    let mut builder = MockProvider::builder().latency(LATENCY);
    for sync in &syncs {
        let records = usize::try_from(sync.pages * PAGE_SIZE)?;
        builder = builder
            .credential(sync.credential.id.clone(), sync.limit)
            .records(sync.credential.id.clone(), records);
    }
    let provider = builder.start().await?;
    println!("mock provider listening on {}", provider.url());
    for sync in &syncs {
        println!(
            "  {:<18} {:<10} {} -> {} requests",
            sync.credential.id, sync.credential.provider, sync.limit, sync.pages
        );
    }

    let started = Instant::now();
    let elapsed = sync_all(&syncs, &provider.url()).await;
    let report = provider.report();
    provider.shutdown().await;

    Ok(print_results(
        &syncs,
        &report.keys,
        elapsed,
        started.elapsed(),
    ))
}

/// Sizes each credential's sync to whole windows of its limit, about
/// `TARGET_RUN` long, so utilization measures pacing and not a partial last
/// window.
fn plan(credentials: Vec<Credential>) -> Vec<Arc<Sync>> {
    let mut syncs = Vec::new();
    for credential in credentials {
        let Some(limit) = credential.rate_limit else {
            println!("skipping {credential}: it has no rate_limit");
            continue;
        };
        let windows = (TARGET_RUN.as_millis() as u64 / limit.interval_ms()).clamp(2, 20);
        syncs.push(Arc::new(Sync {
            limiter: Limiter::new(limit),
            pages: windows * u64::from(limit.allowed_requests()),
            limit,
            credential,
            done: AtomicU64::new(0),
            client_429: AtomicU64::new(0),
            other_errors: AtomicU64::new(0),
        }));
    }
    syncs
}

/// Runs every worker of every credential to the end, printing progress once
/// a second, and returns each credential's elapsed time.
async fn sync_all(syncs: &[Arc<Sync>], base_url: &str) -> BTreeMap<String, Duration> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for sync in syncs {
        for worker in 0..WORKERS {
            let (sync, client, base_url) = (sync.clone(), client.clone(), base_url.to_owned());
            tasks.push(tokio::spawn(async move {
                page_through(&sync, &client, &base_url, worker).await;
                (sync.credential.id.clone(), started.elapsed())
            }));
        }
    }

    let progress = tokio::spawn(print_progress(syncs.to_vec(), started));
    let mut elapsed = BTreeMap::new();
    for task in tasks {
        match task.await {
            Ok((id, finished)) => {
                let entry = elapsed.entry(id).or_insert(finished);
                *entry = (*entry).max(finished);
            }
            Err(error) => eprintln!("worker failed: {error}"),
        }
    }
    progress.abort();
    elapsed
}

/// Pages through one worker's share of a credential's records, one permit
/// per request.
async fn page_through(sync: &Sync, client: &reqwest::Client, base_url: &str, worker: u64) {
    let share = sync.pages / WORKERS;
    let first = worker * share + worker.min(sync.pages % WORKERS);
    let pages = share + u64::from(worker < sync.pages % WORKERS);
    let token = format!("Bearer {}", sync.credential.id);

    for page in first..first + pages {
        let url = format!(
            "{base_url}/records?cursor={}&limit={PAGE_SIZE}",
            page * PAGE_SIZE
        );
        let _permit = sync.limiter.acquire().await;
        let response = client
            .get(&url)
            .header("authorization", &token)
            .send()
            .await;
        match response {
            Ok(response) if response.status() == 429 => {
                sync.client_429.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response) if response.status().is_success() => match response.json::<Page>().await {
                Ok(body) if body.records.len() as u64 == PAGE_SIZE => {}
                Ok(body) => {
                    eprintln!(
                        "{}: short page of {} records",
                        sync.credential.id,
                        body.records.len()
                    );
                    sync.other_errors.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    eprintln!("{}: invalid page: {error}", sync.credential.id);
                    sync.other_errors.fetch_add(1, Ordering::Relaxed);
                }
            },
            Ok(response) => {
                eprintln!(
                    "{}: unexpected status {}",
                    sync.credential.id,
                    response.status()
                );
                sync.other_errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                eprintln!("{}: request failed: {error}", sync.credential.id);
                sync.other_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        sync.done.fetch_add(1, Ordering::Relaxed);
    }
}

async fn print_progress(syncs: Vec<Arc<Sync>>, started: Instant) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let line: Vec<String> = syncs
            .iter()
            .map(|sync| {
                let done = sync.done.load(Ordering::Relaxed);
                format!("{} {done}/{}", sync.credential.id, sync.pages)
            })
            .collect();
        eprintln!(
            "[{:>5.1}s] {}",
            started.elapsed().as_secs_f64(),
            line.join("  ")
        );
    }
}

/// Returns the most requests the limit allows to start within a span of
/// `span`: a full window at the start, and one more for each whole interval.
fn most_allowed(limit: RateLimit, span: Duration) -> u64 {
    let windows = span.as_millis() as u64 / limit.interval_ms() + 1;
    windows * u64::from(limit.allowed_requests())
}

/// Returns the credential's health after the sync: customer intervention
/// for a rejected credential, our own intervention for pacing failures.
fn health(sync: &Sync, key: &KeyReport) -> Health {
    if key.rejected_429 > 0 || sync.client_429.load(Ordering::Relaxed) > 0 {
        return Health::new(HealthStatus::SequinIntervention);
    }
    if sync.other_errors.load(Ordering::Relaxed) > 0 {
        return Health::new(HealthStatus::CustomerIntervention);
    }
    Health::new(HealthStatus::Healthy)
}

/// Prints the table and the summary line, and reports whether the run was
/// clean.
fn print_results(
    syncs: &[Arc<Sync>],
    keys: &[KeyReport],
    elapsed: BTreeMap<String, Duration>,
    total: Duration,
) -> bool {
    println!();
    println!(
        "{:<18} {:>8} {:>8} {:>11} {:>12} {:>14} {:>5}  health",
        "credential",
        "requests",
        "elapsed",
        "utilization",
        "worst_window",
        "peak_in_flight",
        "429s"
    );

    let mut clean = true;
    let (mut requests, mut rejected, mut most) = (0u64, 0u64, 0u64);
    let (mut worst, mut worst_allowed) = (0u64, 1u64);
    let (mut peak, mut peak_cap) = (0u32, 0u32);
    for sync in syncs {
        let Some(key) = keys.iter().find(|key| key.key == sync.credential.id) else {
            println!(
                "{:<18} no requests reached the provider",
                sync.credential.id
            );
            clean = false;
            continue;
        };
        let span = match (key.arrivals.first(), key.arrivals.last()) {
            (Some(first), Some(last)) => *last - *first,
            _ => Duration::ZERO,
        };
        let allowed = most_allowed(sync.limit, span);
        let cap = sync.limit.max_concurrent_requests();
        let errors = sync.other_errors.load(Ordering::Relaxed);
        clean &= key.is_clean() && errors == 0 && sync.done.load(Ordering::Relaxed) == sync.pages;

        println!(
            "{:<18} {:>8} {:>7.2}s {:>10.1}% {:>12} {:>14} {:>5}  {}",
            sync.credential.id,
            key.requests,
            elapsed
                .get(&sync.credential.id)
                .copied()
                .unwrap_or_default()
                .as_secs_f64(),
            100.0 * key.requests as f64 / allowed as f64,
            format!("{}/{}", key.worst_window, sync.limit.allowed_requests()),
            if cap == 0 {
                format!("{}/-", key.peak_in_flight)
            } else {
                format!("{}/{cap}", key.peak_in_flight)
            },
            key.rejected_429,
            health(sync, key).status,
        );

        requests += key.requests;
        rejected += key.rejected_429;
        most += allowed;
        // The worst window and peak are reported as the worst ratio.
        if key.worst_window * worst_allowed >= worst * u64::from(sync.limit.allowed_requests()) {
            (worst, worst_allowed) = (key.worst_window, u64::from(sync.limit.allowed_requests()));
        }
        if cap > 0
            && u64::from(key.peak_in_flight) * u64::from(peak_cap.max(1))
                >= u64::from(peak) * u64::from(cap)
        {
            (peak, peak_cap) = (key.peak_in_flight, cap);
        }
    }

    println!();
    println!("finished in {:.2}s", total.as_secs_f64());
    println!(
        "summary: credentials={} requests={requests} rejected_429={rejected} \
         worst_window={worst}/{worst_allowed} peak_in_flight={peak}/{peak_cap} utilization={:.1}%",
        syncs.len(),
        100.0 * requests as f64 / most.max(1) as f64,
    );
    if !clean {
        eprintln!("the provider reported violations or the sync failed; see above");
    }
    clean
}
