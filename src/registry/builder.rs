//! The builder that configures a [`Registry`].

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;

use super::eviction::{spawn_sweeper, Schedule};
use super::shard::Shards;
use super::{Registry, Shared};
use crate::clock::{Clock, TokioClock};
use crate::policy::{Margin, Policy};

/// The default eviction period.
const DEFAULT_EVICTION_PERIOD: Duration = Duration::from_secs(60);

/// The default number of shards per available CPU.
const SHARDS_PER_CPU: usize = 4;

/// The choice of what a registry keeps of a key when it evicts the key's
/// idle limiter.
///
/// Set with [`RegistryBuilder::idle_keys`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdleKeys {
    /// Keeps the key and its [`RateLimit`](crate::RateLimit) (the default).
    /// The key stays in the registry, dormant, and the next lookup of it
    /// builds a new limiter from the stored limit. A dormant key costs the
    /// copy of the key and its map entry (67 to 95 heap bytes for a 13-byte
    /// key in the [measurements](crate::registry#memory)), and stays until
    /// it is removed.
    #[default]
    Keep,
    /// Removes the key, as [`Registry::remove`] does. A lookup of it then
    /// returns `None`, so the keyed tower layer and the reqwest middleware
    /// fail its requests with `UnknownKey` until it is inserted again. Use
    /// it in programs with many short-lived keys, whose registry would
    /// otherwise keep every key it was ever given.
    Forget,
}

/// Configures a [`Registry`]: the policy, margin and clock of the limiters
/// it builds, its shard count, its eviction period and what it keeps of
/// evicted keys.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tollgate::clock::ManualClock;
/// use tollgate::registry::{IdleKeys, Registry};
/// use tollgate::{Margin, RateLimit};
///
/// # fn main() -> Result<(), tollgate::ValidationError> {
/// let clock = ManualClock::new();
/// let registry = Registry::builder()
///     .margin(Margin::None)
///     .clock(Arc::new(clock.clone()))
///     .shards(NonZeroUsize::new(8).expect("8 is not zero"))
///     .eviction_period(Duration::from_secs(10))
///     .idle_keys(IdleKeys::Forget)
///     .build();
///
/// let limiter = registry.insert("cred_1", RateLimit::new(5, 1000, 0)?);
/// assert_eq!(limiter.margin(), Margin::None);
/// # Ok(())
/// # }
/// ```
pub struct RegistryBuilder {
    policy: Policy,
    margin: Margin,
    clock: Option<Arc<dyn Clock>>,
    shards: Option<NonZeroUsize>,
    eviction_period: Duration,
    idle_keys: IdleKeys,
}

impl RegistryBuilder {
    pub(super) fn new() -> Self {
        Self {
            policy: Policy::default(),
            margin: Margin::default(),
            clock: None,
            shards: None,
            eviction_period: DEFAULT_EVICTION_PERIOD,
            idle_keys: IdleKeys::default(),
        }
    }

    /// Sets the admission policy of every limiter the registry builds
    /// (default: [`Policy::StrictWindow`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the safety margin of every limiter the registry builds
    /// (default: [`Margin::Auto`]).
    pub fn margin(mut self, margin: Margin) -> Self {
        self.margin = margin;
        self
    }

    /// Sets the clock that every limiter the registry builds reads, and that
    /// times the background sweeps (default: one [`TokioClock`] shared by
    /// all of them, created by [`build`](Self::build)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sets the number of shards, each a map behind its own lock (default:
    /// four per CPU that [`std::thread::available_parallelism`] reports).
    ///
    /// More shards mean less contention between threads that use different
    /// keys, and shorter write-lock holds per sweep, at the cost of 128
    /// bytes and one empty map per shard.
    pub fn shards(mut self, shards: NonZeroUsize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Sets the eviction period: the time in which every shard is swept for
    /// idle limiters once (default: 60 seconds).
    ///
    /// Sweeps are spread evenly over the period, one shard at a time, so a
    /// shorter period frees memory sooner and costs more frequent sweeps.
    ///
    /// # Panics
    ///
    /// Panics if `period` is zero.
    pub fn eviction_period(mut self, period: Duration) -> Self {
        assert!(
            !period.is_zero(),
            "eviction period must be longer than zero, got {period:?}"
        );
        self.eviction_period = period;
        self
    }

    /// Sets what the registry keeps of a key whose idle limiter it evicts
    /// (default: [`IdleKeys::Keep`], the key and its limit).
    ///
    /// Keep the default when the program serves a known set of credentials,
    /// so that a lookup after a pause finds the key. Choose
    /// [`IdleKeys::Forget`] when keys are short-lived and many, such as one
    /// key per end user, so that the registry shrinks as they go idle.
    pub fn idle_keys(mut self, idle_keys: IdleKeys) -> Self {
        self.idle_keys = idle_keys;
        self
    }

    /// Builds the registry.
    ///
    /// When called inside a tokio runtime, it spawns the background sweeper
    /// on that runtime. The sweeper sleeps on the registry's clock, so with
    /// the default [`TokioClock`] the runtime needs its time driver enabled.
    pub fn build(self) -> Registry {
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(TokioClock::new()) as Arc<dyn Clock>);
        let shard_count = self
            .shards
            .map_or_else(default_shard_count, NonZeroUsize::get);
        let schedule = Schedule::new(clock.now(), self.eviction_period, shard_count);

        let shared = Arc::new(Shared {
            shards: Shards::new(shard_count),
            policy: self.policy,
            margin: self.margin,
            clock: Arc::clone(&clock),
            schedule,
            idle_keys: self.idle_keys,
            sweeper: OnceLock::new(),
        });

        let runtime = Handle::try_current().ok();
        if let Some(runtime) = &runtime {
            let sweeper = spawn_sweeper(runtime, Arc::downgrade(&shared), clock);
            let _ = shared.sweeper.set(sweeper);
        }
        tracing::debug!(
            shards = shard_count,
            eviction_period = ?self.eviction_period,
            idle_keys = ?self.idle_keys,
            background_sweeper = runtime.is_some(),
            "registry created"
        );

        Registry { shared }
    }
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn default_shard_count() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    cpus.saturating_mul(SHARDS_PER_CPU)
}

impl fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuilder")
            .field("policy", &self.policy)
            .field("margin", &self.margin)
            .field("clock", &self.clock)
            .field("shards", &self.shards)
            .field("eviction_period", &self.eviction_period)
            .field("idle_keys", &self.idle_keys)
            .finish()
    }
}
