//! Benchmarks of a saturated limiter: the wall time to grant 1,000 and
//! 10,000 tasks that all wait on one limiter, with the baselines measured in
//! the same run.
//!
//! Run with `cargo bench --bench saturation`. Criterion reports the result as
//! grants per second of wall time. Two groups, in this order:
//!
//! - `saturation_real_clock`: a current-thread runtime on the real clock at
//!   50,000 per second with a burst of 500 (10 ms of grants, so a timer
//!   that fires late loses nothing). The ideal time to grant `N` waiters is
//!   `(N - 500) / 50,000` s: 10 ms for 1,000 and 190 ms for 10,000. The
//!   result shows how close each limiter stays to its limit with a long
//!   queue, and it is the only group that can include governor.
//! - `saturation_paused`: a current-thread runtime on tokio's paused clock,
//!   with a limit of 1,000 per second. Virtual time jumps to each timer, so
//!   the wall time is only the CPU cost of queueing, timers and wakeups per
//!   grant, free of clock noise. governor cannot run here: `until_ready`
//!   reads its own clock and sleeps on futures-timer, both real time.
//!
//! When benchmarking, the binary first prints the polls per grant of each
//! case (1.0 means granted on the first poll, each extra poll is one
//! wakeup).

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tollgate::{Limiter, Margin, Policy, RateLimit};

const WAITER_COUNTS: [usize; 2] = [1_000, 10_000];

/// The burst of the real-clock limiters: 10 ms of grants at 50,000 per
/// second, so a timer that fires a millisecond or two late loses nothing.
const REAL_CLOCK_BURST: u32 = 500;
const REAL_CLOCK_RATE: u32 = 50_000;

/// A limiter under test, with a way to make one waiter for it.
#[derive(Clone)]
enum Subject {
    Tollgate(Limiter),
    Governor(Arc<DefaultDirectRateLimiter>),
    LeakyBucket(Arc<leaky_bucket::RateLimiter>),
    Semaphore(Arc<Semaphore>),
}

impl Subject {
    /// Waits for one grant and releases it at once.
    async fn wait_once(self) {
        match self {
            Subject::Tollgate(limiter) => drop(limiter.acquire().await),
            Subject::Governor(limiter) => limiter.until_ready().await,
            Subject::LeakyBucket(limiter) => limiter.acquire_one().await,
            Subject::Semaphore(semaphore) => drop(
                semaphore
                    .acquire()
                    .await
                    .expect("the semaphore is never closed"),
            ),
        }
    }
}

/// A named benchmark case. `build` runs inside the runtime, so the tollgate
/// clock takes its epoch from that runtime's clock.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    build: fn() -> Subject,
}

/// Returns the cases of the paused-clock group.
fn paused_cases() -> Vec<Case> {
    vec![
        Case {
            name: "tollgate_token_bucket",
            build: || {
                // 1,000 per second with burst 1: one grant per 1 ms timer tick.
                let limit = RateLimit::new(1_000, 1_000, 0).expect("the limit is valid");
                Subject::Tollgate(
                    Limiter::builder(limit)
                        .policy(Policy::token_bucket(NonZeroU32::MIN))
                        .margin(Margin::None)
                        .build(),
                )
            },
        },
        Case {
            name: "tollgate_strict_window",
            build: || {
                // The same 1,000 per second, granted in batches of 100 per
                // 100 ms window.
                let limit = RateLimit::new(100, 100, 0).expect("the limit is valid");
                Subject::Tollgate(Limiter::builder(limit).margin(Margin::None).build())
            },
        },
        Case {
            name: "leaky_bucket",
            build: || {
                Subject::LeakyBucket(Arc::new(
                    leaky_bucket::RateLimiter::builder()
                        .max(1)
                        .initial(1)
                        .refill(1)
                        .interval(Duration::from_millis(1))
                        .build(),
                ))
            },
        },
        Case {
            name: "tokio_semaphore_1_permit",
            build: || {
                // A floor with no clock: it starts empty, `grant_all` adds one
                // permit once every task is queued, and each release hands
                // that permit to the next task in the queue.
                Subject::Semaphore(Arc::new(Semaphore::new(0)))
            },
        },
    ]
}

