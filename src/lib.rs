//! tollgate paces the requests a program makes with one third-party API
//! credential so that they stay within that credential's `RateLimit`.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod model;
#[cfg(feature = "mock-provider")]
pub mod testing;

pub use model::{RateLimit, ValidationError};
