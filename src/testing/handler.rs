//! The request handler of the mock provider: authentication, the rate-limit
//! decision, the simulated latency, and the state that they share.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use tokio::time::Instant;
use tracing::trace;

use super::ledger::{self, InFlightSlot, KeyLedger, RejectReason, Rejection};
use super::report::MockReport;
use super::routes;

/// The state that every connection of one provider shares.
#[derive(Debug)]
pub(crate) struct ProviderState {
    /// Ledgers by credential key. The map itself never changes after start.
    ledgers: BTreeMap<String, Arc<Mutex<KeyLedger>>>,
    /// Requests rejected with 401. A plain counter, so `Relaxed` suffices.
    unauthorized: AtomicU64,
    latency: Duration,
}

impl ProviderState {
    /// Creates the state of a provider that delays the response to each
    /// accepted request by `latency`.
    pub(crate) fn new(ledgers: BTreeMap<String, KeyLedger>, latency: Duration) -> Self {
        let ledgers = ledgers
            .into_iter()
            .map(|(key, ledger)| (key, Arc::new(Mutex::new(ledger))))
            .collect();
        Self {
            ledgers,
            unauthorized: AtomicU64::new(0),
            latency,
        }
    }

    /// Takes a snapshot of every ledger.
    ///
    /// Each key's counters are consistent with each other, but requests may
    /// arrive for one key while another key is being copied.
    pub(crate) fn report(&self) -> MockReport {
        let keys = self
            .ledgers
            .iter()
            .map(|(key, ledger)| ledger::lock(ledger).report(key))
            .collect();
        MockReport {
            keys,
            unauthorized: self.unauthorized.load(Ordering::Relaxed),
        }
    }

    /// Finds the registered key named by an `Authorization: Bearer KEY`
    /// header.
    fn authenticate(&self, headers: &HeaderMap) -> Option<(&str, &Arc<Mutex<KeyLedger>>)> {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, key) = value.split_once(' ')?;
        // HTTP authentication scheme names are case-insensitive.
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let (key, ledger) = self.ledgers.get_key_value(key.trim())?;
        Some((key.as_str(), ledger))
    }
}

/// Handles one request: 401 without a registered key, 429 when the ledger
/// rejects it, and otherwise the routed response after the latency.
///
/// # Cancel safety
///
/// Dropping the future while it sleeps gives the in-flight slot back.
pub(crate) async fn handle(
    state: Arc<ProviderState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method();
    let path = request.uri().path();

    // An unregistered key is never logged: it could be a real credential sent
    // to the mock by mistake.
    let Some((key, ledger)) = state.authenticate(request.headers()) else {
        state.unauthorized.fetch_add(1, Ordering::Relaxed);
        trace!(%method, path, status = 401, "rejected request without a registered key");
        return Ok(unauthorized());
    };

    // The clock is read under the lock so that arrivals enter the ledger in
    // time order.
    let (decision, context, record_count) = {
        let mut ledger = ledger::lock(ledger);
        let (decision, context) = ledger.admit(Instant::now());
        (decision, context, ledger.record_count())
    };

    if let Err(rejection) = decision {
        let retry_after = retry_after_secs(rejection.retry_after);
        trace!(
            key,
            %method,
            path,
            status = 429,
            reason = ?rejection.reason,
            in_window = context.in_window,
            in_flight = context.in_flight,
            retry_after,
            "rejected request",
        );
        return Ok(too_many_requests(rejection, retry_after));
    }

    let slot = InFlightSlot::new(Arc::clone(ledger));
    trace!(
        key,
        %method,
        path,
        in_window = context.in_window,
        in_flight = context.in_flight,
        "accepted request",
    );

    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    let response = routes::route(&request, record_count);

    // The slot is given back as the response is handed to hyper, just before
    // its bytes are written. A client that waits for one response before it
    // sends the next request therefore always finds the slot free.
    drop(slot);
    Ok(response)
}

/// Converts a wait into whole `Retry-After` seconds, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    let rounded_up = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    rounded_up.max(1)
}

/// Builds the 401 response, with the `WWW-Authenticate` challenge that the
/// status requires.
fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = routes::error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or unknown key: send `Authorization: Bearer KEY` with a registered key",
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Builds the 429 response with its `Retry-After` header.
fn too_many_requests(rejection: Rejection, retry_after: u64) -> Response<Full<Bytes>> {
    let message = match rejection.reason {
        RejectReason::Window => "rate limit exceeded: too many requests in the current window",
        RejectReason::Concurrency => "concurrency limit exceeded: too many requests in flight",
    };
    let mut response =
        routes::error_response(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    response
}
