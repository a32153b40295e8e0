//! The typed `properties` of each credential kind that the API reference
//! lists.
//!
//! Each type reads its fields from the JSON object that remains once `kind`
//! is removed, and writes them back without `kind`, because
//! `CredentialProperties` reads and writes the tag. Fields that a type does
//! not model stay in its `extra` map. A field is optional only where the
//! example in the Sequin Management API reference (the "Objects" page) omits
//! it.

use std::fmt;

use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use crate::model::secret::RedactedMap;
use crate::model::wire::{self, FieldReader, ObjectWriter};
use crate::model::{SecretString, ValidationError};

/// Properties of an `airtable_oauth2` credential, an OAuth 2.0 grant for the
/// Airtable API.
#[derive(Clone, PartialEq, Eq)]
pub struct AirtableOauth2Properties {
    /// The ID of the Airtable user who granted access.
    pub airtable_uid: String,
    /// The refresh token used to authenticate with the Airtable API.
    pub refresh_token: SecretString,
    /// The granted scopes, separated by spaces.
    pub scope: String,
    /// Fields that this type does not model, kept for serialization.
    pub extra: Map<String, Value>,
}

impl AirtableOauth2Properties {
    pub(super) fn read(mut fields: FieldReader) -> Result<Self, ValidationError> {
        Ok(Self {
            airtable_uid: fields.required("airtable_uid", wire::string)?,
            refresh_token: fields.required("refresh_token", wire::secret)?,
            scope: fields.required("scope", wire::string)?,
            extra: fields.into_rest(),
        })
    }

    pub(super) fn write<M: SerializeMap>(
        &self,
        writer: &mut ObjectWriter<M>,
    ) -> Result<(), M::Error> {
        writer.field("airtable_uid", &self.airtable_uid)?;
        writer.field("refresh_token", &self.refresh_token)?;
        writer.field("scope", &self.scope)
    }
}

impl fmt::Debug for AirtableOauth2Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AirtableOauth2Properties")
            .field("airtable_uid", &self.airtable_uid)
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.scope)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}

/// Properties of a `checkout_champ_password` credential, a login ID and
/// password for the CheckoutChamp API.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckoutChampPasswordProperties {
    /// The login ID used to authenticate with the CheckoutChamp API.
    pub login_id: String,
    /// The password that belongs to `login_id`.
    pub password: SecretString,
    /// Fields that this type does not model, kept for serialization.
    pub extra: Map<String, Value>,
}

impl CheckoutChampPasswordProperties {
    pub(super) fn read(mut fields: FieldReader) -> Result<Self, ValidationError> {
        Ok(Self {
            login_id: fields.required("login_id", wire::string)?,
            password: fields.required("password", wire::secret)?,
            extra: fields.into_rest(),
        })
    }

    pub(super) fn write<M: SerializeMap>(
        &self,
        writer: &mut ObjectWriter<M>,
    ) -> Result<(), M::Error> {
        writer.field("login_id", &self.login_id)?;
        writer.field("password", &self.password)
    }
}

impl fmt::Debug for CheckoutChampPasswordProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckoutChampPasswordProperties")
            .field("login_id", &self.login_id)
            .field("password", &self.password)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}

/// Properties of a `github_app` credential, an installation of a GitHub App.
///
/// The API reference types `installation_id` as an integer, but its example
/// sends a string of digits. Both parse, and serialization writes an integer.
#[derive(Clone, PartialEq, Eq)]
pub struct GitHubAppProperties {
    /// The account type, `User` or `Organization`.
    pub account_type: String,
    /// The login name of the account that installed the app.
    pub account_login: String,
    /// The installation ID of the GitHub App.
    pub installation_id: u64,
    /// Fields that this type does not model, kept for serialization.
    pub extra: Map<String, Value>,
}

impl GitHubAppProperties {
    pub(super) fn read(mut fields: FieldReader) -> Result<Self, ValidationError> {
        Ok(Self {
            account_type: fields.required("account_type", wire::string)?,
            account_login: fields.required("account_login", wire::string)?,
            installation_id: fields.required("installation_id", wire::unsigned_or_digits)?,
            extra: fields.into_rest(),
        })
    }

