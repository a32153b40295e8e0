//! Limiters for many credentials, keyed by credential id.
//!
//! A [`Registry`] maps each credential id to the [`Limiter`] that paces the
//! requests made with that credential. It builds a limiter when a key is
//! first inserted and changes its limit in place when the key is inserted
//! again. Once a limiter is idle the registry drops it and keeps only the
//! key and its [`RateLimit`]. So a program that serves many credentials
//! keeps a limiter only for those in use, and a lookup after a pause still
//! finds every key the program inserted.
//!
//! # How it works
//!
//! The map is split into shards, each a `HashMap` behind its own `RwLock`,
//! and a key's shard is chosen by a hash of the key. Every limiter the
//! registry builds gets the registry's policy, margin and clock, and its own
//! [`RateLimit`].
//!
//! Each key is either live, with its limiter, or dormant, with only its
//! limit. [`get`](Registry::get) on a dormant key builds a new limiter from
//! the stored limit, stores it and returns it, so the key is live again.
//! The new limiter starts empty, which is safe because the dormant key's
//! last limiter was idle, and an idle limiter admits exactly what a new one
//! with the same limit admits.
//!
//! # Eviction
//!
//! A sweep evicts a key's limiter when both of these hold, checked while it
//! holds the write lock of the key's shard:
//!
//! - The registry's handle is the only one left. A clone returned by
//!   [`get`](Registry::get), [`insert`](Registry::insert) or
//!   [`upsert_credential`](Registry::upsert_credential), a [`Permit`] and an
//!   [`AcquireOwned`] each keep the limiter, as does an [`Acquire`] future
//!   through the clone it borrows. Evicting a limiter that someone still
//!   uses would let a new limiter for the same key run beside it and
//!   double the limit. Because `get` needs the same shard's lock to take a
//!   new handle, none can appear between the check and the eviction.
//! - [`Limiter::is_idle`] is true: nothing in flight, nothing queued, and no
//!   past grant still limits new ones. For the strict window, the last
//!   grant is at least the interval plus the margin's guard old. For a
//!   token bucket, the bucket has refilled completely.
//!
//! Eviction drops the limiter and, by default, leaves the key dormant with
//! the limit the limiter had. A registry built with [`IdleKeys::Forget`]
//! removes the key instead, so a lookup of it returns `None` until it is
//! inserted again.
//!
//! A key that is mid-burst, has permits out or has waiters is never
//! evicted. Sweeps run by themselves:
//!
//! - A registry built inside a tokio runtime spawns a background task on
//!   it. The task sleeps on the registry's clock and sweeps one shard every
//!   eviction period divided by the shard count, so each shard once per
//!   period. It holds only a weak reference to the registry, and dropping
//!   the registry aborts it.
//! - Every [`insert`](Registry::insert), and every [`get`](Registry::get)
//!   that wakes a dormant key, also sweeps one shard when a sweep is due,
//!   so a registry used outside any runtime still evicts. A registry that
//!   only serves `get` on live keys outside a runtime is not swept, but it
//!   builds no limiters either.
//! - [`evict_idle`](Registry::evict_idle) sweeps every shard at once.
//!
//! So once sweeps run, a key that became idle at time `t` with no handle
//! outside the registry is dormant, or gone with [`IdleKeys::Forget`], by
//! about `t` plus one eviction period.
//!
//! NOTE: an evicted limiter's history is gone. A limiter built again for
//! the same key starts empty, which matches the idle one it replaces under
//! the same limit. But the old limiter, given a longer interval through
//! [`Limiter::set_rate_limit`], would have counted its past grants into the
//! new window, and the new one does not.
//!
//! # Concurrency
//!
//! [`Registry`] is `Send + Sync`, and its clones share one map. There is no
//! registry-wide lock:
//!
//! - [`get`](Registry::get) on a live key takes one shard's read lock and
//!   clones the limiter (one atomic increment). On a dormant key it then
//!   takes that shard's write lock, checks the key again and builds the
//!   limiter under the lock, so `get`s that race on one dormant key all
//!   return the same limiter.
//! - [`insert`](Registry::insert) on a live key does what `get` does and
//!   then changes the limit outside the lock. On a new or dormant key it
//!   takes one shard's write lock to build and store the limiter.
//! - A sweep holds one shard's write lock while it checks every entry of
//!   that shard, dormant ones included, and drops the evicted limiters after
//!   releasing it.
//! - [`len`](Registry::len) and [`live_len`](Registry::live_len) read the
//!   shards one after another, so under concurrent changes they are not a
//!   snapshot.
//!
//! # Memory
//!
//! Measured with `cargo bench --bench registry`, which prints these figures
//! before criterion starts. A counting global allocator in the benchmark
//! records the heap bytes still allocated after 100,000 keys of 13 bytes
//! are inserted into a registry with the default shard count (8 on this
//! machine), and again after their idle limiters are evicted. The count
//! leaves out the allocator's rounding and headers. On a 2-CPU x86_64 Linux
//! machine, on 2026-12-04:
//!
//! | per key | heap bytes |
//! |---|---|
//! | strict window (the default), never used | 411 |
//! | strict window, used once, idle but not yet evicted | 475 |
//! | dormant: limiter evicted, key and limit kept | 67 |
//! | token bucket, used once | 675 |
//! | governor 0.10 keyed limiter (`DashMap`), used once | 56 |
//!
//! About 352 bytes of a live key are the [`Limiter`] itself, and a token
//! bucket adds a boxed table of its parameters. The rest is the map entry
//! and the copy of the key. A strict window that was used keeps its grant
//! log's buffer after the grants expire, until it is evicted.
//!
//! A dormant key costs the 13-byte copy of the key and one map slot of
//! 41 bytes (the key's pointer and length, the [`RateLimit`] with the
//! entry's tag, and a control byte), divided by the map's load factor. That
//! factor lies between 7/16 and 7/8 as the maps double, so the cost moves
//! with the key count: at 4,096 and at 1,048,576 keys it is 95 bytes,
//! against 79 for governor at 1,048,576 keys, and a live unused key costs
//! 439 bytes there.
//!
//! [`Permit`]: crate::Permit
//! [`Acquire`]: crate::Acquire
//! [`AcquireOwned`]: crate::AcquireOwned

