//! The registry of per-credential limiters: its keys, live updates and idle
//! eviction, on tokio's paused clock or a manual clock.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::clock::ManualClock;
use tollgate::registry::Registry;
use tollgate::{Credential, Margin, Policy, RateLimit, TryAcquireError};

fn limit(allowed: u32, interval_ms: u64, cap: u32) -> RateLimit {
    RateLimit::new(allowed, interval_ms, cap).expect("valid test limit")
}

fn shards(count: usize) -> NonZeroUsize {
    NonZeroUsize::new(count).expect("shard count of at least 1")
}

/// Yields to the runtime until the registry is empty, at most `max` times,
/// and returns how many yields it took.
async fn yield_until_empty(registry: &Registry, max: usize) -> usize {
    for yields in 0..max {
        if registry.is_empty() {
            return yields;
        }
        tokio::task::yield_now().await;
    }
    max
}

/// Lets the background sweeper run a few times without moving the clock.
async fn let_sweeper_run() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_limit() {
    let registry = Registry::builder().margin(Margin::None).build();
    let one_per_second = registry.insert("cred_one", limit(1, 1000, 0));
    let three_per_second = registry.insert("cred_three", limit(3, 1000, 0));

    assert!(one_per_second.try_acquire().is_ok());
    assert!(matches!(
        one_per_second.try_acquire(),
        Err(TryAcquireError::RateLimited { .. })
    ));
    for _ in 0..3 {
        assert!(
            three_per_second.try_acquire().is_ok(),
            "cred_one's use must not count"
        );
    }
    assert!(three_per_second.try_acquire().is_err());

    assert_eq!(registry.len(), 2);
    assert_eq!(one_per_second.rate_limit(), limit(1, 1000, 0));
    assert_eq!(three_per_second.rate_limit(), limit(3, 1000, 0));
}

#[tokio::test(start_paused = true)]
async fn insert_updates_existing_limiter() {
    let registry = Registry::builder().margin(Margin::None).build();
    let earlier = registry.insert("cred_1", limit(1, 1000, 0));
    let _permit = earlier.try_acquire().expect("first grant");

    let later = registry.insert("cred_1", limit(3, 1000, 0));
    assert_eq!(registry.len(), 1);
    assert_eq!(
        earlier.rate_limit(),
        limit(3, 1000, 0),
        "the earlier clone sees the change"
    );
    assert_eq!(later.in_flight(), 1, "the same limiter holds the permit");

    // The grant made before the change still counts: two of three remain.
    assert!(later.try_acquire().is_ok());
    assert!(earlier.try_acquire().is_ok());
    assert!(later.try_acquire().is_err());
}

#[tokio::test(start_paused = true)]
async fn insert_with_same_limit_keeps_state() {
    let registry = Registry::builder().margin(Margin::None).build();
    let limiter = registry.insert("cred_1", limit(1, 1000, 0));
    drop(limiter.try_acquire().expect("first grant"));

    let again = registry.insert("cred_1", limit(1, 1000, 0));
    assert!(again.try_acquire().is_err(), "the window was not reset");
}

#[tokio::test(start_paused = true)]
async fn registry_clones_share_everything() {
    let registry = Registry::builder().margin(Margin::None).build();
    let clone = registry.clone();

    registry.insert("cred_1", limit(1, 1000, 0));
    let from_clone = clone.get("cred_1").expect("inserted through the original");
    let _permit = from_clone.try_acquire().expect("first grant");

    let from_original = registry.get("cred_1").expect("still there");
    assert_eq!(from_original.in_flight(), 1);
    assert!(from_original.try_acquire().is_err());

    clone.insert("cred_2", limit(5, 1000, 0));
    assert_eq!(registry.len(), 2);
    assert!(clone.remove("cred_2").is_some());
    assert_eq!(registry.len(), 1);
    assert!(registry.get("cred_2").is_none());
}

#[tokio::test(start_paused = true)]
async fn get_and_remove_missing_keys() {
    let registry = Registry::new();
    assert!(registry.is_empty());
    assert!(registry.get("cred_missing").is_none());
    assert!(registry.remove("cred_missing").is_none());
    assert_eq!(registry.evict_idle(), 0);
}

/// The number of keys in the drain test, the scale the registry is built
/// for. On 2 CPUs the test takes 9 to 18 seconds in a debug build, with
/// 750 MB resident, and about 7 seconds in a release build.
const DRAIN_KEYS: usize = 1_000_000;

