//! The `RateLimit` wire object and its validation.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::ValidationError;

/// The number of requests a credential may make per interval, and how many may
/// be in flight at once.
///
/// The fields keep their wire names. `interval` is in milliseconds, and a
/// `max_concurrent_requests` of 0 means no concurrency cap.
///
/// A `RateLimit` is valid by construction: [`RateLimit::new`] and
/// deserialization both reject `allowed_requests == 0`, `interval == 0`,
/// negative, fractional, missing, null and overflowing values.
///
/// # Examples
///
/// ```
/// use tollgate::RateLimit;
///
/// let limit: RateLimit = serde_json::from_str(
///     r#"{"allowed_requests": 100, "interval": 10000, "max_concurrent_requests": 5}"#,
/// )?;
/// assert_eq!(limit.allowed_requests(), 100);
/// assert_eq!(limit.interval_ms(), 10_000);
/// assert_eq!(limit.max_concurrent_requests(), 5);
///
/// let error = serde_json::from_str::<RateLimit>(
///     r#"{"allowed_requests": 0, "interval": 1000, "max_concurrent_requests": 0}"#,
/// )
/// .unwrap_err();
/// assert!(error.to_string().contains("allowed_requests must be at least 1, got 0"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RateLimit {
    allowed_requests: u32,
    interval: u64,
    max_concurrent_requests: u32,
}

impl RateLimit {
    /// Creates a rate limit of `allowed_requests` per `interval_ms`
    /// milliseconds with at most `max_concurrent_requests` in flight (0 for no
    /// cap).
    ///
    /// # Errors
    ///
    /// Returns a [`ValidationError`] naming the field when `allowed_requests`
    /// or `interval_ms` is 0.
    pub fn new(
        allowed_requests: u32,
        interval_ms: u64,
        max_concurrent_requests: u32,
    ) -> Result<Self, ValidationError> {
        if allowed_requests == 0 {
            return Err(ValidationError::new(
                "allowed_requests",
                "0",
                "must be at least 1",
            ));
        }
        if interval_ms == 0 {
            return Err(ValidationError::new(
                "interval",
                "0",
                "must be at least 1 (milliseconds)",
            ));
        }
        Ok(Self {
            allowed_requests,
            interval: interval_ms,
            max_concurrent_requests,
        })
    }

    /// Returns how many requests may start per interval.
    pub fn allowed_requests(&self) -> u32 {
        self.allowed_requests
    }

    /// Returns the interval in milliseconds, as on the wire.
    pub fn interval_ms(&self) -> u64 {
        self.interval
    }

    /// Returns the interval as a [`Duration`].
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval)
    }

    /// Returns the wire value of the concurrency cap, where 0 means no cap.
    pub fn max_concurrent_requests(&self) -> u32 {
        self.max_concurrent_requests
    }

    /// Returns the concurrency cap, or `None` when there is none.
    pub fn concurrency_cap(&self) -> Option<NonZeroU32> {
        NonZeroU32::new(self.max_concurrent_requests)
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("allowed_requests", &self.allowed_requests)
            .field("interval_ms", &self.interval)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .finish()
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {} ms", self.allowed_requests, self.interval)?;
        match self.max_concurrent_requests {
            0 => f.write_str(", no concurrency cap"),
            cap => write!(f, ", at most {cap} in flight"),
        }
    }
}

/// A JSON number as it arrived, before it is checked against a field's type.
enum WireNumber {
    Unsigned(u64),
    Negative(i64),
    Float(f64),
    Null,
    /// A string, boolean, array or object, described for an error message.
    NotNumber(String),
}

impl WireNumber {
    /// Converts the number to an unsigned integer no larger than `max`, or
    /// describes why it cannot be one.
    fn to_unsigned(&self, field: &'static str, max: u64) -> Result<u64, ValidationError> {
        match *self {
            WireNumber::Unsigned(value) if value <= max => Ok(value),
            WireNumber::Unsigned(value) => Err(ValidationError::new(
                field,
                value.to_string(),
                format!("must be at most {max}"),
            )),
            WireNumber::Negative(value) => Err(ValidationError::new(
                field,
                value.to_string(),
                "must not be negative",
            )),
            WireNumber::Float(value) => Err(float_error(field, value, max)),
            WireNumber::Null => Err(ValidationError::new(field, "null", "must be a number")),
            WireNumber::NotNumber(ref value) => Err(ValidationError::new(
                field,
                value.clone(),
                "must be a number",
            )),
        }
    }
}

