//! Benchmarks of a rate grant that needs no wait, against governor,
//! leaky-bucket and tokio's semaphore measured in the same run.
//!
//! Run with `cargo bench --bench grant`. Every limiter is configured so large
//! that it never rejects, so each figure is the cost of the bookkeeping alone:
//!
//! - `grant_uncontended`: one thread, `try_acquire` with the permit dropped
//!   at once, against governor's `check`, leaky-bucket's `try_acquire` and
//!   tokio's `Semaphore::try_acquire` (a floor: one CAS and no clock read).
//! - `grant_contended_2_threads`: the same operations with two threads
//!   hammering one shared limiter. The figure is the wall time for one
//!   operation on each thread, so perfect scaling equals the uncontended one.
//! - `acquire_ready`: `acquire().await` granted at once, on a current-thread
//!   runtime, beside the non-waiting `try_acquire` in the same group.
//! - `clock_read`: the time sources behind the limiters, to show how much of
//!   a grant is reading the clock.
//!
//! The `_constant_clock` rows run the same tollgate token bucket on a clock
//! that always reads zero. They are not a configuration anyone would use:
//! they show what a grant costs apart from reading the clock.
//!
//! When benchmarking, the binary first counts heap allocations per operation
//! with a counting global allocator and prints them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::Criterion;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tollgate::clock::{Clock, TokioClock};
use tollgate::{Limiter, Margin, Policy, RateLimit};

/// Counts every allocation and reallocation in this binary.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, so the
// caller's guarantees about `layout` and `ptr` are the ones `System` needs.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Operations per limiter in the allocation count.
const ALLOCATION_SAMPLE: u64 = 100_000;

/// Builds a token bucket that never rejects: `u32::MAX` per second refills
/// one unit per nanosecond, and the burst of `u32::MAX` lets the state run
/// 4.3 s ahead.
fn tollgate_token_bucket() -> Limiter {
    let limit = RateLimit::new(u32::MAX, 1000, 0).expect("the limit is valid");
    Limiter::builder(limit)
        .policy(Policy::token_bucket(NonZeroU32::MAX))
        .margin(Margin::None)
        .build()
}

/// Builds the same token bucket on a clock that always reads zero, to show
/// the cost of a grant without the clock read.
fn tollgate_token_bucket_constant_clock() -> Limiter {
    let limit = RateLimit::new(u32::MAX, 1000, 0).expect("the limit is valid");
    Limiter::builder(limit)
        .policy(Policy::token_bucket(NonZeroU32::MAX))
        .margin(Margin::None)
        .clock(std::sync::Arc::new(ConstantClock))
        .build()
}

/// Builds a strict window that never rejects. The interval is 1 ms, so the
/// grant log reaches a steady state of about one push and one expiry per
/// grant. A longer interval only makes the log longer.
fn tollgate_strict_window() -> Limiter {
    let limit = RateLimit::new(u32::MAX, 1, 0).expect("the limit is valid");
    Limiter::builder(limit)
        .policy(Policy::StrictWindow)
        .margin(Margin::None)
        .build()
}

/// Builds governor's direct limiter on its default clock, refilling one
/// cell per nanosecond with a burst of `u32::MAX`, like the tollgate bucket.
fn governor_limiter() -> DefaultDirectRateLimiter {
    let quota = Quota::with_period(Duration::from_nanos(1))
        .expect("the period is non-zero")
        .allow_burst(NonZeroU32::MAX);
    DefaultDirectRateLimiter::direct(quota)
}

/// Builds a leaky-bucket limiter whose balance starts at `isize::MAX` tokens.
fn leaky_bucket_limiter() -> leaky_bucket::RateLimiter {
    leaky_bucket::RateLimiter::builder()
        .max(isize::MAX as usize)
        .initial(isize::MAX as usize)
        .refill(1)
        .interval(Duration::from_secs(1))
        .build()
}

fn semaphore() -> Semaphore {
    Semaphore::new(Semaphore::MAX_PERMITS)
}

/// A tollgate clock that never moves.
#[derive(Debug)]
struct ConstantClock;

