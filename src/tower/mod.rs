//! A tower [`Layer`](tower_layer::Layer) that paces any HTTP client with
//! tollgate limiters.
//!
//! This module is compiled with the `tower` feature. It has two layers:
//!
//! - [`LimitLayer`] builds [`Limit`] services that all use one [`Limiter`],
//!   for a client that sends every request with one credential.
//! - [`KeyedLimitLayer`] builds [`KeyedLimit`] services for a client shared
//!   by many credentials. A [`KeyExtractor`] reads each request's credential
//!   key, and a [`LimiterLookup`] such as a
//!   [`Registry`](crate::registry::Registry) returns that key's limiter.
//!
//! Every service built from one layer value, and every clone of those
//! services, shares the same limiters, because a [`Limiter`] is a handle to
//! shared state. Clone the service freely: the limit holds for all clones
//! together.
//!
//! # Readiness
//!
//! [`Limit`] reserves capacity in `poll_ready`. It first waits for the inner
//! service to be ready and then for a permit, so the rate grant is taken as
//! close to the send as possible. `call` moves the permit into the response
//! future. A clone starts with nothing reserved. A service dropped while
//! `poll_ready` waits leaves the limiter's queue, and one dropped between
//! `poll_ready` and `call` returns its concurrency slot.
//!
//! [`KeyedLimit`] cannot reserve in `poll_ready`, because the key is only
//! known once `call` has the request. Its `poll_ready` drives the inner
//! service alone and reserves nothing from any limiter. `call` looks up the
//! key's limiter, and the response future waits for the permit and then calls
//! the inner service that was made ready. The keyed service stays ready
//! after `call` by keeping a fresh clone of the inner service, which must be
//! `Clone`. A request that waits for its permit holds whatever the ready
//! inner service reserved.
//!
//! # Concurrency slots and response bodies
//!
//! A request's concurrency slot stays taken until its response body has
//! been read to the end or dropped: the response body is wrapped in a
//! [`ResponseBody`] that owns the permit. [`Release::AtHeaders`] returns the
//! slot as soon as the response headers arrive instead.
//!
//! # Rejecting instead of waiting
//!
//! By default a request waits as long as the limiter needs. With
//! [`max_wait`](LimitLayer::max_wait) set, a request that cannot get a permit
//! within that time fails with [`Error::Rejected`] and the inner service is
//! never called for it. A maximum wait of zero takes a permit only if one is
//! free at once. The rejection is returned by the response future, because
//! an error from `poll_ready` would tell tower that the service has failed
//! for good.
//!
//! # Examples
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tollgate::tower::LimitLayer;
//! use tollgate::{Limiter, RateLimit};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 10 requests per second, at most 2 in flight.
//! let limiter = Limiter::new(RateLimit::new(10, 1000, 2)?);
//! let client = service_fn(|_request: http::Request<()>| async {
//!     Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(LimitLayer::new(limiter.clone()))
//!     .service(client);
//!
//! let response = service.oneshot(http::Request::new(())).await?;
//! // The slot stays taken until the body has been read.
//! assert_eq!(limiter.in_flight(), 1);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(body, "ok");
//! assert_eq!(limiter.in_flight(), 0);
//! # Ok(())
//! # }
//! ```
//!
//! [`Limiter`]: crate::Limiter

mod admit;
mod body;
mod error;
mod future;
mod key;
mod keyed;
mod layer;
mod service;

pub use admit::Release;
pub use body::ResponseBody;
pub use error::{Error, Rejection};
pub use future::{KeyedResponseFuture, ResponseFuture};
pub use key::{CredentialKey, ExtensionKey, HeaderKey, KeyExtractor, LimiterLookup};
pub use keyed::KeyedLimit;
pub use layer::{KeyedLimitLayer, LimitLayer};
pub use service::Limit;

pub(crate) use admit::{Admit, Options};
pub(crate) use error::Failure;
