//! The service that paces each request with the limiter of its credential.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::{
    Admit, Error, Failure, KeyExtractor, KeyedResponseFuture, LimiterLookup, Options, ResponseBody,
};
use crate::{Limiter, SecretString};

/// Paces the requests of an inner HTTP service, shared by many credentials,
/// with one limiter per credential key.
///
/// # Readiness
///
/// `poll_ready` drives only the inner service and reserves nothing, because
/// the key is not known before `call`. `call` reads the key and looks up its
/// limiter. It returns a [`KeyedResponseFuture`] that owns the inner service
/// made ready by `poll_ready`, and keeps a fresh clone for the next request.
/// The future waits for the key's permit and then calls the inner service.
/// A missing key, an unknown key or a rejection fails the future without
/// calling the inner service.
///
/// Built by [`KeyedLimitLayer`](super::KeyedLimitLayer).
pub struct KeyedLimit<S, K> {
    inner: S,
    lookup: Arc<dyn LimiterLookup>,
    extractor: K,
    options: Options,
}

impl<S, K> KeyedLimit<S, K> {
    pub(crate) fn from_parts(
        inner: S,
        lookup: Arc<dyn LimiterLookup>,
        extractor: K,
        options: Options,
    ) -> Self {
        Self {
            inner,
            lookup,
            extractor,
            options,
        }
    }

    /// Returns a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Finds the limiter of `request`'s credential key.
    fn limiter_for<Req>(&self, request: &Req) -> Result<Limiter, Failure>
    where
        K: KeyExtractor<Req>,
    {
        let key = self.extractor.key(request).ok_or(Failure::MissingKey)?;
        self.lookup
            .limiter(&key)
            .ok_or_else(|| Failure::UnknownKey(SecretString::new(key)))
    }
}

impl<S, K, Req, B> Service<Req> for KeyedLimit<S, K>
where
    S: Service<Req, Response = http::Response<B>> + Clone,
    K: KeyExtractor<Req>,
    B: http_body::Body,
{
    type Response = http::Response<ResponseBody<B>>;
    type Error = Error<S::Error>;
    type Future = KeyedResponseFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let limiter = match self.limiter_for(&request) {
            Ok(limiter) => limiter,
            Err(failure) => {
                tracing::debug!(?failure, "request has no limiter");
                return KeyedResponseFuture::failed(failure);
            }
        };
        let admit = Admit::new(&limiter, self.options.max_wait);

        // The future calls the service that `poll_ready` made ready; this
        // service keeps an unready clone, which its next `poll_ready` drives.
        let clone = self.inner.clone();
        let ready = mem::replace(&mut self.inner, clone);
        KeyedResponseFuture::new(admit, ready, request, self.options.release)
    }
}

impl<S: Clone, K: Clone> Clone for KeyedLimit<S, K> {
    fn clone(&self) -> Self {
        Self::from_parts(
            self.inner.clone(),
            Arc::clone(&self.lookup),
            self.extractor.clone(),
            self.options,
        )
    }
}

impl<S: fmt::Debug, K: fmt::Debug> fmt::Debug for KeyedLimit<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("inner", &self.inner)
            .field("extractor", &self.extractor)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
