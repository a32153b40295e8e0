//! Limiters for many credentials, keyed by credential id.
//!
//! A [`Registry`] maps each credential id to the [`Limiter`] that paces the
//! requests made with that credential. It builds a limiter when a key is
//! first inserted and changes its limit in place when the key is inserted
//! again. It drops limiters once they are idle, so a program that serves
//! many credentials keeps memory only for those in use.
//!
//! # How it works
//!
//! The map is split into shards, each a `HashMap` behind its own `RwLock`,
//! and a key's shard is chosen by a hash of the key. Every limiter the
//! registry builds gets the registry's policy, margin and clock, and its own
//! [`RateLimit`].
//!
//! # Eviction
//!
//! A sweep removes a key's limiter when both of these hold, checked while
//! it holds the write lock of the key's shard:
//!
//! - The registry's handle is the only one left. A clone returned by
//!   [`get`](Registry::get), [`insert`](Registry::insert) or
//!   [`upsert_credential`](Registry::upsert_credential), a [`Permit`] and an
//!   [`AcquireOwned`] each keep the limiter, as does an [`Acquire`] future
//!   through the clone it borrows. Evicting a limiter that someone still
//!   uses would let a new limiter for the same key run beside it and
//!   double the limit. Because `get` needs the same shard's lock to take a
//!   new handle, none can appear between the check and the removal.
//! - [`Limiter::is_idle`] is true: nothing in flight, nothing queued, and no
//!   past grant still limits new ones. For the strict window, the last
//!   grant is at least the interval plus the margin's guard old. For a
//!   token bucket, the bucket has refilled completely.
//!
//! A key that is mid-burst, has permits out or has waiters is never
//! evicted. Sweeps run by themselves:
//!
//! - A registry built inside a tokio runtime spawns a background task on
//!   it. The task sleeps on the registry's clock and sweeps one shard every
//!   eviction period divided by the shard count, so each shard once per
//!   period. It holds only a weak reference to the registry, and dropping
//!   the registry aborts it.
//! - Every [`insert`](Registry::insert) also sweeps one shard when a sweep
//!   is due, so a registry used outside any runtime drains while inserts
//!   go on. A registry that only serves `get` outside a runtime is not
//!   swept, but it does not grow either.
//! - [`evict_idle`](Registry::evict_idle) sweeps every shard at once.
//!
//! So once sweeps run, a key that became idle at time `t` with no handle
//! outside the registry is gone by about `t` plus one eviction period.
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
//! - [`get`](Registry::get) takes one shard's read lock and clones the
//!   limiter (two atomic increments).
//! - [`insert`](Registry::insert) on an existing key does the same and then
//!   changes the limit outside the lock. On a new key it takes one shard's
//!   write lock to build and store the limiter.
//! - A sweep holds one shard's write lock while it checks that shard, and
//!   drops the evicted limiters after releasing it.
//! - [`len`](Registry::len) reads the shards one after another, so under
//!   concurrent changes it is not a snapshot.
//!
//! # Memory
//!
//! Measured with `cargo bench --bench registry`, which prints these figures
//! before criterion starts. A counting global allocator in the benchmark
//! records the heap bytes still allocated after 100,000 keys of 13 bytes
//! are inserted. The count leaves out the allocator's rounding and headers.
//! On a 2-CPU x86_64 Linux machine, on 2026-12-04:
//!
//! | per idle key | heap bytes |
//! |---|---|
//! | strict window (the default), never used | 600 |
//! | strict window, used once | 664 |
//! | token bucket, used once | 600 |
//! | governor 0.10 keyed limiter (`DashMap`), used once | 56 |
//!
//! About 545 bytes of each key are the [`Limiter`] itself, whose state
//! reserves room for the token bucket's parameters whatever its policy. The
//! rest is the map entry and the copy of the key. A strict window that was
//! used keeps its grant log's buffer after the grants expire. At 1,048,576
//! keys the figure for an unused key is 623 bytes, against 79 for governor.
//!
//! [`Permit`]: crate::Permit
//! [`Acquire`]: crate::Acquire
//! [`AcquireOwned`]: crate::AcquireOwned

