//! The `properties` of a credential: a JSON object tagged by `kind`, with one
//! shape per kind.

mod kinds;

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use kinds::{
    AirtableOauth2Properties, CheckoutChampPasswordProperties, GitHubAppProperties,
    HubSpotOauth2Properties, LinearOauth2Properties, SalesforceOauth2Properties,
    ShopifyOauth2Properties, StripeProperties,
};

use super::secret::RedactedMap;
use super::wire::{self, FieldReader, ObjectWriter, WireError};
use super::ValidationError;

/// The `properties` of a credential, tagged on the wire by its `kind` field.
///
/// Each kind that the Sequin Management API reference lists on its "Objects"
/// page has a variant with typed fields.
/// Any other kind becomes [`CredentialProperties::Unknown`] with its fields
/// as raw JSON, so it serializes back unchanged. Fields that a typed variant
/// does not model are kept in its `extra` map for the same reason.
///
/// `Debug` and `Display` never print secrets: typed secret fields are
/// [`SecretString`](crate::SecretString)s, and untyped fields are hidden by
/// the key rule of [`is_secret_key`](crate::model::is_secret_key).
///
/// # Examples
///
/// ```
/// use tollgate::CredentialProperties;
///
/// let properties: CredentialProperties = serde_json::from_str(
///     r#"{"kind": "shopify_oauth2", "access_token": "shpca_1234", "shop": "a.myshopify.com"}"#,
/// )?;
/// let CredentialProperties::ShopifyOauth2(shopify) = &properties else {
///     panic!("expected shopify_oauth2, got {properties:?}");
/// };
/// assert_eq!(shopify.shop, "a.myshopify.com");
/// assert_eq!(shopify.access_token.expose(), "shpca_1234");
/// assert!(!format!("{properties:?}").contains("shpca_1234"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialProperties {
    /// `airtable_oauth2`
    AirtableOauth2(AirtableOauth2Properties),
    /// `checkout_champ_password`
    CheckoutChampPassword(CheckoutChampPasswordProperties),
    /// `github_app`
    GitHubApp(GitHubAppProperties),
    /// `hubspot_oauth2`
    HubSpotOauth2(HubSpotOauth2Properties),
    /// `linear_oauth2`
    LinearOauth2(LinearOauth2Properties),
    /// `salesforce_oauth2`
    SalesforceOauth2(SalesforceOauth2Properties),
    /// `shopify_oauth2`
    ShopifyOauth2(ShopifyOauth2Properties),
    /// `stripe_oauth2`, where [`StripeProperties::secret`] is a refresh token.
    StripeOauth2(StripeProperties),
    /// `stripe_key`, where [`StripeProperties::secret`] is a secret API key.
    StripeKey(StripeProperties),
    /// A kind that this version does not list, kept as raw JSON.
    Unknown(UnknownProperties),
}

impl CredentialProperties {
    /// Returns the wire name of the kind, such as `github_app`.
    pub fn kind(&self) -> &str {
        match self {
            CredentialProperties::AirtableOauth2(_) => "airtable_oauth2",
            CredentialProperties::CheckoutChampPassword(_) => "checkout_champ_password",
            CredentialProperties::GitHubApp(_) => "github_app",
            CredentialProperties::HubSpotOauth2(_) => "hubspot_oauth2",
            CredentialProperties::LinearOauth2(_) => "linear_oauth2",
            CredentialProperties::SalesforceOauth2(_) => "salesforce_oauth2",
            CredentialProperties::ShopifyOauth2(_) => "shopify_oauth2",
            CredentialProperties::StripeOauth2(_) => "stripe_oauth2",
            CredentialProperties::StripeKey(_) => "stripe_key",
            CredentialProperties::Unknown(unknown) => &unknown.kind,
        }
    }

    /// Returns the fields that the variant does not model: the `extra` map of
    /// a typed variant, or every field except `kind` of an unknown kind.
    pub fn extra(&self) -> &Map<String, Value> {
        match self {
            CredentialProperties::AirtableOauth2(properties) => &properties.extra,
            CredentialProperties::CheckoutChampPassword(properties) => &properties.extra,
            CredentialProperties::GitHubApp(properties) => &properties.extra,
            CredentialProperties::HubSpotOauth2(properties) => &properties.extra,
            CredentialProperties::LinearOauth2(properties) => &properties.extra,
            CredentialProperties::SalesforceOauth2(properties) => &properties.extra,
            CredentialProperties::ShopifyOauth2(properties) => &properties.extra,
            CredentialProperties::StripeOauth2(properties) => &properties.extra,
            CredentialProperties::StripeKey(properties) => &properties.extra,
            CredentialProperties::Unknown(unknown) => &unknown.fields,
        }
    }