/// Returns the cases of the real-clock group.
fn real_clock_cases() -> Vec<Case> {
    vec![
        Case {
            name: "tollgate_token_bucket",
            build: || {
                let limit = RateLimit::new(REAL_CLOCK_RATE, 1_000, 0).expect("the limit is valid");
                let burst = NonZeroU32::new(REAL_CLOCK_BURST).expect("the burst is non-zero");
                Subject::Tollgate(
                    Limiter::builder(limit)
                        .policy(Policy::token_bucket(burst))
                        .margin(Margin::None)
                        .build(),
                )
            },
        },
        Case {
            name: "governor",
            build: || {
                let burst = NonZeroU32::new(REAL_CLOCK_BURST).expect("the burst is non-zero");
                let period = Duration::from_secs(1) / REAL_CLOCK_RATE;
                let quota = Quota::with_period(period)
                    .expect("the period is non-zero")
                    .allow_burst(burst);
                Subject::Governor(Arc::new(DefaultDirectRateLimiter::direct(quota)))
            },
        },
        Case {
            name: "leaky_bucket",
            build: || {
                // leaky-bucket drops the sub-millisecond part of a late refill,
                // so it refills every 10 ms rather than every 1 ms.
                let per_10_ms = (REAL_CLOCK_RATE / 100) as usize;
                Subject::LeakyBucket(Arc::new(
                    leaky_bucket::RateLimiter::builder()
                        .max(REAL_CLOCK_BURST as usize)
                        .initial(REAL_CLOCK_BURST as usize)
                        .refill(per_10_ms)
                        .interval(Duration::from_millis(10))
                        .build(),
                ))
            },
        },
    ]
}

/// Spawns `waiters` tasks that each wait once on `subject`, and returns the
/// wall time until all were granted and the total number of polls.
async fn grant_all(subject: Subject, waiters: usize) -> (Duration, u64) {
    let polls = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..waiters {
        tasks.spawn(count_polls(subject.clone().wait_once(), polls.clone()));
    }
    // Let every task poll once and queue before the semaphore gets its
    // permit. The limiters need no such start.
    tokio::task::yield_now().await;
    if let Subject::Semaphore(semaphore) = &subject {
        semaphore.add_permits(1);
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("a waiter panicked");
    }
    (start.elapsed(), polls.load(Ordering::Relaxed))
}

/// Polls `future` to completion, adding each poll to `polls`.
async fn count_polls<F: Future>(future: F, polls: Arc<AtomicU64>) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        polls.fetch_add(1, Ordering::Relaxed);
        future.as_mut().poll(cx)
    })
    .await
}

fn paused_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a paused current-thread runtime builds")
}

fn real_clock_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
}

/// Prints the polls per grant of one run of every case.
fn print_polls(clock: &str, runtime: &Runtime, cases: &[Case]) {
    for &Case { name, build } in cases {
        for waiters in WAITER_COUNTS {
            let (elapsed, polls) = runtime.block_on(async { grant_all(build(), waiters).await });
            println!(
                "{clock:<10} {name:<26} {waiters:>6} waiters: {:.3} polls per grant, {:.1} ms wall",
                polls as f64 / waiters as f64,
                elapsed.as_secs_f64() * 1e3,
            );
        }
    }
}

/// Reports whether criterion will measure: `cargo bench` passes `--bench`,
/// while `--list` and `--test` only list or smoke-test the benchmarks.
fn is_measuring() -> bool {
    let arguments: Vec<String> = std::env::args().collect();
    arguments.iter().any(|argument| argument == "--bench")
        && !arguments
            .iter()
            .any(|argument| argument == "--list" || argument == "--test")
}

fn bench_cases(c: &mut Criterion, group_name: &str, runtime: &Runtime, cases: &[Case]) {
    let mut group = c.benchmark_group(group_name);
    // Flat sampling runs the same number of iterations per sample, which
    // suits iterations that take milliseconds.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for &Case { name, build } in cases {
        for waiters in WAITER_COUNTS {
            group.throughput(Throughput::Elements(waiters as u64));
            group.bench_function(BenchmarkId::new(name, waiters), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| runtime.block_on(async { grant_all(build(), waiters).await.0 }))
                        .sum()
                })
            });
        }
    }
    group.finish();
}

fn saturation_paused(c: &mut Criterion) {
    let runtime = paused_runtime();
    let cases = paused_cases();
    if is_measuring() {
        print_polls("paused", &runtime, &cases);
    }
    bench_cases(c, "saturation_paused", &runtime, &cases);
}

fn saturation_real_clock(c: &mut Criterion) {
    let runtime = real_clock_runtime();
    let cases = real_clock_cases();
    if is_measuring() {
        print_polls("real clock", &runtime, &cases);
    }
    bench_cases(c, "saturation_real_clock", &runtime, &cases);
}

// The real-clock group runs first: once any runtime has paused the clock,
// tokio's `Instant::now` takes a lock in every runtime of the process, which
// would slow the tokio-based limiters on the real clock.
fn main() {
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    saturation_real_clock(&mut criterion);
    saturation_paused(&mut criterion);
    criterion.final_summary();
}