mod builder;
mod eviction;
mod shard;

use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio::task::AbortHandle;

pub use builder::RegistryBuilder;

use self::eviction::Schedule;
use self::shard::Shards;
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
/// // period, the background sweeper has removed the idle limiter.
/// tokio::time::sleep(Duration::from_millis(2100)).await;
/// assert!(registry.get("cred_1").is_none());
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

    /// Returns a builder to choose the policy, margin, clock, shard count or
    /// eviction period.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::new()
    }

    /// Returns the limiter for `id`, creating it with `limit` if the key is
    /// new.
    ///
    /// On an existing key it changes the limit of the limiter in place with
    /// [`Limiter::set_rate_limit`] and returns that limiter, so clones taken
    /// earlier see the new limit and no second limiter ever runs beside
    /// them. Inserting the limit the key already has changes nothing.
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

        let existing = shard.read().get(id.as_str()).cloned();
        let limiter = match existing {
            Some(limiter) => {
                limiter.set_rate_limit(limit);
                limiter
            }
            None => self.insert_new(id, limit),
        };

        shared.sweep_one_if_due(shared.clock.now());
        limiter
    }

    /// Stores a new limiter for `id` under the shard's write lock, or
    /// updates the one another thread stored since the read lock was
    /// released.
    fn insert_new(&self, id: String, limit: RateLimit) -> Limiter {
        let shared = &*self.shared;
        let mut map = shared.shards.for_key(&id).write();
        match map.entry(id.into_boxed_str()) {
            Entry::Occupied(raced) => {
                let limiter = raced.get().clone();
                drop(map);
                limiter.set_rate_limit(limit);
                limiter
            }
            Entry::Vacant(vacant) => {
                let limiter = shared.build_limiter(limit);
                tracing::debug!(id = %vacant.key(), %limit, "registry added a limiter");
                vacant.insert(limiter.clone());
                limiter
            }
        }
    }

    /// Creates or updates the limiter for a credential from its
    /// `rate_limit`, as [`insert`](Self::insert) does with its `id`.
    ///
    /// Returns `None` when the credential has no rate limit. The registry
    /// then leaves any limiter it already has for that id unchanged: it
    /// keeps pacing with the last known limit until it is idle and evicted.
    /// Call [`remove`](Self::remove) to stop pacing the credential at once.
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

    /// Returns the limiter for `id`, if the registry has one.
    ///
    /// The returned clone keeps the limiter from being evicted until it is
    /// dropped.
    pub fn get(&self, id: &str) -> Option<Limiter> {
        self.shared.shards.for_key(id).read().get(id).cloned()
    }

    /// Removes the limiter for `id` and returns it, whether or not it is
    /// idle.
    ///
    /// A limiter removed while in use keeps pacing the handles that still
    /// point to it, but a later [`insert`](Self::insert) for the same id
    /// builds a new limiter that does not count their requests. Until the
    /// old handles are dropped, the two together can exceed the limit.
    pub fn remove(&self, id: &str) -> Option<Limiter> {
        let removed = self.shared.shards.for_key(id).write().remove(id);
        if removed.is_some() {
            tracing::debug!(id, "registry removed a limiter");
        }
        removed
    }

    /// Returns the number of keys in the registry.
    pub fn len(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|shard| shard.read().len())
            .sum()
    }

    /// Reports whether the registry has no keys.
    pub fn is_empty(&self) -> bool {
        self.shared
            .shards
            .iter()
            .all(|shard| shard.read().is_empty())
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
    /// assert!(registry.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn evict_idle(&self) -> usize {
        let evicted = self.shared.shards.iter().map(|shard| shard.sweep()).sum();
        tracing::debug!(evicted, "swept all shards");
        evicted
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints the number of keys and the settings, not the keys themselves.
impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &*self.shared;
        f.debug_struct("Registry")
            .field("len", &self.len())
            .field("shards", &shared.shards.count())
            .field("policy", &shared.policy)
            .field("margin", &shared.margin)
            .field("eviction_period", &shared.schedule.period())
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
