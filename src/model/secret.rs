//! `SecretString`, the redaction rule for JSON keys, and a redacting `Debug`
//! view of JSON values.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The text that `Debug` and `Display` print in place of a secret.
const REDACTED: &str = "[redacted]";

/// A credential secret, such as a refresh token, access token, password or
/// API key, that prints as `[redacted]`.
///
/// `Debug` and `Display` never print the value. Serialization writes the real
/// value, because a credential sent back to the API must keep its secret.
/// Call [`SecretString::expose`] to read it.
///
/// NOTE: the value is an ordinary `String`, so its memory is not zeroed on
/// drop.
///
/// # Examples
///
/// ```
/// use tollgate::SecretString;
///
/// let token = SecretString::new("SECRET-refresh-123");
/// assert_eq!(format!("{token:?}"), "[redacted]");
/// assert_eq!(token.to_string(), "[redacted]");
/// assert_eq!(token.expose(), "SECRET-refresh-123");
/// assert_eq!(serde_json::to_string(&token)?, r#""SECRET-refresh-123""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `value` as a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Unwraps the secret into its value.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// Lowercase fragments that mark a JSON key as naming a secret.
const SECRET_KEY_FRAGMENTS: [&str; 9] = [
    "token",
    "secret",
    "passw",
    "passphrase",
    "key",
    "credential",
    "authorization",
    "cookie",
    "session",
];

/// Returns whether `Debug` output hides the value stored under the JSON key
/// `key`.
///
/// A key names a secret when its ASCII-lowercase form contains `token`,
/// `secret`, `passw` (password, passwd), `passphrase`, `key`, `credential`,
/// `authorization`, `cookie` or `session`. So `refresh_token`, `accessToken`,
/// `client_secret`, `password`, `api_key` and `private_key` name secrets,
/// while `kind`, `scope`, `shop` and `login_id` do not.
///
/// The rule errs towards hiding, so some harmless keys such as
/// `token_expires_at` or `keyboard` are hidden too. The value under a secret
/// key is hidden whatever its JSON type, including whole objects and arrays.
///
/// NOTE: the rule looks only at keys, so a secret stored under an innocuous
/// key (for example `"value": "sk_live_..."`) still prints.
///
/// # Examples
///
/// ```
/// use tollgate::model::is_secret_key;
///
/// assert!(is_secret_key("refresh_token"));
/// assert!(is_secret_key("apiKey"));
/// assert!(!is_secret_key("kind"));
/// ```
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_FRAGMENTS
        .iter()
        .any(|fragment| key.contains(fragment))
}

/// A `Debug` view of a JSON object that prints `[redacted]` for the value of
/// every key that [`is_secret_key`] matches, at any depth.
pub(crate) struct RedactedMap<'a>(pub(crate) &'a Map<String, Value>);

impl fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in self.0 {
            if is_secret_key(key) {
                map.entry(key, &format_args!("{REDACTED}"));
            } else {
                map.entry(key, &RedactedValue(value));
            }
        }
        map.finish()
    }
}

/// A `Debug` view of a JSON value that applies [`RedactedMap`] to every
/// object inside it.
struct RedactedValue<'a>(&'a Value);

impl fmt::Debug for RedactedValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Null => f.write_str("null"),
            Value::Bool(value) => fmt::Debug::fmt(value, f),
            Value::Number(value) => fmt::Display::fmt(value, f),
            Value::String(value) => fmt::Debug::fmt(value, f),
            Value::Array(items) => f
                .debug_list()
                .entries(items.iter().map(RedactedValue))
                .finish(),
            Value::Object(map) => fmt::Debug::fmt(&RedactedMap(map), f),
        }
    }
}