impl Clock for ConstantClock {
    fn now(&self) -> u64 {
        0
    }

    fn sleep_until(&self, _deadline: u64) -> tollgate::clock::Sleep {
        Box::pin(std::future::pending())
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
}

/// Returns the heap allocations per call of `op`, after one warm-up call
/// that may initialize thread-locals.
fn allocations_per_op(mut op: impl FnMut()) -> f64 {
    op();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ALLOCATION_SAMPLE {
        op();
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    allocations as f64 / ALLOCATION_SAMPLE as f64
}

/// Returns the heap allocations per awaited call of `op`, counted inside
/// the runtime so that starting the runtime is not included.
fn allocations_per_async_op<F, Fut>(runtime: &Runtime, op: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime.block_on(async {
        op().await;
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..ALLOCATION_SAMPLE {
            op().await;
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        allocations as f64 / ALLOCATION_SAMPLE as f64
    })
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

/// Prints the allocations per operation for every operation benchmarked.
fn print_allocations() {
    let bucket = tollgate_token_bucket();
    let window = tollgate_strict_window();
    let governor = governor_limiter();
    let leaky = leaky_bucket_limiter();
    let semaphore = semaphore();
    let runtime = runtime();

    let rows = [
        (
            "tollgate token bucket try_acquire",
            allocations_per_op(|| drop(black_box(bucket.try_acquire()))),
        ),
        (
            "tollgate strict window try_acquire",
            allocations_per_op(|| drop(black_box(window.try_acquire()))),
        ),
        (
            "governor check",
            allocations_per_op(|| drop(black_box(governor.check()))),
        ),
        (
            "leaky-bucket try_acquire",
            allocations_per_op(|| {
                black_box(leaky.try_acquire(1));
            }),
        ),
        (
            "tokio semaphore try_acquire",
            allocations_per_op(|| drop(black_box(semaphore.try_acquire()))),
        ),
        (
            "tollgate token bucket acquire().await",
            allocations_per_async_op(&runtime, || async {
                drop(black_box(bucket.acquire().await));
            }),
        ),
        (
            "tollgate strict window acquire().await",
            allocations_per_async_op(&runtime, || async {
                drop(black_box(window.acquire().await));
            }),
        ),
        (
            "governor until_ready().await",
            allocations_per_async_op(&runtime, || async {
                governor.until_ready().await;
            }),
        ),
        (
            "leaky-bucket acquire_one().await",
            allocations_per_async_op(&runtime, || async {
                leaky.acquire_one().await;
            }),
        ),
        (
            "tokio semaphore acquire().await",
            allocations_per_async_op(&runtime, || async {
                drop(black_box(semaphore.acquire().await));
            }),
        ),
    ];

    println!("heap allocations per operation ({ALLOCATION_SAMPLE} operations each):");
    for (name, allocations) in rows {
        println!("  {name:<42} {allocations:.3}");
    }
}

fn grant_uncontended(c: &mut Criterion) {
    if is_measuring() {
        print_allocations();
    }

    let bucket = tollgate_token_bucket();
    let bucket_constant_clock = tollgate_token_bucket_constant_clock();
    let window = tollgate_strict_window();
    let governor = governor_limiter();
    let leaky = leaky_bucket_limiter();
    let semaphore = semaphore();

    let mut group = c.benchmark_group("grant_uncontended");
    group.bench_function("tollgate_token_bucket", |b| b.iter(|| bucket.try_acquire()));
    group.bench_function("tollgate_token_bucket_constant_clock", |b| {
        b.iter(|| bucket_constant_clock.try_acquire())
    });
    group.bench_function("tollgate_strict_window", |b| {
        b.iter(|| window.try_acquire())
    });
    group.bench_function("governor_check", |b| b.iter(|| governor.check()));
    group.bench_function("leaky_bucket_try_acquire", |b| {
        b.iter(|| leaky.try_acquire(1))
    });
    group.bench_function("tokio_semaphore_try_acquire", |b| {
        b.iter(|| semaphore.try_acquire())
    });
    group.finish();
}

/// Runs `op` `iters` times on each of two threads that start together, and
/// returns the longer of the two threads' times.
fn run_on_two_threads<T>(iters: u64, op: impl Fn() -> T + Sync) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(op());
                    }
                    start.elapsed()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("a benchmark thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

fn grant_contended(c: &mut Criterion) {
    let bucket = tollgate_token_bucket();
    let bucket_constant_clock = tollgate_token_bucket_constant_clock();
    let window = tollgate_strict_window();
    let governor = governor_limiter();
    let leaky = leaky_bucket_limiter();
    let semaphore = semaphore();

    let mut group = c.benchmark_group("grant_contended_2_threads");
    group.bench_function("tollgate_token_bucket", |b| {
        b.iter_custom(|iters| run_on_two_threads(iters, || bucket.try_acquire()))
    });
    group.bench_function("tollgate_token_bucket_constant_clock", |b| {
        b.iter_custom(|iters| run_on_two_threads(iters, || bucket_constant_clock.try_acquire()))
    });
    group.bench_function("tollgate_strict_window", |b| {
        b.iter_custom(|iters| run_on_two_threads(iters, || window.try_acquire()))
    });
    group.bench_function("governor_check", |b| {
        b.iter_custom(|iters| run_on_two_threads(iters, || governor.check()))
    });
    group.bench_function("leaky_bucket_try_acquire", |b| {
        b.iter_custom(|iters| run_on_two_threads(iters, || leaky.try_acquire(1)))
    });
    group.bench_function("tokio_semaphore_try_acquire", |b| {
        b.iter_custom(|iters| run_on_two_threads(iters, || semaphore.try_acquire()))
    });
    group.finish();
}

fn acquire_ready(c: &mut Criterion) {
    let bucket = tollgate_token_bucket();
    let bucket_constant_clock = tollgate_token_bucket_constant_clock();
    let window = tollgate_strict_window();
    let governor = governor_limiter();
    let leaky = leaky_bucket_limiter();
    let semaphore = semaphore();
    let runtime = runtime();

    let mut group = c.benchmark_group("acquire_ready");
    group.bench_function("tollgate_token_bucket_try_acquire", |b| {
        b.iter(|| bucket.try_acquire())
    });
    group.bench_function("tollgate_token_bucket_acquire", |b| {
        b.to_async(&runtime).iter(|| bucket.acquire())
    });
    group.bench_function("tollgate_token_bucket_acquire_constant_clock", |b| {
        b.to_async(&runtime)
            .iter(|| bucket_constant_clock.acquire())
    });
    group.bench_function("tollgate_strict_window_acquire", |b| {
        b.to_async(&runtime).iter(|| window.acquire())
    });
    group.bench_function("governor_until_ready", |b| {
        b.to_async(&runtime).iter(|| governor.until_ready())
    });
    group.bench_function("leaky_bucket_acquire_one", |b| {
        b.to_async(&runtime).iter(|| leaky.acquire_one())
    });
    group.bench_function("tokio_semaphore_acquire", |b| {
        b.to_async(&runtime).iter(|| semaphore.acquire())
    });
    group.finish();
}

fn clock_read(c: &mut Criterion) {
    let tokio_clock = TokioClock::new();
    let quanta_clock = DefaultClock::default();

    let mut group = c.benchmark_group("clock_read");
    group.bench_function("tollgate_tokio_clock", |b| b.iter(|| tokio_clock.now()));
    group.bench_function("governor_default_clock", |b| b.iter(|| quanta_clock.now()));
    group.bench_function("tokio_instant", |b| b.iter(tokio::time::Instant::now));
    group.bench_function("std_instant", |b| b.iter(Instant::now));
    group.finish();
}

/// Returns the criterion settings. Without plots a full run takes about
/// two minutes less on a 2-CPU machine.
fn config() -> Criterion {
    Criterion::default()
        .without_plots()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

fn main() {
    let mut criterion = config().configure_from_args();
    grant_uncontended(&mut criterion);
    grant_contended(&mut criterion);
    acquire_ready(&mut criterion);
    clock_read(&mut criterion);
    criterion.final_summary();
}
