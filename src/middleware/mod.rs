//! Middleware for [reqwest-middleware] clients that paces their requests with
//! tollgate limiters.
//!
//! This module is compiled with the `reqwest-middleware` feature.
//! [`LimitMiddleware`] has the semantics of the [tower layers](crate::tower):
//!
//! - It paces every request with one limiter, or each request with the
//!   limiter of its credential key, looked up in a
//!   [`Registry`](crate::registry::Registry).
//! - A request's concurrency slot stays taken until its response body has
//!   been read to the end or dropped, unless [`Release::AtHeaders`] is set.
//! - With a maximum wait, a request that gets no permit in time fails
//!   without being sent.
//!
//! A reqwest-middleware middleware runs per request, so there is no
//! `poll_ready` and no readiness to reserve: each request waits for its
//! permit when it reaches this middleware.
//!
//! # Errors
//!
//! A rejected, unkeyed or unknown-key request fails with
//! [`reqwest_middleware::Error::Middleware`] around an [`Error`]. Read it
//! with `error.downcast_ref::<tollgate::middleware::Error>()`.
//!
//! # Ordering
//!
//! Middleware runs in the order it was added, and everything added after
//! this one runs under the permit of a single request. Add a retry
//! middleware before this one, so that every attempt takes its own permit.
//!
//! # Examples
//!
//! ```
//! use reqwest_middleware::ClientBuilder;
//! use tollgate::middleware::LimitMiddleware;
//! use tollgate::{Limiter, RateLimit};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 10 requests per second, at most 2 in flight.
//! let limiter = Limiter::new(RateLimit::new(10, 1000, 2)?);
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(LimitMiddleware::new(limiter))
//!     .build();
//! # drop(client);
//! # Ok(())
//! # }
//! ```
//!
//! [reqwest-middleware]: reqwest_middleware

mod key;
mod response;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

pub use key::MiddlewareKeyExtractor;

use crate::tower::{Admit, Failure, LimiterLookup, Options, Release};
use crate::{Limiter, SecretString};

/// The error inside [`reqwest_middleware::Error::Middleware`] when this
/// middleware fails a request. It never has the `Inner` variant, because
/// errors of the client itself pass through as
/// [`reqwest_middleware::Error::Reqwest`].
pub type Error = crate::tower::Error<Infallible>;

/// A [`Middleware`] that paces requests with one limiter, or with one
/// limiter per credential key.
///
/// Clones of the client, and every client built with this middleware value,
/// share its limiters.
///
/// # Cancel safety
///
/// Dropping a request's future while it waits for its permit consumes
/// nothing from the limiter. Dropping it later returns the concurrency slot,
/// but the rate grant stays counted, because the request may have been sent.
#[derive(Clone)]
pub struct LimitMiddleware {
    source: Source,
    options: Options,
}

#[derive(Clone)]
enum Source {
    Single(Limiter),
    Keyed {
        lookup: Arc<dyn LimiterLookup>,
        extractor: Arc<dyn MiddlewareKeyExtractor>,
    },
}

impl LimitMiddleware {
    /// Creates a middleware that paces every request with `limiter`.
    pub fn new(limiter: Limiter) -> Self {
        Self {
            source: Source::Single(limiter),
            options: Options::default(),
        }
    }

    /// Creates a middleware that reads each request's credential key with
    /// `extractor` and paces it with that key's limiter from `lookup`,
    /// usually a [`Registry`](crate::registry::Registry).
    pub fn keyed(lookup: impl LimiterLookup, extractor: impl MiddlewareKeyExtractor) -> Self {
        let source = Source::Keyed {
            lookup: Arc::new(lookup),
            extractor: Arc::new(extractor),
        };
        Self {
            source,
            options: Options::default(),
        }
    }

    /// Sets the longest a request waits for a permit. A request that cannot
    /// get one in time fails with [`Error::Rejected`] and is not sent.
    /// `Duration::ZERO` takes a permit only if one is free at once.
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

    /// Finds the limiter of `request`.
    fn limiter_for(&self, request: &Request, extensions: &Extensions) -> Result<Limiter, Failure> {
        match &self.source {
            Source::Single(limiter) => Ok(limiter.clone()),
            Source::Keyed { lookup, extractor } => {
                let key = extractor
                    .key(request, extensions)
                    .ok_or(Failure::MissingKey)?;
                lookup
                    .limiter(&key)
                    .ok_or_else(|| Failure::UnknownKey(SecretString::new(key)))
            }
        }
    }
}

#[async_trait::async_trait]
impl Middleware for LimitMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let limiter = self.limiter_for(&request, extensions).map_err(fail)?;
        let permit = Admit::new(&limiter, self.options.max_wait)
            .await
            .map_err(|rejection| fail(Failure::Rejected(rejection)))?;

        // An error drops the permit here, which returns its slot.
        let response = next.run(request, extensions).await?;
        match self.options.release {
            Release::AtHeaders => Ok(response),
            Release::AtBodyEnd => Ok(response::hold_until_body_end(response, permit)),
        }
    }
}

/// Wraps a failure of this middleware as reqwest-middleware's error.
fn fail(failure: Failure) -> reqwest_middleware::Error {
    tracing::debug!(?failure, "request failed before it was sent");
    reqwest_middleware::Error::middleware(failure.into_error::<Infallible>())
}

impl fmt::Debug for LimitMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("LimitMiddleware");
        match &self.source {
            Source::Single(limiter) => debug.field("limiter", limiter),
            Source::Keyed { .. } => debug.field("limiter", &"one per credential key"),
        };
        debug.field("options", &self.options).finish()
    }
}
