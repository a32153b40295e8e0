//! Latency distributions for the simulated provider, and the seeded
//! generator that samples them.

use std::fmt;
use std::time::Duration;

use crate::units::{format_duration, parse_duration};

/// The time the provider takes to respond to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Latency {
    /// The same time for every request.
    Fixed(Duration),
    /// A time drawn uniformly between `low` and `high`, both included.
    Uniform { low: Duration, high: Duration },
    /// `base` plus an exponentially distributed extra time with mean `mean`:
    /// a fixed floor with a long tail.
    Exponential { base: Duration, mean: Duration },
}

/// The maximum multiple of the mean that an exponential sample can reach:
/// `-ln(2^-53)`, because `SplitMix64::next_unit` has 53 random bits.
const EXPONENTIAL_MAX_FACTOR: f64 = 36.8;

impl Latency {
    /// Parses `DURATION`, `uniform:LOW..HIGH` or `exp:BASE+MEAN` (also
    /// `exp:MEAN` with no base).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if let Some(bounds) = text.strip_prefix("uniform:") {
            let (low, high) = bounds
                .split_once("..")
                .ok_or("a uniform latency needs two bounds, as in uniform:100ms..300ms")?;
            let (low, high) = (parse_duration(low)?, parse_duration(high)?);
            if low > high {
                return Err(format!(
                    "the lower bound {} is above the upper bound {}",
                    format_duration(low),
                    format_duration(high)
                ));
            }
            return Ok(Latency::Uniform { low, high });
        }
        if let Some(parts) = text.strip_prefix("exp:") {
            let (base, mean) = match parts.split_once('+') {
                Some((base, mean)) => (parse_duration(base)?, parse_duration(mean)?),
                None => (Duration::ZERO, parse_duration(parts)?),
            };
            return Ok(Latency::Exponential { base, mean });
        }
        parse_duration(text).map(Latency::Fixed)
    }

    /// Returns the mean of the distribution.
    pub(crate) fn mean(&self) -> Duration {
        match *self {
            Latency::Fixed(latency) => latency,
            Latency::Uniform { low, high } => low + (high - low) / 2,
            Latency::Exponential { base, mean } => base + mean,
        }
    }

    /// Returns the maximum value a sample can take.
    pub(crate) fn max(&self) -> Duration {
        match *self {
            Latency::Fixed(latency) => latency,
            Latency::Uniform { high, .. } => high,
            Latency::Exponential { base, mean } => base + mean.mul_f64(EXPONENTIAL_MAX_FACTOR),
        }
    }

    /// Reports whether every sample is the same.
    pub(crate) fn is_fixed(&self) -> bool {
        matches!(self, Latency::Fixed(_))
    }

    /// Draws one latency.
    pub(crate) fn sample(&self, rng: &mut SplitMix64) -> Duration {
        match *self {
            Latency::Fixed(latency) => latency,
            Latency::Uniform { low, high } => {
                let span = u128::from(nanos(high - low)) + 1;
                // Multiply-shift maps 64 random bits onto [0, span) with a
                // bias below span / 2^64, far below a nanosecond here.
                let offset = (u128::from(rng.next_u64()) * span) >> 64;
                low + Duration::from_nanos(offset as u64)
            }
            Latency::Exponential { base, mean } => {
                let tail = -(1.0 - rng.next_unit()).ln();
                base + mean.mul_f64(tail)
            }
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Latency::Fixed(latency) => write!(f, "{} fixed", format_duration(latency)),
            Latency::Uniform { low, high } => write!(
                f,
                "uniform {}..{} (mean {})",
                format_duration(low),
                format_duration(high),
                format_duration(self.mean())
            ),
            Latency::Exponential { base, mean } => write!(
                f,
                "{} plus an exponential extra with mean {} (mean {})",
                format_duration(base),
                format_duration(mean),
                format_duration(self.mean())
            ),
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The SplitMix64 generator: 64 bits of state, statistics good enough for
/// sampling latencies, and the same sequence for the same seed on every
/// platform.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// Creates a generator whose sequence is determined by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Returns the next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// Returns a number in `[0, 1)` with 53 random bits.
    pub(crate) fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_mean(latency: Latency, count: u32) -> Duration {
        let mut rng = SplitMix64::new(7);
        let total: Duration = (0..count).map(|_| latency.sample(&mut rng)).sum();
        total / count
    }

    #[test]
    fn parse_latency_forms() {
        let ms = Duration::from_millis;
        assert_eq!(Latency::parse("200ms"), Ok(Latency::Fixed(ms(200))));
        assert_eq!(
            Latency::parse("uniform:100ms..300ms"),
            Ok(Latency::Uniform {
                low: ms(100),
                high: ms(300)
            })
        );
        assert_eq!(
            Latency::parse("exp:50ms+20ms"),
            Ok(Latency::Exponential {
                base: ms(50),
                mean: ms(20)
            })
        );
        assert_eq!(
            Latency::parse("exp:20ms"),
            Ok(Latency::Exponential {
                base: Duration::ZERO,
                mean: ms(20)
            })
        );
    }

    #[test]
    fn parse_latency_rejects_bad_forms() {
        for text in [
            "uniform:300ms..100ms",
            "uniform:100ms",
            "exp:",
            "exp:5ms+",
            "fast",
        ] {
            assert!(Latency::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn uniform_samples_stay_in_bounds() {
        let (low, high) = (Duration::from_millis(100), Duration::from_millis(300));
        let latency = Latency::Uniform { low, high };
        let mut rng = SplitMix64::new(1);
        for _ in 0..10_000 {
            let sample = latency.sample(&mut rng);
            assert!(sample >= low, "{sample:?} below {low:?}");
            assert!(sample <= high, "{sample:?} above {high:?}");
        }
    }

    #[test]
    fn sample_means_match_distribution_means() {
        let ms = Duration::from_millis;
        let latencies = [
            Latency::Uniform {
                low: ms(100),
                high: ms(300),
            },
            Latency::Exponential {
                base: ms(50),
                mean: ms(20),
            },
        ];
        for latency in latencies {
            let measured = sample_mean(latency, 100_000).as_secs_f64();
            let expected = latency.mean().as_secs_f64();
            assert!(
                (measured - expected).abs() < expected * 0.01,
                "{latency}: sample mean {measured} s, expected {expected} s"
            );
        }
    }

    #[test]
    fn same_seed_same_samples() {
        let (mut first, mut second) = (SplitMix64::new(42), SplitMix64::new(42));
        for _ in 0..100 {
            assert_eq!(first.next_u64(), second.next_u64());
        }
    }
}
