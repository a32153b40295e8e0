//! Durations as the planner reads them from flags and prints them.

use std::time::Duration;

/// Parses a non-negative decimal number followed by a unit (`ns`, `us`, `ms`,
/// `s`, `m` or `h`), such as `250ms` or `1.5s`.
///
/// A bare number is an error, because a rate limit's interval is easy to
/// mistake for seconds or milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let Some(unit_start) = text.find(|c: char| c.is_alphabetic()) else {
        return Err("the unit is missing: add one of ns, us, ms, s, m or h".into());
    };
    let (number, unit) = text.split_at(unit_start);
    let nanos_per_unit = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return Err(format!("unknown unit {unit:?}: use ns, us, ms, s, m or h")),
    };

    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a number", number.trim()))?;
    if value.is_nan() || value < 0.0 {
        return Err("the duration must not be negative".into());
    }
    let nanos = (value * nanos_per_unit).round();
    if nanos >= u64::MAX as f64 {
        return Err("the duration is too long (the maximum is about 584 years)".into());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Formats a duration with about four significant digits in a unit that
/// suits its size, adding hours and minutes above 100 seconds.
pub(crate) fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 0.001 {
        return format!("{:.3} ms", seconds * 1e3);
    }
    if seconds < 1.0 {
        return format!("{:.1} ms", seconds * 1e3);
    }
    if seconds < 100.0 {
        return format!("{seconds:.3} s");
    }

    let whole = duration.as_secs() + u64::from(duration.subsec_nanos() >= 500_000_000);
    let (hours, minutes, rest) = (whole / 3600, whole % 3600 / 60, whole % 60);
    let clock = if hours > 0 {
        format!("{hours} h {minutes} min {rest} s")
    } else {
        format!("{minutes} min {rest} s")
    };
    format!("{seconds:.1} s ({clock})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_duration_units() {
        let cases = [
            ("250ns", Duration::from_nanos(250)),
            ("40us", Duration::from_micros(40)),
            ("40ms", Duration::from_millis(40)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.1s", Duration::from_millis(100)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            (" 10 s ", Duration::from_secs(10)),
            ("0ms", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn parse_duration_rejects_bad_input() {
        for text in [
            "200",
            "",
            "ms",
            "-5ms",
            "5 days",
            "1e3ms",
            "NaNs",
            "1000000000h",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn format_duration_picks_unit() {
        assert_eq!(format_duration(Duration::from_micros(420)), "0.420 ms");
        assert_eq!(format_duration(Duration::from_millis(40)), "40.0 ms");
        assert_eq!(format_duration(Duration::from_millis(9130)), "9.130 s");
        assert_eq!(
            format_duration(Duration::from_secs(1010)),
            "1010.0 s (16 min 50 s)"
        );
        assert_eq!(
            format_duration(Duration::from_secs(10_100)),
            "10100.0 s (2 h 48 min 20 s)"
        );
    }
}
