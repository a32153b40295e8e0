//! The `Provider` wire value: the third-party service a credential is for.

use std::convert::Infallible;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The third-party service that a credential authenticates with, such as
/// `stripe` or `github`.
///
/// On the wire a provider is a plain lowercase string. Names that this
/// version does not list become [`Provider::Other`] with the name exactly as
/// given, because the API adds providers over time.
///
/// Equality and hashing compare [`Provider::as_str`], so
/// `Provider::Other("stripe".into())` equals `Provider::Stripe`. Build
/// providers from names with [`Provider::from`] or [`str::parse`], which
/// never produce such an `Other`.
///
/// # Examples
///
/// ```
/// use tollgate::Provider;
///
/// assert_eq!(Provider::from("stripe"), Provider::Stripe);
/// assert_eq!(Provider::from("zendesk"), Provider::Other("zendesk".into()));
/// assert_eq!(Provider::GitHub.to_string(), "github");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Provider {
    /// `airtable`
    Airtable,
    /// `auth0`
    Auth0,
    /// `hubspot`
    HubSpot,
    /// `github`
    GitHub,
    /// `linear`
    Linear,
    /// `marketo`
    Marketo,
    /// `netsuite`
    NetSuite,
    /// `quickbooks`
    QuickBooks,
    /// `salesforce`
    Salesforce,
    /// `sendgrid`
    SendGrid,
    /// `servicenow`
    ServiceNow,
    /// `shopify`
    Shopify,
    /// `stripe`
    Stripe,
    /// `workday`
    Workday,
    /// Any other provider name, kept exactly as it appeared on the wire.
    Other(String),
}

/// The providers this version lists, in the order of the API reference.
const KNOWN: [Provider; 14] = [
    Provider::Airtable,
    Provider::Auth0,
    Provider::HubSpot,
    Provider::GitHub,
    Provider::Linear,
    Provider::Marketo,
    Provider::NetSuite,
    Provider::QuickBooks,
    Provider::Salesforce,
    Provider::SendGrid,
    Provider::ServiceNow,
    Provider::Shopify,
    Provider::Stripe,
    Provider::Workday,
];

impl Provider {
    /// Returns the wire name of the provider.
    pub fn as_str(&self) -> &str {
        match self {
            Provider::Airtable => "airtable",
            Provider::Auth0 => "auth0",
            Provider::HubSpot => "hubspot",
            Provider::GitHub => "github",
            Provider::Linear => "linear",
            Provider::Marketo => "marketo",
            Provider::NetSuite => "netsuite",
            Provider::QuickBooks => "quickbooks",
            Provider::Salesforce => "salesforce",
            Provider::SendGrid => "sendgrid",
            Provider::ServiceNow => "servicenow",
            Provider::Shopify => "shopify",
            Provider::Stripe => "stripe",
            Provider::Workday => "workday",
            Provider::Other(name) => name,
        }
    }

    /// Returns whether the provider is one this version lists, as opposed to
    /// [`Provider::Other`].
    pub fn is_known(&self) -> bool {
        !matches!(self, Provider::Other(_))
    }

    fn known(name: &str) -> Option<Provider> {
        KNOWN.into_iter().find(|provider| provider.as_str() == name)
    }
}

impl From<&str> for Provider {
    fn from(name: &str) -> Self {
        Provider::known(name).unwrap_or_else(|| Provider::Other(name.to_owned()))
    }
}

impl From<String> for Provider {
    fn from(name: String) -> Self {
        Provider::known(&name).unwrap_or(Provider::Other(name))
    }
}

impl FromStr for Provider {
    type Err = Infallible;

    fn from_str(name: &str) -> Result<Self, Infallible> {
        Ok(Provider::from(name))
    }
}

impl PartialEq for Provider {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Provider {}

impl Hash for Provider {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Provider {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Provider::from)
    }
}