    pub(super) fn write<M: SerializeMap>(
        &self,
        writer: &mut ObjectWriter<M>,
    ) -> Result<(), M::Error> {
        writer.field("account_type", &self.account_type)?;
        writer.field("account_login", &self.account_login)?;
        writer.field("installation_id", &self.installation_id)
    }
}

impl fmt::Debug for GitHubAppProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubAppProperties")
            .field("account_type", &self.account_type)
            .field("account_login", &self.account_login)
            .field("installation_id", &self.installation_id)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}

/// Properties of a `hubspot_oauth2` credential, an OAuth 2.0 grant for the
/// HubSpot API.
#[derive(Clone, PartialEq, Eq)]
pub struct HubSpotOauth2Properties {
    /// The domain of the HubSpot account.
    pub hub_domain: String,
    /// The ID of the HubSpot account.
    pub hub_id: u64,
    /// The refresh token used to authenticate with the HubSpot API.
    pub refresh_token: SecretString,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// Fields that this type does not model, kept for serialization.
    pub extra: Map<String, Value>,
}

impl HubSpotOauth2Properties {
    pub(super) fn read(mut fields: FieldReader) -> Result<Self, ValidationError> {
        Ok(Self {
            hub_domain: fields.required("hub_domain", wire::string)?,
            hub_id: fields.required("hub_id", wire::unsigned)?,
            refresh_token: fields.required("refresh_token", wire::secret)?,
            scopes: fields.required("scopes", wire::string_list)?,
            extra: fields.into_rest(),
        })
    }

    pub(super) fn write<M: SerializeMap>(
        &self,
        writer: &mut ObjectWriter<M>,
    ) -> Result<(), M::Error> {
        writer.field("hub_domain", &self.hub_domain)?;
        writer.field("hub_id", &self.hub_id)?;
        writer.field("refresh_token", &self.refresh_token)?;
        writer.field("scopes", &self.scopes)
    }
}

impl fmt::Debug for HubSpotOauth2Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotOauth2Properties")
            .field("hub_domain", &self.hub_domain)
            .field("hub_id", &self.hub_id)
            .field("refresh_token", &self.refresh_token)
            .field("scopes", &self.scopes)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}

/// Properties of a `linear_oauth2` credential, an OAuth 2.0 grant for the
/// Linear API.
///
/// `expires_in_s` is optional because the API reference's example omits it.
#[derive(Clone, PartialEq, Eq)]
pub struct LinearOauth2Properties {
    /// The access token used to authenticate with the Linear API.
    pub access_token: SecretString,
    /// The granted scopes, separated by spaces.
    pub scope: String,
    /// The lifetime of the access token in seconds, when the API sends it.
    pub expires_in_s: Option<u64>,
    /// The ID of the Linear organization.
    pub linear_org_id: String,
    /// The name of the Linear organization.
    pub linear_org_name: String,
    /// Fields that this type does not model, kept for serialization. An
    /// `"expires_in_s": null` is kept here too.
    pub extra: Map<String, Value>,
}

impl LinearOauth2Properties {
    pub(super) fn read(mut fields: FieldReader) -> Result<Self, ValidationError> {
        Ok(Self {
            access_token: fields.required("access_token", wire::secret)?,
            scope: fields.required("scope", wire::string)?,
            expires_in_s: fields.optional("expires_in_s", wire::unsigned)?,
            linear_org_id: fields.required("linear_org_id", wire::string)?,
            linear_org_name: fields.required("linear_org_name", wire::string)?,
            extra: fields.into_rest(),
        })
    }

    pub(super) fn write<M: SerializeMap>(
        &self,
        writer: &mut ObjectWriter<M>,
    ) -> Result<(), M::Error> {
        writer.field("access_token", &self.access_token)?;
        writer.field("scope", &self.scope)?;
        writer.optional("expires_in_s", self.expires_in_s.as_ref())?;
        writer.field("linear_org_id", &self.linear_org_id)?;
        writer.field("linear_org_name", &self.linear_org_name)
    }
}

impl fmt::Debug for LinearOauth2Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinearOauth2Properties")
            .field("access_token", &self.access_token)
            .field("scope", &self.scope)
            .field("expires_in_s", &self.expires_in_s)
            .field("linear_org_id", &self.linear_org_id)
            .field("linear_org_name", &self.linear_org_name)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}