    /// Parses the value of a credential's `properties` field.
    pub(crate) fn from_value(value: Value) -> Result<Self, WireError> {
        let mut fields = wire::object("properties", value)?;
        let kind = match fields.remove("kind") {
            Some(Value::String(kind)) => kind,
            Some(other) => {
                let error =
                    ValidationError::new("kind", wire::describe(&other), "must be a string");
                return Err(WireError::in_context("invalid properties", error));
            }
            None => {
                let error = ValidationError::new("kind", "missing", "is required");
                return Err(WireError::in_context("invalid properties", error));
            }
        };

        let fields = FieldReader::new(fields);
        let parsed = match kind.as_str() {
            "airtable_oauth2" => AirtableOauth2Properties::read(fields).map(Self::AirtableOauth2),
            "checkout_champ_password" => {
                CheckoutChampPasswordProperties::read(fields).map(Self::CheckoutChampPassword)
            }
            "github_app" => GitHubAppProperties::read(fields).map(Self::GitHubApp),
            "hubspot_oauth2" => HubSpotOauth2Properties::read(fields).map(Self::HubSpotOauth2),
            "linear_oauth2" => LinearOauth2Properties::read(fields).map(Self::LinearOauth2),
            "salesforce_oauth2" => {
                SalesforceOauth2Properties::read(fields).map(Self::SalesforceOauth2)
            }
            "shopify_oauth2" => ShopifyOauth2Properties::read(fields).map(Self::ShopifyOauth2),
            "stripe_oauth2" => StripeProperties::read(fields).map(Self::StripeOauth2),
            "stripe_key" => StripeProperties::read(fields).map(Self::StripeKey),
            _ => {
                return Ok(Self::Unknown(UnknownProperties {
                    kind,
                    fields: fields.into_rest(),
                }))
            }
        };
        parsed.map_err(|error| WireError::in_context(&format!("invalid {kind} properties"), error))
    }
}

/// Prints the kind, such as `github_app`, which is never secret.
impl fmt::Display for CredentialProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

impl Serialize for CredentialProperties {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = ObjectWriter::new(serializer.serialize_map(None)?);
        writer.field("kind", self.kind())?;
        self.write_fields(&mut writer)?;
        writer.finish(self.extra())
    }
}

impl CredentialProperties {
    fn write_fields<M: SerializeMap>(&self, writer: &mut ObjectWriter<M>) -> Result<(), M::Error> {
        match self {
            CredentialProperties::AirtableOauth2(properties) => properties.write(writer),
            CredentialProperties::CheckoutChampPassword(properties) => properties.write(writer),
            CredentialProperties::GitHubApp(properties) => properties.write(writer),
            CredentialProperties::HubSpotOauth2(properties) => properties.write(writer),
            CredentialProperties::LinearOauth2(properties) => properties.write(writer),
            CredentialProperties::SalesforceOauth2(properties) => properties.write(writer),
            CredentialProperties::ShopifyOauth2(properties) => properties.write(writer),
            CredentialProperties::StripeOauth2(properties) => properties.write(writer),
            CredentialProperties::StripeKey(properties) => properties.write(writer),
            // Every field of an unknown kind is in `extra()`.
            CredentialProperties::Unknown(_) => Ok(()),
        }
    }
}

impl<'de> Deserialize<'de> for CredentialProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        CredentialProperties::from_value(value).map_err(de::Error::custom)
    }
}

/// The properties of a credential kind that this version does not list, as
/// raw JSON.
///
/// `Debug` prints `[redacted]` for the value of every key that
/// [`is_secret_key`](crate::model::is_secret_key) matches, at any depth.
#[derive(Clone, PartialEq, Eq)]
pub struct UnknownProperties {
    /// The wire name of the kind.
    pub kind: String,
    /// Every field except `kind`.
    ///
    /// A `kind` key inserted here is not serialized, because the `kind` field
    /// above takes its place.
    pub fields: Map<String, Value>,
}

impl fmt::Debug for UnknownProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnknownProperties")
            .field("kind", &self.kind)
            .field("fields", &RedactedMap(&self.fields))
            .finish()
    }
}
