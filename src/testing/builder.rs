//! Configuration of a mock provider before it starts.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;

use super::handler::ProviderState;
use super::ledger::KeyLedger;
use super::server::MockProvider;
use crate::model::RateLimit;

/// Number of records of a credential that [`MockProviderBuilder::records`]
/// did not configure.
pub const DEFAULT_RECORDS: usize = 25;

/// Time an accepted request is held before its response is sent, unless
/// [`MockProviderBuilder::latency`] sets another.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(5);

/// A builder for a [`MockProvider`], returned by [`MockProvider::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct MockProviderBuilder {
    credentials: BTreeMap<String, RateLimit>,
    records: BTreeMap<String, usize>,
    default_records: usize,
    latency: Duration,
}

impl Default for MockProviderBuilder {
    fn default() -> Self {
        Self {
            credentials: BTreeMap::new(),
            records: BTreeMap::new(),
            default_records: DEFAULT_RECORDS,
            latency: DEFAULT_LATENCY,
        }
    }
}

impl MockProviderBuilder {
    /// Registers the bearer key `key` with its own rate limit and bookkeeping.
    ///
    /// Registering the same key again replaces its limit.
    pub fn credential(mut self, key: impl Into<String>, limit: RateLimit) -> Self {
        self.credentials.insert(key.into(), limit);
        self
    }

    /// Sets how many records `key` pages through, with ids from 1 to `count`.
    ///
    /// The key must also be registered with [`credential`](Self::credential),
    /// before or after this call.
    pub fn records(mut self, key: impl Into<String>, count: usize) -> Self {
        self.records.insert(key.into(), count);
        self
    }

    /// Sets how many records each key pages through when
    /// [`records`](Self::records) did not set its count. The default is
    /// [`DEFAULT_RECORDS`].
    pub fn default_records(mut self, count: usize) -> Self {
        self.default_records = count;
        self
    }

    /// Sets how long each accepted request is held, on tokio's clock, before
    /// its response is sent. The default is [`DEFAULT_LATENCY`].
    ///
    /// The request keeps its in-flight slot while it is held. With
    /// `Duration::ZERO` the provider responds at once and sets no timer,
    /// which keeps tests on a paused clock from advancing it.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Binds `127.0.0.1` on a port that the system picks and starts serving
    /// on the current tokio runtime.
    ///
    /// The bookkeeping clock starts now: report arrival times are offsets from
    /// this call.
    ///
    /// # Errors
    ///
    /// Returns an [`io::ErrorKind::InvalidInput`] error when a registered key
    /// is empty or contains a character other than visible ASCII, or when
    /// [`records`](Self::records) names a key that was never registered. Returns
    /// the error of binding the socket when that fails.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub async fn start(self) -> io::Result<MockProvider> {
        self.validate()?;

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let started = Instant::now();
        let ledgers = self
            .credentials
            .iter()
            .map(|(key, &limit)| {
                let record_count = self
                    .records
                    .get(key)
                    .copied()
                    .unwrap_or(self.default_records);
                let ledger = KeyLedger::new(limit, record_count, started, self.latency);
                (key.clone(), ledger)
            })
            .collect();

        let state = ProviderState::new(ledgers, self.latency);
        MockProvider::spawn(listener, Arc::new(state))
    }

    /// Checks the configuration that the builder methods cannot check alone.
    fn validate(&self) -> io::Result<()> {
        let invalid_key = self
            .credentials
            .keys()
            .find(|key| key.is_empty() || !key.bytes().all(|byte| byte.is_ascii_graphic()));
        if let Some(key) = invalid_key {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid mock provider key {key:?}: use at least one visible ASCII \
                     character and no spaces, because clients send it in an Authorization header"
                ),
            ));
        }
        if let Some(key) = self
            .records
            .keys()
            .find(|key| !self.credentials.contains_key(*key))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "records were set for the unregistered key {key:?}: \
                     register it with `credential` as well"
                ),
            ));
        }
        Ok(())
    }
}
