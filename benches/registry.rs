//! The credential registry against governor's keyed limiter (a `DashMap`
//! of GCRA states), measured in the same run. It times lookups over 4,096
//! keys and over a million, uncontended and from every CPU at once. It also
//! counts heap bytes per idle key, before and after the registry evicts
//! idle limiters.
//!
//! Run with `cargo bench --bench registry`. Criterion measures time only, so
//! the memory figures come from a counting global allocator and print to
//! stdout before the timing groups start. Run without `--bench` (as
//! `cargo test --benches` does) it uses small key counts and only checks
//! that everything runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tollgate::clock::{Clock, ManualClock, TokioClock};
use tollgate::registry::Registry;
use tollgate::{Limiter, Policy, RateLimit};

/// Forwards to the system allocator and keeps a count of the bytes that
/// are allocated and not yet freed. The count is of requested sizes, so it
/// leaves out the allocator's own rounding and headers.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract. The counter is only bookkeeping.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract for `layout`.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc_zeroed`'s contract for `layout`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator, and so `System`,
        // returned for `layout`.
        unsafe { System.dealloc(pointer, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block from `System` for `layout` and a
        // valid new size.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Key counts for one run: full size under `cargo bench`, small otherwise.
struct Sizes {
    /// Key counts of the lookup groups: one that fits in the CPU caches and
    /// a million that does not. Each is a power of two, so a stride can wrap
    /// with a mask.
    lookup_keys: &'static [usize],
    /// Keys in the memory measurement.
    memory_keys: usize,
}

impl Sizes {
    fn from_args() -> Self {
        if std::env::args().any(|argument| argument == "--bench") {
            Self {
                lookup_keys: &[1 << 12, 1 << 20],
                memory_keys: 100_000,
            }
        } else {
            Self {
                lookup_keys: &[1 << 10],
                memory_keys: 1_000,
            }
        }
    }
}

/// An odd stride, so `index * STRIDE` masked to a power of two visits every
/// key once per round in an order that defeats the CPU's prefetcher.
const STRIDE: usize = 0x9E37_79B9;

fn keys(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("cred_{index:08}")).collect()
}

fn limit() -> RateLimit {
    RateLimit::new(10, 1000, 0).expect("a valid limit")
}

/// Returns a limit that never rejects a request in a benchmark, so the
/// cost of a grant is compared and not that of a rejection.
fn generous_limit() -> RateLimit {
    RateLimit::new(u32::MAX, 1000, 0).expect("a valid limit")
}

fn governor_quota() -> Quota {
    Quota::per_second(NonZeroU32::new(10).expect("not zero"))
}

fn generous_quota() -> Quota {
    Quota::per_second(NonZeroU32::MAX)
}

fn token_bucket() -> Policy {
    Policy::token_bucket(NonZeroU32::MAX)
}

/// Returns the heap bytes per key that `fill` leaves allocated, and what it
/// built, so the caller drops it after the measurement.
fn bytes_per_key<T>(keys: &[String], fill: impl FnOnce(&[String]) -> T) -> (f64, T) {
    let before = live_bytes();
    let built = fill(keys);
    let after = live_bytes();
    let per_key = after.saturating_sub(before) as f64 / keys.len() as f64;
    (per_key, built)
}

/// Heap bytes per key of one registry, before and after eviction.
struct IdleAndDormant {
    /// Bytes per key once every key was used and is idle, its limiter not
    /// yet evicted.
    idle: f64,
    /// Bytes per key once every key is dormant: its limiter evicted, the key
    /// and its limit kept.
    dormant: f64,
}

/// Fills a registry with `keys`, uses each once, lets every limiter go
/// idle on a manual clock and evicts them, measuring before and after the
/// eviction.
fn measure_eviction(keys: &[String]) -> IdleAndDormant {
    let before = live_bytes();
    let clock = ManualClock::new();
    let registry = Registry::builder().clock(Arc::new(clock.clone())).build();
    for key in keys {
        let limiter = registry.insert(key.as_str(), limit());
        drop(limiter.try_acquire().expect("a new key grants at once"));
    }

    // Past the interval and the default margin, every limiter is idle, and
    // no sweep has run because none is due before the eviction period.
    clock.advance(Duration::from_secs(2));
    let idle = live_bytes().saturating_sub(before);

    let evicted = registry.evict_idle();
    assert_eq!(evicted, keys.len(), "every idle limiter is evicted");
    assert_eq!(registry.len(), keys.len(), "every key stays, dormant");
    let dormant = live_bytes().saturating_sub(before);

    drop(registry);
    let count = keys.len() as f64;
    IdleAndDormant {
        idle: idle as f64 / count,
        dormant: dormant as f64 / count,
    }
}

/// Measures and prints heap bytes per idle key for the registry and for
/// governor's keyed limiter.
fn report_memory(count: usize) {
    let keys = keys(count);

    let eviction = measure_eviction(&keys);

    let (unused, registry) = bytes_per_key(&keys, |keys| {
        let registry = Registry::new();
        for key in keys {
            registry.insert(key.as_str(), limit());
        }
        registry
    });
    drop(registry);

    let (window, registry) = bytes_per_key(&keys, |keys| {
        let registry = Registry::new();
        for key in keys {
            let limiter = registry.insert(key.as_str(), limit());
            drop(limiter.try_acquire().expect("a new key grants at once"));
        }
        registry
    });
    drop(registry);

    let (bucket, registry) = bytes_per_key(&keys, |keys| {
        let registry = Registry::builder().policy(token_bucket()).build();
        for key in keys {
            let limiter = registry.insert(key.as_str(), limit());
            drop(limiter.try_acquire().expect("a new key grants at once"));
        }
        registry
    });
    drop(registry);

    let (limiter_alone, limiters) = bytes_per_key(&keys, |keys| {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
        let limiters: Vec<Limiter> = keys
            .iter()
            .map(|_| Limiter::builder(limit()).clock(Arc::clone(&clock)).build())
            .collect();
        limiters
    });
    drop(limiters);

    let (governor, limiter) = bytes_per_key(&keys, |keys| {
        let limiter: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(governor_quota());
        for key in keys {
            limiter.check_key(key).expect("a new key passes at once");
        }
        limiter
    });
    drop(limiter);

    println!("memory per idle key, {count} keys of 13 bytes, heap bytes counted:");
    println!("  tollgate registry, strict window, never used: {unused:.0} B");
    println!("  tollgate registry, strict window, used once:  {window:.0} B");
    println!(
        "  tollgate registry, used once, idle, live:     {:.0} B",
        eviction.idle
    );
    println!(
        "  tollgate registry, used once, dormant:        {:.0} B",
        eviction.dormant
    );
    println!("  tollgate registry, token bucket, used once:   {bucket:.0} B");
    println!("  tollgate Limiter alone in a Vec, never used:  {limiter_alone:.0} B");
    println!("  governor keyed (DashMap), used once:          {governor:.0} B");
    println!(
        "  ratio to governor: strict window {:.1}x, token bucket {:.1}x, dormant {:.1}x",
        window / governor,
        bucket / governor,
        eviction.dormant / governor
    );
}

fn lookups(c: &mut Criterion, count: usize) {
    let keys = keys(count);
    let mask = count - 1;

    let (window_bytes, registry) = bytes_per_key(&keys, |keys| {
        let registry = Registry::new();
        for key in keys {
            registry.insert(key.as_str(), limit());
        }
        registry
    });
    let (bucket_bytes, bucket_registry) = bytes_per_key(&keys, |keys| {
        let registry = Registry::builder().policy(token_bucket()).build();
        for key in keys {
            registry.insert(key.as_str(), generous_limit());
        }
        registry
    });
    let (governor_bytes, governor) = bytes_per_key(&keys, |keys| {
        let limiter: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(generous_quota());
        for key in keys {
            limiter.check_key(key).expect("the quota never rejects");
        }
        limiter
    });
    let eviction = measure_eviction(&keys);
    println!(
        "memory per key at {count} keys: registry {window_bytes:.0} B (strict window, unused), \
         {bucket_bytes:.0} B (token bucket, unused), {:.0} B (used once, idle, live), \
         {:.0} B (dormant); governor {governor_bytes:.0} B (used once)",
        eviction.idle, eviction.dormant
    );

    let mut group = c.benchmark_group("registry_lookup");
    group.throughput(Throughput::Elements(1));

    group.bench_function(BenchmarkId::new("tollgate_get", count), |b| {
        let mut index = 0usize;
        b.iter(|| {
            index = index.wrapping_add(STRIDE) & mask;
            black_box(registry.get(&keys[index]))
        });
    });

    group.bench_function(BenchmarkId::new("tollgate_get_try_acquire", count), |b| {
        let mut index = 0usize;
        b.iter(|| {
            index = index.wrapping_add(STRIDE) & mask;
            let limiter = bucket_registry.get(&keys[index]).expect("a stored key");
            black_box(limiter.try_acquire().is_ok())
        });
    });

    group.bench_function(BenchmarkId::new("governor_check_key", count), |b| {
        let mut index = 0usize;
        b.iter(|| {
            index = index.wrapping_add(STRIDE) & mask;
            black_box(governor.check_key(&keys[index]).is_ok())
        });
    });
    group.finish();

    let threads = std::thread::available_parallelism().map_or(2, |cpus| cpus.get());
    let mut group = c.benchmark_group("registry_lookup_contended");
    group.throughput(Throughput::Elements(threads as u64));

    group.bench_function(
        BenchmarkId::new(format!("tollgate_get_{threads}_threads"), count),
        |b| {
            b.iter_custom(|iterations| {
                on_threads(threads, iterations, |offset, round| {
                    let index = offset.wrapping_add(round.wrapping_mul(STRIDE)) & mask;
                    black_box(registry.get(&keys[index]));
                })
            });
        },
    );

    group.bench_function(
        BenchmarkId::new(format!("governor_check_key_{threads}_threads"), count),
        |b| {
            b.iter_custom(|iterations| {
                on_threads(threads, iterations, |offset, round| {
                    let index = offset.wrapping_add(round.wrapping_mul(STRIDE)) & mask;
                    black_box(governor.check_key(&keys[index]).is_ok());
                })
            });
        },
    );
    group.finish();
}

/// Runs `operation` `iterations` times on each of `threads` threads at once
/// and returns the wall time, so one iteration is one operation per thread.
fn on_threads(
    threads: usize,
    iterations: u64,
    operation: impl Fn(usize, usize) + Sync,
) -> Duration {
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let barrier = &barrier;
                let operation = &operation;
                scope.spawn(move || {
                    let offset = thread.wrapping_mul(0x5851_F42D);
                    barrier.wait();
                    let start = Instant::now();
                    for round in 0..iterations {
                        operation(offset, round as usize);
                    }
                    start.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a benchmark thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

fn main() {
    let sizes = Sizes::from_args();
    report_memory(sizes.memory_keys);

    let mut criterion = Criterion::default().configure_from_args();
    for &count in sizes.lookup_keys {
        lookups(&mut criterion, count);
    }
    criterion.final_summary();
}
