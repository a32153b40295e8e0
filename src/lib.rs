//! tollgate paces the requests a program makes with one third-party API
//! credential so that they stay within that credential's `RateLimit`.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod clock;
mod limiter;
pub mod model;
pub mod policy;
#[cfg(feature = "mock-provider")]
pub mod testing;

pub use limiter::{Acquire, AcquireError, Limiter, LimiterBuilder, Permit, TryAcquireError};
pub use model::{RateLimit, ValidationError};
pub use policy::{Margin, Policy};
