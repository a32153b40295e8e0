//! The keyed layer's two lookups: a [`KeyExtractor`] reads a request's
//! credential key, and a [`LimiterLookup`] maps the key to its limiter.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use http::header::{HeaderName, AUTHORIZATION};
use http::HeaderMap;

use crate::registry::Registry;
use crate::Limiter;

/// Reads the credential key of a request, which selects its limiter.
///
/// Implemented by [`HeaderKey`], [`ExtensionKey`] and every closure
/// `Fn(&Req) -> Option<String>`.
pub trait KeyExtractor<Req> {
    /// Returns the credential key of `request`, or `None` when it has none,
    /// which fails the request with [`Error::MissingKey`](super::Error::MissingKey).
    fn key<'a>(&self, request: &'a Req) -> Option<Cow<'a, str>>;
}

impl<Req, F> KeyExtractor<Req> for F
where
    F: Fn(&Req) -> Option<String>,
{
    fn key<'a>(&self, request: &'a Req) -> Option<Cow<'a, str>> {
        self(request).map(Cow::Owned)
    }
}

/// Maps a credential key to its limiter.
///
/// Implemented by [`Registry`](crate::registry::Registry) and by every
/// closure `Fn(&str) -> Option<Limiter>`. Returning `None` fails the request
/// with [`Error::UnknownKey`](super::Error::UnknownKey); a key is never let
/// through unlimited.
pub trait LimiterLookup: Send + Sync + 'static {
    /// Returns the limiter of `key`, or `None` when none is registered.
    fn limiter(&self, key: &str) -> Option<Limiter>;
}

impl LimiterLookup for Registry {
    fn limiter(&self, key: &str) -> Option<Limiter> {
        self.get(key)
    }
}

impl<F> LimiterLookup for F
where
    F: Fn(&str) -> Option<Limiter> + Send + Sync + 'static,
{
    fn limiter(&self, key: &str) -> Option<Limiter> {
        self(key)
    }
}

/// A key extractor that reads a request header.
///
/// The header value must be visible ASCII; any other value counts as no
/// key. Only the first value of a repeated header is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderKey {
    name: HeaderName,
    bearer: bool,
}

impl HeaderKey {
    /// Reads the whole value of the header `name`.
    pub fn new(name: HeaderName) -> Self {
        Self {
            name,
            bearer: false,
        }
    }

    /// Reads the token of an `Authorization: Bearer TOKEN` header. The
    /// scheme is matched without regard to case; another scheme counts as no
    /// key.
    pub fn bearer() -> Self {
        Self {
            name: AUTHORIZATION,
            bearer: true,
        }
    }

    /// Returns the key in `headers`, borrowed from the header value.
    pub(crate) fn read<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let value = headers.get(&self.name)?.to_str().ok()?.trim();
        let key = if self.bearer {
            let (scheme, token) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            token.trim()
        } else {
            value
        };
        (!key.is_empty()).then_some(key)
    }
}

impl<B> KeyExtractor<http::Request<B>> for HeaderKey {
    fn key<'a>(&self, request: &'a http::Request<B>) -> Option<Cow<'a, str>> {
        self.read(request.headers()).map(Cow::Borrowed)
    }
}

/// A key extractor that reads a request extension of type `T`, by default a
/// [`CredentialKey`].
pub struct ExtensionKey<T = CredentialKey> {
    _type: PhantomData<fn() -> T>,
}

impl<T> ExtensionKey<T> {
    /// Reads the extension of type `T`.
    pub fn new() -> Self {
        Self { _type: PhantomData }
    }
}

impl<T> Default for ExtensionKey<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for ExtensionKey<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for ExtensionKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtensionKey")
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T, B> KeyExtractor<http::Request<B>> for ExtensionKey<T>
where
    T: AsRef<str> + Send + Sync + 'static,
{
    fn key<'a>(&self, request: &'a http::Request<B>) -> Option<Cow<'a, str>> {
        let key = request.extensions().get::<T>()?;
        Some(Cow::Borrowed(key.as_ref()))
    }
}

/// A request extension that names the credential a request is sent with,
/// read by [`ExtensionKey`].
///
/// It contains the key under which the credential's limiter is registered,
/// such as the credential id, and prints in full, so do not store a secret
/// in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialKey(String);

impl CredentialKey {
    /// Creates the extension for the credential registered as `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// Returns the key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CredentialKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
