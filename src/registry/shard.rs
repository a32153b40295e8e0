//! The sharded map from credential id to the key's entry.
//!
//! Each shard is a map of [`KeyEntry`] values behind its own `RwLock`, and a
//! key's shard is chosen by hashing the key with a hasher that is separate
//! from the maps' own. A lookup therefore hashes the key twice but takes
//! only one shard's read lock.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::IdleKeys;
use crate::{Limiter, RateLimit};

/// The registry's record of one key: its limiter, or only its limit.
pub(super) enum KeyEntry {
    /// The key's limiter, which carries the key's limit.
    Live(Limiter),
    /// The limit of a key whose idle limiter was evicted. The next lookup
    /// builds a new limiter from it.
    Dormant(RateLimit),
}

impl KeyEntry {
    /// Returns a clone of the limiter of a live entry, and `None` for a
    /// dormant one.
    pub(super) fn live_limiter(&self) -> Option<Limiter> {
        match self {
            KeyEntry::Live(limiter) => Some(limiter.clone()),
            KeyEntry::Dormant(_) => None,
        }
    }
}

/// The entries of one shard and the number of them that are live.
#[derive(Default)]
pub(super) struct Keys {
    entries: HashMap<Box<str>, KeyEntry>,
    /// The number of [`KeyEntry::Live`] values in `entries`. Every method
    /// that changes an entry's state updates it in the same step, so it is
    /// exact whenever the shard's lock is free.
    live: usize,
}

impl Keys {
    /// Returns the entry of `id`.
    pub(super) fn get(&self, id: &str) -> Option<&KeyEntry> {
        self.entries.get(id)
    }

    /// Returns the number of keys, live and dormant.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns the number of live keys.
    pub(super) fn live_len(&self) -> usize {
        self.live
    }

    /// Returns the limiter of `id`, first building one with `build` from
    /// the stored limit if the key is dormant. Returns `None` if the key is
    /// missing.
    pub(super) fn wake(
        &mut self,
        id: &str,
        build: impl FnOnce(RateLimit) -> Limiter,
    ) -> Option<Limiter> {
        let entry = self.entries.get_mut(id)?;
        let limiter = match entry {
            KeyEntry::Live(limiter) => limiter.clone(),
            KeyEntry::Dormant(limit) => {
                let limiter = build(*limit);
                *entry = KeyEntry::Live(limiter.clone());
                self.live += 1;
                limiter
            }
        };
        Some(limiter)
    }

    /// Returns the limiter of `id`, building one from `limit` with `build`
    /// if the key is missing or dormant.
    ///
    /// A live limiter is returned unchanged, and the caller changes its
    /// limit after releasing the lock.
    pub(super) fn insert(
        &mut self,
        id: String,
        limit: RateLimit,
        build: impl FnOnce(RateLimit) -> Limiter,
    ) -> Limiter {
        match self.entries.entry(id.into_boxed_str()) {
            Entry::Occupied(mut occupied) => match occupied.get() {
                KeyEntry::Live(limiter) => limiter.clone(),
                KeyEntry::Dormant(_) => {
                    let limiter = build(limit);
                    occupied.insert(KeyEntry::Live(limiter.clone()));
                    self.live += 1;
                    limiter
                }
            },
            Entry::Vacant(vacant) => {
                let limiter = build(limit);
                vacant.insert(KeyEntry::Live(limiter.clone()));
                self.live += 1;
                limiter
            }
        }
    }

    /// Removes the entry of `id` and returns it.
    pub(super) fn remove(&mut self, id: &str) -> Option<KeyEntry> {
        let removed = self.entries.remove(id)?;
        if let KeyEntry::Live(_) = removed {
            self.live -= 1;
        }
        Some(removed)
    }

    /// Evicts every live limiter for which `evictable` returns true and
    /// returns the evicted limiters, so that the caller can drop them after
    /// releasing the lock.
    ///
    /// With [`IdleKeys::Keep`] an evicted key stays, dormant, with the limit
    /// its limiter had. With [`IdleKeys::Forget`] it is removed.
    pub(super) fn evict(
        &mut self,
        idle_keys: IdleKeys,
        evictable: impl Fn(&Limiter) -> bool,
    ) -> Vec<Limiter> {
        let mut evicted = Vec::new();
        self.entries.retain(|_, entry| {
            let KeyEntry::Live(limiter) = entry else {
                return true;
            };
            if !evictable(limiter) {
                return true;
            }
            let limit = limiter.rate_limit();
            evicted.push(limiter.clone());
            self.live -= 1;
            match idle_keys {
                IdleKeys::Keep => {
                    *entry = KeyEntry::Dormant(limit);
                    true
                }
                IdleKeys::Forget => false,
            }
        });

        // A map keeps its capacity after removals, so give memory back once
        // it is mostly empty, leaving room to double before it grows again.
        if idle_keys == IdleKeys::Forget
            && !evicted.is_empty()
            && self.entries.len() < self.entries.capacity() / 4
        {
            let target = self.entries.len() * 2;
            self.entries.shrink_to(target);
        }
        evicted
    }
}

/// One shard of the registry.
///
/// Aligned to 128 bytes so that the lock words of neighbouring shards never
/// share a cache line, also on CPUs that fetch lines in pairs.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct Shard {
    keys: RwLock<Keys>,
}

impl Shard {
    /// Locks the shard for reading.
    ///
    /// A poisoned lock is used as is: no code that runs under these locks
    /// leaves the map half-changed when it panics.
    pub(super) fn read(&self) -> RwLockReadGuard<'_, Keys> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the shard for writing, ignoring poisoning as
    /// [`read`](Self::read) does.
    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Keys> {
        self.keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The shards and the hasher that assigns keys to them.
pub(super) struct Shards {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl Shards {
    /// Creates `count` empty shards, and one if `count` is 0.
    pub(super) fn new(count: usize) -> Self {
        let shards = (0..count.max(1)).map(|_| Shard::default()).collect();
        Self {
            shards,
            hasher: RandomState::new(),
        }
    }

    /// Returns the number of shards.
    pub(super) fn count(&self) -> usize {
        self.shards.len()
    }

    /// Returns the shard that contains `id`.
    pub(super) fn for_key(&self, id: &str) -> &Shard {
        // The remainder is below the shard count, so it fits in a usize.
        let index = self.hasher.hash_one(id) % self.shards.len() as u64;
        &self.shards[index as usize]
    }

    /// Returns shard number `position`, counted modulo the shard count, so a
    /// sweep cursor can run past the end.
    pub(super) fn at(&self, position: usize) -> &Shard {
        &self.shards[position % self.shards.len()]
    }

    /// Returns all shards in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Shard> {
        self.shards.iter()
    }
}
