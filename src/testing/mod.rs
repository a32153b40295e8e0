//! A strict mock API provider for tests: an HTTP server on loopback that
//! enforces a [`RateLimit`](crate::RateLimit) per credential and reports
//! whether its clients stayed within it.
//!
//! This module is compiled with the `mock-provider` feature. It keeps its own
//! bookkeeping and shares no code with the limiter that it judges, so a bug
//! in the limiter cannot hide itself here.
//!
//! # The endpoint
//!
//! [`MockProvider::start`](MockProviderBuilder::start) binds `127.0.0.1` on a
//! free port and serves HTTP/1.1:
//!
//! - Every request must carry `Authorization: Bearer KEY` with a key that was
//!   registered with [`MockProviderBuilder::credential`]. Any other request
//!   gets `401 Unauthorized` and counts only in [`MockReport::unauthorized`].
//! - `GET /records?cursor=C&limit=L` returns
//!   `{"records": [{"id": 1}, ...], "next_cursor": "10"}`, paging through the
//!   key's records in id order. Ids run from 1 to the key's record count. Pass
//!   each `next_cursor` back as `cursor` until it is `null`. `limit` defaults
//!   to [`DEFAULT_PAGE_SIZE`] and is lowered to [`MAX_PAGE_SIZE`]. An invalid
//!   `cursor` or `limit` gets `400 Bad Request`.
//! - Other paths get `404 Not Found`, and other methods on `/records` get
//!   `405 Method Not Allowed`. These requests still count against the key's
//!   rate limit, as they would at a real provider.
//!
//! Error responses have the JSON body `{"error": CODE, "message": TEXT}`.
//!
//! # How requests are counted
//!
//! The provider keeps one ledger per key and reads time from tokio's clock,
//! so tests on a paused clock control it exactly. For every request with a
//! registered key, in this order:
//!
//! 1. The arrival time is recorded, whatever the outcome. Rejected arrivals
//!    count toward later windows, as at most real providers, so a client that
//!    keeps retrying during a 429 extends its own penalty.
//! 2. Window rule: the request is rejected when, counted, it would put more
//!    than `allowed_requests` arrivals in some half-open window
//!    `[t, t + interval)`. Equivalently, it is rejected when `allowed_requests`
//!    or more earlier arrivals lie in `(now - interval, now]`. An arrival
//!    exactly `interval` before `now` no longer counts.
//! 3. Concurrency rule: with a non-zero `max_concurrent_requests`, the
//!    request is rejected when that many accepted requests are in flight.
//! 4. Otherwise the request is accepted and takes an in-flight slot. It is
//!    held for the [latency](MockProviderBuilder::latency), then routed, and
//!    the slot is given back as the response is handed to hyper to send.
//!
//! A rejected request gets `429 Too Many Requests` at once, with a
//! `Retry-After` header in whole seconds, rounded up and at least 1. After a
//! window rejection, it is the wait until a request would be accepted if the
//! client sent nothing more. After a concurrency rejection, it is the latency,
//! which is when a slot frees if the client reads its responses promptly.
//!
//! The [`KeyReport`] of a key counts every request with that key in
//! `requests`, split into `accepted` and `rejected_429`. Its `worst_window` is
//! the maximum number of arrivals, rejected ones included, in any window
//! `[t, t + interval)`. Its `peak_in_flight` is the maximum number of accepted
//! requests in flight at once, so it never exceeds a non-zero cap. A report is
//! [clean](MockReport::is_clean) when no request got a 429 and no
//! `worst_window` exceeds `allowed_requests`.
//!
//! # Limitations
//!
//! The provider stores every arrival time, 16 bytes per request, for as long
//! as it runs, and it serves HTTP/1.1 only. It logs registered keys in full,
//! because they are test keys, but it never logs an unregistered key.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use tollgate::testing::MockProvider;
//! use tollgate::RateLimit;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = MockProvider::builder()
//!     .credential("key-a", RateLimit::new(5, 1000, 2)?)
//!     .records("key-a", 42)
//!     .latency(Duration::from_millis(20))
//!     .start()
//!     .await?;
//!
//! // The client under test sends its requests to `provider.url()`.
//! let client = reqwest::Client::builder().no_proxy().build()?;
//! let page: serde_json::Value = client
//!     .get(format!("{}/records?limit=10", provider.url()))
//!     .bearer_auth("key-a")
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert_eq!(page["next_cursor"], "10");
//!
//! let report = provider.report();
//! assert!(report.is_clean(), "{:?}", report.violations());
//! assert_eq!(report.total_requests(), 1);
//! provider.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod builder;
mod handler;
mod ledger;
mod report;
mod routes;
mod server;

pub use builder::{MockProviderBuilder, DEFAULT_LATENCY, DEFAULT_RECORDS};
pub use report::{KeyReport, MockReport};
pub use routes::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use server::MockProvider;