/// Properties of a `salesforce_oauth2` credential, an OAuth 2.0 grant for
/// the Salesforce API.
#[derive(Clone, PartialEq, Eq)]
pub struct SalesforceOauth2Properties {
    /// The URL of the Salesforce instance, such as
    /// `https://example.my.salesforce.com`.
    pub instance_url: String,
    /// The refresh token used to authenticate with the Salesforce API.
    pub refresh_token: SecretString,
    /// The granted scopes, separated by spaces.
    pub scope: String,
    /// The Salesforce ID of the account.
    pub sfid: String,
    /// Fields that this type does not model, kept for serialization.
    pub extra: Map<String, Value>,
}

impl SalesforceOauth2Properties {
    pub(super) fn read(mut fields: FieldReader) -> Result<Self, ValidationError> {
        Ok(Self {
            instance_url: fields.required("instance_url", wire::string)?,
            refresh_token: fields.required("refresh_token", wire::secret)?,
            scope: fields.required("scope", wire::string)?,
            sfid: fields.required("sfid", wire::string)?,
            extra: fields.into_rest(),
        })
    }

    pub(super) fn write<M: SerializeMap>(
        &self,
        writer: &mut ObjectWriter<M>,
    ) -> Result<(), M::Error> {
        writer.field("instance_url", &self.instance_url)?;
        writer.field("refresh_token", &self.refresh_token)?;
        writer.field("scope", &self.scope)?;
        writer.field("sfid", &self.sfid)
    }
}

impl fmt::Debug for SalesforceOauth2Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesforceOauth2Properties")
            .field("instance_url", &self.instance_url)
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.scope)
            .field("sfid", &self.sfid)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}

/// Properties of a `shopify_oauth2` credential, an offline access token for
/// one Shopify shop.
#[derive(Clone, PartialEq, Eq)]
pub struct ShopifyOauth2Properties {
    /// The offline access token used to authenticate with the Shopify API.
    pub access_token: SecretString,
    /// The shop domain, such as `example.myshopify.com`.
    pub shop: String,
    /// Fields that this type does not model, kept for serialization.
    pub extra: Map<String, Value>,
}

impl ShopifyOauth2Properties {
    pub(super) fn read(mut fields: FieldReader) -> Result<Self, ValidationError> {
        Ok(Self {
            access_token: fields.required("access_token", wire::secret)?,
            shop: fields.required("shop", wire::string)?,
            extra: fields.into_rest(),
        })
    }

    pub(super) fn write<M: SerializeMap>(
        &self,
        writer: &mut ObjectWriter<M>,
    ) -> Result<(), M::Error> {
        writer.field("access_token", &self.access_token)?;
        writer.field("shop", &self.shop)
    }
}

impl fmt::Debug for ShopifyOauth2Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopifyOauth2Properties")
            .field("access_token", &self.access_token)
            .field("shop", &self.shop)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}

/// Properties of a `stripe_oauth2` or `stripe_key` credential, which share
/// one shape.
///
/// `account_id` is optional because the API reference's example omits it.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeProperties {
    /// The primary account ID, or the ID of a connected account.
    pub account_id: Option<String>,
    /// The display name of the credential.
    pub name: String,
    /// The OAuth 2.0 refresh token (`stripe_oauth2`) or the secret API key
    /// (`stripe_key`).
    pub secret: SecretString,
    /// Whether the credential is for a Stripe test account.
    pub test: bool,
    /// Fields that this type does not model, kept for serialization. An
    /// `"account_id": null` is kept here too.
    pub extra: Map<String, Value>,
}

impl StripeProperties {
    pub(super) fn read(mut fields: FieldReader) -> Result<Self, ValidationError> {
        Ok(Self {
            account_id: fields.optional("account_id", wire::string)?,
            name: fields.required("name", wire::string)?,
            secret: fields.required("secret", wire::secret)?,
            test: fields.required("test", wire::boolean)?,
            extra: fields.into_rest(),
        })
    }

    pub(super) fn write<M: SerializeMap>(
        &self,
        writer: &mut ObjectWriter<M>,
    ) -> Result<(), M::Error> {
        writer.optional("account_id", self.account_id.as_ref())?;
        writer.field("name", &self.name)?;
        writer.field("secret", &self.secret)?;
        writer.field("test", &self.test)
    }
}

impl fmt::Debug for StripeProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeProperties")
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("secret", &self.secret)
            .field("test", &self.test)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}
