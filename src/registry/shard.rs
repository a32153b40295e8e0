//! The sharded map from credential id to limiter.
//!
//! Each shard is a `HashMap` behind its own `RwLock`, and a key's shard is
//! chosen by hashing the key with a hasher that is separate from the maps'
//! own. A lookup therefore hashes the key twice but takes only one shard's
//! read lock.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::Limiter;

/// The map of one shard.
pub(super) type Map = HashMap<Box<str>, Limiter>;

/// One shard of the registry.
///
/// Aligned to 128 bytes so that the lock words of neighbouring shards never
/// share a cache line, also on CPUs that fetch lines in pairs.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct Shard {
    map: RwLock<Map>,
}

impl Shard {
    /// Locks the shard for reading.
    ///
    /// A poisoned lock is used as is: no code that runs under these locks
    /// leaves the map half-changed when it panics.
    pub(super) fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.map
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the shard for writing, ignoring poisoning as
    /// [`read`](Self::read) does.
    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.map
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