/// Describes why a JSON number with a decimal point or exponent is rejected.
///
/// serde_json parses integers above `u64::MAX` as `f64`, so an overflowing
/// integer arrives here, and the value in the message is its `f64` rounding.
fn float_error(field: &'static str, value: f64, max: u64) -> ValidationError {
    // 2^64, the first whole number that does not fit in a u64. Below it, a
    // whole non-negative f64 converts to u64 exactly.
    const U64_LIMIT: f64 = 18_446_744_073_709_551_616.0;

    let (rule, shown) = if value.fract() != 0.0 {
        ("must be a whole number".into(), value.to_string())
    } else if value < 0.0 {
        ("must not be negative".into(), value.to_string())
    } else if value >= U64_LIMIT || value as u64 > max {
        (format!("must be at most {max}"), value.to_string())
    } else {
        // Debug keeps the decimal point, so `1000.0` is shown as sent.
        let rule = "must be written as an integer, without a decimal point or exponent";
        (rule.to_owned(), format!("{value:?}"))
    };
    ValidationError::new(field, shown, rule)
}

impl<'de> Deserialize<'de> for WireNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;

        impl<'de> Visitor<'de> for NumberVisitor {
            type Value = WireNumber;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<WireNumber, E> {
                Ok(WireNumber::Unsigned(value))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<WireNumber, E> {
                match u64::try_from(value) {
                    Ok(value) => Ok(WireNumber::Unsigned(value)),
                    Err(_) => Ok(WireNumber::Negative(value)),
                }
            }

            fn visit_u128<E: de::Error>(self, value: u128) -> Result<WireNumber, E> {
                Ok(WireNumber::Unsigned(
                    u64::try_from(value).unwrap_or(u64::MAX),
                ))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<WireNumber, E> {
                Ok(WireNumber::Float(value))
            }

            fn visit_unit<E: de::Error>(self) -> Result<WireNumber, E> {
                Ok(WireNumber::Null)
            }

            fn visit_none<E: de::Error>(self) -> Result<WireNumber, E> {
                Ok(WireNumber::Null)
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<WireNumber, E> {
                Ok(WireNumber::NotNumber(value.to_string()))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<WireNumber, E> {
                Ok(WireNumber::NotNumber(format!("{value:?}")))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<WireNumber, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(WireNumber::NotNumber("an array".into()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<WireNumber, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(WireNumber::NotNumber("an object".into()))
            }
        }

        deserializer.deserialize_any(NumberVisitor)
    }
}

// `Option` alone would read `null` as absent, so `present` keeps `None` for a
// missing field and passes `null` on to `WireNumber::Null`.
#[derive(Deserialize)]
struct WireRateLimit {
    #[serde(default, deserialize_with = "present")]
    allowed_requests: Option<WireNumber>,
    #[serde(default, deserialize_with = "present")]
    interval: Option<WireNumber>,
    #[serde(default, deserialize_with = "present")]
    max_concurrent_requests: Option<WireNumber>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<WireNumber>, D::Error> {
    WireNumber::deserialize(deserializer).map(Some)
}

fn required(
    value: Option<WireNumber>,
    field: &'static str,
    max: u64,
) -> Result<u64, ValidationError> {
    match value {
        Some(number) => number.to_unsigned(field, max),
        None if field == "max_concurrent_requests" => Err(ValidationError::new(
            field,
            "missing",
            "is required (0 means no concurrency cap)",
        )),
        None => Err(ValidationError::new(field, "missing", "is required")),
    }
}

impl TryFrom<WireRateLimit> for RateLimit {
    type Error = ValidationError;

    fn try_from(wire: WireRateLimit) -> Result<Self, ValidationError> {
        let allowed = required(wire.allowed_requests, "allowed_requests", u32::MAX.into())?;
        let interval = required(wire.interval, "interval", u64::MAX)?;
        let concurrent = required(
            wire.max_concurrent_requests,
            "max_concurrent_requests",
            u32::MAX.into(),
        )?;

        // The bounds passed to `required` make these conversions lossless.
        let allowed = u32::try_from(allowed).unwrap_or(u32::MAX);
        let concurrent = u32::try_from(concurrent).unwrap_or(u32::MAX);
        RateLimit::new(allowed, interval, concurrent)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireRateLimit::deserialize(deserializer)?;
        RateLimit::try_from(wire).map_err(de::Error::custom)
    }
}
