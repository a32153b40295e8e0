//! Wire objects of the Sequin management API, the service whose credential
//! objects carry these rate limits: `RateLimit`, `Health`, providers and
//! credentials with their `properties`. Field names and shapes follow that
//! API's object reference, so its JSON parses and round-trips unchanged.
//!
//! This module knows nothing of time, tokio or HTTP.

mod credential;
mod health;
mod properties;
mod provider;
mod rate_limit;
mod secret;
mod wire;

use std::borrow::Cow;
use std::fmt;

pub use credential::Credential;
pub use health::{Health, HealthStatus};
pub use properties::{
    AirtableOauth2Properties, CheckoutChampPasswordProperties, CredentialProperties,
    GitHubAppProperties, HubSpotOauth2Properties, LinearOauth2Properties,
    SalesforceOauth2Properties, ShopifyOauth2Properties, StripeProperties, UnknownProperties,
};
pub use provider::Provider;
pub use rate_limit::RateLimit;
pub use secret::{is_secret_key, SecretString};

/// An invalid value in a wire object: which field, what it contained and the
/// rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    field: &'static str,
    value: String,
    rule: Cow<'static, str>,
}

impl ValidationError {
    pub(crate) fn new(
        field: &'static str,
        value: impl Into<String>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field,
            value: value.into(),
            rule: rule.into(),
        }
    }

    /// Returns the wire name of the invalid field.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Returns the rejected value as text (`missing` when the field was absent).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Returns the rule that the value broke.
    pub fn rule(&self) -> &str {
        &self.rule
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}, got {}", self.field, self.rule, self.value)
    }
}

impl std::error::Error for ValidationError {}
