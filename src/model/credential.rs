//! The `Credential` wire object.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::secret::RedactedMap;
use super::wire::{self, FieldReader, ObjectWriter, WireError};
use super::{CredentialProperties, Health, Provider, RateLimit};

/// A credential with which the API authenticates to a provider, with the
/// rate limit that applies to it.
///
/// Fields that this type does not model, such as `name` or `inserted_at`,
/// are kept in [`Credential::extra`], so a credential serializes back to the
/// JSON it was parsed from. The one exception is a GitHub `installation_id`
/// sent as a string, which serializes as an integer.
///
/// `Debug` and `Display` never print secrets. `Debug` prints the properties
/// as [`CredentialProperties`] does and hides the value of every extra field
/// whose key [`is_secret_key`](crate::model::is_secret_key) matches.
///
/// # Examples
///
/// ```
/// use tollgate::{Credential, CredentialProperties, Provider};
///
/// let json = r#"{
///     "id": "cred_1",
///     "provider": "stripe",
///     "properties": {
///         "kind": "stripe_key",
///         "name": "Arrakis",
///         "secret": "sk_test_1234",
///         "test": true
///     },
///     "rate_limit": {"allowed_requests": 25, "interval": 1000, "max_concurrent_requests": 5}
/// }"#;
/// let credential: Credential = serde_json::from_str(json)?;
/// assert_eq!(credential.provider, Provider::Stripe);
/// assert!(matches!(credential.properties, CredentialProperties::StripeKey(_)));
/// assert_eq!(credential.rate_limit.map(|limit| limit.allowed_requests()), Some(25));
/// assert_eq!(credential.to_string(), "credential cred_1 (stripe, stripe_key)");
/// assert!(!format!("{credential:?}").contains("sk_test_1234"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The ID of the credential.
    pub id: String,
    /// The provider that the credential authenticates with.
    pub provider: Provider,
    /// The kind of the credential and its kind-specific fields.
    pub properties: CredentialProperties,
    /// The rate limit of the credential, when it has one.
    pub rate_limit: Option<RateLimit>,
    /// The health of the credential, when the API reports it.
    pub health: Option<Health>,
    /// Fields that this type does not model, kept for serialization. A
    /// `"rate_limit": null` or `"health": null` is kept here too.
    pub extra: Map<String, Value>,
}

impl Credential {
    /// Creates a credential with no rate limit, no health and no other
    /// fields.
    pub fn new(
        id: impl Into<String>,
        provider: Provider,
        properties: CredentialProperties,
    ) -> Self {
        Self {
            id: id.into(),
            provider,
            properties,
            rate_limit: None,
            health: None,
            extra: Map::new(),
        }
    }

    fn from_value(value: Value) -> Result<Self, WireError> {
        let mut fields = FieldReader::new(wire::object("credential", value)?);
        let in_credential = |error| WireError::in_context("invalid credential", error);

        let id = fields.required("id", wire::string).map_err(in_credential)?;
        let provider = fields
            .required("provider", |field, value| {
                wire::string(field, value).map(Provider::from)
            })
            .map_err(in_credential)?;
        let properties = fields
            .required("properties", |_, value| Ok(value))
            .map_err(in_credential)?;
        let properties = CredentialProperties::from_value(properties)?;
        let rate_limit = fields.optional("rate_limit", |_, value| {
            RateLimit::deserialize(value)
                .map_err(|error| WireError::in_context("invalid rate_limit", error))
        })?;
        let health = fields.optional("health", Health::from_value)?;

        Ok(Self {
            id,
            provider,
            properties,
            rate_limit,
            health,
            extra: fields.into_rest(),
        })
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("properties", &self.properties)
            .field("rate_limit", &self.rate_limit)
            .field("health", &self.health)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}

/// Prints `credential ID (PROVIDER, KIND)`, such as
/// `credential cred_1 (github, github_app)`.
impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "credential {} ({}, {})",
            self.id,
            self.provider,
            self.properties.kind()
        )
    }
}

impl Serialize for Credential {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = ObjectWriter::new(serializer.serialize_map(None)?);
        writer.field("id", &self.id)?;
        writer.field("provider", &self.provider)?;
        writer.field("properties", &self.properties)?;
        writer.optional("rate_limit", self.rate_limit.as_ref())?;
        writer.optional("health", self.health.as_ref())?;
        writer.finish(&self.extra)
    }
}

impl<'de> Deserialize<'de> for Credential {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Credential::from_value(value).map_err(de::Error::custom)
    }
}