mod builder;
mod eviction;
mod shard;

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio::task::AbortHandle;

pub use builder::{IdleKeys, RegistryBuilder};

use self::eviction::Schedule;
use self::shard::{KeyEntry, Shard, Shards};
use crate::clock::Clock;
use crate::policy::{Margin, Policy};
use crate::{Credential, Limiter, RateLimit};

/// The limiters for many credentials, keyed by credential id.
///
/// Cloning a registry is cheap, and clones share one map. See the
/// [module documentation](self) for when idle limiters are evicted, how the
/// map is locked and how much memory a key costs.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tollgate::registry::Registry;
/// use tollgate::RateLimit;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::builder()
///     .eviction_period(Duration::from_secs(1))
///     .build();
/// registry.insert("cred_1", RateLimit::new(10, 1000, 0)?);
///
/// let limiter = registry.get("cred_1").expect("just inserted");
/// let permit = limiter.try_acquire()?;
/// drop(permit);
/// drop(limiter);
///
/// // Past the interval (1 s plus the default 10 ms margin) and one eviction
/// // period, the background sweeper has evicted the idle limiter. The key
/// // stays, dormant, with its limit.
/// tokio::time::sleep(Duration::from_millis(2100)).await;
/// assert_eq!(registry.live_len(), 0);
/// assert_eq!(registry.len(), 1);
///
/// // A lookup builds a new limiter from the stored limit.
/// let limiter = registry.get("cred_1").expect("the key is still known");
/// assert_eq!(limiter.rate_limit().allowed_requests(), 10);
/// assert_eq!(registry.live_len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

/// The state behind every clone of a registry.
struct Shared {
    shards: Shards,
    policy: Policy,
    margin: Margin,
    clock: Arc<dyn Clock>,
    schedule: Schedule,
    idle_keys: IdleKeys,
    /// The background sweeper, when the registry was built in a runtime.
    sweeper: OnceLock<AbortHandle>,
}

impl Shared {
    fn build_limiter(&self, limit: RateLimit) -> Limiter {
        Limiter::builder(limit)
            .policy(self.policy)
            .margin(self.margin)
            .clock(Arc::clone(&self.clock))
            .build()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(sweeper) = self.sweeper.get() {
            sweeper.abort();
            tracing::debug!("registry dropped, background sweeper stopped");
        }
    }
}

