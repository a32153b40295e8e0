//! Credential key extraction for the keyed middleware.

use std::borrow::Cow;

use http::Extensions;
use reqwest::Request;

use crate::tower::{ExtensionKey, HeaderKey};

/// Reads the credential key of a request that passes through
/// [`LimitMiddleware`](super::LimitMiddleware).
///
/// Implemented by [`HeaderKey`], by [`ExtensionKey`] (which reads the
/// extensions that `RequestBuilder::with_extension` of reqwest-middleware
/// sets, because a reqwest 0.12 request has none of its own), and by every
/// closure `Fn(&Request, &Extensions) -> Option<String>`.
pub trait MiddlewareKeyExtractor: Send + Sync + 'static {
    /// Returns the credential key of `request`, or `None` when it has none,
    /// which fails the request with
    /// [`Error::MissingKey`](crate::tower::Error::MissingKey).
    fn key<'a>(&self, request: &'a Request, extensions: &'a Extensions) -> Option<Cow<'a, str>>;
}

impl<F> MiddlewareKeyExtractor for F
where
    F: Fn(&Request, &Extensions) -> Option<String> + Send + Sync + 'static,
{
    fn key<'a>(&self, request: &'a Request, extensions: &'a Extensions) -> Option<Cow<'a, str>> {
        self(request, extensions).map(Cow::Owned)
    }
}

impl MiddlewareKeyExtractor for HeaderKey {
    fn key<'a>(&self, request: &'a Request, _: &'a Extensions) -> Option<Cow<'a, str>> {
        self.read(request.headers()).map(Cow::Borrowed)
    }
}

impl<T> MiddlewareKeyExtractor for ExtensionKey<T>
where
    T: AsRef<str> + Send + Sync + 'static,
{
    fn key<'a>(&self, _: &'a Request, extensions: &'a Extensions) -> Option<Cow<'a, str>> {
        let key = extensions.get::<T>()?;
        Some(Cow::Borrowed(key.as_ref()))
    }
}
