//! The errors of the limiting services.

use std::time::Duration;

use crate::{AcquireError, SecretString, TryAcquireError};

/// An error from a [`Limit`](super::Limit) or [`KeyedLimit`](super::KeyedLimit)
/// service, or from the [`LimitMiddleware`](crate::middleware::LimitMiddleware)
/// with `E` = [`Infallible`](std::convert::Infallible).
///
/// Every variant except [`Error::Inner`] means that the request was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// The inner service failed. Its error is passed through unchanged.
    #[error(transparent)]
    Inner(E),
    /// The limiter could not grant a permit within the maximum wait, so the
    /// request was rejected without being sent.
    #[error("request rejected without being sent: {cause}")]
    Rejected {
        /// The earliest wait after which a retry can succeed, when the rate
        /// limit determines it. `None` when the wait depends on other
        /// requests finishing, or when a bounded wait timed out.
        retry_after: Option<Duration>,
        /// The limiter's reason.
        cause: Rejection,
    },
    /// No limiter is registered for the request's credential key.
    ///
    /// The key may be a secret, such as a bearer token, so it prints
    /// redacted; read it with [`SecretString::expose`].
    #[error(
        "no limiter is registered for the credential key {key} of this request; \
         insert the key into the registry before sending requests with it"
    )]
    UnknownKey {
        /// The key that the extractor read from the request.
        key: SecretString,
    },
    /// The key extractor found no credential key in the request.
    #[error(
        "the request carries no credential key; attach one where the layer's key extractor \
         reads it (a header, a request extension or a closure)"
    )]
    MissingKey,
}

impl<E> Error<E> {
    /// Returns how long to wait before a retry can succeed, when the error
    /// is a rejection whose wait the rate limit determines.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Rejected { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The reason a limiter rejected a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// With a maximum wait of zero, no permit was free at once.
    #[error(transparent)]
    TryAcquire(#[from] TryAcquireError),
    /// With a bounded wait, the permit could not be granted in time, or the
    /// request was invalid for the limiter.
    #[error(transparent)]
    Acquire(#[from] AcquireError),
}

impl Rejection {
    /// Returns the earliest wait after which a retry can succeed, when the
    /// rate limit determines it.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Rejection::TryAcquire(error) => error.retry_after(),
            Rejection::Acquire(AcquireError::DeadlineUnreachable { predicted_wait, .. }) => {
                Some(*predicted_wait)
            }
            Rejection::Acquire(_) => None,
        }
    }
}

/// A failure of the limiting layer itself, kept without the inner error type
/// until a response future returns it.
#[derive(Debug)]
pub(crate) enum Failure {
    Rejected(Rejection),
    UnknownKey(SecretString),
    MissingKey,
}

impl Failure {
    pub(crate) fn into_error<E>(self) -> Error<E> {
        match self {
            Failure::Rejected(cause) => Error::Rejected {
                retry_after: cause.retry_after(),
                cause,
            },
            Failure::UnknownKey(key) => Error::UnknownKey { key },
            Failure::MissingKey => Error::MissingKey,
        }
    }
}