impl Registry {
    /// Creates a registry with the default settings of [`RegistryBuilder`].
    ///
    /// Inside a tokio runtime it starts the background sweeper, as
    /// [`RegistryBuilder::build`] does.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Returns a builder to choose the policy, margin, clock, shard count,
    /// eviction period or what is kept of idle keys.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::new()
    }

    /// Inserts `id` with `limit`, building its limiter if the key is new or
    /// dormant, and returns the limiter.
    ///
    /// On a live key it changes the limit of the limiter in place with
    /// [`Limiter::set_rate_limit`] and returns that limiter, so clones taken
    /// earlier see the new limit and no second limiter ever runs beside
    /// them. Inserting the limit the key already has changes nothing.
    ///
    /// On a dormant key it builds the limiter with `limit`, not the stored
    /// one, and the key is live again until its limiter is evicted. Because
    /// the call returns a limiter, it always makes the key live.
    ///
    /// When an eviction sweep is due, the call also sweeps one shard.
    ///
    /// # Examples
    ///
    /// ```
    /// use tollgate::registry::Registry;
    /// use tollgate::RateLimit;
    ///
    /// # fn main() -> Result<(), tollgate::ValidationError> {
    /// let registry = Registry::new();
    /// let first = registry.insert("cred_1", RateLimit::new(10, 1000, 0)?);
    /// registry.insert("cred_1", RateLimit::new(20, 1000, 0)?);
    /// assert_eq!(first.rate_limit().allowed_requests(), 20);
    /// assert_eq!(registry.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn insert(&self, id: impl Into<String>, limit: RateLimit) -> Limiter {
        let id = id.into();
        let shared = &*self.shared;
        let shard = shared.shards.for_key(&id);

        let live = shard.read().get(&id).and_then(KeyEntry::live_limiter);
        let limiter = match live {
            Some(limiter) => limiter,
            None => {
                let mut keys = shard.write();
                keys.insert(id, limit, |limit| self.build_limiter(limit, "inserted"))
            }
        };
        // A limiter built above already has `limit`, so this changes only a
        // live one, after the lock is released.
        limiter.set_rate_limit(limit);

        shared.sweep_one_if_due(shared.clock.now());
        limiter
    }

    /// Creates or updates the limiter for a credential from its
    /// `rate_limit`, as [`insert`](Self::insert) does with its `id`.
    ///
    /// Returns `None` when the credential has no rate limit. The registry
    /// then leaves what it has for that id unchanged: a live or dormant key
    /// keeps pacing with the last known limit. Call
    /// [`remove`](Self::remove) to stop pacing the credential.
    ///
    /// # Examples
    ///
    /// ```
    /// use tollgate::registry::Registry;
    /// use tollgate::Credential;
    ///
    /// # fn main() -> Result<(), serde_json::Error> {
    /// let credential: Credential = serde_json::from_str(r#"{
    ///     "id": "cred_1",
    ///     "provider": "stripe",
    ///     "properties": {
    ///         "kind": "stripe_key",
    ///         "name": "Arrakis",
    ///         "secret": "sk_test_1",
    ///         "test": true
    ///     },
    ///     "rate_limit": {"allowed_requests": 25, "interval": 1000, "max_concurrent_requests": 5}
    /// }"#)?;
    /// let registry = Registry::new();
    /// let limiter = registry.upsert_credential(&credential).expect("it has a rate limit");
    /// assert_eq!(limiter.rate_limit().allowed_requests(), 25);
    /// assert!(registry.get("cred_1").is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn upsert_credential(&self, credential: &Credential) -> Option<Limiter> {
        let Some(limit) = credential.rate_limit else {
            tracing::trace!(id = %credential.id, "credential has no rate limit, registry unchanged");
            return None;
        };
        Some(self.insert(credential.id.as_str(), limit))
    }

    /// Returns the limiter for `id`, or `None` if the registry does not
    /// have the key.
    ///
    /// On a dormant key it builds a new limiter from the stored limit, with
    /// the registry's policy, margin and clock, and stores it, so the key is
    /// live again. Concurrent calls for one dormant key return the same
    /// limiter. Such a call also sweeps one shard when a sweep is due.
    ///
    /// The returned clone keeps the limiter from being evicted until it is
    /// dropped.
    pub fn get(&self, id: &str) -> Option<Limiter> {
        let shard = self.shared.shards.for_key(id);
        let live = shard.read().get(id)?.live_limiter();
        match live {
            Some(limiter) => Some(limiter),
            None => self.wake(shard, id),
        }
    }

    /// Builds and stores the limiter of the dormant key `id`, unless another
    /// call did so since the read lock was released or the key was removed.
    fn wake(&self, shard: &Shard, id: &str) -> Option<Limiter> {
        let limiter = shard
            .write()
            .wake(id, |limit| self.build_limiter(limit, "woken"));

        let shared = &*self.shared;
        shared.sweep_one_if_due(shared.clock.now());
        limiter
    }

    /// Builds a limiter for a key that `reason` made live.
    fn build_limiter(&self, limit: RateLimit, reason: &'static str) -> Limiter {
        // The key is left out: with a bearer-token key extractor it is a
        // secret.
        tracing::debug!(%limit, reason, "registry built a limiter");
        self.shared.build_limiter(limit)
    }

    /// Removes the key `id`, live or dormant, whether or not its limiter is
    /// idle, and returns the key's limit.
    ///
    /// Returns `None` if the registry does not have the key.
    ///
    /// A limiter removed while in use keeps pacing the handles that still
    /// point to it, but a later [`insert`](Self::insert) for the same id
    /// builds a new limiter that does not count their requests. Until the
    /// old handles are dropped, the two together can exceed the limit.
    pub fn remove(&self, id: &str) -> Option<RateLimit> {
        // The guard is a temporary, so the lock is released before the
        // removed limiter, if any, is dropped.
        let removed = self.shared.shards.for_key(id).write().remove(id)?;
        let limit = match &removed {
            KeyEntry::Live(limiter) => limiter.rate_limit(),
            KeyEntry::Dormant(limit) => *limit,
        };
        tracing::debug!(%limit, "registry removed a key");
        Some(limit)
    }

    /// Returns the number of keys in the registry, live and dormant.
    pub fn len(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|shard| shard.read().len())
            .sum()
    }

    /// Returns the number of keys that have a limiter, that is, keys that
    /// are not dormant.
    pub fn live_len(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|shard| shard.read().live_len())
            .sum()
    }

    /// Reports whether the registry has no keys, live or dormant.
    pub fn is_empty(&self) -> bool {
        self.shared
            .shards
            .iter()
            .all(|shard| shard.read().len() == 0)
    }

    /// Sweeps every shard now and returns how many idle limiters it
    /// evicted, by the rule in the [module documentation](self).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use tollgate::clock::ManualClock;
    /// use tollgate::registry::Registry;
    /// use tollgate::{Margin, RateLimit};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let clock = ManualClock::new();
    /// let registry = Registry::builder()
    ///     .margin(Margin::None)
    ///     .clock(Arc::new(clock.clone()))
    ///     .build();
    /// let limiter = registry.insert("cred_1", RateLimit::new(1, 1000, 0)?);
    /// drop(limiter.try_acquire()?);
    /// drop(limiter);
    ///
    /// // Mid-window, the grant still limits new ones.
    /// assert_eq!(registry.evict_idle(), 0);
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(registry.evict_idle(), 1);
    /// assert_eq!(registry.live_len(), 0);
    /// assert_eq!(registry.len(), 1, "the key stays, dormant");
    /// # Ok(())
    /// # }
    /// ```
    pub fn evict_idle(&self) -> usize {
        let idle_keys = self.shared.idle_keys;
        let evicted = self
            .shared
            .shards
            .iter()
            .map(|shard| shard.sweep(idle_keys))
            .sum();
        tracing::debug!(evicted, "swept all shards");
        evicted
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints the numbers of keys and the settings, not the keys themselves.
impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &*self.shared;
        f.debug_struct("Registry")
            .field("len", &self.len())
            .field("live_len", &self.live_len())
            .field("shards", &shared.shards.count())
            .field("policy", &shared.policy)
            .field("margin", &shared.margin)
            .field("eviction_period", &shared.schedule.period())
            .field("idle_keys", &shared.idle_keys)
            .field("background_sweeper", &shared.sweeper.get().is_some())
            .finish()
    }
}

/// Builds a registry with default settings from `(id, limit)` pairs. A
/// repeated id keeps the last limit.
impl<K: Into<String>> FromIterator<(K, RateLimit)> for Registry {
    fn from_iter<I: IntoIterator<Item = (K, RateLimit)>>(pairs: I) -> Self {
        let registry = Registry::new();
        for (id, limit) in pairs {
            registry.insert(id, limit);
        }
        registry
    }
}

/// Builds a registry with default settings from credentials, skipping those
/// without a rate limit.
impl<'a> FromIterator<&'a Credential> for Registry {
    fn from_iter<I: IntoIterator<Item = &'a Credential>>(credentials: I) -> Self {
        let registry = Registry::new();
        for credential in credentials {
            registry.upsert_credential(credential);
        }
        registry
    }
}
