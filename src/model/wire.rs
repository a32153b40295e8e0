//! Helpers that read typed fields out of JSON objects with errors that name
//! the field, and write them back with their unmodelled fields.
//!
//! The wire objects read a JSON object field by field instead of deriving
//! `Deserialize`, because serde's derived messages for a wrong type ("invalid
//! type: integer `5`, expected a string") do not name the field.

use std::fmt;

use serde::ser::SerializeMap;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{SecretString, ValidationError};

/// A JSON object as serde_json stores it.
pub(crate) type JsonMap = Map<String, Value>;

/// The maximum length, in characters, of a string that an error message
/// quotes in full.
const MAX_QUOTED_CHARS: usize = 64;

/// A deserialization error message that names the object, the field and the
/// rule.
#[derive(Debug)]
pub(crate) struct WireError(String);

impl WireError {
    /// Prefixes `cause` with the object it occurred in, such as
    /// `invalid github_app properties`.
    pub(crate) fn in_context(context: &str, cause: impl fmt::Display) -> Self {
        Self(format!("{context}: {cause}"))
    }
}

impl From<ValidationError> for WireError {
    fn from(error: ValidationError) -> Self {
        Self(error.to_string())
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads fields out of a JSON object, removing each one it reads so that the
/// object's unmodelled fields remain.
pub(crate) struct FieldReader {
    fields: JsonMap,
}

impl FieldReader {
    pub(crate) fn new(fields: JsonMap) -> Self {
        Self { fields }
    }

    /// Removes and parses a field that must be present.
    pub(crate) fn required<T, E: From<ValidationError>>(
        &mut self,
        field: &'static str,
        parse: impl FnOnce(&'static str, Value) -> Result<T, E>,
    ) -> Result<T, E> {
        match self.fields.remove(field) {
            Some(value) => parse(field, value),
            None => Err(ValidationError::new(field, "missing", "is required").into()),
        }
    }

    /// Removes and parses a field that may be absent or `null`.
    ///
    /// A `null` stays among the unmodelled fields, so that writing the object
    /// back reproduces it while the typed field reads `None`.
    pub(crate) fn optional<T, E: From<ValidationError>>(
        &mut self,
        field: &'static str,
        parse: impl FnOnce(&'static str, Value) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        match self.fields.remove(field) {
            None => Ok(None),
            Some(Value::Null) => {
                self.fields.insert(field.to_owned(), Value::Null);
                Ok(None)
            }
            Some(value) => parse(field, value).map(Some),
        }
    }

    /// Returns the fields that were not read.
    pub(crate) fn into_rest(self) -> JsonMap {
        self.fields
    }
}

/// Writes a JSON object's typed fields, then its unmodelled fields except
/// those whose key a typed field already wrote.
pub(crate) struct ObjectWriter<M> {
    map: M,
    written: Vec<&'static str>,
}

impl<M: SerializeMap> ObjectWriter<M> {
    pub(crate) fn new(map: M) -> Self {
        Self {
            map,
            written: Vec::new(),
        }
    }

    pub(crate) fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        self.written.push(key);
        self.map.serialize_entry(key, value)
    }

    /// Writes the field when it is `Some`, and leaves the key free for an
    /// unmodelled `null` otherwise.
    pub(crate) fn optional<T: Serialize>(
        &mut self,
        key: &'static str,
        value: Option<&T>,
    ) -> Result<(), M::Error> {
        match value {
            Some(value) => self.field(key, value),
            None => Ok(()),
        }
    }

    pub(crate) fn finish(mut self, rest: &JsonMap) -> Result<M::Ok, M::Error> {
        for (key, value) in rest {
            if !self.written.contains(&key.as_str()) {
                self.map.serialize_entry(key, value)?;
            }
        }
        self.map.end()
    }
}

/// Describes a value for an error message: scalars as JSON, long strings
/// shortened, arrays and objects by their type.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(text) if text.chars().count() > MAX_QUOTED_CHARS => {
            let start: String = text.chars().take(MAX_QUOTED_CHARS).collect();
            format!("{}...", Value::String(start))
        }
        Value::Array(_) | Value::Object(_) => describe_type(value).to_owned(),
        _ => value.to_string(),
    }
}

/// Describes only the JSON type of a value, for fields whose content may be a
/// secret.
pub(crate) fn describe_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a JSON object. The error shows only the JSON type of anything else,
/// because a misplaced value may be a secret.
pub(crate) fn object(field: &'static str, value: Value) -> Result<JsonMap, ValidationError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ValidationError::new(
            field,
            describe_type(&other),
            "must be a JSON object",
        )),
    }
}

pub(crate) fn string(field: &'static str, value: Value) -> Result<String, ValidationError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(ValidationError::new(
            field,
            describe(&other),
            "must be a string",
        )),
    }
}

/// Parses a secret string. The error shows only the JSON type of the value,
/// so a secret of the wrong type never reaches an error message.
pub(crate) fn secret(field: &'static str, value: Value) -> Result<SecretString, ValidationError> {
    match value {
        Value::String(text) => Ok(SecretString::from(text)),
        other => Err(ValidationError::new(
            field,
            describe_type(&other),
            "must be a string",
        )),
    }
}

pub(crate) fn boolean(field: &'static str, value: Value) -> Result<bool, ValidationError> {
    match value {
        Value::Bool(flag) => Ok(flag),
        other => Err(ValidationError::new(
            field,
            describe(&other),
            "must be true or false",
        )),
    }
}

/// Parses a JSON integer from 0 to `u64::MAX`.
pub(crate) fn unsigned(field: &'static str, value: Value) -> Result<u64, ValidationError> {
    match value.as_u64() {
        Some(number) => Ok(number),
        None => Err(ValidationError::new(
            field,
            describe(&value),
            format!("must be an integer from 0 to {}", u64::MAX),
        )),
    }
}

/// Parses a JSON integer from 0 to `u64::MAX`, or a string of decimal digits
/// with such a value.
pub(crate) fn unsigned_or_digits(
    field: &'static str,
    value: Value,
) -> Result<u64, ValidationError> {
    let digits = match value {
        Value::String(ref text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text
        }
        Value::Number(_) => return unsigned(field, value),
        _ => {
            return Err(ValidationError::new(
                field,
                describe(&value),
                "must be an integer or a string of decimal digits",
            ))
        }
    };

    // Only overflow can fail here, because `digits` contains ASCII digits only.
    digits.parse().map_err(|_| {
        ValidationError::new(
            field,
            describe(&value),
            format!("must be at most {}", u64::MAX),
        )
    })
}

pub(crate) fn string_list(
    field: &'static str,
    value: Value,
) -> Result<Vec<String>, ValidationError> {
    let Value::Array(items) = value else {
        return Err(ValidationError::new(
            field,
            describe(&value),
            "must be an array of strings",
        ));
    };

    items
        .into_iter()
        .map(|item| match item {
            Value::String(text) => Ok(text),
            other => Err(ValidationError::new(
                field,
                describe(&other),
                "must contain only strings",
            )),
        })
        .collect()
}