#[tokio::test(start_paused = true)]
async fn idle_keys_drain_by_themselves() {
    let period = Duration::from_secs(5);
    let registry = Registry::builder()
        .margin(Margin::None)
        .shards(shards(16))
        .eviction_period(period)
        .build();
    let started = Instant::now();

    for index in 0..DRAIN_KEYS {
        let limiter = registry.insert(format!("cred_{index}"), limit(10, 1000, 0));
        let permit = limiter.try_acquire().expect("a new key grants at once");
        drop(permit);
    }
    assert_eq!(registry.len(), DRAIN_KEYS);
    let filled = started.elapsed();

    // Inside the interval every key still has a grant in its window.
    tokio::time::advance(Duration::from_millis(999)).await;
    let_sweeper_run().await;
    assert_eq!(registry.len(), DRAIN_KEYS, "no key is idle yet");

    // Past the interval and one full eviction period, every shard has been
    // swept at least once with every key idle.
    tokio::time::advance(period + Duration::from_millis(1)).await;
    let yields = yield_until_empty(&registry, 10_000).await;
    assert_eq!(registry.len(), 0, "still not empty after {yields} yields");

    eprintln!(
        "{DRAIN_KEYS} keys: filled in {filled:?}, drained in {:?} in total",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn busy_keys_survive_sweeps() {
    let period = Duration::from_secs(1);
    let registry = Registry::builder()
        .margin(Margin::None)
        .shards(shards(4))
        .eviction_period(period)
        .build();

    // A permit that is still out.
    let with_permit = registry.insert("cred_permit", limit(10, 1000, 0));
    let permit = with_permit.try_acquire().expect("first grant");
    drop(with_permit);

    // A clone held by the user, never used.
    let held_clone = registry.insert("cred_held", limit(10, 1000, 0));

    // A waiter queued behind a full window.
    let with_waiter = registry.insert("cred_waiter", limit(1, 60_000, 0));
    drop(with_waiter.try_acquire().expect("first grant"));
    let waiter = tokio::spawn({
        let limiter = with_waiter.clone();
        async move {
            let _permit = limiter.acquire().await;
        }
    });
    drop(with_waiter);
    tokio::task::yield_now().await;

    // One grant whose window lasts 10 seconds.
    let mid_burst = registry.insert("cred_burst", limit(5, 10_000, 0));
    drop(mid_burst.try_acquire().expect("first grant"));
    drop(mid_burst);

    // An unused key with no handle left.
    drop(registry.insert("cred_unused", limit(10, 1000, 0)));

    // After three periods every shard was swept at least twice.
    for _ in 0..3 {
        tokio::time::advance(period).await;
        let_sweeper_run().await;
    }
    assert!(registry.get("cred_unused").is_none(), "an idle key goes");
    assert!(
        registry.get("cred_permit").is_some(),
        "a permit keeps its key"
    );
    assert!(
        registry.get("cred_held").is_some(),
        "a held clone keeps its key"
    );
    assert!(
        registry.get("cred_waiter").is_some(),
        "a waiter keeps its key"
    );
    assert!(
        registry.get("cred_burst").is_some(),
        "a grant 3 s old keeps its key"
    );
    assert_eq!(registry.get("cred_waiter").map(|l| l.waiting()), Some(1));

    // Releasing each hold lets its key go at the next sweeps.
    drop(permit);
    drop(held_clone);
    tokio::time::advance(period * 2).await;
    let_sweeper_run().await;
    assert!(registry.get("cred_permit").is_none(), "released permit");
    assert!(registry.get("cred_held").is_none(), "dropped clone");
    assert!(
        registry.get("cred_burst").is_some(),
        "a grant 5 s old keeps its key"
    );

    // The mid-burst key goes once its grant has left the 10 s window.
    tokio::time::advance(Duration::from_secs(5) + period * 2).await;
    let_sweeper_run().await;
    assert!(registry.get("cred_burst").is_none(), "the window expired");

    // The waiter is granted at 60 s, and its key goes after that window.
    assert!(registry.get("cred_waiter").is_some());
    tokio::time::advance(Duration::from_secs(60)).await;
    waiter.await.expect("the waiter task finished");
    assert!(registry.get("cred_waiter").is_some(), "its grant is recent");
    tokio::time::advance(Duration::from_secs(60) + period * 2).await;
    let_sweeper_run().await;
    assert!(registry.is_empty(), "left: {registry:?}");
}

#[tokio::test(start_paused = true)]
async fn token_bucket_key_goes_once_refilled() {
    let burst = std::num::NonZeroU32::new(2).expect("burst of at least 1");
    let registry = Registry::builder()
        .policy(Policy::token_bucket(burst))
        .margin(Margin::None)
        .build();
    let limiter = registry.insert("cred_1", limit(2, 1000, 0));
    drop(limiter.try_acquire().expect("first grant"));
    drop(limiter.try_acquire().expect("second grant"));
    drop(limiter);

    // Two units refill at one per 500 ms.
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(registry.evict_idle(), 0, "the bucket is not full yet");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(registry.evict_idle(), 1);
}

#[test]
fn inserts_drain_registry_outside_runtime() {
    let clock = ManualClock::new();
    let period = Duration::from_secs(4);
    let registry = Registry::builder()
        .margin(Margin::None)
        .clock(Arc::new(clock.clone()))
        .shards(shards(4))
        .eviction_period(period)
        .build();
    assert!(
        format!("{registry:?}").contains("background_sweeper: false"),
        "no runtime, so no background task: {registry:?}"
    );

    for index in 0..1000 {
        let limiter = registry.insert(format!("cred_{index}"), limit(1, 1000, 0));
        drop(limiter.try_acquire().expect("a new key grants at once"));
    }
    assert_eq!(registry.len(), 1000);

    // Each insert sweeps at most one due shard, so draining four shards
    // takes four inserts once a full period has passed.
    clock.advance(Duration::from_secs(1) + period);
    let mut lengths = Vec::new();
    for _ in 0..4 {
        registry.insert("cred_new", limit(1, 1000, 0));
        lengths.push(registry.len());
    }
    assert!(
        lengths.windows(2).all(|pair| pair[0] > pair[1]),
        "each insert sweeps one more shard: {lengths:?}"
    );
    assert_eq!(lengths[3], 1, "only the key inserted last is left");
    assert!(registry.get("cred_new").is_some());

    // The next sweep is due one tick later.
    registry.insert("cred_new", limit(1, 1000, 0));
    assert_eq!(registry.len(), 1);
}

/// Sets a flag when dropped, also while a failed assertion unwinds.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn sweeps_never_replace_held_limiter() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let registry = runtime.block_on(async {
        // The background sweeper also races the loops below.
        Registry::builder()
            .shards(shards(1))
            .eviction_period(Duration::from_micros(100))
            .build()
    });
    let finished = Arc::new(AtomicBool::new(false));
    let evictions = Arc::new(AtomicUsize::new(0));

    let evictor = runtime.spawn_blocking({
        let registry = registry.clone();
        let finished = Arc::clone(&finished);
        let evictions = Arc::clone(&evictions);
        move || {
            for _ in 0..50_000_000 {
                if finished.load(Ordering::Relaxed) {
                    break;
                }
                evictions.fetch_add(registry.evict_idle(), Ordering::Relaxed);
            }
        }
    });

    let user = runtime.spawn_blocking({
        let registry = registry.clone();
        let finished = Arc::clone(&finished);
        let evictions = Arc::clone(&evictions);
        move || {
            let _stop_evictor = SetOnDrop(finished);
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut rounds = 0;
            while rounds < 200_000 && Instant::now() < deadline {
                rounds += 1;
                let held_clone = registry.insert("cred_1", limit(10, 1000, 0));
                for step in 0..4u32 {
                    let got = registry.get("cred_1").expect("a held key was evicted");
                    let changed = limit(11 + step, 1000, 0);
                    got.set_rate_limit(changed);
                    assert_eq!(
                        held_clone.rate_limit(),
                        changed,
                        "get returned another limiter"
                    );
                    registry.insert("cred_1", limit(20 + step, 1000, 0));
                    let expected = limit(20 + step, 1000, 0);
                    assert_eq!(
                        held_clone.rate_limit(),
                        expected,
                        "insert built another limiter"
                    );
                }
                drop(held_clone);

                // Give the sweeps up to 50 µs to evict the key before the
                // next round builds it again.
                let wait_until = Instant::now() + Duration::from_micros(50);
                while !registry.is_empty() && Instant::now() < wait_until {
                    std::hint::spin_loop();
                }
                if rounds >= 1000 && evictions.load(Ordering::Relaxed) >= 100 {
                    break;
                }
            }
            rounds
        }
    });

    let rounds = runtime.block_on(user).expect("the user loop passed");
    runtime
        .block_on(evictor)
        .expect("the evictor loop finished");
    let evictions = evictions.load(Ordering::Relaxed);
    assert!(
        evictions > 0,
        "the key was never evicted between {rounds} rounds, so nothing raced"
    );
    eprintln!("{rounds} rounds, {evictions} evictions between them");
}

