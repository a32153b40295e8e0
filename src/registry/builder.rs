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

/// Configures a [`Registry`]: the policy, margin and clock of the limiters
/// it builds, its shard count and its eviction period.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tollgate::clock::ManualClock;
/// use tollgate::registry::Registry;
/// use tollgate::{Margin, RateLimit};
///
/// # fn main() -> Result<(), tollgate::ValidationError> {
/// let clock = ManualClock::new();
/// let registry = Registry::builder()
///     .margin(Margin::None)
///     .clock(Arc::new(clock.clone()))
///     .shards(NonZeroUsize::new(8).expect("8 is not zero"))
///     .eviction_period(Duration::from_secs(10))
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
}

impl RegistryBuilder {
    pub(super) fn new() -> Self {
        Self {
            policy: Policy::default(),
            margin: Margin::default(),
            clock: None,
            shards: None,
            eviction_period: DEFAULT_EVICTION_PERIOD,
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
            .finish()
    }
}
