//! The RAII guard for one admitted request.

use std::fmt;

use super::Limiter;

/// Proof that a request was admitted: it holds one concurrency slot.
///
/// The rate grant is counted from the moment the permit was issued and is
/// not returned. The concurrency slot returns when the permit drops,
/// including during a panic's unwinding and when the task holding it is
/// cancelled.
#[must_use = "the request's concurrency slot is released as soon as the permit drops"]
pub struct Permit {
    limiter: Limiter,
    weight: u32,
}

impl Permit {
    pub(crate) fn new(limiter: Limiter, weight: u32) -> Self {
        Self { limiter, weight }
    }

    /// Returns the weight this permit was granted for.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Returns the limiter that issued this permit.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.core.release_slot();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}
