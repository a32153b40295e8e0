//! The registry of per-credential limiters: its keys, live updates, idle
//! eviction and dormant keys, on tokio's paused clock or a manual clock.

use std::convert::Infallible;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tollgate::clock::ManualClock;
use tollgate::registry::{IdleKeys, Registry};
use tollgate::tower::{CredentialKey, Error, ExtensionKey, KeyedLimitLayer, LimiterLookup};
use tollgate::{Credential, Limiter, Margin, Policy, RateLimit, TryAcquireError};
use tower::{service_fn, Layer, Service, ServiceExt};

fn limit(allowed: u32, interval_ms: u64, cap: u32) -> RateLimit {
    RateLimit::new(allowed, interval_ms, cap).expect("valid test limit")
}

fn shards(count: usize) -> NonZeroUsize {
    NonZeroUsize::new(count).expect("shard count of at least 1")
}

/// Yields to the runtime until the registry has no live limiter, at most
/// `max` times, and returns how many yields it took.
async fn yield_until_none_live(registry: &Registry, max: usize) -> usize {
    for yields in 0..max {
        if registry.live_len() == 0 {
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
    assert_eq!(clone.remove("cred_2"), Some(limit(5, 1000, 0)));
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

/// The number of keys in the drain tests, the scale the registry is built
/// for. On 2 CPUs busy with other jobs (load average 5), each test took 12
/// to 18 seconds in a debug build and 7 in a release build, with 560 MB
/// resident.
const DRAIN_KEYS: usize = 1_000_000;

/// Returns the limit of key number `index`: 1 to 10 requests per second,
/// so a key rebuilt with another key's limit is caught.
fn drain_limit(index: usize) -> RateLimit {
    let allowed = 1 + (index % 10) as u32;
    limit(allowed, 1000, 0)
}

/// Inserts [`DRAIN_KEYS`] keys into a registry with `idle_keys`, uses each
/// once, and waits on the paused clock until the background sweeper has
/// evicted every limiter.
async fn fill_and_drain(idle_keys: IdleKeys) -> Registry {
    let period = Duration::from_secs(5);
    let registry = Registry::builder()
        .margin(Margin::None)
        .shards(shards(16))
        .eviction_period(period)
        .idle_keys(idle_keys)
        .build();
    let started = Instant::now();

    for index in 0..DRAIN_KEYS {
        let limiter = registry.insert(format!("cred_{index}"), drain_limit(index));
        let permit = limiter.try_acquire().expect("a new key grants at once");
        drop(permit);
    }
    assert_eq!(registry.len(), DRAIN_KEYS);
    assert_eq!(registry.live_len(), DRAIN_KEYS);
    let filled = started.elapsed();

    // Inside the interval every key still has a grant in its window.
    tokio::time::advance(Duration::from_millis(999)).await;
    let_sweeper_run().await;
    assert_eq!(registry.live_len(), DRAIN_KEYS, "no key is idle yet");

    // Past the interval and one full eviction period, every shard has been
    // swept at least once with every key idle.
    tokio::time::advance(period + Duration::from_millis(1)).await;
    let yields = yield_until_none_live(&registry, 10_000).await;
    assert_eq!(
        registry.live_len(),
        0,
        "limiters still live after {yields} yields"
    );

    eprintln!(
        "{DRAIN_KEYS} keys, {idle_keys:?}: filled in {filled:?}, drained in {:?} in total",
        started.elapsed()
    );
    registry
}

#[tokio::test(start_paused = true)]
async fn idle_keys_drain_to_dormant() {
    let registry = fill_and_drain(IdleKeys::Keep).await;
    assert_eq!(registry.len(), DRAIN_KEYS, "every key is still known");

    // A lookup rebuilds the limiter with the key's own limit, and the new
    // limiter admits exactly that many requests.
    for index in [0, 1, 9, DRAIN_KEYS / 2 + 3, DRAIN_KEYS - 1] {
        let expected = drain_limit(index);
        let limiter = registry
            .get(&format!("cred_{index}"))
            .expect("a dormant key is found");
        assert_eq!(limiter.rate_limit(), expected, "cred_{index}");
        for grant in 0..expected.allowed_requests() {
            assert!(
                limiter.try_acquire().is_ok(),
                "cred_{index}: grant {grant} of {expected}"
            );
        }
        assert!(
            matches!(
                limiter.try_acquire(),
                Err(TryAcquireError::RateLimited { .. })
            ),
            "cred_{index}: one past {expected}"
        );
    }
    assert_eq!(registry.live_len(), 5, "only the keys looked up are live");
    assert_eq!(registry.len(), DRAIN_KEYS);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_drain_to_nothing_when_forgotten() {
    let registry = fill_and_drain(IdleKeys::Forget).await;
    assert_eq!(registry.len(), 0);
    assert!(registry.is_empty());
    assert!(registry.get("cred_0").is_none());
}

/// Sets up keys that each have one reason to survive sweeps, and checks
/// that sweeps evict only the key without one and each of the others once
/// its reason is gone. Under [`IdleKeys::Keep`] a lookup of an evicted key
/// returns a new limiter, so survival is checked by the live count and by
/// state that only the original limiter has.
async fn check_busy_keys_survive(idle_keys: IdleKeys) {
    let period = Duration::from_secs(1);
    let registry = Registry::builder()
        .margin(Margin::None)
        .shards(shards(4))
        .eviction_period(period)
        .idle_keys(idle_keys)
        .build();
    let keeps_keys = idle_keys == IdleKeys::Keep;
    let keys_left = |live: usize| if keeps_keys { 5 } else { live };

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
    assert_eq!(registry.live_len(), 4, "only the unused key was evicted");
    assert_eq!(registry.len(), keys_left(4));
    let found = |id: &str| registry.get(id).expect("a busy key is found");
    assert_eq!(
        found("cred_permit").in_flight(),
        1,
        "a permit keeps its key"
    );
    let changed = limit(12, 1000, 0);
    found("cred_held").set_rate_limit(changed);
    assert_eq!(
        held_clone.rate_limit(),
        changed,
        "a held clone keeps its key"
    );
    assert_eq!(found("cred_waiter").waiting(), 1, "a waiter keeps its key");
    assert!(
        !found("cred_burst").is_idle(),
        "a grant 3 s old keeps its key"
    );
    match registry.get("cred_unused") {
        Some(rebuilt) if keeps_keys => assert_eq!(rebuilt.rate_limit(), limit(10, 1000, 0)),
        None if !keeps_keys => {}
        other => panic!("{idle_keys:?}: the unused key looked up as {other:?}"),
    }

    // Releasing each hold lets its key go at the next sweeps, along with
    // the unused key that the lookup above made live again.
    drop(permit);
    drop(held_clone);
    tokio::time::advance(period * 2).await;
    let_sweeper_run().await;
    assert_eq!(
        registry.live_len(),
        2,
        "the released permit and the dropped clone let their keys go"
    );
    assert_eq!(registry.len(), keys_left(2));
    assert!(
        !found("cred_burst").is_idle(),
        "a grant 5 s old keeps its key"
    );
    assert_eq!(found("cred_waiter").waiting(), 1);

    // The mid-burst key goes once its grant has left the 10 s window.
    tokio::time::advance(Duration::from_secs(5) + period * 2).await;
    let_sweeper_run().await;
    assert_eq!(registry.live_len(), 1, "the window expired");
    assert_eq!(registry.len(), keys_left(1));
    assert_eq!(found("cred_waiter").waiting(), 1);

    // The waiter is granted at 60 s, and its key goes after that window.
    tokio::time::advance(Duration::from_secs(60)).await;
    waiter.await.expect("the waiter task finished");
    assert!(!found("cred_waiter").is_idle(), "its grant is recent");
    tokio::time::advance(Duration::from_secs(60) + period * 2).await;
    let_sweeper_run().await;
    assert_eq!(registry.live_len(), 0, "left: {registry:?}");
    assert_eq!(registry.len(), keys_left(0), "left: {registry:?}");
}

#[tokio::test(start_paused = true)]
async fn busy_keys_survive_sweeps() {
    check_busy_keys_survive(IdleKeys::Keep).await;
}

#[tokio::test(start_paused = true)]
async fn busy_keys_survive_sweeps_when_forgotten() {
    check_busy_keys_survive(IdleKeys::Forget).await;
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

/// Evicts the idle limiter of every key through `evict_idle`, after moving
/// the paused clock past the one-second intervals of the dormant-key tests.
async fn pause_and_evict(registry: &Registry) {
    tokio::time::advance(Duration::from_secs(1)).await;
    registry.evict_idle();
    assert_eq!(registry.live_len(), 0, "left: {registry:?}");
}

#[tokio::test(start_paused = true)]
async fn insert_on_dormant_key_uses_new_limit() {
    let registry = Registry::builder().margin(Margin::None).build();
    let limiter = registry.insert("cred_1", limit(1, 1000, 0));
    drop(limiter.try_acquire().expect("first grant"));
    drop(limiter);
    pause_and_evict(&registry).await;

    let rebuilt = registry.insert("cred_1", limit(3, 1000, 0));
    assert_eq!(rebuilt.rate_limit(), limit(3, 1000, 0));
    assert_eq!(registry.live_len(), 1);
    assert_eq!(registry.len(), 1);
    for grant in 0..3 {
        assert!(rebuilt.try_acquire().is_ok(), "grant {grant} of 3");
    }
    assert!(rebuilt.try_acquire().is_err(), "one past the new limit");

    // A lookup returns the limiter that insert stored.
    let found = registry.get("cred_1").expect("a live key");
    found.set_rate_limit(limit(4, 1000, 0));
    assert_eq!(rebuilt.rate_limit(), limit(4, 1000, 0));
}

#[tokio::test(start_paused = true)]
async fn upsert_credential_on_dormant_key() {
    let credential: Credential =
        serde_json::from_str(CREDENTIAL_WITH_LIMIT).expect("valid credential JSON");
    let registry = Registry::builder().margin(Margin::None).build();
    drop(registry.insert("cred_limited", limit(1, 1000, 0)));
    pause_and_evict(&registry).await;

    let limiter = registry
        .upsert_credential(&credential)
        .expect("the credential has a rate limit");
    assert_eq!(limiter.rate_limit(), limit(25, 1000, 5));
    assert_eq!(registry.live_len(), 1);
    drop(limiter);

    // A credential without a limit leaves a dormant key as it is.
    pause_and_evict(&registry).await;
    let mut without_limit = credential.clone();
    without_limit.rate_limit = None;
    assert!(registry.upsert_credential(&without_limit).is_none());
    assert_eq!(registry.live_len(), 0);
    let woken = registry.get("cred_limited").expect("still dormant");
    assert_eq!(woken.rate_limit(), limit(25, 1000, 5));
}

#[tokio::test(start_paused = true)]
async fn remove_forgets_dormant_key() {
    let registry = Registry::builder().margin(Margin::None).build();
    drop(registry.insert("cred_1", limit(2, 1000, 0)));
    drop(registry.insert("cred_2", limit(3, 1000, 0)));
    pause_and_evict(&registry).await;
    let live = registry.get("cred_2").expect("a dormant key");

    assert_eq!(registry.remove("cred_1"), Some(limit(2, 1000, 0)));
    assert_eq!(registry.remove("cred_2"), Some(limit(3, 1000, 0)));
    assert!(registry.is_empty());
    assert_eq!(registry.live_len(), 0);
    assert!(registry.get("cred_1").is_none(), "a removed key is unknown");
    assert!(registry.remove("cred_1").is_none());

    // The removed live limiter keeps pacing the handle still held.
    assert!(live.try_acquire().is_ok());
}

/// Returns a request that names its credential in a [`CredentialKey`]
/// extension.
fn keyed_request(key: &str) -> http::Request<()> {
    let mut request = http::Request::new(());
    request.extensions_mut().insert(CredentialKey::new(key));
    request
}

/// Returns a registry with `idle_keys` and a keyed tower service over it
/// that returns a two-byte body for every request.
fn keyed_service(
    idle_keys: IdleKeys,
) -> (
    Registry,
    impl Service<
            http::Request<()>,
            Response = http::Response<impl http_body::Body>,
            Error = Error<Infallible>,
        > + Clone,
) {
    let registry = Registry::builder()
        .margin(Margin::None)
        .eviction_period(Duration::from_secs(1))
        .idle_keys(idle_keys)
        .build();
    let client = service_fn(|_request: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(String::from("ok")))
    });
    let layer = KeyedLimitLayer::new(registry.clone(), ExtensionKey::<CredentialKey>::new());
    (registry, layer.layer(client))
}

/// Moves the paused clock past the one-second interval and two eviction
/// periods of [`keyed_service`], so the background sweeper evicts every
/// idle limiter.
async fn pause_past_eviction() {
    tokio::time::advance(Duration::from_secs(3)).await;
    let_sweeper_run().await;
}

#[tokio::test(start_paused = true)]
async fn keyed_lookup_after_eviction_finds_key() {
    let (registry, service) = keyed_service(IdleKeys::Keep);
    let expected = limit(2, 1000, 1);
    registry.insert("cred_1", expected);
    let response = service
        .clone()
        .oneshot(keyed_request("cred_1"))
        .await
        .expect("a request with a registered key is sent");
    drop(response);
    pause_past_eviction().await;
    assert_eq!(registry.live_len(), 0, "the idle limiter was evicted");
    assert_eq!(registry.len(), 1);

    // Through the registry's own lookup.
    let from_get = registry.get("cred_1").expect("Registry::get finds the key");
    assert_eq!(from_get.rate_limit(), expected);
    drop(from_get);
    pause_past_eviction().await;
    assert_eq!(registry.live_len(), 0);

    // Through the lookup trait that the keyed layer calls.
    let from_lookup = registry
        .limiter("cred_1")
        .expect("LimiterLookup::limiter finds the key");
    assert_eq!(from_lookup.rate_limit(), expected);
    drop(from_lookup);
    pause_past_eviction().await;
    assert_eq!(registry.live_len(), 0);

    // Through the layer: the request is sent, and its concurrency slot is
    // taken from the limiter that the registry rebuilt and stored.
    let response = service
        .oneshot(keyed_request("cred_1"))
        .await
        .expect("a request after eviction is sent, not failed as an unknown key");
    let limiter = registry.get("cred_1").expect("live again");
    assert_eq!(limiter.rate_limit(), expected);
    assert_eq!(limiter.in_flight(), 1, "the response body holds the slot");
    drop(response);
    assert_eq!(limiter.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn keyed_lookup_after_forgetting_fails() {
    let (registry, service) = keyed_service(IdleKeys::Forget);
    registry.insert("cred_1", limit(2, 1000, 1));
    let response = service
        .clone()
        .oneshot(keyed_request("cred_1"))
        .await
        .expect("a request with a registered key is sent");
    drop(response);
    pause_past_eviction().await;
    assert!(registry.is_empty(), "the idle key was forgotten");

    assert!(registry.limiter("cred_1").is_none());
    let result = service.oneshot(keyed_request("cred_1")).await;
    assert!(
        matches!(result, Err(Error::UnknownKey { .. })),
        "a forgotten key is unknown to the layer"
    );
}

/// Threads that look up one dormant key at once in each round of the race
/// test below.
const RACERS: usize = 4;

#[test]
fn racing_lookups_of_dormant_key_share_limiter() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Built outside the runtime, so there is no background sweeper and the
    // key turns dormant only through `evict_idle` below.
    let registry = Registry::builder().margin(Margin::None).build();
    let inserted = limit(10, 1000, 0);
    drop(registry.insert("cred_1", inserted));

    // The test cannot see whether two lookups met inside the window
    // between the read and the write lock in a given round, so it runs
    // many rounds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rounds = 0u32;
    while rounds < 2_000 && Instant::now() < deadline {
        rounds += 1;
        assert_eq!(registry.evict_idle(), 1, "round {rounds}: not evicted");

        // All racers start at once. One inserts and the others look up.
        let barrier = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|racer| {
                let registry = registry.clone();
                let barrier = Arc::clone(&barrier);
                runtime.spawn_blocking(move || {
                    barrier.wait();
                    if racer == 0 {
                        registry.insert("cred_1", inserted)
                    } else {
                        registry.get("cred_1").expect("a dormant key is found")
                    }
                })
            })
            .collect();
        let limiters: Vec<Limiter> = racers
            .into_iter()
            .map(|racer| runtime.block_on(racer).expect("a racer panicked"))
            .collect();

        assert_eq!(registry.live_len(), 1, "round {rounds}");
        for limiter in &limiters {
            assert_eq!(limiter.rate_limit(), inserted, "round {rounds}");
        }
        // A change through one handle reaches all of them only if they
        // share one limiter. Eviction then stores the changed limit.
        let changed = limit(11 + rounds % 100, 1000, 0);
        limiters[RACERS - 1].set_rate_limit(changed);
        for (racer, limiter) in limiters.iter().enumerate() {
            assert_eq!(
                limiter.rate_limit(),
                changed,
                "round {rounds}: racer {racer} got another limiter"
            );
        }
    }
    eprintln!("{rounds} rounds of {RACERS} racers");
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
    assert_eq!(registry.live_len(), 1000);

    // Each insert sweeps at most one due shard, so draining four shards
    // takes four inserts once a full period has passed.
    clock.advance(Duration::from_secs(1) + period);
    let mut live_lengths = Vec::new();
    for _ in 0..4 {
        registry.insert("cred_new", limit(1, 1000, 0));
        live_lengths.push(registry.live_len());
    }
    assert!(
        live_lengths.windows(2).all(|pair| pair[0] > pair[1]),
        "each insert sweeps one more shard: {live_lengths:?}"
    );
    assert_eq!(live_lengths[3], 1, "only the key inserted last is live");
    assert_eq!(registry.len(), 1001, "the evicted keys stay, dormant");

    // The next sweep is due one tick later.
    registry.insert("cred_new", limit(1, 1000, 0));
    assert_eq!(registry.live_len(), 1);
}

#[test]
fn lookups_sweep_outside_runtime() {
    let clock = ManualClock::new();
    let period = Duration::from_secs(1);
    let registry = Registry::builder()
        .clock(Arc::new(clock.clone()))
        .shards(shards(1))
        .eviction_period(period)
        .build();
    drop(registry.insert("cred_a", limit(1, 1000, 0)));
    drop(registry.insert("cred_b", limit(1, 1000, 0)));
    assert_eq!(registry.evict_idle(), 2, "unused limiters are idle");

    // No sweep is due yet, so the key woken first stays live.
    drop(registry.get("cred_a").expect("a dormant key"));
    assert_eq!(registry.live_len(), 1);

    // A lookup that wakes a key while a sweep is due also sweeps, so a
    // registry that only serves lookups does not keep every limiter it
    // rebuilds. The woken key survives the sweep because the lookup has not
    // yet returned its handle.
    clock.advance(period);
    let woken = registry.get("cred_b").expect("a dormant key");
    assert_eq!(registry.live_len(), 1, "the sweep evicted cred_a");
    assert_eq!(woken.rate_limit(), limit(1, 1000, 0));
    assert_eq!(registry.len(), 2);
}

/// Sets a flag when dropped, also while a failed assertion unwinds.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Races `insert` and `get` on one key, of which the user keeps a clone,
/// against sweeps that evict the key between rounds.
fn check_sweeps_never_replace_held_limiter(idle_keys: IdleKeys) {
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
            .idle_keys(idle_keys)
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
                    let got = registry.get("cred_1").expect("a held key was forgotten");
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
                while registry.live_len() > 0 && Instant::now() < wait_until {
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
    eprintln!("{idle_keys:?}: {rounds} rounds, {evictions} evictions between them");
}

#[test]
fn sweeps_never_replace_held_limiter() {
    check_sweeps_never_replace_held_limiter(IdleKeys::Keep);
}

#[test]
fn sweeps_never_replace_held_limiter_when_forgotten() {
    check_sweeps_never_replace_held_limiter(IdleKeys::Forget);
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
    registry.insert("cred_dormant", limit(1, 1000, 0));
    assert_eq!(registry.evict_idle(), 2);
    registry.insert("cred_secretive_name", limit(1, 1000, 0));
    let printed = format!("{registry:?}");
    assert!(printed.contains("Registry { len: 2,"), "{printed}");
    assert!(printed.contains("live_len: 1,"), "{printed}");
    assert!(printed.contains("shards: 8"), "{printed}");
    assert!(printed.contains("idle_keys: Keep"), "{printed}");
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
