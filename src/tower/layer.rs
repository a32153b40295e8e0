//! The layers that build the limiting services.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::{KeyedLimit, Limit, LimiterLookup, Options, Release};
use crate::Limiter;

/// Builds [`Limit`] services that pace every request with one limiter.
///
/// All services built from this layer, and their clones, share the limiter.
#[derive(Debug, Clone)]
pub struct LimitLayer {
    limiter: Limiter,
    options: Options,
}

impl LimitLayer {
    /// Creates a layer that waits as long as `limiter` needs and holds each
    /// concurrency slot until the response body ends.
    pub fn new(limiter: Limiter) -> Self {
        Self {
            limiter,
            options: Options::default(),
        }
    }

    /// Sets the longest a request waits for a permit. A request that cannot
    /// get one in time fails with [`Error::Rejected`](super::Error::Rejected)
    /// and is not sent. `Duration::ZERO` takes a permit only if one is free
    /// at once.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.options.max_wait = Some(max_wait);
        self
    }

    /// Sets when a request's concurrency slot is returned (default:
    /// [`Release::AtBodyEnd`]).
    pub fn release(mut self, release: Release) -> Self {
        self.options.release = release;
        self
    }

    /// Returns the limiter.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Limit<S> {
        Limit::from_parts(inner, self.limiter.clone(), self.options)
    }
}

/// Builds [`KeyedLimit`] services that pace each request with the limiter of
/// its credential key.
///
/// All services built from this layer, and their clones, share the lookup,
/// so they share one limiter per key. See the [module documentation](super)
/// for how their readiness differs from [`Limit`].
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
///
/// use tollgate::registry::Registry;
/// use tollgate::tower::{CredentialKey, Error, ExtensionKey, KeyedLimitLayer};
/// use tollgate::RateLimit;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::new();
/// let limiter = registry.insert("cred_1", RateLimit::new(10, 1000, 2)?);
/// let client = service_fn(|_request: http::Request<()>| async {
///     Ok::<_, Infallible>(http::Response::new(String::from("ok")))
/// });
/// let layer = KeyedLimitLayer::new(registry, ExtensionKey::<CredentialKey>::new());
/// let service = layer.layer(client);
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(CredentialKey::new("cred_1"));
/// let response = service.clone().oneshot(request).await?;
/// assert_eq!(limiter.in_flight(), 1);
/// drop(response);
/// assert_eq!(limiter.in_flight(), 0);
///
/// // A key without a limiter is an error, never an unlimited request.
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(CredentialKey::new("cred_2"));
/// let result = service.oneshot(request).await;
/// assert!(matches!(result, Err(Error::UnknownKey { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct KeyedLimitLayer<K> {
    lookup: Arc<dyn LimiterLookup>,
    extractor: K,
    options: Options,
}

impl<K> KeyedLimitLayer<K> {
    /// Creates a layer that reads each request's key with `extractor` and
    /// looks its limiter up in `lookup`, usually a
    /// [`Registry`](crate::registry::Registry).
    ///
    /// A registry evicts a limiter that has stayed idle, with no handle
    /// outside the registry, for about one eviction period, and keeps the
    /// key with its limit. The next request with that key gets a new limiter
    /// built from the stored limit, so the key works after any pause. A
    /// registry built with
    /// [`IdleKeys::Forget`](crate::registry::IdleKeys::Forget) removes
    /// evicted keys instead, and their requests fail with
    /// [`Error::UnknownKey`](super::Error::UnknownKey) until the key is
    /// inserted again.
    pub fn new(lookup: impl LimiterLookup, extractor: K) -> Self {
        Self {
            lookup: Arc::new(lookup),
            extractor,
            options: Options::default(),
        }
    }

    /// Sets the longest a request waits for a permit, as
    /// [`LimitLayer::max_wait`] does.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.options.max_wait = Some(max_wait);
        self
    }

    /// Sets when a request's concurrency slot is returned (default:
    /// [`Release::AtBodyEnd`]).
    pub fn release(mut self, release: Release) -> Self {
        self.options.release = release;
        self
    }
}

impl<S, K: Clone> Layer<S> for KeyedLimitLayer<K> {
    type Service = KeyedLimit<S, K>;

    fn layer(&self, inner: S) -> KeyedLimit<S, K> {
        KeyedLimit::from_parts(
            inner,
            Arc::clone(&self.lookup),
            self.extractor.clone(),
            self.options,
        )
    }
}

impl<K: fmt::Debug> fmt::Debug for KeyedLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimitLayer")
            .field("extractor", &self.extractor)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
