//! tollgate paces the requests a program makes with third-party API
//! credentials so that each stays within its [`RateLimit`]: `allowed_requests`
//! per `interval` milliseconds, with at most `max_concurrent_requests` in
//! flight (0 means no cap).
//!
//! A [`Limiter`] enforces one credential's limit for every clone and task that
//! uses it. Each request takes a concurrency slot, then a rate grant under the
//! chosen [`Policy`], and holds the slot in a [`Permit`] until it drops.
//! Waiting requests are served in arrival order.
//!
//! ```
//! use std::time::Duration;
//! use tollgate::{Limiter, RateLimit};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limit: RateLimit = serde_json::from_str(
//!     r#"{"allowed_requests": 2, "interval": 1000, "max_concurrent_requests": 0}"#,
//! )?;
//! let limiter = Limiter::new(limit);
//! let start = tokio::time::Instant::now();
//! for _ in 0..3 {
//!     let _permit = limiter.acquire().await;
//! }
//! // The third request waited for the first to leave the window: one
//! // interval plus the default 10 ms margin.
//! assert_eq!(start.elapsed(), Duration::from_millis(1010));
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! - [`model`]: the wire objects (`RateLimit`, `Health`, credentials and their
//!   `properties`), validated on construction and deserialization, with
//!   secrets redacted from `Debug` and `Display`.
//! - [`clock`]: the tokio clock (pausable in tests) and a manual clock.
//! - [`policy`]: the strict rolling window, the GCRA token bucket and the
//!   safety [`Margin`], as pure arithmetic over integer nanoseconds.
//! - [`Limiter`]: concurrency slots, the rate policy and the FIFO queue.
//! - [`registry`]: limiters keyed by credential id, with live limit updates
//!   and idle eviction.
//! - `tower` (feature `tower`) and `middleware` (feature
//!   `reqwest-middleware`): pacing for any HTTP client.
//! - `testing` (feature `mock-provider`): a strict mock provider on loopback
//!   that judges a client with its own bookkeeping.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod clock;
mod limiter;
#[cfg(feature = "reqwest-middleware")]
pub mod middleware;
pub mod model;
pub mod policy;
pub mod registry;
#[cfg(feature = "mock-provider")]
pub mod testing;
#[cfg(feature = "tower")]
pub mod tower;

pub use limiter::{
    Acquire, AcquireError, AcquireOwned, Limiter, LimiterBuilder, Permit, TryAcquireError,
};
pub use model::{
    AirtableOauth2Properties, CheckoutChampPasswordProperties, Credential, CredentialProperties,
    GitHubAppProperties, Health, HealthStatus, HubSpotOauth2Properties, LinearOauth2Properties,
    Provider, RateLimit, SalesforceOauth2Properties, SecretString, ShopifyOauth2Properties,
    StripeProperties, UnknownProperties, ValidationError,
};
pub use policy::{Margin, Policy};
pub use registry::{IdleKeys, Registry, RegistryBuilder};

/// Compiles and runs the README's Rust example as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