const CREDENTIAL_WITH_LIMIT: &str = r#"{
    "id": "cred_limited",
    "provider": "stripe",
    "properties": {"kind": "stripe_key", "name": "Arrakis", "secret": "sk_test_1", "test": true},
    "rate_limit": {"allowed_requests": 25, "interval": 1000, "max_concurrent_requests": 5}
}"#;

const CREDENTIAL_WITHOUT_LIMIT: &str = r#"{
    "id": "cred_unlimited",
    "provider": "stripe",
    "properties": {"kind": "stripe_key", "name": "Caladan", "secret": "sk_test_2", "test": true}
}"#;

#[tokio::test(start_paused = true)]
async fn upsert_credential_with_rate_limit() {
    let credential: Credential =
        serde_json::from_str(CREDENTIAL_WITH_LIMIT).expect("valid credential JSON");
    let registry = Registry::new();

    let limiter = registry
        .upsert_credential(&credential)
        .expect("the credential has a rate limit");
    assert_eq!(limiter.rate_limit(), limit(25, 1000, 5));
    let stored = registry.get("cred_limited").expect("stored under its id");
    assert_eq!(stored.rate_limit(), limit(25, 1000, 5));

    // A later copy of the credential with a new limit updates it in place.
    let mut changed = credential.clone();
    changed.rate_limit = Some(limit(50, 1000, 5));
    registry.upsert_credential(&changed);
    assert_eq!(limiter.rate_limit(), limit(50, 1000, 5));
    assert_eq!(registry.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn upsert_credential_without_rate_limit() {
    let credential: Credential =
        serde_json::from_str(CREDENTIAL_WITHOUT_LIMIT).expect("valid credential JSON");
    assert!(credential.rate_limit.is_none());
    let registry = Registry::new();

    assert!(registry.upsert_credential(&credential).is_none());
    assert!(registry.is_empty(), "nothing is stored for it");

    // A limiter the registry already has for the id is left as it is.
    let existing = registry.insert("cred_unlimited", limit(3, 1000, 0));
    assert!(registry.upsert_credential(&credential).is_none());
    assert_eq!(registry.len(), 1);
    assert_eq!(existing.rate_limit(), limit(3, 1000, 0));
}

#[tokio::test(start_paused = true)]
async fn registry_from_credentials() {
    let credentials: Vec<Credential> = [CREDENTIAL_WITH_LIMIT, CREDENTIAL_WITHOUT_LIMIT]
        .iter()
        .map(|json| serde_json::from_str(json).expect("valid credential JSON"))
        .collect();

    let registry: Registry = credentials.iter().collect();
    assert_eq!(registry.len(), 1, "only the credential with a limit");
    assert!(registry.get("cred_limited").is_some());

    let registry: Registry = [("cred_a", limit(1, 1000, 0)), ("cred_b", limit(2, 1000, 0))]
        .into_iter()
        .collect();
    assert_eq!(registry.len(), 2);
    assert_eq!(
        registry.get("cred_b").map(|limiter| limiter.rate_limit()),
        Some(limit(2, 1000, 0))
    );
}

#[tokio::test(start_paused = true)]
async fn debug_prints_counts_not_keys() {
    let registry = Registry::builder().shards(shards(8)).build();
    registry.insert("cred_secretive_name", limit(1, 1000, 0));
    let printed = format!("{registry:?}");
    assert!(printed.contains("len: 1"), "{printed}");
    assert!(printed.contains("shards: 8"), "{printed}");
    assert!(!printed.contains("cred_secretive_name"), "{printed}");
}

#[tokio::test(start_paused = true)]
async fn dropping_registry_stops_sweeper() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let registry = Registry::new();
    assert_eq!(metrics.num_alive_tasks(), before + 1, "the sweeper started");

    let clone = registry.clone();
    drop(registry);
    let_sweeper_run().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        before + 1,
        "a clone keeps it running"
    );

    drop(clone);
    let_sweeper_run().await;
    assert_eq!(metrics.num_alive_tasks(), before, "the sweeper stopped");
}

#[test]
fn registry_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Registry>();
}
