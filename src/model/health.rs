//! The `Health` wire object and its `HealthStatus`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::secret::RedactedMap;
use super::wire::{self, FieldReader, ObjectWriter, WireError};
use super::ValidationError;

/// The current status of a component, such as a credential, as the API
/// reports it.
///
/// Fields other than `status` are kept in [`Health::extra`], so that an
/// object with fields this version does not model serializes back unchanged.
///
/// # Examples
///
/// ```
/// use tollgate::{Health, HealthStatus};
///
/// let health: Health = serde_json::from_str(r#"{"status": "customer_intervention"}"#)?;
/// assert_eq!(health.status, HealthStatus::CustomerIntervention);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Health {
    /// The status of the component.
    pub status: HealthStatus,
    /// Fields that this type does not model, kept for serialization.
    pub extra: Map<String, Value>,
}

impl Health {
    /// Creates a health object with `status` and no other fields.
    pub fn new(status: HealthStatus) -> Self {
        Self {
            status,
            extra: Map::new(),
        }
    }

    /// Parses a health object found in the field `field`.
    pub(crate) fn from_value(field: &'static str, value: Value) -> Result<Self, WireError> {
        let mut fields = FieldReader::new(wire::object(field, value)?);
        let status = fields
            .required("status", parse_status)
            .map_err(|error| WireError::in_context("invalid health", error))?;
        Ok(Self {
            status,
            extra: fields.into_rest(),
        })
    }
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("status", &self.status)
            .field("extra", &RedactedMap(&self.extra))
            .finish()
    }
}

impl Serialize for Health {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = ObjectWriter::new(serializer.serialize_map(None)?);
        writer.field("status", &self.status)?;
        writer.finish(&self.extra)
    }
}

impl<'de> Deserialize<'de> for Health {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Health::from_value("health", value).map_err(de::Error::custom)
    }
}

fn parse_status(field: &'static str, value: Value) -> Result<HealthStatus, ValidationError> {
    match value {
        Value::String(name) => name.parse(),
        other => Err(ValidationError::new(
            field,
            wire::describe(&other),
            HealthStatus::RULE,
        )),
    }
}

/// The status in a [`Health`] object, `healthy` or one of the two kinds of
/// intervention it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HealthStatus {
    /// `healthy`: the component works.
    Healthy,
    /// `customer_intervention`: the component needs action from the account
    /// owner, for example reauthorizing a credential.
    CustomerIntervention,
    /// `sequin_intervention`: the component needs action from Sequin, the API
    /// operator.
    SequinIntervention,
}

impl HealthStatus {
    const RULE: &'static str =
        "must be one of \"healthy\", \"customer_intervention\" or \"sequin_intervention\"";

    /// Returns the wire name of the status.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::CustomerIntervention => "customer_intervention",
            HealthStatus::SequinIntervention => "sequin_intervention",
        }
    }
}

impl FromStr for HealthStatus {
    type Err = ValidationError;

    /// Parses a wire name. Any other string is an error that names the value
    /// and lists the allowed ones.
    fn from_str(name: &str) -> Result<Self, ValidationError> {
        match name {
            "healthy" => Ok(HealthStatus::Healthy),
            "customer_intervention" => Ok(HealthStatus::CustomerIntervention),
            "sequin_intervention" => Ok(HealthStatus::SequinIntervention),
            other => Err(ValidationError::new(
                "status",
                wire::describe(&Value::String(other.to_owned())),
                HealthStatus::RULE,
            )),
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for HealthStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HealthStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_status("status", value).map_err(de::Error::custom)
    }
}
