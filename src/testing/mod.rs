//! A strict mock provider for tests.
